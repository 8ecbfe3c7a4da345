"""Apply the one cleaning policy (:func:`clean_barcode`) to Arrow batches and to record streams.

Why two entry points: in-memory/memory-mapped datasets are cleaned with ``datasets.map`` over Arrow batches
(multi-process, cached) and the outcome of every row is kept in helper columns so a report can be computed
afterwards with Arrow; streams (FASTA iterators, streaming CSV) are cleaned record by record into a live
:class:`CleaningReport`. Both call :func:`clean_barcode`, so there is exactly one policy.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator, Mapping

import pyarrow as pa
import pyarrow.compute as pc

from barcodemae.tokenization.sequence_cleaning import DEFAULT_MAX_LENGTH, InvalidBarcodeError, clean_barcode

from .report import CleaningReport
from .schema import MISSING_STRINGS, RECORD_COLUMNS, TAXONOMY_RANKS, BarcodeRecord, normalise_missing

REASON_COLUMN = "_reject_reason"
TRUNCATED_COLUMN = "_truncated_bases"
TRIMMED_COLUMN = "_trimmed_n"
KEY_COLUMN = "_barcode_key"
HELPER_COLUMNS = (REASON_COLUMN, TRUNCATED_COLUMN, TRIMMED_COLUMN, KEY_COLUMN)
NAME_COLUMNS = (*TAXONOMY_RANKS, "dna_bin")
DEFAULT_MIN_LENGTH = 1
"""No length floor by default, as in the official ``bioscan-dataset`` loader; pass e.g. 200 to drop fragments."""

_MISSING_VALUE_SET = pa.array(sorted(MISSING_STRINGS), pa.string())


def normalise_missing_column(column: pa.Array | pa.ChunkedArray) -> pa.Array | pa.ChunkedArray:
    """Vectorised :func:`normalise_missing`: strip whitespace, placeholder strings -> null."""
    stripped = pc.utf8_trim_whitespace(column.cast(pa.string()))
    return pc.if_else(pc.is_in(stripped, value_set=_MISSING_VALUE_SET), pa.scalar(None, pa.string()), stripped)


def clean_table(
    table: pa.Table,
    *,
    min_length: int = DEFAULT_MIN_LENGTH,
    max_length: int | None = DEFAULT_MAX_LENGTH,
    with_barcode_key: bool = False,
) -> pa.Table:
    """Clean one Arrow batch of records: cleaned ``dna_barcode`` (null when rejected), normalised names, and
    helper columns with each row's rejection reason, truncated bases and trimmed Ns.

    Rows are never removed here, so ``datasets.map`` stays 1:1 and the report can be computed exactly with
    Arrow afterwards (rejections are raised by the caller in strict mode, in the main process).
    ``with_barcode_key`` adds a uint64 digest of each cleaned barcode for vectorised de-duplication.
    """
    ids = table.column("processid").to_pylist()
    raw = table.column("dna_barcode").to_pylist()
    sequences: list[str | None] = []
    reasons: list[str | None] = []
    truncated: list[int] = []
    trimmed: list[int] = []
    for record_id, sequence in zip(ids, raw):
        try:
            cleaned = clean_barcode(sequence, record_id, min_length=min_length, max_length=max_length)
        except InvalidBarcodeError as error:
            sequences.append(None)
            reasons.append(error.reason)
            truncated.append(0)
            trimmed.append(0)
            continue
        sequences.append(cleaned.sequence)
        reasons.append(None)
        truncated.append(cleaned.truncated_bases)
        trimmed.append(cleaned.trimmed_n)
    ordered = [name for name in RECORD_COLUMNS if name in table.column_names]
    ordered += [name for name in table.column_names if name not in RECORD_COLUMNS]
    columns = {name: table.column(name) for name in ordered}
    columns["dna_barcode"] = pa.array(sequences, pa.string())
    for name in NAME_COLUMNS:
        if name in columns:
            columns[name] = normalise_missing_column(columns[name])
    columns[REASON_COLUMN] = pa.array(reasons, pa.string())
    columns[TRUNCATED_COLUMN] = pa.array(truncated, pa.int32())
    columns[TRIMMED_COLUMN] = pa.array(trimmed, pa.int32())
    if with_barcode_key:
        keys = [0 if sequence is None else int.from_bytes(barcode_key(sequence), "little") for sequence in sequences]
        columns[KEY_COLUMN] = pa.array(keys, pa.uint64())
    return pa.table(columns)


def barcode_key(sequence: str) -> bytes:
    """Process-independent 8-byte digest of a cleaned barcode, used to drop repeats in streams.

    (Python's ``hash`` is salted per process, so it cannot be used across workers or runs.)
    """
    return hashlib.blake2b(sequence.encode("ascii"), digest_size=8).digest()


class RecordCleaner:
    """Stateful per-record cleaner for streams: cleans, de-duplicates and counts into ``report``.

    Rejected records are recorded (id and reason) and return ``None``, or raise in ``strict`` mode. With
    ``drop_duplicates`` only the first record of each cleaned barcode is kept (8-byte digests are remembered,
    about 50 MB for 5M distinct barcodes). With ``track_ids`` duplicate record ids are listed in the report
    (not dropped; ``strict`` raises) -- switch it off for multi-million-record streams to save memory.
    """

    def __init__(
        self,
        report: CleaningReport,
        *,
        min_length: int = DEFAULT_MIN_LENGTH,
        max_length: int | None = DEFAULT_MAX_LENGTH,
        strict: bool = False,
        drop_duplicates: bool = False,
        track_ids: bool = True,
    ):
        self.report = report
        self.min_length = min_length
        self.max_length = max_length
        self.strict = strict
        self.drop_duplicates = drop_duplicates
        self.track_ids = track_ids
        self._seen_barcodes: set[bytes] = set()
        self._seen_ids: set[str] = set()

    def __call__(self, record: BarcodeRecord | Mapping[str, str | None]) -> dict[str, str | None] | None:
        row = record.to_dict() if isinstance(record, BarcodeRecord) else dict(record)
        report = self.report
        report.read += 1
        record_id = row.get("processid")
        try:
            cleaned = clean_barcode(
                row.get("dna_barcode"), record_id, min_length=self.min_length, max_length=self.max_length
            )
        except InvalidBarcodeError as error:
            if self.strict:
                raise
            report.add_rejected(str(record_id), error.reason)
            return None
        if self.drop_duplicates:
            key = barcode_key(cleaned.sequence)
            if key in self._seen_barcodes:
                report.duplicates_dropped += 1
                return None
            self._seen_barcodes.add(key)
        if self.track_ids:
            if record_id in self._seen_ids:
                if self.strict:
                    raise ValueError(f"record {record_id!r}: duplicate record id")
                report.duplicate_ids.append(str(record_id))
            self._seen_ids.add(record_id)
        row["dna_barcode"] = cleaned.sequence
        for name in NAME_COLUMNS:
            if name in row:
                row[name] = normalise_missing(row[name])
        if cleaned.truncated_bases:
            report.truncated += 1
            report.truncated_bases += cleaned.truncated_bases
        if cleaned.trimmed_n:
            report.trimmed += 1
            report.trimmed_bases += cleaned.trimmed_n
        report.kept += 1
        return row


def clean_records(
    records: Iterable[BarcodeRecord | Mapping[str, str | None]],
    report: CleaningReport,
    **options,
) -> Iterator[dict[str, str | None]]:
    """Yield cleaned record dicts, counting into ``report`` as the stream is consumed (see :class:`RecordCleaner`
    for ``options``)."""
    cleaner = RecordCleaner(report, **options)
    for record in records:
        row = cleaner(record)
        if row is not None:
            yield row
