"""FASTA reader (plain or gzipped): header -> record id, wrapped sequence lines joined.

The id is the first word of the header; for BOLD-style headers (``ABC123-19|Genus species|COI-5P|...``) it is
the part before the first ``|``. FASTA carries no split or taxonomy, so those columns are ``""`` / ``None``.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from barcodemae.tokenization.sequence_cleaning import DEFAULT_MAX_LENGTH

from .cleaning import DEFAULT_MIN_LENGTH, clean_records
from .io_utils import open_text
from .report import CleaningReport
from .schema import BarcodeRecord


def parse_fasta_header(header: str) -> str:
    """Record id of a FASTA header line (without the ``>``)."""
    words = header.split()
    return words[0].split("|")[0] if words else ""


def iter_fasta_raw(path: str | Path) -> Iterator[BarcodeRecord]:
    """Parse ``path`` into uncleaned records; a malformed file raises :class:`ValueError` naming file and line."""
    record_id: str | None = None
    chunks: list[str] = []
    with open_text(path) as handle:
        for line_number, line in enumerate(handle, start=1):
            line = line.strip()
            if not line or line.startswith(";"):
                continue
            if line.startswith(">"):
                if record_id is not None:
                    yield BarcodeRecord(processid=record_id, dna_barcode="".join(chunks))
                record_id = parse_fasta_header(line[1:])
                if not record_id:
                    raise ValueError(f"{path}:{line_number}: FASTA header without a record id")
                chunks = []
            elif record_id is None:
                raise ValueError(f"{path}:{line_number}: sequence data before the first '>' header (not FASTA?)")
            else:
                chunks.append(line)
    if record_id is not None:
        yield BarcodeRecord(processid=record_id, dna_barcode="".join(chunks))


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
