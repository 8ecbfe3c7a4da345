"""How fast `barcodemae identify query` screens its candidates, kernel by kernel, and how faithfully.

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
  threads (``pip install pyopal``; skipped when it is not installed);
- :func:`barcodemae.diagonal_screen.diagonal_scores`, 1 and ``--threads`` threads: what ``identify`` screens by
  since the diagonal screen, the best ungapped segment on each pair's anchored diagonal (the queries' placing on the
  anchor timed with it; the references', done once when an index is built, not).

Each row gives pairs/s, queries/s (``--candidates`` pairs a query), the share of scores equal to ``local_scores``'
(the Smith-Waterman kernels; the diagonal score is another score) and the share of queries whose best
Smith-Waterman candidate is among the kernel's ``--keep`` best (``identify --align``'s number): 1 for an exact
kernel, the diagonal screen's recall otherwise. Times are the median of ``--repeats`` runs, wall clock on this
machine (say whether it was quiet).
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from functools import partial

import numpy as np
import parasail
import pyarrow as pa
from bench_aligners import median_run, pair_bench_parser, shortlist_pairs
from timing import emit_report

from barcodemae.alignment import LOCAL_GAP, local_scores, parasail_matrix, substitution_scores
from barcodemae.cli_options import DEFAULT_ALIGN
from barcodemae.diagonal_screen import anchor_shifts, choose_anchor, diagonal_scores
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


def run_diagonal_screen(references: np.ndarray) -> Kernel:
    """:func:`~barcodemae.diagonal_screen.diagonal_scores` with ``references`` placed on their anchor beforehand, as
    an index stores them; each call places its queries."""
    anchor = choose_anchor(pa.array(references.astype(str)))
    reference_shifts = anchor_shifts(references, anchor)

    def run(queries: list[str], candidates: np.ndarray, stored: np.ndarray, threads: int) -> np.ndarray:
        return diagonal_scores(queries, anchor_shifts(queries, anchor, threads), candidates, stored,
                               reference_shifts, threads=threads)

    return run


def best_kept_share(expected: np.ndarray, found: np.ndarray, keep: int) -> float:
    """Share of queries whose best candidate by ``expected`` ``(n, m)`` is among the ``keep`` best by ``found``
    (ties in ``found`` keep the candidates' order, as ``identify`` does)."""
    kept = np.argsort(-found, axis=1, kind="stable")[:, :keep]
    return float(np.mean((kept == expected.argmax(axis=1)[:, None]).any(axis=1)))


KERNELS: dict[str, Kernel] = {
    "local_scores (parasail sw_striped_profile_16)": run_local_scores,
    "parasail sw_striped_16, no profile": run_parasail("sw_striped_16", profile=False),
    "parasail sw_scan_profile_16": run_parasail("sw_scan_profile_16", profile=True),
    "pyopal sw score": run_pyopal,
}
DIAGONAL = "diagonal_scores (anchored ungapped segment)"
THREADED = {"local_scores (parasail sw_striped_profile_16)", "pyopal sw score", DIAGONAL}
"""Kernels that also run with ``--threads``; the others are single calls in one thread."""


def main(argv: list[str] | None = None) -> dict:
    parser = pair_bench_parser(__doc__.splitlines()[0], queries=100)
    parser.add_argument("--candidates", type=int, default=1000, help="references scored per query")
    parser.add_argument("--keep", type=int, default=DEFAULT_ALIGN, help="best candidates a screen keeps")
    args = parser.parse_args(argv)
    flat_queries, flat_references = shortlist_pairs(args.data, args.queries, args.candidates, args.seed)
    queries = flat_queries[::args.candidates]
    references = np.array(flat_references, dtype=bytes)
    candidates = np.arange(len(references)).reshape(len(queries), args.candidates)
    expected = run_local_scores(queries, candidates, references, 1)
    rows = []
    for name, run in {**KERNELS, DIAGONAL: run_diagonal_screen(references)}.items():
        if name.startswith("pyopal") and importlib.util.find_spec("pyopal") is None:
            continue
        for threads in sorted({1, args.threads} if name in THREADED else {1}):
            seconds, found = median_run(partial(run, queries, candidates, references, threads), args.repeats)
            rows.append({"kernel": name, "threads": threads, "pairs": int(candidates.size),
                         "seconds": round(seconds, 3), "pairs_per_s": round(candidates.size / seconds, 1),
                         "queries_per_s": round(len(queries) / seconds, 2),
                         "score_equal_share": None if name == DIAGONAL else round(float(np.mean(found == expected)),
                                                                                  4),
                         "best_kept_share": round(best_kept_share(expected, found, args.keep), 4)})
    report = {"data": str(args.data), "queries": len(queries), "candidates": args.candidates,
              "keep": args.keep, "scores": {"gap_per_base": LOCAL_GAP}, "rows": rows}
    emit_report(report, args.output)
    return report


if __name__ == "__main__":
    main()
