"""Delimited tables of barcodes (CSV, TSV) with whatever columns a lab keeps: an id, a sequence, some ranks.

Why: a reference library or a batch of specimens is often a spreadsheet export with ``id, sequence, genus,
species``, not the 11 columns of BIOSCAN-5M or the 80 of a BOLD data package. Columns are recognised by name,
case-insensitively and with spaces or hyphens read as ``_`` (``Sample ID`` is ``sample_id``), through the aliases
below; other columns are ignored, and ranks the table lacks are missing (``None``), never derived from others.
Where several columns match one field, the alias listed first wins (``processid`` over ``sampleid``).
"""

from __future__ import annotations

import csv
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from .fasta import record_from_row
from .io_utils import open_text
from .schema import TAXONOMY_RANKS, BarcodeRecord, normalise_missing

ID_ALIASES: tuple[str, ...] = ("processid", "sampleid", "sample_id", "id", "seqid", "seq_id", "sequence_id",
                               "sequenceid", "record_id", "recordid")
"""Names of the record-id column, in order of preference."""
SEQUENCE_ALIASES: tuple[str, ...] = ("dna_barcode", "nucleotides", "nuc", "nucraw", "sequence", "seq", "dna",
                                     "barcode")
"""Names of the sequence column, in order of preference (``nuc``/``nucraw``/``nucleotides``: BOLD's)."""
RANK_ALIASES: dict[str, tuple[str, ...]] = {
    **{rank: (rank, f"{rank}_name") for rank in TAXONOMY_RANKS},  # phylum_name...: BOLD's older exports
    "dna_bin": ("dna_bin", "bin_uri", "bin"),
}
"""Record rank column -> the names of the table column that gives it."""
SPLIT_COLUMN = "split"
"""The column whose values (BIOSCAN-5M partition names) ``split=`` selects rows by."""


def column_key(name: str) -> str:
    """How a header name is compared with the aliases: stripped, lower-case, spaces and hyphens as ``_``, without
    the byte-order mark a spreadsheet's "CSV UTF-8" export puts before the first name."""
    return "_".join(name.replace("\ufeff", "").lower().replace("-", " ").split())


@dataclass(frozen=True)
class TableColumns:
    """Which column of the table gives each record field: indices into its header."""

    header: tuple[str, ...]
    processid: int
    dna_barcode: int
    ranks: dict[str, int]
    """Record rank column (``genus``, ``dna_bin``...) -> index, for the ranks the table has."""
    split: int | None

    @property
    def description(self) -> str:
        """The mapping in words for the log (``id: ID, sequence: seq, ranks: genus, species=Species_Name``)."""
        ranks = ", ".join(rank if self.header[i] == rank else f"{rank}={self.header[i]}"
                          for rank, i in self.ranks.items()) or "none"
        split = f", split: {self.header[self.split]}" if self.split is not None else ""
        return (f"id: {self.header[self.processid]}, sequence: {self.header[self.dna_barcode]}, ranks: {ranks}"
                f"{split}")


def match_columns(path: str | Path, header: Sequence[str]) -> TableColumns:
    """Recognise the columns of ``header``; a table without an id or a sequence column raises a one-line
    :class:`ValueError` naming the file, its columns and the names accepted."""
    index: dict[str, int] = {}
    for position, name in enumerate(header):
        index.setdefault(column_key(name), position)

    def find(aliases: Sequence[str]) -> int | None:
        return next((index[alias] for alias in aliases if alias in index), None)

    processid, dna_barcode = find(ID_ALIASES), find(SEQUENCE_ALIASES)
    if processid is None or dna_barcode is None:
        missing = " and no ".join(f"{what} column" for what, found in (("id", processid), ("sequence", dna_barcode))
                                  if found is None)
        raise ValueError(
            f"{path}: no {missing} among its columns ({', '.join(header)}); accepted, in any case: id "
            f"{'/'.join(ID_ALIASES)}; sequence {'/'.join(SEQUENCE_ALIASES)}"
        )
    ranks = {rank: found for rank, aliases in RANK_ALIASES.items() if (found := find(aliases)) is not None}
    return TableColumns(tuple(header), processid, dna_barcode, ranks, index.get(SPLIT_COLUMN))


def read_table_header(path: str | Path, delimiter: str) -> list[str]:
    """Column names of a (possibly gzipped) delimited file; an empty file raises naming it."""
    with open_text(path) as handle:
        header = next(csv.reader(handle, delimiter=delimiter), None)
    if not header:
        raise ValueError(f"{path}: empty file, expected a header line naming the columns")
    return header


def iter_table_rows(
    path: str | Path, delimiter: str, columns: TableColumns, splits: Sequence[str] | None = None
) -> Iterator[BarcodeRecord]:
    """Uncleaned records of a table in file order; with ``splits``, only rows whose split is one of them.

    Placeholder strings (``""``, ``None``, ``NA``...) read as missing, for the sequence too (as pandas reads a
    BIOSCAN-5M CSV); a row with another number of fields than the header raises naming file and line.
    """
    csv.field_size_limit(min(sys.maxsize, 2**31 - 1))
    with open_text(path) as handle:
        reader = csv.reader(handle, delimiter=delimiter)
        next(reader, None)
        width = len(columns.header)
        for fields in reader:
            if not fields or fields == [""]:
                continue
            if len(fields) != width:
                raise ValueError(f"{path}:{reader.line_num}: {len(fields)} fields, header has {width}")
            split = fields[columns.split].strip() if columns.split is not None else ""
            if splits is not None and split not in splits:
                continue
            yield record_from_row({
                "processid": fields[columns.processid],
                "dna_barcode": normalise_missing(fields[columns.dna_barcode]),
                "split": split,
                **{rank: normalise_missing(fields[i]) for rank, i in columns.ranks.items()},
            })


__all__ = ["ID_ALIASES", "RANK_ALIASES", "SEQUENCE_ALIASES", "TableColumns", "iter_table_rows", "match_columns"]
