"""Identification at scale (issue #29): a k-mer index of 1,000,000 simulated references next to the dev library's.

    nice python bench/bench_identify_scale.py --output bench/results/identify_scale.json

Prints one JSON object: for each library, the index build (seconds, peak RSS, size on disk per file) and its
2,000 queries, ``identify_file`` end to end as a user runs it (default ``--align``), twice: ``first_query``, as the
first query of a copied index (its ``.verified.json`` removed, so every file is hashed), and ``query``, as every
later one. Each says where its time went (:func:`split_of`): the process's start-up (interpreter and imports), loading
the index (of which the checksums, the finite check and reading ``ivf.faiss``), loading a model (none for k-mers),
reading and embedding the queries, the search, the screen (the candidates' diagonal scores), the alignment (local
scores and full alignments of the best), writing the
tables and the rest (votes, hit tables).
``query`` then times each search on the same query vectors: exact with faiss, exact with torch's blocked products,
and the IVF index at each ``--nprobe``, with the share of queries whose top-1 and top-k similarities equal the exact
search's. Last, the ratio of queries/s of the two libraries and an extrapolation to 5,000,000 references.

* ``simulated``: ``--references`` barcodes streamed to a CSV chunk by chunk (:func:`simulate_barcodes`, one independent
  tree of ``--chunk-genera`` genera per chunk, names prefixed by the chunk, so no more than one chunk is in memory),
  indexed with ``--ivf``; the queries are ``--queries`` of the chunks' ``test`` / ``test_unseen`` barcodes, which are
  kept out of the references.
* ``dev``: the ``train`` split of ``--dev`` (27k BOLD barcodes), indexed without IVF (what ``identify build`` is for
  such a library); ``--queries`` of its ``test`` / ``test_unseen`` barcodes.

Each build and each query runs in its own process (this script with ``--step``), so each peak RSS
(``resource.getrusage``) is that step's alone; ``--threads`` caps torch and faiss.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from unittest import mock

import numpy as np
import pandas as pd

from barcodemae.cli_options import DEFAULT_KMER, DEFAULT_TOP_K
from barcodemae.embedding_settings import EmbeddingSettings

DEFAULT_DEV = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "bold_coi" / "dev.csv.gz"
QUERY_SPLITS = ("test", "test_unseen")
PREFIXED = ("processid", "sampleid", "taxon", "genus", "species", "dna_bin")
"""Columns that name a record or a taxon: prefixed with the chunk, since each chunk is a tree of its own."""


def peak_rss_mib() -> float:
    """This process's peak resident set size so far (Linux reports ``ru_maxrss`` in KiB)."""
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def set_threads(threads: int) -> None:
    import faiss
    import torch

    torch.set_num_threads(threads)
    faiss.omp_set_num_threads(threads)


# ------------------------------------------------------------------------------------------------------- inputs
def simulate_library(work: Path, references: int, queries: int, chunk_genera: int, seed: int) -> dict[str, Any]:
    """``references.csv`` (``references`` rows) and ``queries.csv`` (``queries`` rows), written chunk by chunk."""
    from barcodemae.simulation import simulate_barcodes

    started = time.perf_counter()
    rng = np.random.default_rng(seed)
    held_out, written, chunk = [], 0, 0
    with (work / "references.csv").open("w") as handle:
        while written < references:
            frame = simulate_barcodes(num_genera=chunk_genera, seed=seed + chunk)
            for column in PREFIXED:
                frame[column] = np.where(frame[column].notna(), f"c{chunk:03d}-" + frame[column].astype(str), None)
            held = frame["split"].isin(QUERY_SPLITS).to_numpy()
            part = frame[~held].iloc[:references - written]
            part.to_csv(handle, header=chunk == 0, index=False)
            written += len(part)
            kept = frame[held]
            held_out.append(kept.iloc[rng.permutation(len(kept))[:queries]])
            chunk += 1
    pool = pd.concat(held_out, ignore_index=True)
    pool.iloc[np.sort(rng.permutation(len(pool))[:queries])].to_csv(work / "queries.csv", index=False)
    return {"references": written, "queries": min(queries, len(pool)), "chunks": chunk,
            "seconds": round(time.perf_counter() - started, 1)}


def dev_queries(dev: Path, work: Path, queries: int, seed: int) -> Path:
    """``queries`` barcodes of the dev file's ``test`` / ``test_unseen`` splits as a CSV of their own."""
    frame = pd.read_csv(dev, low_memory=False)
    held = frame[frame["split"].isin(QUERY_SPLITS)]
    path = work / "dev_queries.csv"
    held.iloc[np.sort(np.random.default_rng(seed).permutation(len(held))[:queries])].to_csv(path, index=False)
    return path


# -------------------------------------------------------------------------------------------------------- steps
def build_step(reference: str, index: str, k: int, split: str, ivf: bool, threads: int,
               spawned_at: float) -> dict[str, Any]:
    """Build the index; the process's start-up, seconds, peak RSS and the size of each file."""
    from barcodemae.identify import build_reference_index
    from barcodemae.index_embedders import KmerProfileEmbedder

    set_threads(threads)
    startup_s = time.time() - spawned_at
    started = time.perf_counter()
    built = build_reference_index(KmerProfileEmbedder(k), reference, index, split=split, ivf=ivf,
                                  settings=EmbeddingSettings(progress=False))
    seconds = time.perf_counter() - started
    files = {path.name: round(path.stat().st_size / 2**20, 1) for path in sorted(Path(index).iterdir())}
    return {"references": len(built.embeddings), "dimensions": int(built.embeddings.shape[1]),
            "ivf_lists": built.info.get("ivf_lists"), "startup_s": round(startup_s, 2), "build_s": round(seconds, 1),
            "peak_rss_mib": peak_rss_mib(),
            "index_mib": round(sum(files.values()), 1), "files_mib": files}


def timed(function: Any, *args: Any, **kwargs: Any) -> tuple[Any, float]:
    started = time.perf_counter()
    result = function(*args, **kwargs)
    return result, time.perf_counter() - started


def agreement(found: np.ndarray, exact: np.ndarray) -> dict[str, float]:
    """Share of queries whose top-1 similarity, and whose every top-k similarity, equals the exact search's."""
    same = np.isclose(found, exact, atol=1e-5)
    return {"top1_same": round(float(same[:, 0].mean()), 4), "topk_same": round(float(same.all(axis=1).mean()), 4)}


PHASES: dict[str, tuple[str, ...]] = {
    "load_index": ("ReferenceIndex.load",),
    "of_which_checksums": ("identify.verify_checksums",),
    "of_which_finite_check": ("identify.check_finite",),
    "of_which_ivf_read": ("IvfSearch.load",),
    "load_model": ("index_embedders.load_model",),
    "read_queries": ("identify.check_input", "identify.load_records"),
    "embed_queries": ("KmerProfileEmbedder.embed", "ModelEmbedder.embed"),
    "search": ("ReferenceIndex.search",),
    "screen": ("identify.anchor_shifts", "identify.diagonal_scores"),
    "align": ("identify.local_scores", "identify.align_shortlist"),
    "write": ("identify.write_identification",),
}
"""The phases of ``identify_file`` and the functions whose calls are each one's time; ``of_which_*`` are parts of
``load_index`` (the finite check also covers the 2,000 query vectors, a negligible part)."""


@contextlib.contextmanager
def phase_clock() -> Iterator[dict[str, float]]:
    """Seconds spent in each phase of a query run while the block runs (:data:`PHASES`), by wrapping the functions
    ``identify_file`` calls for them."""
    from barcodemae import identify
    from barcodemae import index_embedders as embedders

    owners = {"identify": identify, "ReferenceIndex": identify.ReferenceIndex, "IvfSearch": identify.IvfSearch,
              "index_embedders": embedders, "KmerProfileEmbedder": embedders.KmerProfileEmbedder,
              "ModelEmbedder": embedders.ModelEmbedder}
    seconds = dict.fromkeys(PHASES, 0.0)

    def clocked(phase: str, function: Any) -> Any:
        def run(*args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            try:
                return function(*args, **kwargs)
            finally:
                seconds[phase] += time.perf_counter() - started
        return run

    with contextlib.ExitStack() as patches:
        for phase, targets in PHASES.items():
            for target in targets:
                owner, name = target.split(".")
                original = getattr(owners[owner], name)
                patches.enter_context(mock.patch.object(owners[owner], name, clocked(phase, original)))
        yield seconds


def split_of(seconds: dict[str, float], end_to_end_s: float, startup_s: float) -> dict[str, float]:
    """Where a query run's time went: start-up, each phase of :data:`PHASES`, and ``other`` (votes, hit tables,
    output checks), the end-to-end seconds no phase accounts for."""
    outer = sum(value for phase, value in seconds.items() if not phase.startswith("of_which_"))
    return {"startup_s": round(startup_s, 2), **{f"{phase}_s": round(value, 3) for phase, value in seconds.items()},
            "other_s": round(end_to_end_s - outer, 3)}


def query_phases(index_dir: Path, queries: Path, nprobes: list[int]) -> dict[str, Any]:
    """Each search on the same index and query vectors, in queries per second."""
    from barcodemae.embed_files import load_records
    from barcodemae.identify import ReferenceIndex
    from barcodemae.index_embedders import index_embedder
    from barcodemae.index_search import blocked_search, faiss_flat_search, unit_rows

    index = ReferenceIndex.load(index_dir)
    embedder = index_embedder(index.info, index_dir)
    dataset, _ = load_records(queries, min_length=embedder.min_length)
    unit = unit_rows(index.postprocessor.transform(embedder.embed(dataset["dna_barcode"])))
    (_, exact), faiss_s = timed(faiss_flat_search, index.embeddings, unit, DEFAULT_TOP_K)
    _, blocked_s = timed(blocked_search, index.embeddings, unit, DEFAULT_TOP_K)
    searches = {"exact_faiss": {"s": faiss_s}, "exact_blocked": {"s": blocked_s}}
    for nprobe in nprobes if index.ivf is not None else []:
        index.ivf.index.nprobe = nprobe
        (_, found), seconds = timed(index.ivf.search, index.embeddings, unit, DEFAULT_TOP_K)
        searches[f"ivf_nprobe_{nprobe}"] = {"s": seconds, **agreement(found, exact)}
    for search in searches.values():
        search["queries_per_s"] = round(len(unit) / search["s"], 1)
        search["s"] = round(search["s"], 3)
    return {"searches": searches}


def query_step(index: str, queries: str, output: str, nprobes: list[int] | None, threads: int, spawned_at: float,
               reverify: bool = False) -> dict[str, Any]:
    """``identify_file`` end to end (the index's default search and ``--align``) and where its time went, then
    :func:`query_phases` unless ``nprobes`` is ``None``. ``reverify``: first remove the index's record of verified
    files, as for the first query of a copied index."""
    from barcodemae.checksums import VERIFIED
    from barcodemae.identify import identify_file

    set_threads(threads)
    startup_s = time.time() - spawned_at
    if reverify:
        (Path(index) / VERIFIED).unlink(missing_ok=True)
    with phase_clock() as seconds:
        table, end_to_end_s = timed(identify_file, index, queries, output, settings=EmbeddingSettings(progress=False))
    report = {"end_to_end": {"queries": len(table), "s": round(end_to_end_s, 2),
                             "queries_per_s": round(len(table) / end_to_end_s, 1)},
              "split": split_of(seconds, end_to_end_s, startup_s), "peak_rss_mib": peak_rss_mib()}
    if nprobes is not None:
        report["phases"] = query_phases(Path(index), Path(queries), nprobes)
    return report


STEPS = {"build": build_step, "query": query_step}


def run_step(step: str, work: Path, **arguments: Any) -> dict[str, Any]:
    """One step in a fresh process (its own peak RSS; the datasets cache inside ``work``, so every read is cold)."""
    environment = {**os.environ, "HF_DATASETS_CACHE": str(work / "hf_cache"), "TQDM_DISABLE": "1"}
    arguments["spawned_at"] = time.time()
    done = subprocess.run([sys.executable, __file__, "--step", step, json.dumps(arguments)], env=environment,
                          capture_output=True, text=True, check=False)
    if done.returncode:
        raise RuntimeError(f"step {step} failed:\n{done.stderr[-4000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


# ------------------------------------------------------------------------------------------------- extrapolation
def extrapolate(simulated: dict[str, Any], factor: float) -> dict[str, Any]:
    """The simulated library's numbers at ``factor`` times its references (see the assumptions in the output)."""
    build, query = simulated["build"], simulated["query"]
    searches, split = query["phases"]["searches"], query["split"]
    queries = query["end_to_end"]["queries"]
    load = split["load_index_s"] * factor
    ivf_search = split["search_s"] * factor**0.5
    exact_search = searches["exact_faiss"]["s"] * factor
    fixed = query["end_to_end"]["s"] - split["load_index_s"] - split["search_s"]
    return {
        "references": round(build["references"] * factor),
        "assumptions": "build time, peak RSS and disk proportional to the references; loading the index "
                       "(remembered checksums, finite check, reading ivf.faiss) too; the IVF search in "
                       "sqrt(references) (4 sqrt(n) cells, nprobe of them scanned); the exact search proportional; "
                       "the rest of a later query (reading, embedding and aligning the queries, votes, writing) "
                       "unchanged",
        "build_s": round(build["build_s"] * factor),
        "peak_rss_build_mib": round(build["peak_rss_mib"] * factor),
        "index_mib": round(build["index_mib"] * factor),
        "query_ivf_queries_per_s": round(queries / (load + fixed + ivf_search), 1),
        "query_exact_queries_per_s": round(queries / (load + fixed + exact_search), 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--references", type=int, default=1_000_000, help="simulated references (default 1M)")
    parser.add_argument("--queries", type=int, default=2_000, help="queries per library (default 2000)")
    parser.add_argument("--kmer", type=int, default=DEFAULT_KMER,
                        help=f"k of the profiles (default {DEFAULT_KMER}, identify build's)")
    parser.add_argument("--nprobe", default="4,8,16,32", help="IVF cells scanned per query, comma-separated")
    parser.add_argument("--chunk-genera", type=int, default=1_000, help="genera per simulated chunk (~70k rows)")
    parser.add_argument("--dev", default=str(DEFAULT_DEV), help="BIOSCAN-format CSV with a train split")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--work", default=None, help="folder for the files (default: a temporary one, removed)")
    parser.add_argument("--output", default=None, help="also write the JSON here")
    parser.add_argument("--step", choices=sorted(STEPS), help=argparse.SUPPRESS)
    args, rest = parser.parse_known_args()
    if args.step:
        print(json.dumps(STEPS[args.step](**json.loads(rest[0]))))
        return
    from barcodemae.index_search import IVF_NPROBE

    nprobes = sorted({int(value) for value in args.nprobe.split(",")} | {IVF_NPROBE})
    work = Path(args.work) if args.work else Path(tempfile.mkdtemp(prefix="identify-scale-"))
    work.mkdir(parents=True, exist_ok=True)
    common = {"threads": args.threads}
    try:
        report: dict[str, Any] = {"command": " ".join(sys.argv), "kmer": args.kmer, "threads": args.threads,
                                  "top_k": DEFAULT_TOP_K}
        dev_index = work / "dev_index"
        dev = {"build": run_step("build", work, reference=args.dev, index=str(dev_index), k=args.kmer,
                                 split="train", ivf=False, **common)}
        dev_query = {"index": str(dev_index), "output": str(work / "dev_ids.csv"),
                     "queries": str(dev_queries(Path(args.dev), work, args.queries, args.seed))}
        dev["first_query"] = run_step("query", work, **dev_query, nprobes=None, reverify=True, **common)
        dev["query"] = run_step("query", work, **dev_query, nprobes=nprobes, **common)
        report["dev"] = dev
        simulated: dict[str, Any] = {"simulation": simulate_library(work, args.references, args.queries,
                                                                    args.chunk_genera, args.seed),
                                     "nprobe": IVF_NPROBE}
        index = work / "simulated_index"
        simulated["build"] = run_step("build", work, reference=str(work / "references.csv"), index=str(index),
                                      k=args.kmer, split="all", ivf=True, **common)
        simulated_query = {"index": str(index), "queries": str(work / "queries.csv"), "output": str(work / "ids.csv")}
        simulated["first_query"] = run_step("query", work, **simulated_query, nprobes=None, reverify=True, **common)
        simulated["query"] = run_step("query", work, **simulated_query, nprobes=nprobes, **common)
        report["simulated"] = simulated
        ratio = dev["query"]["end_to_end"]["queries_per_s"] / simulated["query"]["end_to_end"]["queries_per_s"]
        searches = simulated["query"]["phases"]["searches"]
        report["ratio_dev_over_simulated_queries_per_s"] = {
            "end_to_end": round(ratio, 2),
            "first_query_end_to_end": round(dev["first_query"]["end_to_end"]["queries_per_s"]
                                            / simulated["first_query"]["end_to_end"]["queries_per_s"], 2),
            "search_only_ivf": round(dev["query"]["phases"]["searches"]["exact_blocked"]["queries_per_s"]
                                     / searches[f"ivf_nprobe_{IVF_NPROBE}"]["queries_per_s"], 2),
            "search_only_exact_faiss": round(dev["query"]["phases"]["searches"]["exact_blocked"]
                                             ["queries_per_s"] / searches["exact_faiss"]["queries_per_s"], 2),
        }
        report["extrapolated_5m"] = extrapolate(simulated, 5_000_000 / simulated["build"]["references"])
    finally:
        if not args.work:
            shutil.rmtree(work, ignore_errors=True)
    text = json.dumps(report, indent=2)
    print(text)
    if args.output:
        Path(args.output).parent.mkdir(parents=True, exist_ok=True)
        Path(args.output).write_text(text + "\n")


if __name__ == "__main__":
    main()
