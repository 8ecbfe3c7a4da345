"""Vectorised encoding of cleaned barcodes: k-mer and character ids computed with numpy over a whole batch.

Why: the ``tokenizers`` backend treats every k-mer or base as a separate "word" with its own alignment
bookkeeping, which costs ~1 µs per token (~0.7 ms per 660 bp barcode at one token per base). For k-mers and
characters the id is a pure function of the bases (``5 + base-4 value`` of the k-mer, a lookup table for
characters), so a whole batch is concatenated into one byte array and encoded with a few numpy operations. The
backend stays the reference (``tokenizer.json``, BPE merges, exotic options); tests check both give the same ids.

This file is copied into saved model folders with the tokenizer, so it imports only the standard library and numpy.
"""

from __future__ import annotations

import numpy as np

NO_BASE = 4  # code of any letter that is not A/C/G/T: a k-mer containing it is [UNK]


def _base_codes() -> np.ndarray:
    codes = np.full(256, NO_BASE, dtype=np.int64)
    for code, letter in enumerate("ACGT"):
        codes[ord(letter)] = code
    return codes


BASE_CODES = _base_codes()


def concatenate(sequences: list[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """All sequences as one ``uint8`` array, plus each sequence's start and length in it."""
    flat = np.frombuffer("".join(sequences).encode("ascii"), dtype=np.uint8)
    lengths = np.fromiter(map(len, sequences), dtype=np.int64, count=len(sequences))
    return flat, np.cumsum(lengths) - lengths, lengths


def ragged_positions(starts: np.ndarray, counts: np.ndarray, step: int = 1) -> np.ndarray:
    """``starts[i] + step * j`` for ``j < counts[i]``, for every row, concatenated (no Python loop)."""
    total = int(counts.sum())
    row_begin = np.repeat(np.cumsum(counts) - counts, counts)
    return np.repeat(starts, counts) + step * (np.arange(total, dtype=np.int64) - row_begin)


def kmer_ids(
    flat: np.ndarray, starts: np.ndarray, lengths: np.ndarray, k: int, stride: int, first_id: int, unk_id: int
) -> tuple[np.ndarray, np.ndarray]:
    """Ids of the k-mers every ``stride`` bases (tail shorter than ``k`` dropped) and the count per sequence.

    Ids follow the lexicographic ACGT vocabulary: ``first_id + sum(code_j * 4**(k-1-j))``; a window holding any
    other letter (an ambiguity code) is ``unk_id``.
    """
    counts = np.where(lengths >= k, (lengths - k) // stride + 1, 0)
    window_starts = ragged_positions(starts, counts, stride)
    codes = BASE_CODES[flat]
    value = np.zeros(window_starts.shape[0], dtype=np.int64)
    unknown = np.zeros(window_starts.shape[0], dtype=bool)
    for offset in range(k):  # k vector operations over all windows of the batch
        base = codes[window_starts + offset]
        value = value * 4 + np.minimum(base, 3)
        unknown |= base == NO_BASE
    return np.where(unknown, unk_id, value + first_id), counts


def char_lookup(vocab: dict[str, int], unk_id: int) -> np.ndarray:
    """Byte -> id table for one-letter tokens; any other byte maps to ``unk_id``."""
    table = np.full(256, unk_id, dtype=np.int64)
    for token, index in vocab.items():
        if len(token) == 1 and ord(token) < 256:
            table[ord(token)] = index
    return table


def frame_batch(
    ids: np.ndarray,
    counts: np.ndarray,
    *,
    cls_id: int | None,
    sep_id: int | None,
    pad_id: int,
    max_content: int | None,
    pad_to: int | None,
    left_padding: bool,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Truncate, add ``[CLS] .. [SEP]`` and pad a ragged batch given as flat ``ids`` plus ``counts`` per row.

    Returns the ``(batch, width)`` id matrix, its attention mask and each row's unpadded length. ``pad_to=None``
    pads to the longest row (the caller slices rows back out when no padding was asked for).
    """
    batch = counts.shape[0]
    row_begin = np.cumsum(counts) - counts
    kept = counts if max_content is None else np.minimum(counts, max(max_content, 0))
    framed = kept + (cls_id is not None) + (sep_id is not None)
    width = max(int(framed.max(initial=0)), pad_to or 0)
    matrix = np.full((batch, width), pad_id, dtype=np.int64)
    shift = (width - framed) if left_padding else np.zeros(batch, dtype=np.int64)
    source = ragged_positions(row_begin, kept)
    rows = np.repeat(np.arange(batch), kept)
    columns = ragged_positions(shift + (cls_id is not None), kept)
    matrix[rows, columns] = ids[source]
    if cls_id is not None:
        matrix[np.arange(batch), shift] = cls_id
    if sep_id is not None:
        matrix[np.arange(batch), shift + framed - 1] = sep_id
    mask = np.zeros((batch, width), dtype=np.int64)
    mask[np.repeat(np.arange(batch), framed), ragged_positions(shift, framed)] = 1
    return matrix, mask, framed
