"""BOLD Systems TSV reader: both public data-package schemas mapped to the BIOSCAN record schema.

BOLD has shipped two TSV layouts: the 2023 data package (sequence in ``nucraw``, BIN in ``bin_uri``) and the
2024 one (sequence in ``nuc``, coordinates as ``[lat, lon]``). Both write missing values as the string
``None``. Only records of ``marker`` (default COI-5P, the barcode region these models are trained on) are kept;
others are rejected with reason ``marker ...`` and counted, never silently skipped.
"""

from __future__ import annotations

import csv
import sys
from collections.abc import Iterator
from pathlib import Path

from barcodemae.tokenization.sequence_cleaning import DEFAULT_MAX_LENGTH

from .cleaning import DEFAULT_MIN_LENGTH, clean_records
from .fasta import record_from_row
from .io_utils import open_text
from .report import CleaningReport
from .schema import TAXONOMY_RANKS, BarcodeRecord, normalise_missing

SEQUENCE_COLUMNS = ("nuc", "nucraw")
"""Sequence column of the 2024 and 2023 BOLD schemas, in order of preference."""
REQUIRED_COLUMNS = ("processid", "bin_uri", *TAXONOMY_RANKS)
DEFAULT_MARKER = "COI-5P"


def missing_bold_columns(header: list[str]) -> list[str]:
    """The columns of a BOLD TSV export that ``header`` lacks (``[]``: it is one)."""
    missing = [name for name in REQUIRED_COLUMNS if name not in header]
    if not any(name in header for name in SEQUENCE_COLUMNS):
        missing.append(" or ".join(SEQUENCE_COLUMNS))
    return missing


def _check_header(path: str | Path, header: list[str]) -> str:
    """Return the sequence column name, or raise naming every missing column."""
    missing = missing_bold_columns(header)
    if missing:
        raise ValueError(f"{path}: not a BOLD TSV export, missing column(s): {', '.join(missing)}")
    return next(name for name in SEQUENCE_COLUMNS if name in header)


def iter_bold_rows(
    path: str | Path, *, marker: str | None = DEFAULT_MARKER
) -> Iterator[tuple[BarcodeRecord, str | None]]:
    """Every record of a BOLD TSV with ``None`` or, for records of another marker, the rejection reason."""
    csv.field_size_limit(min(sys.maxsize, 2**31 - 1))
    with open_text(path) as handle:
        reader = csv.reader(handle, delimiter="\t", quoting=csv.QUOTE_NONE)
        header = next(reader, None)
        if header is None:
            raise ValueError(f"{path}: empty file, expected a BOLD TSV header")
        sequence_column = _check_header(path, header)
        column = {name: i for i, name in enumerate(header)}
        marker_index = column.get("marker_code")
        for line_number, fields in enumerate(reader, start=2):
            if not fields or fields == [""]:
                continue
            if len(fields) != len(header):
                raise ValueError(f"{path}:{line_number}: {len(fields)} fields, header has {len(header)}")
            reject = None
            if marker is not None and marker_index is not None and fields[marker_index] != marker:
                reject = f"marker {fields[marker_index]!r} is not {marker!r}"
            sequence = fields[column[sequence_column]]
            record = BarcodeRecord(
                processid=fields[column["processid"]],
                dna_barcode=None if sequence == "None" else sequence,
                split="",
                phylum=normalise_missing(fields[column["phylum"]]),
                class_=normalise_missing(fields[column["class"]]),
                order=normalise_missing(fields[column["order"]]),
                family=normalise_missing(fields[column["family"]]),
                subfamily=normalise_missing(fields[column["subfamily"]]),
                genus=normalise_missing(fields[column["genus"]]),
                species=normalise_missing(fields[column["species"]]),
                dna_bin=normalise_missing(fields[column["bin_uri"]]),
            )
            yield record, reject


def iter_bold_raw(
    path: str | Path, *, marker: str | None = DEFAULT_MARKER, report: CleaningReport | None = None
) -> Iterator[BarcodeRecord]:
    """Uncleaned records of ``marker``; records of other markers are counted into ``report`` as rejected."""
    for record, reject in iter_bold_rows(path, marker=marker):
        if reject is None:
            yield record
        elif report is not None:
            report.read += 1
            report.add_rejected(record.processid, reject)


def read_bold_tsv(
    path: str | Path,
    *,
    clean: bool = True,
    report: CleaningReport | None = None,
    marker: str | None = DEFAULT_MARKER,
    min_length: int = DEFAULT_MIN_LENGTH,
    max_length: int | None = DEFAULT_MAX_LENGTH,
    strict: bool = False,
    drop_duplicates: bool = False,
) -> Iterator[BarcodeRecord]:
    """Iterate over the records of a BOLD TSV export (2023 ``nucraw`` or 2024 ``nuc`` schema, ``.gz`` ok).

    ``clean=True`` applies the cleaning policy and counts into ``report`` exactly as :func:`read_fasta` does.
    ``marker=None`` keeps every marker.
    """
    report = report if report is not None else CleaningReport(source=str(path))
    raw = iter_bold_raw(path, marker=marker, report=report)
    if not clean:
        yield from raw
        return
    for row in clean_records(
        raw, report, min_length=min_length, max_length=max_length, strict=strict, drop_duplicates=drop_duplicates
    ):
        yield record_from_row(row)
