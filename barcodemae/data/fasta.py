"""FASTA reader (plain or gzipped): header -> record id and taxonomy, wrapped sequence lines joined.

Each header is read by the convention it follows (:mod:`barcodemae.data.fasta_headers`: SINTAX/UTAX ``;tax=``,
BOLD ``id|Genus species|marker``, or plain ``id description``); ranks a header does not give are ``None``. FASTA
carries no split, so ``split`` is ``""``.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

from barcodemae.tokenization.sequence_cleaning import DEFAULT_MAX_LENGTH

from .cleaning import DEFAULT_MIN_LENGTH, clean_records
from .fasta_headers import HEADER_CONVENTIONS, ParsedHeader, header_convention, parse_header
from .io_utils import open_text
from .report import CleaningReport
from .schema import BarcodeRecord

logger = logging.getLogger(__name__)


def first_header_convention(path: str | Path) -> str | None:
    """The convention (:data:`HEADER_CONVENTIONS`) of the first header of ``path``; ``None`` before any header."""
    with open_text(path) as handle:
        for line in handle:
            line = line.strip()
            if line.startswith(">"):
                return header_convention(line[1:])
            if line and not line.startswith(";"):
                return None
    return None


def iter_fasta_raw(path: str | Path) -> Iterator[BarcodeRecord]:
    """Parse ``path`` into uncleaned records; a malformed file raises :class:`ValueError` naming file and line.

    A file whose headers follow more than one convention is read header by header, with a warning counting each.
    """
    header: ParsedHeader | None = None
    chunks: list[str] = []
    conventions: Counter[str] = Counter()
    with open_text(path) as handle:
        for line_number, line in enumerate(handle, start=1):
            line = line.strip()
            if not line or line.startswith(";"):
                continue
            if line.startswith(">"):
                if header is not None:
                    yield fasta_record(header, chunks)
                try:
                    header = parse_header(line[1:])
                except ValueError as error:
                    raise ValueError(f"{path}:{line_number}: {error}") from None
                if not header.record_id:
                    raise ValueError(f"{path}:{line_number}: FASTA header without a record id")
                conventions[header.convention] += 1
                chunks = []
            elif header is None:
                raise ValueError(f"{path}:{line_number}: sequence data before the first '>' header (not FASTA?)")
            else:
                chunks.append(line)
    if header is not None:
        yield fasta_record(header, chunks)
    if len(conventions) > 1:
        counts = ", ".join(f"{conventions[name]} {name}" for name in HEADER_CONVENTIONS if name in conventions)
        logger.warning("%s: FASTA headers of several conventions (%s); each header was read by the one it follows",
                       path, counts)


def fasta_record(header: ParsedHeader, chunks: list[str]) -> BarcodeRecord:
    """The uncleaned record of one header and its sequence lines."""
    return record_from_row({"processid": header.record_id, "dna_barcode": "".join(chunks), **header.taxonomy})


def read_fasta(
    path: str | Path,
    *,
    clean: bool = True,
    report: CleaningReport | None = None,
    min_length: int = DEFAULT_MIN_LENGTH,
    max_length: int | None = DEFAULT_MAX_LENGTH,
    strict: bool = False,
    drop_duplicates: bool = False,
) -> Iterator[BarcodeRecord]:
    """Iterate over the records of a FASTA file (``.gz`` detected by content).

    With ``clean=True`` (default) every barcode goes through the cleaning policy: rejected records are skipped
    and counted into ``report`` (pass your own :class:`CleaningReport` to read it afterwards), or raise
    :class:`InvalidBarcodeError` when ``strict``. ``clean=False`` yields the sequences as written.
    """
    raw = iter_fasta_raw(path)
    if not clean:
        yield from raw
        return
    report = report if report is not None else CleaningReport(source=str(path))
    for row in clean_records(
        raw, report, min_length=min_length, max_length=max_length, strict=strict, drop_duplicates=drop_duplicates
    ):
        yield record_from_row(row)


def record_from_row(row: dict[str, str | None]) -> BarcodeRecord:
    """Inverse of :meth:`BarcodeRecord.to_dict`."""
    fields = dict(row)
    fields["class_"] = fields.pop("class", None)
    return BarcodeRecord(**fields)
