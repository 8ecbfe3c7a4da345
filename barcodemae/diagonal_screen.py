"""The screen's first pass: each candidate's best ungapped segment on the pair's anchored diagonal.

Why: the reference that names an unseen species' genus is often far down an embedding's ranking, so ``identify``
screens each query's ``--candidates`` nearest references and aligns only the best few in full. Smith-Waterman
(:func:`barcodemae.alignment.local_scores`) costs about 50 microseconds a pair on one core, which made the screen
most of a query's time and kept it to 500 candidates. COI barcodes are collinear and rarely carry indels, so most
of a pair's best local alignment lies on one diagonal, and BLAST's own first pass (its ungapped extension) scores
exactly that. Here it costs a few array operations a pair: on dev ``val_unseen`` the 20 best of 1,000 candidates by
this score held Smith-Waterman's best for as many queries as scoring all 1,000 by Smith-Waterman, at a fifth of its
time (docs/results.md, "The diagonal screen").

How: every barcode (each reference once, when the index is built; each query as it comes) is aligned
semi-globally to one *anchor* barcode of the library (:func:`choose_anchor`). Where that alignment ends gives the
barcode's *shift*: the anchor's position minus its own (:func:`anchor_shifts`). Query base ``p`` and reference
base ``p + shift(query) - shift(reference)`` then fall on the same anchor position: the pair's diagonal. Along it
each column scores :data:`~barcodemae.alignment.MATCH` or :data:`~barcodemae.alignment.MISMATCH` (0 where either
letter is not A, C, G or T), and the best-scoring segment is ``max_j (S_j - min(0, min_{i<j} S_i))`` over the prefix
sums ``S``: vectorised over every candidate of a block of queries at once (:func:`diagonal_scores`), no loop over
bases or pairs. A barcode of another marker than the anchor's gets a meaningless shift and scores low: the screen
assumes one marker per library, as an identification library is.

Reads with insertions and deletions (nanopore, or any read of a few percent indels) break every diagonal after a
few dozen bases, and their best runs then rank candidates no better than chance: on dev ``val`` reads with 3% errors
(a third each substitutions, insertions, deletions) the 20 best by diagonal held Smith-Waterman's best for 81% of
queries and the species fell from 99.75% to 95.5%. Such a query's best run is short against its length, which a
clean query's is not: :func:`weak_screens` finds the queries whose best run scores under :data:`WEAK_SCREEN` of
their length's full match, and ``identify`` screens those by Smith-Waterman instead (docs/results.md, "The diagonal
screen").
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import parasail
import pyarrow as pa
import pyarrow.compute as pc

from barcodemae.alignment import MATCH, MISMATCH, in_threads, parasail_matrix

ANCHOR_GAP = 10
"""Each base of a gap in the anchor alignment (linear): dearer than a mismatch (4), so that the alignment keeps to
the diagonal and its end places the barcode on the anchor."""
SCREEN_CELLS = 1 << 22
"""Diagonal columns (queries x candidates x query length) one block scores at once: about 4 million, a few tens of
MiB of temporary arrays whatever the number of queries."""
ANCHOR_BLOCK = 4096
"""Barcodes one thread places on the anchor per task."""
WEAK_SCREEN = 0.4
"""A query whose best diagonal run scores under this share of ``MATCH x`` its length is screened by Smith-Waterman
instead. Dev, 5-mer neighbours, best run over the query's full match: clean ``val`` reads 0.98 at the 5th
percentile, clean ``val_unseen`` reads (species absent, 80-90% identity) median 0.79 and 1.2% under 0.4; reads with
3% errors median 0.11-0.16, 96-98% under 0.4 (docs/results.md, "The diagonal screen")."""

_BASE_CODES = np.full(256, 4, np.uint8)
for _code, _letters in enumerate(("Aa", "Cc", "Gg", "Tt")):
    _BASE_CODES[np.frombuffer(_letters.encode(), np.uint8)] = _code
_QUERY_PADDING = 5
"""The code that pads a block's shorter queries: unequal to every reference code, so it scores 0 like an ``N``."""


def choose_anchor(barcodes: pa.ChunkedArray | pa.Array) -> str:
    """The library's anchor: the first barcode of the median length among those of A, C, G and T only (of all
    barcodes when none is), so that the anchor is a typical full barcode without ambiguity codes."""
    if len(barcodes) == 0:
        raise ValueError("no barcodes to choose an anchor from")
    lengths = pc.utf8_length(barcodes).to_numpy(zero_copy_only=False)
    plain = pc.match_substring_regex(barcodes, "^[ACGTacgt]+$").to_numpy(zero_copy_only=False)
    pool = np.flatnonzero(plain) if plain.any() else np.arange(len(barcodes))
    median = np.sort(lengths[pool])[len(pool) // 2]
    return str(barcodes[int(pool[np.argmax(lengths[pool] == median)])])


def anchor_shifts(barcodes: Sequence[bytes | str] | np.ndarray, anchor: str, threads: int = 1) -> np.ndarray:
    """``(n,)`` int32 shift of each barcode: the anchor's position minus the barcode's where their semi-global
    alignment ends (linear gaps of :data:`ANCHOR_GAP`; one anchor profile for all). ``threads`` share the work."""
    profile = parasail.profile_create_16(anchor, parasail_matrix())

    def place(start: int) -> np.ndarray:
        shifts = np.zeros(min(ANCHOR_BLOCK, len(barcodes) - start), np.int32)
        for row, barcode in enumerate(barcodes[start:start + ANCHOR_BLOCK]):
            result = parasail.sg_striped_profile_16(profile, barcode, ANCHOR_GAP, ANCHOR_GAP)
            shifts[row] = result.end_query - result.end_ref
        return shifts

    parts = in_threads(place, range(0, len(barcodes), ANCHOR_BLOCK), threads)
    return np.concatenate(parts) if parts else np.zeros(0, np.int32)


def diagonal_scores(query_sequences: Sequence[str], query_shifts: np.ndarray, candidates: np.ndarray,
                    reference_sequences: np.ndarray, reference_shifts: np.ndarray, threads: int = 1) -> np.ndarray:
    """``(n, m)`` int32 best ungapped segment score of each of ``n`` queries against each of its ``m`` candidates,
    on the diagonal their shifts (:func:`anchor_shifts`) put them on.

    ``candidates`` ``(n, m)`` row numbers into ``reference_sequences`` (``(N,)`` fixed-width bytes, e.g. an index's
    memory map; only the rows named are read) and ``reference_shifts`` ``(N,)``; ``query_shifts`` ``(n,)``.
    ``threads`` share the blocks of queries (numpy releases the GIL in its array loops).
    """
    if candidates.ndim != 2 or len(candidates) != len(query_sequences):
        raise ValueError(f"candidates must be (n_queries={len(query_sequences)}, m), got {candidates.shape}")
    n, m = candidates.shape
    if n == 0 or m == 0:
        return np.zeros((n, m), np.int32)
    longest = max(len(query) for query in query_sequences)
    per_block = max(1, SCREEN_CELLS // (m * max(1, longest)))
    blocks = [slice(start, start + per_block) for start in range(0, n, per_block)]
    parts = in_threads(lambda block: _block_scores(list(query_sequences[block]), query_shifts[block],
                                                   candidates[block], reference_sequences, reference_shifts),
                       blocks, threads)
    return np.concatenate(parts)


def weak_screens(scores: np.ndarray, query_lengths: np.ndarray) -> np.ndarray:
    """``(n,)`` bool: the queries whose best diagonal score of ``scores`` ``(n, m)`` is under :data:`WEAK_SCREEN` of
    ``MATCH x query_lengths`` ``(n,)``, for whom the diagonals do not rank the candidates (reads with indels)."""
    best = scores.max(axis=1, initial=0)
    return best < WEAK_SCREEN * MATCH * np.asarray(query_lengths)


def _block_scores(queries: list[str], query_shifts: np.ndarray, candidates: np.ndarray,
                  reference_sequences: np.ndarray, reference_shifts: np.ndarray) -> np.ndarray:
    """:func:`diagonal_scores` of one block of ``b`` queries, all ``b * m`` pairs at once over ``(b, m, W)``."""
    b, m = candidates.shape
    width = max(len(query) for query in queries)  # W
    query_codes = np.full((b, width), _QUERY_PADDING, np.uint8)
    for row, query in enumerate(queries):
        query_codes[row, :len(query)] = _BASE_CODES[np.frombuffer(query.encode("ascii"), np.uint8)]
    rows = reference_sequences[candidates.ravel()]
    reference_width = rows.dtype.itemsize
    # Each reference between W columns of padding on both sides, so that any shift reads a window of W columns.
    padded = np.full((b * m, width + reference_width + width), 4, np.uint8)
    padded[:, width:width + reference_width] = _BASE_CODES[rows.view(np.uint8).reshape(b * m, reference_width)]
    shift = (np.repeat(query_shifts, m) - reference_shifts[candidates.ravel()]).astype(np.int64)
    start = np.clip(width + shift, 0, width + reference_width)  # query base p meets reference base p + shift
    windows = np.lib.stride_tricks.sliding_window_view(padded, width, axis=1)[np.arange(b * m), start]
    windows = windows.reshape(b, m, width)
    query = query_codes[:, None, :]
    both = (windows < 4) & (query < 4)
    dtype = np.int16 if abs(MISMATCH) * width < np.iinfo(np.int16).max else np.int32
    column = np.where(windows == query, dtype(MATCH), dtype(MISMATCH)) * both.astype(dtype)
    prefix = np.cumsum(column, axis=2, dtype=dtype)
    lowest_before = np.minimum(np.minimum.accumulate(prefix, axis=2)[:, :, :-1], 0)
    best = np.maximum(prefix[:, :, 0], (prefix[:, :, 1:] - lowest_before).max(axis=2, initial=0))
    return np.maximum(best, 0).astype(np.int32)
