"""Which SIMD pairwise aligner `barcodemae identify --align` uses: speed and exactness on real barcodes.

    python bench/bench_aligners.py --data ../shared/data/bold_coi/dev.csv.gz --queries 200 --shortlist 20

The pairs are what ``identify --align N`` aligns: ``--queries`` random ``test_unseen`` barcodes, each with its
``--shortlist`` nearest ``train`` barcodes by 4-mer frequency cosine. Candidates, all semi-global (no penalty for
terminal gaps) with the same scores (match 2, mismatch -4, gap ``20 + 2 (L - 1)``; :mod:`barcodemae.alignment`)
where the library allows:

- parasail ``sg_trace_{striped,scan,diag}_16`` (a full traceback: identity, mismatches, gap opens); the scan one,
  which ``identify`` uses, also through :func:`barcodemae.alignment.align_pairs` end to end (CIGAR parsing
  included), 1 and ``--threads`` threads;
- pyopal (Opal) ``algorithm="ov"`` (gaps free on both sequences' ends), ``mode="full"``, ``--threads`` threads;
- edlib ``mode="HW"`` with a path: unit-cost edit distance, gaps free only at the reference's ends (not the same
  scoring, so its identities are shown for comparison, not expected to agree).

Exactness: on ``--exact-pairs`` of the pairs, each aligner's score and percent identity against the plain numpy
Needleman-Wunsch of ``bench/semiglobal_reference.py``. Prints one JSON object; queries/s count ``--shortlist``
alignments per query; times are the median of ``--repeats`` runs, wall clock on this machine (say whether it was
quiet). parasail is a dependency of the package; the other candidates are not: ``pip install pyopal edlib``.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from functools import partial
from multiprocessing.pool import ThreadPool
from pathlib import Path

import numpy as np
import parasail
from semiglobal_reference import align_semiglobal
from timing import emit_report

from barcodemae.alignment import (
    GAP_EXTEND,
    GAP_OPEN,
    align_pairs,
    cigar_statistics,
    parasail_matrix,
    substitution_scores,
)
from barcodemae.data import load_bioscan5m
from barcodemae.eval.metrics import top_k_neighbors
from barcodemae.inference import KmerFrequencyEmbedder
from barcodemae.tokenization.sequence_cleaning import IUPAC_LETTERS

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "bold_coi" / "dev.csv.gz"
BAM_CODES = {ord("="): 7, ord("X"): 8, ord("I"): 1, ord("D"): 2, ord("M"): 7}
"""Alignment-path letters to BAM CIGAR codes (pyopal writes ``M`` for a match and ``X`` for a mismatch)."""


def shortlist_pairs(data: Path, queries: int, shortlist: int, seed: int) -> tuple[list[str], list[str]]:
    """``queries * shortlist`` (query, reference) barcode pairs: each query with its nearest references by 4-mers."""
    query_table = load_bioscan5m(data, "test_unseen").select_columns(["dna_barcode"]).to_pandas()
    references = load_bioscan5m(data, "train").select_columns(["dna_barcode"]).to_pandas()["dna_barcode"].to_numpy()
    chosen = np.random.default_rng(seed).choice(len(query_table), size=queries, replace=False)
    query_barcodes = query_table["dna_barcode"].to_numpy()[np.sort(chosen)]
    embedder = KmerFrequencyEmbedder(k=4)
    nearest, _ = top_k_neighbors(embedder(list(references)), embedder(list(query_barcodes)), shortlist)
    return list(np.repeat(query_barcodes, shortlist)), list(references[nearest.ravel()])


def path_statistics(scores: list[int], paths: list[bytes], query_starts: list[int], reference_starts: list[int],
                    queries: list[str], references: list[str]) -> dict[str, np.ndarray]:
    """Identity of alignments given as per-column letters (``M``/``=``, ``X``, ``I``, ``D``) after start offsets
    (leading terminal gaps), through the same CIGAR arithmetic as parasail's."""
    lookup = np.zeros(256, np.uint32)
    for letter, code in BAM_CODES.items():
        lookup[letter] = code
    cigars = []
    for path, query_start, reference_start in zip(paths, query_starts, reference_starts):
        columns = np.concatenate([np.full(query_start, 1, np.uint32), np.full(reference_start, 2, np.uint32),
                                  lookup[np.frombuffer(path, np.uint8)]])
        cigars.append(columns | (1 << 4))  # one column per operation
    statistics = cigar_statistics(np.asarray(scores), cigars, np.array([len(q) for q in queries]),
                                  np.array([len(r) for r in references]))
    return {"score": statistics.score, "identity": statistics.identity}


def run_parasail(function: str) -> Callable[[list[str], list[str], int], dict[str, np.ndarray]]:
    """A candidate aligning with one parasail function (single thread), statistics from its CIGARs."""
    align = getattr(parasail, function)

    def run(queries: list[str], references: list[str], threads: int) -> dict[str, np.ndarray]:
        matrix = parasail_matrix()
        scores, cigars = [], []
        for query, reference in zip(queries, references):  # each result (and its traceback table) freed at once
            result = align(query, reference, GAP_OPEN, GAP_EXTEND, matrix)
            scores.append(result.score)
            cigars.append(result.cigar.seq.copy())
        statistics = cigar_statistics(np.array(scores), cigars, np.array([len(q) for q in queries]),
                                      np.array([len(r) for r in references]))
        return {"score": statistics.score, "identity": statistics.identity}

    return run


def run_align_pairs(queries: list[str], references: list[str], threads: int) -> dict[str, np.ndarray]:
    statistics = align_pairs(queries, references, threads=threads)
    return {"score": statistics.score, "identity": statistics.identity}


def run_pyopal(queries: list[str], references: list[str], threads: int) -> dict[str, np.ndarray]:
    """Opal, one query against its shortlist as a database (consecutive pairs sharing a query), ``ov`` mode."""
    import pyopal
    import scoring_matrices

    scores = substitution_scores()
    letters = np.frombuffer(IUPAC_LETTERS.encode(), np.uint8)
    matrix = scoring_matrices.ScoringMatrix(scores[np.ix_(letters, letters)].tolist(), alphabet=IUPAC_LETTERS)
    alphabet = pyopal.Alphabet(IUPAC_LETTERS)
    starts = np.flatnonzero([i == 0 or queries[i] != queries[i - 1] for i in range(len(queries))])
    found: list = []
    with ThreadPool(threads) as pool:
        for start, end in zip(starts, [*starts[1:], len(queries)]):
            database = pyopal.Database(references[start:end], alphabet=alphabet)
            found.extend(pyopal.align(queries[start], database, matrix, gap_open=GAP_OPEN, gap_extend=GAP_EXTEND,
                                      mode="full", algorithm="ov", pool=pool, ordered=True))
    return path_statistics([x.score for x in found], [x.alignment.encode() for x in found],
                           [x.query_start for x in found], [x.target_start for x in found], queries, references)


def run_edlib(queries: list[str], references: list[str], threads: int) -> dict[str, np.ndarray]:
    """edlib's infix edit-distance alignment (its score is minus the edit distance)."""
    import edlib

    found = [edlib.align(q, r, mode="HW", task="path") for q, r in zip(queries, references)]
    paths = [edlib.getNiceAlignment(x, q, r) for x, q, r in zip(found, queries, references)]
    identity = np.array([100.0 * p["matched_aligned"].count("|") / max(len(p["matched_aligned"]), 1) for p in paths])
    return {"score": -np.array([x["editDistance"] for x in found]), "identity": identity}


CANDIDATES = {
    "parasail sg_trace_scan_16 (align_pairs)": run_align_pairs,
    "parasail sg_trace_striped_16": run_parasail("sg_trace_striped_16"),
    "parasail sg_trace_scan_16": run_parasail("sg_trace_scan_16"),
    "parasail sg_trace_diag_16": run_parasail("sg_trace_diag_16"),
    "pyopal ov full": run_pyopal,
    "edlib HW path (edit distance)": run_edlib,
}
THREADED = {"parasail sg_trace_scan_16 (align_pairs)"}
"""Candidates that also run with ``--threads`` (pyopal's threads are its own; the rest are single calls)."""


def pair_bench_parser(description: str, queries: int) -> argparse.ArgumentParser:
    """The options every pairwise-kernel bench takes (this one and ``bench_screen.py``): ``--data``, ``--queries``
    (default ``queries``), ``--threads``, ``--repeats``, ``--seed``, ``--output``."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--queries", type=int, default=queries)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3, help="runs per kernel; the median time is reported")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--output", type=Path, default=None)
    return parser


def median_run(run: Callable[[], object], repeats: int) -> tuple[float, object]:
    """The median wall-clock seconds of ``repeats`` calls of ``run``, and the last call's answer."""
    timings = []
    for _ in range(repeats):
        start = time.perf_counter()
        result = run()
        timings.append(time.perf_counter() - start)
    return float(np.median(timings)), result


def main(argv: list[str] | None = None) -> dict:
    parser = pair_bench_parser(__doc__.splitlines()[0], queries=200)
    parser.add_argument("--shortlist", type=int, default=20, help="references aligned per query")
    parser.add_argument("--exact-pairs", type=int, default=400, help="pairs also aligned by the numpy reference")
    args = parser.parse_args(argv)
    queries, references = shortlist_pairs(args.data, args.queries, args.shortlist, args.seed)
    checked = np.random.default_rng(args.seed).choice(len(queries), size=min(args.exact_pairs, len(queries)),
                                                      replace=False)
    expected = [align_semiglobal(queries[i], references[i]).statistics() for i in checked]
    expected_score = np.array([e["score"] for e in expected])
    expected_identity = np.array([e["identity"] for e in expected])
    rows = []
    for name, run in CANDIDATES.items():
        for threads in sorted({1, args.threads} if name in THREADED or name.startswith("pyopal") else {1}):
            seconds, result = median_run(partial(run, queries, references, threads), args.repeats)
            rows.append({
                "aligner": name, "threads": threads, "pairs": len(queries), "seconds": round(seconds, 3),
                "pairs_per_s": round(len(queries) / seconds, 1),
                "queries_per_s": round(len(queries) / seconds / args.shortlist, 2),
                "score_equal_share": round(float(np.mean(result["score"][checked] == expected_score)), 4),
                "identity_equal_share": round(float(np.mean(np.abs(result["identity"][checked] - expected_identity)
                                                            < 1e-9)), 4),
                "identity_max_abs_difference": round(float(np.max(np.abs(result["identity"][checked]
                                                                         - expected_identity))), 3),
            })
    report = {"data": str(args.data), "queries": args.queries, "shortlist": args.shortlist,
              "exact_pairs": len(checked), "scores": {"gap_open": GAP_OPEN, "gap_extend": GAP_EXTEND},
              "median_reference_identity": round(float(np.median(expected_identity)), 2), "rows": rows}
    emit_report(report, args.output)
    return report


if __name__ == "__main__":
    main()
