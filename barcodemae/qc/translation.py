"""The translation check: the non-learned quality-control baseline that BOLD's own checks correspond to.

Why: COI-5P is protein-coding, so a correct barcode read in its reading frame has no stop codon. A substitution
can create one; an insertion or deletion shifts the frame and produces stops downstream of it; an ambiguous ``N``
is visible as such. BOLD flags records with stop codons; this module does the same, so a learned error detector
(issue #15) has a baseline to beat.

The genetic code is NCBI translation table 5 (invertebrate mitochondrial): its only stops are ``TAA`` and ``TAG``
(``TGA`` is tryptophan, ``AGA`` / ``AGG`` serine, ``ATA`` methionine). The frame of a read is not known (barcodes
start anywhere in the amplicon), so the best of the three forward frames is used: the one with the fewest stops,
ties to the lowest offset. A codon containing ``N`` or another ambiguity code is never a stop (it translates to
``X``). Lowercase bases count as their uppercase letters.

Everything runs on byte codes with numpy: :func:`check_translation` handles thousands of reads as one array of
codon indices, without a Python loop per codon or per read.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

CODON_ORDER = "TCAG"
"""Base order of :data:`TABLE_5`: codon ``xyz`` is entry ``16 * i(x) + 4 * i(y) + i(z)``, as NCBI prints tables."""

TABLE_5 = "FFLLSSSSYY**CCWWLLLLPPPPHHQQRRRRIIMMTTTTNNKKSSSSVVVVAAAADDEEGGGG"
"""NCBI translation table 5 (invertebrate mitochondrial), one amino acid per codon in :data:`CODON_ORDER`."""

STOP_CODONS: tuple[str, ...] = tuple(
    a + b + c for i, a in enumerate(CODON_ORDER) for j, b in enumerate(CODON_ORDER) for k, c in enumerate(CODON_ORDER)
    if TABLE_5[16 * i + 4 * j + k] == "*"
)
"""The stop codons of table 5, read off the table: ``("TAA", "TAG")``."""

_AMBIGUOUS = 4  # base code of anything that is not T, C, A or G
_BASE_CODE = np.full(256, _AMBIGUOUS, dtype=np.uint8)
for _code, _base in enumerate(CODON_ORDER):
    _BASE_CODE[ord(_base)] = _BASE_CODE[ord(_base.lower())] = _code
_AMINO_ACIDS = np.frombuffer(TABLE_5.encode("ascii") + b"X", dtype=np.uint8)  # index 64: an ambiguous codon
_IS_STOP = np.append(np.frombuffer(TABLE_5.encode("ascii"), dtype=np.uint8) == ord("*"), False)
_N_CODES = np.frombuffer(b"Nn", dtype=np.uint8)


def _codes(sequence: str) -> np.ndarray:
    """``(L,)`` base codes (0..3 for TCAG, 4 for anything else) of a sequence."""
    return _BASE_CODE[np.frombuffer(sequence.encode("ascii"), dtype=np.uint8)]


def _codon_index(codes: np.ndarray) -> np.ndarray:
    """``(L - 2,)`` index into :data:`TABLE_5` of the codon starting at every position; 64 when ambiguous."""
    first, second, third = codes[:-2], codes[1:-1], codes[2:]
    index = 16 * first.astype(np.int64) + 4 * second + third
    return np.where((first < 4) & (second < 4) & (third < 4), index, 64)


def translate(sequence: str, frame: int = 0) -> str:
    """The protein of ``sequence`` read from offset ``frame`` (0, 1, 2): one letter per whole codon, ``*`` for a
    stop, ``X`` for a codon with an ambiguous base."""
    _check_frame(frame)
    index = _codon_index(_codes(sequence))[frame::3] if len(sequence) >= 3 else np.zeros(0, np.int64)
    return _AMINO_ACIDS[index].tobytes().decode("ascii")


def stop_codon_positions(sequence: str, frame: int) -> np.ndarray:
    """``(num_stops,)`` int64 base positions of the first base of each stop codon in frame ``frame``."""
    _check_frame(frame)
    if len(sequence) < 3:
        return np.zeros(0, dtype=np.int64)
    stops = _IS_STOP[_codon_index(_codes(sequence))]
    return np.flatnonzero(stops[frame::3]) * 3 + frame


def best_frame(sequence: str) -> int:
    """Offset (0, 1, 2) of the forward reading frame with the fewest stop codons; ties: the lowest offset."""
    return int(best_frames([sequence])[0])


def best_frames(sequences: list[str]) -> np.ndarray:
    """``(n,)`` int64 :func:`best_frame` of every sequence, vectorised over all of them."""
    return _stops_per_frame(sequences)[0].argmin(axis=1)


def _stops_per_frame(sequences: list[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Stop codons of all ``sequences`` at once, on their concatenation.

    Returns ``counts`` ``(n, 3)`` stops per frame, ``is_stop`` ``(T,)`` bool (a stop codon starts at this base of
    the concatenation, ``T`` = total length), ``frame_of`` ``(T,)`` each base's offset within its read modulo 3,
    and ``record`` ``(T,)`` each base's read index. A codon never spans two reads.
    """
    lengths = np.fromiter(map(len, sequences), dtype=np.int64, count=len(sequences))
    total = int(lengths.sum())
    codes = _codes("".join(sequences))
    record = np.repeat(np.arange(len(sequences)), lengths)
    position = np.arange(total) - np.repeat(np.cumsum(lengths) - lengths, lengths)
    is_stop = np.zeros(total, dtype=bool)
    if total >= 3:
        within = position[:-2] + 2 < lengths[record[:-2]]  # the codon's three bases belong to the same read
        is_stop[:-2] = _IS_STOP[_codon_index(codes)] & within
    frame_of = position % 3
    counts = np.bincount(record[is_stop] * 3 + frame_of[is_stop], minlength=3 * len(sequences))
    return counts.reshape(len(sequences), 3), is_stop, frame_of, record


@dataclass(frozen=True, eq=False)  # numpy fields
class TranslationCheck:
    """The translation check of ``n`` reads (see :func:`check_translation`).

    ``base_predictions`` uses the labels of :mod:`barcodemae.qc.error_injection` but cannot tell error types
    apart: the three bases of a stop codon are marked ``1`` (substituted, the simplest cause of a stop) and ``N``
    bases ``3``; compare it with a learned model on type-agnostic detection, not per type.
    """

    frame: np.ndarray
    """``(n,)`` int64 best frame of each read."""
    num_stops: np.ndarray
    """``(n,)`` int64 stop codons in the best frame."""
    has_n: np.ndarray
    """``(n,)`` bool, the read contains an ``N``."""
    base_predictions: list[np.ndarray]
    """Per read, ``(len(read),)`` int8: 0 = fine, 1 = part of a stop codon in the best frame, 3 = ``N``."""

    @property
    def score(self) -> np.ndarray:
        """``(n,)`` float64 per-record error score for ROC analysis: stop codons in the best frame, +1 with an N."""
        return self.num_stops + self.has_n.astype(np.float64)

    @property
    def has_errors(self) -> np.ndarray:
        """``(n,)`` bool verdict: a stop codon in the best frame or an ``N``."""
        return (self.num_stops > 0) | self.has_n


def check_translation(sequences: list[str]) -> TranslationCheck:
    """Best frame, stop codons and ``N`` bases of every read, vectorised over all reads."""
    counts, is_stop, frame_of, record = _stops_per_frame(sequences)
    frame = counts.argmin(axis=1)
    stop_start = np.flatnonzero(is_stop & (frame_of == frame[record]))
    joined = np.frombuffer("".join(sequences).encode("ascii"), dtype=np.uint8)
    is_n = np.isin(joined, _N_CODES)
    predictions = np.zeros(len(joined), dtype=np.int8)
    predictions[np.concatenate([stop_start, stop_start + 1, stop_start + 2])] = 1
    predictions[is_n] = 3
    has_n = np.bincount(record[is_n], minlength=len(sequences)) > 0
    ends = np.cumsum([len(sequence) for sequence in sequences])[:-1]
    return TranslationCheck(
        frame=frame,
        num_stops=counts[np.arange(len(sequences)), frame],
        has_n=has_n,
        base_predictions=np.split(predictions, ends),
    )


def _check_frame(frame: int) -> None:
    if frame not in (0, 1, 2):
        raise ValueError(f"frame must be 0, 1 or 2 (an offset into the read), got {frame!r}")


__all__ = [
    "CODON_ORDER",
    "STOP_CODONS",
    "TABLE_5",
    "TranslationCheck",
    "best_frame",
    "best_frames",
    "check_translation",
    "stop_codon_positions",
    "translate",
]
