"""Semi-global pairwise alignment of barcodes, and the statistics biologists read: percent identity and its parts.

Why: identification in the field is read in *percent identity* (BOLD, BLAST, VSEARCH; 97-98% for a species), which
an embedding's cosine similarity is not. ``barcodemae identify`` therefore screens each query's ``--candidates``
nearest references by embedding (:mod:`barcodemae.diagonal_screen`), then orders the ``--align N`` best by local
alignment score (:func:`local_scores`) and aligns them in full; this module does the last two, for any query /
reference pairs, wherever the shortlist came from.

The aligner is parasail's SIMD Needleman-Wunsch with free end gaps, prefix-scan vectorised (``sg_trace_scan_16``):
measured in ``bench/bench_aligners.py`` against parasail's striped and diagonal kernels, pyopal and edlib on real
barcodes (docs/results.md, "Retrieve then align"), it was the fastest whose alignments equal a plain reference
implementation's (``bench/semiglobal_reference.py``) in score and identity. Scores
follow VSEARCH's interior defaults: match +2, mismatch -4, a gap of ``L`` bases ``20 + 2 (L - 1)``; an ambiguity code
(``N``, ``R``, ...) scores 0 against anything. Terminal gaps are free (semi-global), so a query that covers only
part of a reference, or overhangs it, is not penalised for the overhang.

Statistics, as VSEARCH (``--iddef 2``) and BLAST count them: the *aligned columns* run from the first to the last
pair of bases (terminal gaps excluded); identity = identical letters / aligned columns, in percent; mismatches =
columns pairing two different letters; gap opens = runs of gap columns among the aligned ones. Coordinates are
0-based and half-open.

parasail's Python calls release the GIL in C, so pairs are aligned by a pool of threads; the per-pair CIGAR
strings are turned into statistics by array operations over all pairs at once (no Python loop over bases).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, fields
from functools import lru_cache
from typing import TypeVar

import numpy as np
import parasail

from barcodemae.tokenization.sequence_cleaning import IUPAC_LETTERS, NUCLEOTIDES

MATCH = 2
MISMATCH = -4
GAP_OPEN = 20
"""The cost of a gap's first base (parasail's convention: a gap of ``L`` bases costs ``GAP_OPEN + (L - 1) *
GAP_EXTEND``); VSEARCH's interior gap-opening penalty."""
GAP_EXTEND = 2
LOCAL_GAP = 5
"""Each base of a gap in the screening local alignment (:func:`local_scores`): BLAST megablast's linear gap cost
(2.5 a base with match 1, mismatch -2) on this module's doubled scale (match 2, mismatch -4), so the screen orders
references as megablast's bit score does."""
PAIRS_PER_TASK = 64
"""Pairs one thread aligns per task: enough to amortise the pool's hand-over, few enough to share the work."""
PAIRS_PER_BLOCK = 4096
"""Pairs :func:`align_shortlist` aligns and turns into statistics together (whole shortlists: ``4096 // h`` queries
of ``h`` hits, at least one). What a block holds grows with its pairs, not with the library: the barcodes and
CIGARs, the statistics' temporary arrays (int64, several per CIGAR operation) and the aligner's heap. Blocks of
1,024 queries, 51,200 pairs at ``--align 50``, added 1.2 GiB to a query's peak memory; this one adds 0.15 GiB, in
the same CPU time (docs/results.md, "Identification at scale")."""

T = TypeVar("T")
R = TypeVar("R")

# BAM CIGAR operation codes, as parasail encodes them (``length << 4 | code``)
_QUERY_BASE_GAP, _REFERENCE_BASE_GAP, _SAME, _DIFFERENT = 1, 2, 7, 8
"""``I`` (a query base against a gap), ``D`` (a reference base against a gap), ``=`` and ``X`` (two letters)."""


def substitution_scores() -> np.ndarray:
    """``(256, 256)`` int64 score of every pair of letters (by byte): :data:`MATCH` for two equal unambiguous bases,
    :data:`MISMATCH` for two different ones, 0 for anything involving an ambiguity code or another byte."""
    scores = np.zeros((256, 256), np.int64)
    bases = np.frombuffer(NUCLEOTIDES.encode(), np.uint8)
    scores[np.ix_(bases, bases)] = MISMATCH
    scores[bases, bases] = MATCH
    return scores


@lru_cache(maxsize=1)
def parasail_matrix() -> parasail.Matrix:
    """:func:`substitution_scores` over the IUPAC letters, as the matrix parasail aligns with."""
    scores = substitution_scores()
    letters = IUPAC_LETTERS.encode()
    matrix = parasail.matrix_create(IUPAC_LETTERS, MATCH, MISMATCH)
    for i, letter in enumerate(letters):
        for j, other in enumerate(letters):
            matrix.set_value(i, j, int(scores[letter, other]))
    return matrix


@dataclass(frozen=True)
class AlignmentStatistics:
    """Per pair ``(n_pairs,)`` arrays: the alignment's score and what BLAST's tabular output reports."""

    score: np.ndarray
    matches: np.ndarray
    mismatches: np.ndarray
    gap_opens: np.ndarray
    aligned_length: np.ndarray
    """Columns from the first to the last pair of bases: matches, mismatches and interior gap columns."""
    query_start: np.ndarray
    query_end: np.ndarray
    reference_start: np.ndarray
    reference_end: np.ndarray
    query_length: np.ndarray
    reference_length: np.ndarray

    @property
    def identity(self) -> np.ndarray:
        """Percent identity ``(n_pairs,)``: identical letters over aligned columns (0 where no base pairs)."""
        return 100.0 * self.matches / np.maximum(self.aligned_length, 1)

    @property
    def query_coverage(self) -> np.ndarray:
        """Percent of the query's bases inside the aligned columns ``(n_pairs,)``."""
        return 100.0 * (self.query_end - self.query_start) / np.maximum(self.query_length, 1)

    def take(self, rows: np.ndarray) -> AlignmentStatistics:
        """The statistics of the pairs ``rows`` (an index array or a boolean mask)."""
        return AlignmentStatistics(**{field.name: getattr(self, field.name)[rows] for field in fields(self)})

    @classmethod
    def concatenate(cls, parts: Sequence[AlignmentStatistics]) -> AlignmentStatistics:
        """The pairs of ``parts``, one after the other."""
        return cls(**{field.name: np.concatenate([getattr(part, field.name) for part in parts])
                      for field in fields(cls)})


def _cigars(pairs: Sequence[tuple[bytes, bytes]]) -> list[tuple[int, np.ndarray]]:
    """Score and CIGAR codes ``(n_operations,)`` uint32 of each pair's semi-global alignment (one C call each)."""
    matrix = parasail_matrix()
    out = []
    for query, reference in pairs:
        result = parasail.sg_trace_scan_16(query, reference, GAP_OPEN, GAP_EXTEND, matrix)
        cigar = result.cigar
        if cigar.beg_query or cigar.beg_ref:  # sg tracebacks start at (0, 0): leading gaps are CIGAR operations
            raise RuntimeError(f"parasail returned a CIGAR starting at ({cigar.beg_query}, {cigar.beg_ref})")
        out.append((result.score, cigar.seq.copy()))  # copied: the CIGAR's memory goes with the result
    return out


def in_threads(work: Callable[[T], R], tasks: Sequence[T], threads: int) -> list[R]:
    """``[work(task) for task in tasks]``, in order, run by ``threads`` threads when there is more than one task
    (parasail's calls release the GIL)."""
    if threads > 1 and len(tasks) > 1:
        with ThreadPoolExecutor(max_workers=threads) as pool:
            return list(pool.map(work, tasks))
    return [work(task) for task in tasks]


def align_pairs(queries: Sequence[str | bytes], references: Sequence[str | bytes],
                threads: int = 1) -> AlignmentStatistics:
    """Align ``queries[i]`` to ``references[i]`` for every ``i`` (cleaned barcodes, IUPAC letters).

    ``threads`` parasail calls run at once (``identify`` passes torch's thread count). Returns the statistics of
    all ``n`` pairs, in order.
    """
    if len(queries) != len(references):
        raise ValueError(f"{len(queries)} queries but {len(references)} references to align them to")
    pairs = [(q if isinstance(q, bytes) else q.encode("ascii"), r if isinstance(r, bytes) else r.encode("ascii"))
             for q, r in zip(queries, references)]
    chunks = [pairs[start:start + PAIRS_PER_TASK] for start in range(0, len(pairs), PAIRS_PER_TASK)]
    aligned = [item for chunk in in_threads(_cigars, chunks, threads) for item in chunk]
    lengths = np.array([[len(q), len(r)] for q, r in pairs], np.int64).reshape(-1, 2)
    return cigar_statistics(np.array([score for score, _ in aligned], np.int64), [codes for _, codes in aligned],
                            lengths[:, 0], lengths[:, 1])


def align_shortlist(query_sequences: Sequence[str], shortlist: np.ndarray, reference_sequences: np.ndarray,
                    threads: int = 1) -> AlignmentStatistics:
    """Align each of ``n`` queries to its ``h`` shortlisted references, wherever the shortlist came from.

    ``shortlist`` ``(n, h)`` row numbers into ``reference_sequences`` (e.g. an index's memory-mapped ``(N,)``
    fixed-width bytes array; only the rows named are read). Pairs come back flattened row by row: hit ``j`` of
    query ``i`` is pair ``i * h + j``. Aligned :data:`PAIRS_PER_BLOCK` at a time, whatever ``n`` and ``h``.
    """
    if shortlist.ndim != 2 or len(shortlist) != len(query_sequences):
        raise ValueError(f"shortlist must be (n_queries={len(query_sequences)}, h), got {shortlist.shape}")
    queries = np.asarray(query_sequences, dtype=object)
    per_block = max(1, PAIRS_PER_BLOCK // max(1, shortlist.shape[1]))
    blocks = [slice(start, start + per_block) for start in range(0, len(queries), per_block)]
    blocks = blocks or [slice(0, 0)]  # no query: no pair
    return AlignmentStatistics.concatenate([
        align_pairs(list(np.repeat(queries[block], shortlist.shape[1])),
                    list(reference_sequences[shortlist[block].ravel()]), threads=threads)
        for block in blocks
    ])


def _local_score_rows(queries: Sequence[bytes], candidates: np.ndarray, reference_sequences: np.ndarray) -> np.ndarray:
    """``(n, m)`` local scores of ``queries[i]`` against ``reference_sequences[candidates[i]]`` (one profile a query,
    one C call a pair)."""
    matrix = parasail_matrix()
    scores = np.zeros(candidates.shape, np.int32)
    for row, (query, references) in enumerate(zip(queries, candidates)):
        profile = parasail.profile_create_16(query, matrix)
        scores[row] = [parasail.sw_striped_profile_16(profile, reference, LOCAL_GAP, LOCAL_GAP).score
                       for reference in reference_sequences[references]]
    return scores


def local_scores(query_sequences: Sequence[str], candidates: np.ndarray, reference_sequences: np.ndarray,
                 threads: int = 1) -> np.ndarray:
    """``(n, m)`` int32 Smith-Waterman score of each of ``n`` queries against each of its ``m`` candidate references.

    Why: the reference that names an unseen species' genus best is the one with the best *local* alignment score,
    as BLAST ranks by its bit score, not the one with the best identity (docs/results.md, "Screen, then align").
    Score only, no traceback, with one query profile reused for all of a query's candidates (parasail's striped
    SIMD kernel): several times cheaper a pair than :func:`align_shortlist`, though still several times dearer than
    the diagonal screen that chooses which candidates it scores. Scoring: :func:`substitution_scores` and a linear
    gap of :data:`LOCAL_GAP` a base. ``candidates`` ``(n, m)`` row numbers into ``reference_sequences`` (only the
    rows named are read); ``threads`` share the queries.
    """
    if candidates.ndim != 2 or len(candidates) != len(query_sequences):
        raise ValueError(f"candidates must be (n_queries={len(query_sequences)}, m), got {candidates.shape}")
    queries = [query.encode("ascii") for query in query_sequences]
    per_task = max(1, PAIRS_PER_BLOCK // max(1, candidates.shape[1]))
    starts = range(0, len(queries), per_task)
    tasks = [(queries[start:start + per_task], candidates[start:start + per_task]) for start in starts]
    parts = in_threads(lambda task: _local_score_rows(*task, reference_sequences), tasks, threads)
    return np.concatenate(parts) if parts else np.zeros(candidates.shape, np.int32)


def cigar_statistics(scores: np.ndarray, cigars: Sequence[np.ndarray], query_length: np.ndarray,
                     reference_length: np.ndarray) -> AlignmentStatistics:
    """The statistics of ``n`` alignments from their BAM-encoded CIGARs, by array operations over all of them.

    ``cigars[i]`` ``(n_operations_i,)`` uint32 ``length << 4 | code`` covering the whole alignment, terminal gaps
    included (as parasail's semi-global tracebacks do).
    """
    count = len(cigars)
    per_pair = np.fromiter((len(c) for c in cigars), np.int64, count)
    codes = np.concatenate(cigars).astype(np.int64) if count else np.zeros(0, np.int64)
    pair = np.repeat(np.arange(count), per_pair)
    operation, run = codes & 0xF, codes >> 4
    position = np.arange(len(codes))
    pairs_bases = (operation == _SAME) | (operation == _DIFFERENT)
    first = np.full(count, len(codes))
    last = np.full(count, -1)
    np.minimum.at(first, pair[pairs_bases], position[pairs_bases])
    np.maximum.at(last, pair[pairs_bases], position[pairs_bases])
    inner = (position >= first[pair]) & (position <= last[pair])
    before = position < first[pair]
    consumes_query = pairs_bases | (operation == _QUERY_BASE_GAP)
    consumes_reference = pairs_bases | (operation == _REFERENCE_BASE_GAP)

    def total(mask: np.ndarray) -> np.ndarray:
        return np.bincount(pair, weights=run * mask, minlength=count).astype(np.int64)

    aligned = last >= 0  # a pair with no two bases facing each other has no aligned columns
    query_start = np.where(aligned, total(before & consumes_query), 0)
    reference_start = np.where(aligned, total(before & consumes_reference), 0)
    return AlignmentStatistics(
        score=np.asarray(scores, np.int64),
        matches=total(inner & (operation == _SAME)),
        mismatches=total(inner & (operation == _DIFFERENT)),
        gap_opens=np.bincount(pair, weights=inner & ~pairs_bases, minlength=count).astype(np.int64),
        aligned_length=total(inner),
        query_start=query_start,
        query_end=query_start + total(inner & consumes_query),
        reference_start=reference_start,
        reference_end=reference_start + total(inner & consumes_reference),
        query_length=np.asarray(query_length, np.int64),
        reference_length=np.asarray(reference_length, np.int64),
    )


__all__ = [
    "GAP_EXTEND",
    "GAP_OPEN",
    "LOCAL_GAP",
    "MATCH",
    "MISMATCH",
    "AlignmentStatistics",
    "align_pairs",
    "align_shortlist",
    "cigar_statistics",
    "local_scores",
    "parasail_matrix",
    "substitution_scores",
]
