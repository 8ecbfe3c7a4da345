"""k-mer frequency vectors, the BIOSCAN-5M "no pretraining" baseline and the embedder of a model-free index.

Why a module of its own: it needs numpy only, and ``identify`` with a k-mer index (``identify build --kmer``) must
start without torch; :mod:`barcodemae.inference`, which loads torch, re-exports it beside the encoders.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from tqdm.auto import tqdm


class KmerFrequencyEmbedder:
    """k-mer frequency vectors (no learning): the BIOSCAN-5M "no pretraining" baseline.

    Each barcode becomes the normalised count vector of its ``4**k`` ACGT k-mers (k-mers with an ambiguity
    code are skipped): every window (``stride=1``, the baseline), or those starting at multiples of ``stride``
    (``stride=k``: the non-overlapping k-mers a k-mer tokenizer sees). Counting is vectorised over a whole chunk
    of barcodes with ``np.bincount``.
    Call it like :func:`embed_barcodes`: ``embedder(sequences)`` or ``embed_barcodes(embedder, None, sequences)``.
    """

    def __init__(self, k: int = 4, chunk_size: int = 20_000, stride: int = 1):
        if not 1 <= k <= 8:
            raise ValueError(f"k must be in 1..8 (4**k features), got {k}")
        if stride < 1:
            raise ValueError(f"stride must be >= 1, got {stride}")
        self.k = k
        self.stride = stride
        self.chunk_size = chunk_size
        lookup = np.full(256, -1, dtype=np.int64)
        for code, base in enumerate(b"ACGT"):
            lookup[base] = code
            lookup[ord(chr(base).lower())] = code
        self._lookup = lookup

    @property
    def dim(self) -> int:
        return 4**self.k

    def __repr__(self) -> str:
        return f"KmerFrequencyEmbedder(k={self.k}, stride={self.stride})"

    def _embed_chunk(self, sequences: Sequence[str]) -> np.ndarray:
        k = self.k
        lengths = np.fromiter((len(s) for s in sequences), dtype=np.int64, count=len(sequences))
        flat = np.frombuffer("".join(sequences).encode("ascii", "replace"), dtype=np.uint8)
        codes = self._lookup[flat]
        counts = np.zeros((len(sequences), self.dim), dtype=np.float32)
        if len(codes) < k:
            return counts
        # Rolling base-4 code of every window start: k vectorised passes over the whole chunk.
        num_windows = len(codes) - k + 1
        known = codes >= 0
        digits = np.where(known, codes, 0).astype(np.int32)
        kmer = np.zeros(num_windows, dtype=np.int32)
        valid = np.ones(num_windows, dtype=bool)
        for offset in range(k):
            kmer = kmer * 4 + digits[offset : offset + num_windows]
            valid &= known[offset : offset + num_windows]
        row = np.repeat(np.arange(len(sequences), dtype=np.int64), lengths)[:num_windows]
        ends = np.cumsum(lengths)
        valid &= np.arange(num_windows) + k <= ends[row]  # the window lies inside one barcode
        if self.stride > 1:
            valid &= (np.arange(num_windows) - (ends - lengths)[row]) % self.stride == 0
        flat_counts = np.bincount(row[valid] * self.dim + kmer[valid], minlength=counts.size)
        counts[:] = flat_counts.reshape(counts.shape)
        totals = counts.sum(axis=1, keepdims=True)
        return counts / np.maximum(totals, 1.0)

    def __call__(self, sequences: Sequence[str], *, progress: bool = False, **_: Any) -> np.ndarray:
        sequences = list(sequences)
        parts = [
            self._embed_chunk(sequences[start : start + self.chunk_size])
            for start in tqdm(
                range(0, len(sequences), self.chunk_size),
                desc=f"{self.k}-mer frequencies",
                unit="chunk",
                disable=not progress,
            )
        ]
        return np.concatenate(parts) if parts else np.zeros((0, self.dim), dtype=np.float32)


__all__ = ["KmerFrequencyEmbedder"]
