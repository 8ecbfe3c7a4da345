"""Genus identification by embeddings against the field's yardstick, alignment (VSEARCH, BLAST+), in one harness.

    python research/bench_alignment.py --data ../shared/data/bold_coi/dev.csv.gz --model runs/mae/final_model \\
        --output research/results/alignment.json

Open-world protocol: the genus of every ``test_unseen`` barcode (species never seen) from its top hit among the
``train`` barcodes (keys). Methods, all on the same cleaned barcodes:

- ``barcodemae identify`` with ``--model`` (``build_reference_index`` once, then ``identify_file``: embedding the
  queries plus the cosine search, as a user runs it), top-1 genus;
- the 4-mer frequency baseline (no learning), cosine top-1;
- ``vsearch --usearch_global`` (global alignment, top hit at ``--min-identity`` or better);
- ``blastn`` (local alignment, the hit with the best bit score).

Alignment tools are optional: a tool not on ``PATH`` is reported as skipped (``apt-get install vsearch
ncbi-blast+``); this script installs nothing. Reports accuracy, macro accuracy, the share of queries with a hit
(no hit counts as wrong), reference-building seconds and queries per second for each method, all measured here.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from barcodemae.data import load_bioscan5m
from barcodemae.eval.metrics import classification_scores, nearest_neighbors
from barcodemae.inference import KmerFrequencyEmbedder

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "bold_coi" / "dev.csv.gz"


def load_split(data: Path, split: str, limit: int | None, seed: int) -> pd.DataFrame:
    """Cleaned ``processid``, ``dna_barcode``, ``genus`` of one split (rows with a genus), optionally subsampled."""
    frame = load_bioscan5m(data, split).select_columns(["processid", "dna_barcode", "genus"]).to_pandas()
    frame = frame[frame["genus"].notna() & (frame["genus"] != "")].reset_index(drop=True)
    if limit is not None and len(frame) > limit:
        frame = frame.iloc[np.sort(np.random.default_rng(seed).permutation(len(frame))[:limit])].reset_index(drop=True)
    return frame


def write_fasta(frame: pd.DataFrame, path: Path) -> None:
    path.write_text("".join(f">{pid}\n{seq}\n" for pid, seq in zip(frame["processid"], frame["dna_barcode"])))


def score(name: str, truth: pd.Series, predicted: pd.Series, build_s: float, query_s: float) -> dict[str, Any]:
    """Accuracy over every query (no hit = wrong), the share with a hit, and the timings."""
    hit = predicted.notna()
    filled = predicted.fillna("<no hit>").astype(str)
    return {
        "method": name,
        **classification_scores(truth.astype(str).to_numpy(), filled.to_numpy()),
        "queries_with_a_hit": float(hit.mean()),
        "reference_build_s": round(build_s, 2),
        "query_s": round(query_s, 2),
        "queries_per_s": round(len(truth) / query_s, 1) if query_s > 0 else None,
    }


def by_kmer_baseline(keys: pd.DataFrame, queries: pd.DataFrame) -> dict[str, Any]:
    embedder = KmerFrequencyEmbedder(4)
    started = time.perf_counter()
    key_vectors = embedder(keys["dna_barcode"].tolist())
    built = time.perf_counter() - started
    started = time.perf_counter()
    nearest, _ = nearest_neighbors(key_vectors, embedder(queries["dna_barcode"].tolist()))
    predicted = pd.Series(keys["genus"].to_numpy()[nearest])
    return score("4-mer frequencies, cosine top-1", queries["genus"], predicted, built, time.perf_counter() - started)


def by_identify(model: Path, data: Path, data_dir: Path, keys: pd.DataFrame, queries: pd.DataFrame,
                batch_size: int) -> dict:
    """The ``barcodemae identify`` path: an index of the keys, then the queries, each from a BIOSCAN-format CSV
    holding the selected records of ``data`` (all columns, as a user's files would)."""
    from barcodemae.identify import build_reference_index, identify_file

    original = pd.read_csv(data, dtype=str, keep_default_na=False)
    reference, query_file = data_dir / "keys.csv", data_dir / "queries.csv"
    for frame, path in ((keys, reference), (queries, query_file)):
        original[original["processid"].isin(set(frame["processid"]))].to_csv(path, index=False)
    started = time.perf_counter()
    build_reference_index(model, reference, data_dir / "index", batch_size=batch_size, progress=False)
    built = time.perf_counter() - started
    started = time.perf_counter()
    result = identify_file(data_dir / "index", query_file, data_dir / "ids.csv", top_k=1, batch_size=batch_size,
                           progress=False)
    elapsed = time.perf_counter() - started
    predicted = queries[["processid"]].merge(result[["processid", "predicted_genus"]], on="processid", how="left")
    return score(f"barcodemae identify ({model.name}), top-1", queries["genus"], predicted["predicted_genus"], built,
                 elapsed)


def top_hits(table: Path, columns: list[str], by: str) -> dict[str, str]:
    """Query id -> target id of its best hit in a tab-separated hit table (highest ``by``)."""
    if not table.is_file() or table.stat().st_size == 0:
        return {}
    hits = pd.read_csv(table, sep="\t", header=None, names=columns, dtype={"query": str, "target": str})
    best = hits.sort_values(by, ascending=False).drop_duplicates("query")
    return dict(zip(best["query"], best["target"]))


def by_vsearch(keys: pd.DataFrame, queries: pd.DataFrame, work: Path, threads: int, min_identity: float) -> dict:
    write_fasta(keys, work / "keys.fasta")
    write_fasta(queries, work / "queries.fasta")
    started = time.perf_counter()
    subprocess.run(["vsearch", "--usearch_global", str(work / "queries.fasta"), "--db", str(work / "keys.fasta"),
                    "--id", str(min_identity), "--userout", str(work / "vsearch.tsv"), "--userfields",
                    "query+target+id", "--threads", str(threads), "--quiet"], check=True)
    elapsed = time.perf_counter() - started
    target = top_hits(work / "vsearch.tsv", ["query", "target", "identity"], "identity")
    genus_of = dict(zip(keys["processid"], keys["genus"]))
    predicted = queries["processid"].map(lambda q: genus_of.get(target.get(q)))
    return score(f"VSEARCH --usearch_global (id >= {min_identity}), top hit", queries["genus"], predicted, 0.0,
                 elapsed)


def by_blast(keys: pd.DataFrame, queries: pd.DataFrame, work: Path, threads: int) -> dict:
    write_fasta(keys, work / "keys.fasta")
    write_fasta(queries, work / "queries.fasta")
    started = time.perf_counter()
    subprocess.run(["makeblastdb", "-in", str(work / "keys.fasta"), "-dbtype", "nucl", "-out", str(work / "keys")],
                   check=True, capture_output=True)
    built = time.perf_counter() - started
    started = time.perf_counter()
    subprocess.run(["blastn", "-query", str(work / "queries.fasta"), "-db", str(work / "keys"), "-outfmt",
                    "6 qseqid sseqid pident bitscore", "-max_target_seqs", "5", "-evalue", "1e-5", "-num_threads",
                    str(threads), "-out", str(work / "blast.tsv")], check=True, capture_output=True)
    elapsed = time.perf_counter() - started
    target = top_hits(work / "blast.tsv", ["query", "target", "identity", "bitscore"], "bitscore")
    genus_of = dict(zip(keys["processid"], keys["genus"]))
    predicted = queries["processid"].map(lambda q: genus_of.get(target.get(q)))
    return score("BLAST+ blastn, best bit score", queries["genus"], predicted, built, elapsed)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="BIOSCAN-format CSV with train, test_unseen")
    parser.add_argument("--model", type=Path, action="append", default=[], help="model folder (repeatable)")
    parser.add_argument("--key-split", default="train")
    parser.add_argument("--query-split", default="test_unseen")
    parser.add_argument("--max-keys", type=int, default=None)
    parser.add_argument("--max-queries", type=int, default=None)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--min-identity", type=float, default=0.7, help="VSEARCH --id")
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--output", type=Path, default=None, help="also write the JSON here")
    args = parser.parse_args(argv)
    keys = load_split(args.data, args.key_split, args.max_keys, args.seed)
    queries = load_split(args.data, args.query_split, args.max_queries, args.seed)
    rows, skipped = [by_kmer_baseline(keys, queries)], {}
    with tempfile.TemporaryDirectory() as temporary:
        work = Path(temporary)
        for index, model in enumerate(args.model):
            folder = work / f"model{index}"
            folder.mkdir()
            rows.append(by_identify(model, args.data, folder, keys, queries, args.batch_size))
        for tool, run in (("vsearch", lambda: by_vsearch(keys, queries, work, args.threads, args.min_identity)),
                          ("blastn", lambda: by_blast(keys, queries, work, args.threads))):
            if shutil.which(tool) is None:
                skipped[tool] = (
                    f"{tool} not on PATH (apt-get install "
                    f"{'vsearch' if tool == 'vsearch' else 'ncbi-blast+'})"
                )
                continue
            rows.append(run())
    report = {
        "benchmark": "genus identification: embeddings vs alignment",
        "data": str(args.data), "keys": len(keys), "queries": len(queries),
        "key_split": args.key_split, "query_split": args.query_split, "threads": args.threads,
        "rows": rows, "skipped": skipped,
    }
    text = json.dumps(report, indent=2)
    print(text)
    if args.output is not None:
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
