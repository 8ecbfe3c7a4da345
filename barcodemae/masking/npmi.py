"""N-gram NPMI statistics of a barcode corpus (GeneMask / CM-GEMS), counted with numpy and stored as safetensors.

Definitions (Levine et al. 2021, "PMI-Masking"; Roy et al. 2023, GeneMask):

* ``p_n(w) = count(w) / N_n`` with ``N_n`` the number of n-gram positions of the corpus (windows containing an
  ambiguity code or crossing two barcodes are not n-grams);
* ``PMI_n(w) = min over segmentations (s_1..s_m), m >= 2, of  log p(w) / prod p(s_i)`` -- the *weakest* split
  of ``w`` decides how much more often ``w`` occurs than its parts would predict. ``max_piece=2`` restricts the
  pieces to lengths 1 and 2, which is what GeneMask's released table uses; ``None`` allows every length < n;
* ``NPMI_n(w) = PMI_n(w) * ln f / (ln c + ln f)`` where ``f = count(w)`` and ``c`` is the minimum count; n-grams
  seen fewer than ``c`` times get no score. ``c`` scales with the corpus (``min_count_rate`` per n-gram
  position) so the same setting behaves alike on the 5k-record demo and on BIOSCAN-5M.

Counting encodes bases as 2-bit codes and builds every n-gram id by a rolling ``id * 4 + code`` over a whole
chunk of barcodes at once (``np.bincount``), streaming chunks so memory does not grow with the corpus.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from safetensors.numpy import load_file, save_file
from tqdm.auto import tqdm

from barcodemae.tokenization.sequence_cleaning import InvalidBarcodeError, clean_barcode

from .spans import OTHER, encode_bases

logger = logging.getLogger(__name__)

TABLE_FILENAME = "npmi_table.safetensors"
MAX_N = 12  # 4**12 ids still fit comfortably in int32 and a dense float32 lookup (64 MiB)


@dataclass
class CorpusCounts:
    """Dense n-gram counts for n = 1..max_n plus what was rejected while reading the corpus."""

    counts: dict[int, np.ndarray]
    n_sequences: int = 0
    n_rejected: int = 0
    rejected_examples: list[str] = field(default_factory=list)

    @property
    def totals(self) -> dict[int, int]:
        return {n: int(c.sum()) for n, c in self.counts.items()}


def _count_chunk(codes: np.ndarray, max_n: int, counts: dict[int, np.ndarray]) -> None:
    """Add the n-gram counts of one concatenated chunk (barcodes separated by an invalid code)."""
    valid = codes < OTHER
    ids = np.where(valid, codes, 0).astype(np.int32)
    ok = valid
    for n in range(1, max_n + 1):
        if n > 1:
            if ids.size <= 1:
                break
            ids = ids[:-1] * 4 + np.where(valid[n - 1 :], codes[n - 1 :], 0).astype(np.int32)
            ok = ok[:-1] & valid[n - 1 :]
        counts[n] += np.bincount(ids[ok], minlength=4**n).astype(np.int64)


def count_ngrams(
    sequences: Iterable[str],
    max_n: int = 10,
    chunk_bases: int = 4_000_000,
    progress: bool = True,
    max_rejected_examples: int = 5,
) -> CorpusCounts:
    """Count every n-gram (n <= max_n) of cleaned barcodes; bad records are counted, logged and skipped."""
    if not 1 <= max_n <= MAX_N:
        raise ValueError(f"max_n must be in [1, {MAX_N}], got {max_n}")
    result = CorpusCounts(counts={n: np.zeros(4**n, dtype=np.int64) for n in range(1, max_n + 1)})
    pending: list[str] = []
    pending_bases = 0
    for index, raw in enumerate(tqdm(sequences, desc="counting n-grams", unit=" barcodes", disable=not progress)):
        try:
            sequence = clean_barcode(raw, record_id=str(index), max_length=None).sequence
        except InvalidBarcodeError as error:
            result.n_rejected += 1
            if len(result.rejected_examples) < max_rejected_examples:
                result.rejected_examples.append(str(error))
            continue
        result.n_sequences += 1
        pending.append(sequence)
        pending_bases += len(sequence) + 1
        if pending_bases >= chunk_bases:
            _count_chunk(encode_bases("N".join(pending)), max_n, result.counts)
            pending, pending_bases = [], 0
    if pending:
        _count_chunk(encode_bases("N".join(pending)), max_n, result.counts)
    if result.n_rejected:
        logger.warning(
            "NPMI counting skipped %d of %d barcodes, e.g. %s",
            result.n_rejected, result.n_rejected + result.n_sequences, "; ".join(result.rejected_examples),
        )
    return result


def _piece_ids(ids: np.ndarray, n: int, start: int, end: int) -> np.ndarray:
    """Ids of the substrings ``w[start:end]`` of n-gram ids ``ids`` (2 bits per base, first base highest)."""
    return (ids >> (2 * (n - end))) & ((1 << (2 * (end - start))) - 1)


def pmi_min_segmentation(
    ids: np.ndarray, n: int, log_probs: dict[int, np.ndarray], max_piece: int | None = None
) -> np.ndarray:
    """``log p(w) - max over segmentations of sum log p(piece)`` for n-gram ids ``ids``, by dynamic programming.

    ``best[i]`` is the most probable segmentation of the prefix ``w[:i]``; the trivial one-piece segmentation of
    the whole n-gram is excluded. Vectorised over ids; the loops run over at most n**2 piece boundaries.
    """
    longest = n - 1 if max_piece is None else min(max_piece, n - 1)
    best = [np.zeros(ids.shape, dtype=np.float64)] + [None] * n
    for end in range(1, n + 1):
        candidates = []
        for start in range(max(0, end - longest), end):
            piece = log_probs[end - start][_piece_ids(ids, n, start, end)]
            candidates.append(best[start] + piece)
        best[end] = np.max(candidates, axis=0) if candidates else np.full(ids.shape, -np.inf)
    return log_probs[n][ids] - best[n]


class NPMITable:
    """NPMI score of every frequent n-gram (``min_n <= n <= max_n``), with vectorised lookups.

    Build once per corpus (:meth:`build`), :meth:`save` next to the tokenizer/model, :meth:`load` for training.
    """

    def __init__(
        self,
        ids: dict[int, np.ndarray],
        npmi: dict[int, np.ndarray],
        counts: dict[int, np.ndarray],
        min_count: int,
        max_piece: int | None,
        metadata: dict | None = None,
    ) -> None:
        self.ngram_ids = {n: np.asarray(v, dtype=np.int64) for n, v in ids.items()}
        self.npmi = {n: np.asarray(v, dtype=np.float32) for n, v in npmi.items()}
        self.counts = {n: np.asarray(v, dtype=np.int64) for n, v in counts.items()}
        self.min_n, self.max_n = min(self.npmi), max(self.npmi)
        self.min_count = int(min_count)
        self.max_piece = max_piece
        self.metadata = dict(metadata or {})
        self._dense: dict[int, np.ndarray] = {}

    # -------------------------------------------------------------------------------------------- building
    @classmethod
    def from_counts(
        cls,
        corpus: CorpusCounts,
        min_n: int = 2,
        max_n: int | None = None,
        min_count: int | None = None,
        min_count_rate: float = 1e-6,
        max_piece: int | None = None,
    ) -> NPMITable:
        """Score the n-grams of precomputed counts; ``min_count=None`` uses ``max(2, rate * N_1)``."""
        max_n = max(corpus.counts) if max_n is None else max_n
        if not 2 <= min_n <= max_n <= max(corpus.counts):
            raise ValueError(f"need 2 <= min_n <= max_n <= {max(corpus.counts)}, got min_n={min_n} max_n={max_n}")
        totals = corpus.totals
        if totals[1] == 0:
            raise ValueError("the corpus holds no unambiguous bases; cannot estimate n-gram probabilities")
        if min_count is None:
            min_count = max(2, round(min_count_rate * totals[1]))
        if min_count < 1:
            raise ValueError(f"min_count must be >= 1, got {min_count}")
        with np.errstate(divide="ignore"):
            log_probs = {
                n: np.log(c / totals[n]) if totals[n] else np.full(c.shape, -np.inf) for n, c in corpus.counts.items()
            }
        ids, npmi, counts = {}, {}, {}
        for n in range(min_n, max_n + 1):
            kept = np.flatnonzero(corpus.counts[n] >= min_count)
            frequency = corpus.counts[n][kept]
            pmi = pmi_min_segmentation(kept, n, log_probs, max_piece)
            # c = 1 and f = 1 give 0/0; with c = 1 the weight is ln f / ln f = 1 for every f
            denominator = np.log(min_count) + np.log(frequency)
            weight = np.divide(np.log(frequency), denominator, out=np.ones_like(denominator), where=denominator > 0)
            ids[n], npmi[n], counts[n] = kept, pmi * weight, frequency
        metadata = {
            "n_sequences": corpus.n_sequences,
            "n_rejected": corpus.n_rejected,
            "totals": {str(n): t for n, t in totals.items()},
        }
        return cls(ids, npmi, counts, min_count=min_count, max_piece=max_piece, metadata=metadata)

    @classmethod
    def build(
        cls,
        sequences: Iterable[str],
        min_n: int = 2,
        max_n: int = 10,
        min_count: int | None = None,
        min_count_rate: float = 1e-6,
        max_piece: int | None = None,
        chunk_bases: int = 4_000_000,
        progress: bool = True,
    ) -> NPMITable:
        """Count n-grams of ``sequences`` (raw barcodes; cleaned here) and score them; see the module docstring."""
        corpus = count_ngrams(sequences, max_n=max_n, chunk_bases=chunk_bases, progress=progress)
        return cls.from_counts(corpus, min_n, max_n, min_count, min_count_rate, max_piece)

    # -------------------------------------------------------------------------------------------- lookups
    def dense(self, n: int) -> np.ndarray:
        """NPMI of every n-gram id (NaN where the n-gram is rarer than ``min_count``), cached."""
        if n not in self._dense:
            table = np.full(4**n, np.nan, dtype=np.float32)
            table[self.ngram_ids[n]] = self.npmi[n]
            self._dense[n] = table
        return self._dense[n]

    def score(self, kmers: Iterable[str]) -> np.ndarray:
        """NPMI of each k-mer string (NaN for unscored, ambiguous or out-of-range lengths); vectorised per length."""
        kmers = np.asarray(list(kmers), dtype=object)
        scores = np.full(kmers.shape, np.nan, dtype=np.float32)
        if kmers.size == 0:
            return scores
        lengths = np.fromiter((len(k) for k in kmers), dtype=np.int64, count=kmers.size)
        for n in np.unique(lengths):
            if n not in self.npmi:
                continue
            where = np.flatnonzero(lengths == n)
            codes = encode_bases("".join(kmers[where]).upper()).reshape(-1, n).astype(np.int64)
            ids = (codes * (4 ** np.arange(n - 1, -1, -1))).sum(axis=1)
            scores[where] = np.where((codes < OTHER).all(axis=1), self.dense(int(n))[np.minimum(ids, 4**n - 1)], np.nan)
        return scores

    def position_scores(self, bases: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Best NPMI of an n-gram starting at each base, and that n-gram's length.

        ``bases`` is a ``(batch, n_bases)`` array of base codes (4 = ambiguous / past the end). Positions with no
        scored n-gram get ``-inf`` and length 0. Loops over n only; vectorised over batch and positions.
        """
        batch, width = bases.shape
        best = np.full((batch, width), -np.inf, dtype=np.float32)
        best_len = np.zeros((batch, width), dtype=np.int64)
        valid = bases < OTHER
        ids = np.where(valid, bases, 0).astype(np.int64)
        ok = valid.copy()
        for n in range(2, self.max_n + 1):
            if n > width:
                break
            ids = ids[:, :-1] * 4 + np.where(valid[:, n - 1 :], bases[:, n - 1 :], 0)
            ok = ok[:, :-1] & valid[:, n - 1 :]
            if n < self.min_n:
                continue
            score = np.where(ok, self.dense(n)[ids], np.nan)
            better = score > best[:, : width - n + 1]  # NaN compares False
            best[:, : width - n + 1] = np.where(better, score, best[:, : width - n + 1])
            best_len[:, : width - n + 1] = np.where(better, n, best_len[:, : width - n + 1])
        return best, best_len

    def top(self, n: int, count: int = 10) -> list[tuple[str, float, int]]:
        """The ``count`` highest-NPMI n-grams as ``(ngram, npmi, corpus count)``, for inspection and docs."""
        order = np.argsort(-self.npmi[n])[:count]
        codes = (self.ngram_ids[n][order, None] >> (2 * np.arange(n - 1, -1, -1))) & 3
        words = ["".join("ACGT"[c] for c in row) for row in codes]
        return [(w, float(self.npmi[n][i]), int(self.counts[n][i])) for w, i in zip(words, order)]

    # -------------------------------------------------------------------------------------------- storage
    def save(self, directory: str | Path) -> Path:
        """Write ``npmi_table.safetensors`` (arrays + JSON metadata) into ``directory``; returns the file path."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        tensors = {}
        for n in self.npmi:
            tensors[f"ids_{n}"] = self.ngram_ids[n]
            tensors[f"npmi_{n}"] = self.npmi[n]
            tensors[f"counts_{n}"] = self.counts[n]
        header = {"min_count": self.min_count, "max_piece": self.max_piece, **self.metadata}
        path = directory / TABLE_FILENAME
        save_file(tensors, str(path), metadata={"npmi_table": json.dumps(header)})
        return path

    @classmethod
    def load(cls, path: str | Path) -> NPMITable:
        """Read a table written by :meth:`save` (a folder or the ``.safetensors`` file itself)."""
        path = Path(path)
        if path.is_dir():
            path = path / TABLE_FILENAME
        if not path.is_file():
            raise FileNotFoundError(f"no NPMI table at {path} (expected {TABLE_FILENAME} written by NPMITable.save)")
        from safetensors import safe_open

        with safe_open(str(path), framework="np") as handle:
            header = json.loads((handle.metadata() or {}).get("npmi_table", "{}"))
        tensors = load_file(str(path))
        ns = sorted(int(key.split("_")[1]) for key in tensors if key.startswith("npmi_"))
        if not ns:
            raise ValueError(f"{path} holds no NPMI arrays")
        min_count = header.pop("min_count")
        max_piece = header.pop("max_piece")
        return cls(
            {n: tensors[f"ids_{n}"] for n in ns},
            {n: tensors[f"npmi_{n}"] for n in ns},
            {n: tensors[f"counts_{n}"] for n in ns},
            min_count=min_count,
            max_piece=max_piece,
            metadata=header,
        )

    def __repr__(self) -> str:
        sizes = ", ".join(f"{n}:{len(v)}" for n, v in self.npmi.items())
        return (
            f"NPMITable(n={self.min_n}..{self.max_n}, min_count={self.min_count}, max_piece={self.max_piece}, "
            f"scored={{{sizes}}})"
        )
