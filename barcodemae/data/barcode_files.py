"""The one reader policy for barcode files: which reader, which columns and whether splits exist, decided up front.

Why one entry point: ``barcodemae embed``, ``identify build`` / ``query`` and ``qc`` must accept the same files and
read the same records from them, and a file they cannot use must be refused (one line naming the file and the
problem) before a model loads or a record is read. :func:`open_barcode_file` looks at the name and the first line:

========================  ===================================================  =====================================
kind                      recognised by                                        records
========================  ===================================================  =====================================
``fasta``                 ``.fasta .fa .fna .fas .ffn``                        id and taxonomy from each header
                                                                               (:mod:`~barcodemae.data.fasta_headers`)
``bioscan_csv``           ``.csv`` with every BIOSCAN-5M record column         as written; ``split`` selects rows
                          (:data:`~barcodemae.data.schema.RECORD_COLUMNS`)
``bold_tsv``              ``.tsv .txt`` with BOLD's data-package columns       BOLD's taxonomy and BIN; other markers
                          (:mod:`~barcodemae.data.bold`)                       rejected
``table``                 any other ``.csv`` / ``.tsv .txt`` with an id and a  id, sequence, the ranks it has
                          sequence column (:mod:`~barcodemae.data.tables`)     (``split`` where it has that column)
========================  ===================================================  =====================================

Every name may end in ``.gz`` (decompression goes by content). :meth:`BarcodeFile.records` yields the uncleaned
records of any kind; :func:`barcodemae.data.load_barcodes` cleans them (a ``bioscan_csv`` through the Arrow loader
:func:`~barcodemae.data.load_bioscan5m`, which gives the same records and is built for 5M rows), ``barcodemae qc``
checks them as written.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from .bold import DEFAULT_MARKER, iter_bold_rows, missing_bold_columns
from .fasta import first_header_convention, iter_fasta_raw
from .fasta_headers import HEADER_CONVENTIONS
from .input_errors import check_input_file, reading
from .io_utils import strip_compression_suffix
from .schema import RECORD_COLUMNS, BarcodeRecord
from .splits import resolve_splits
from .tables import TableColumns, iter_table_rows, match_columns, read_table_header

CSV_SUFFIXES = (".csv",)
FASTA_SUFFIXES = (".fasta", ".fa", ".fna", ".fas", ".ffn")
TSV_SUFFIXES = (".tsv", ".txt")
DELIMITERS = {"csv": ",", "tsv": "\t"}
"""Field separator of each delimited format of :func:`detect_format`."""


def detect_format(path: str | Path) -> str:
    """``"csv"``, ``"tsv"`` or ``"fasta"`` from the file name (``.gz`` ignored); unknown -> ValueError."""
    name = strip_compression_suffix(path)
    for suffixes, kind in ((CSV_SUFFIXES, "csv"), (FASTA_SUFFIXES, "fasta"), (TSV_SUFFIXES, "tsv")):
        if name.endswith(suffixes):
            return kind
    known = ", ".join((*CSV_SUFFIXES, *FASTA_SUFFIXES, *TSV_SUFFIXES))
    raise ValueError(f"{path}: cannot tell the file format from its name; expected one of {known} (optionally .gz)")


@dataclass(frozen=True)
class BarcodeFile:
    """A barcode file and how it is read (module docstring): its kind and, for tables, the columns recognised."""

    path: Path
    kind: str
    description: str
    """What was recognised, for the log: ``"FASTA, SINTAX/UTAX (...) headers"``, ``"CSV table (id: ID, ...)"``."""
    columns: TableColumns | None = None
    delimiter: str = ","

    @property
    def has_splits(self) -> bool:
        """Whether ``split=`` can select rows: the file has a ``split`` column."""
        return self.columns is not None and self.columns.split is not None

    def records(
        self, splits: Sequence[str] | None = None, marker: str | None = DEFAULT_MARKER
    ) -> Iterator[tuple[BarcodeRecord, str | None]]:
        """Uncleaned records in file order, each with ``None`` or the reason the reader sets it aside (a BOLD TSV
        record of another ``marker`` than COI-5P). ``splits``: partitions to keep (files with a split column)."""
        if self.kind == "fasta":
            for record in iter_fasta_raw(self.path):
                yield record, None
        elif self.kind == "bold_tsv":
            yield from iter_bold_rows(self.path, marker=marker)
        else:
            for record in iter_table_rows(self.path, self.delimiter, self.columns, splits):
                yield record, None


def open_barcode_file(path: str | Path, *, split: str | Iterable[str] = "all") -> BarcodeFile:
    """Recognise ``path`` (module docstring) and check that ``split`` can be served, reading only its first line.

    Raises a one-line error (:class:`ValueError`, :class:`FileNotFoundError`) for a missing, empty or unreadable
    file, a name of unknown format, a table without an id or a sequence column, and a ``split`` other than
    ``"all"`` on a file without a split column or naming no BIOSCAN-5M partition.
    """
    check_input_file(path)
    path = Path(path)
    file_format = detect_format(path)
    with reading(path):
        if file_format == "fasta":
            convention = first_header_convention(path)
            headers = f", {HEADER_CONVENTIONS[convention]} headers" if convention is not None else ""
            source = BarcodeFile(path, "fasta", f"FASTA{headers}")
        else:
            delimiter = DELIMITERS[file_format]
            header = read_table_header(path, delimiter)
            if file_format == "tsv" and not missing_bold_columns(header):
                source = BarcodeFile(path, "bold_tsv", "BOLD TSV export", delimiter=delimiter)
            else:
                columns = match_columns(path, header)
                kind = "bioscan_csv" if file_format == "csv" and set(RECORD_COLUMNS) <= set(header) else "table"
                name = "BIOSCAN-5M CSV" if kind == "bioscan_csv" else f"{file_format.upper()} table"
                source = BarcodeFile(path, kind, f"{name} ({columns.description})", columns, delimiter)
    if split != "all":
        if not source.has_splits:
            has_none = (f"this one has none (its columns: {', '.join(source.columns.header)})"
                        if source.columns is not None else
                        f"{'FASTA' if source.kind == 'fasta' else 'BOLD TSV'} files carry no splits")
            raise ValueError(f"{path}: split={split!r} needs a BIOSCAN-format CSV or another table with a split "
                             f"column; {has_none}")
        resolve_splits(split)
    return source


__all__ = ["BarcodeFile", "detect_format", "open_barcode_file"]
