"""How fast `barcodemae identify query` screens its candidates: local alignment scores per second, kernel by kernel.

    python bench/bench_screen.py --data ../shared/data/bold_coi/dev.csv.gz --queries 100 --candidates 500

The pairs are what ``identify query --candidates M`` scores: ``--queries`` random ``test_unseen`` barcodes, each with
its ``--candidates`` nearest ``train`` barcodes by 4-mer frequency cosine (:func:`bench_aligners.shortlist_pairs`).
Every kernel computes the same Smith-Waterman score, score only (:func:`barcodemae.alignment.local_scores`'
scoring: :func:`~barcodemae.alignment.substitution_scores`, a linear gap of
:data:`~barcodemae.alignment.LOCAL_GAP` a base):

- :func:`barcodemae.alignment.local_scores` (parasail ``sw_striped_profile_16``, one query profile reused for all
  of a query's candidates), 1 and ``--threads`` threads: what ``identify`` runs;
- parasail ``sw_striped_16`` and ``sw_scan_profile_16`` (no profile reuse; the other vectorisation);
- pyopal (Opal) ``algorithm="sw"``, ``mode="score"``, each query against its candidates as a database, ``--threads``
  threads (``pip install pyopal``; skipped when it is not installed).

Each row gives pairs/s, queries/s (``--candidates`` pairs a query) and the share of scores equal to
``local_scores``'. Times are the median of ``--repeats`` runs, wall clock on this machine (say whether it was quiet).
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from functools import partial

import numpy as np
import parasail
from bench_aligners import median_run, pair_bench_parser, shortlist_pairs
from timing import emit_report

from barcodemae.alignment import LOCAL_GAP, local_scores, parasail_matrix, substitution_scores
from barcodemae.tokenization.sequence_cleaning import IUPAC_LETTERS

Kernel = Callable[[list[str], np.ndarray, np.ndarray, int], np.ndarray]
"""(queries, candidates ``(n, m)``, reference barcodes as bytes, threads) -> ``(n, m)`` scores."""


def run_local_scores(queries: list[str], candidates: np.ndarray, references: np.ndarray, threads: int) -> np.ndarray:
    return local_scores(queries, candidates, references, threads=threads)


def run_parasail(function: str, profile: bool) -> Kernel:
    """One parasail local kernel, single thread, with a profile built per query (``profile``) or none."""
    align = getattr(parasail, function)

    def run(queries: list[str], candidates: np.ndarray, references: np.ndarray, threads: int) -> np.ndarray:
        matrix = parasail_matrix()
        scores = np.zeros(candidates.shape, np.int32)
        for row, query in enumerate(queries):
            first = parasail.profile_create_16(query, matrix) if profile else query
            scores[row] = [align(first, reference, LOCAL_GAP, LOCAL_GAP).score if profile
                           else align(first, reference, LOCAL_GAP, LOCAL_GAP, matrix).score
                           for reference in references[candidates[row]]]
        return scores

    return run


def run_pyopal(queries: list[str], candidates: np.ndarray, references: np.ndarray, threads: int) -> np.ndarray:
    """Opal, each query against its candidates as a database (inter-sequence SIMD), score only."""
    from multiprocessing.pool import ThreadPool

    import pyopal
    import scoring_matrices

    scores = substitution_scores()
    letters = np.frombuffer(IUPAC_LETTERS.encode(), np.uint8)
    matrix = scoring_matrices.ScoringMatrix(scores[np.ix_(letters, letters)].tolist(), alphabet=IUPAC_LETTERS)
    alphabet = pyopal.Alphabet(IUPAC_LETTERS)
    found = np.zeros(candidates.shape, np.int32)
    with ThreadPool(threads) as pool:
        for row, query in enumerate(queries):
            database = pyopal.Database(list(references[candidates[row]]), alphabet=alphabet)
            found[row] = [hit.score for hit in pyopal.align(query, database, matrix, gap_open=LOCAL_GAP,
                                                            gap_extend=LOCAL_GAP, mode="score", algorithm="sw",
                                                            pool=pool, ordered=True)]
    return found


KERNELS: dict[str, Kernel] = {
    "local_scores (parasail sw_striped_profile_16)": run_local_scores,
    "parasail sw_striped_16, no profile": run_parasail("sw_striped_16", profile=False),
    "parasail sw_scan_profile_16": run_parasail("sw_scan_profile_16", profile=True),
    "pyopal sw score": run_pyopal,
}
THREADED = {"local_scores (parasail sw_striped_profile_16)", "pyopal sw score"}
"""Kernels that also run with ``--threads``; the others are single calls in one thread."""


def main(argv: list[str] | None = None) -> dict:
    parser = pair_bench_parser(__doc__.splitlines()[0], queries=100)
    parser.add_argument("--candidates", type=int, default=500, help="references scored per query")
    args = parser.parse_args(argv)
    flat_queries, flat_references = shortlist_pairs(args.data, args.queries, args.candidates, args.seed)
    queries = flat_queries[::args.candidates]
    references = np.array(flat_references, dtype=bytes)
    candidates = np.arange(len(references)).reshape(len(queries), args.candidates)
    expected = run_local_scores(queries, candidates, references, 1)
    rows = []
    for name, run in KERNELS.items():
        if name.startswith("pyopal") and importlib.util.find_spec("pyopal") is None:
            continue
        for threads in sorted({1, args.threads} if name in THREADED else {1}):
            seconds, found = median_run(partial(run, queries, candidates, references, threads), args.repeats)
            rows.append({"kernel": name, "threads": threads, "pairs": int(candidates.size),
                         "seconds": round(seconds, 3), "pairs_per_s": round(candidates.size / seconds, 1),
                         "queries_per_s": round(len(queries) / seconds, 2),
                         "score_equal_share": round(float(np.mean(found == expected)), 4)})
    report = {"data": str(args.data), "queries": len(queries), "candidates": args.candidates,
              "scores": {"gap_per_base": LOCAL_GAP}, "rows": rows}
    emit_report(report, args.output)
    return report


if __name__ == "__main__":
    main()
