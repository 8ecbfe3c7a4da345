"""The one cleaning policy for DNA barcodes, shared by every reader and by the tokenizer.

Why one module: a barcode read from a CSV, a FASTA file or typed into ``tokenizer(...)`` must become the same
string, and a bad record must fail with the same message wherever it enters. This file is copied next to saved
models (the tokenizer imports it relatively), so it depends on the standard library only.

Policy
------
* letters are upper-cased; whitespace and alignment gaps (``-`` and ``.``) are removed;
* leading and trailing ``N`` are trimmed (they carry no information and only pad the read);
* the IUPAC ambiguity codes ``R Y S W K M B D H V N`` are kept; a tokenizer whose vocabulary lacks them maps
  the tokens that contain them to ``[UNK]`` (k-mers) or to their own tokens (character level);
* ``U`` (RNA) is read as ``T``;
* anything else (digits, ``X``, ``*``, punctuation) is an error naming the record and the offending letters;
* empty, all-``N`` and too-short records are errors; records longer than ``max_length`` are truncated (the
  BIOSCAN-5M convention, 660 bp), N left at the cut is trimmed too (cleaning is idempotent), and the caller
  is told how many bases were cut.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

NUCLEOTIDES = "ACGT"
AMBIGUITY_CODES = "RYSWKMBDHVN"
IUPAC_LETTERS = NUCLEOTIDES + AMBIGUITY_CODES
GAP_AND_SPACE = re.compile(r"[\s\-.]+")
NOT_IUPAC = re.compile(f"[^{IUPAC_LETTERS}]")
DEFAULT_MAX_LENGTH = 660


class InvalidBarcodeError(ValueError):
    """A barcode that cannot be used; the message names the record and the problem."""

    def __init__(self, record_id: str | None, reason: str):
        self.record_id = record_id
        self.reason = reason
        where = f"record {record_id!r}" if record_id is not None else "barcode"
        super().__init__(f"{where}: {reason}")

    def __reduce__(self):
        """Rebuild from (record_id, reason) so the error crosses process boundaries (datasets.map, DataLoader)."""
        return (type(self), (self.record_id, self.reason))


@dataclass(frozen=True)
class CleanedBarcode:
    """A cleaned barcode plus what cleaning did to it, so nothing is changed silently."""

    sequence: str
    truncated_bases: int = 0
    trimmed_n: int = 0


def normalise_letters(raw: str) -> str:
    """Upper-case, ``U`` read as ``T``, gaps and whitespace removed: the first step of the cleaning policy, and all
    that ``barcodemae qc`` does to a read (it checks reads as sequenced, untrimmed)."""
    return GAP_AND_SPACE.sub("", raw).upper().replace("U", "T")


def non_iupac_letters(sequence: str) -> tuple[int, str] | None:
    """``(index of the first letter outside IUPAC, every such letter sorted)`` of a normalised sequence, or
    ``None`` when all its letters are IUPAC codes."""
    first_bad = NOT_IUPAC.search(sequence)
    if first_bad is None:
        return None
    return first_bad.start(), "".join(sorted(set(NOT_IUPAC.findall(sequence))))


def clean_barcode(
    raw: str | None,
    record_id: str | None = None,
    *,
    min_length: int = 1,
    max_length: int | None = DEFAULT_MAX_LENGTH,
) -> CleanedBarcode:
    """Apply the cleaning policy to one barcode or raise :class:`InvalidBarcodeError`.

    ``max_length=None`` keeps full-length sequences (useful for statistics over a whole corpus).
    """
    if raw is None:
        raise InvalidBarcodeError(record_id, "missing sequence (None)")
    if not isinstance(raw, str):
        raise InvalidBarcodeError(record_id, f"sequence must be a string, got {type(raw).__name__}")
    sequence = normalise_letters(raw)
    if not sequence:
        raise InvalidBarcodeError(record_id, "empty sequence")
    bad = non_iupac_letters(sequence)
    if bad is not None:
        first, letters = bad
        raise InvalidBarcodeError(
            record_id, f"non-IUPAC character(s) {letters!r} (first at position {first}); allowed: {IUPAC_LETTERS}"
        )
    stripped = sequence.strip("N")
    if not stripped:
        raise InvalidBarcodeError(record_id, "sequence is all N")
    trimmed_n = len(sequence) - len(stripped)
    if len(stripped) < min_length:
        raise InvalidBarcodeError(record_id, f"too short: {len(stripped)} bp < minimum {min_length} bp")
    truncated = 0
    if max_length is not None and len(stripped) > max_length:
        truncated = len(stripped) - max_length
        # Re-trim: a cut that ends in N would otherwise leave a terminal N, and cleaning must be idempotent
        # (readers clean once, the tokenizer cleans again).
        kept = stripped[:max_length].rstrip("N")
        trimmed_n += max_length - len(kept)
        stripped = kept
    return CleanedBarcode(stripped, truncated_bases=truncated, trimmed_n=trimmed_n)
