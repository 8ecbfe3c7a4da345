"""Apply the one cleaning policy (:func:`clean_barcode`, plus the record-id rule) to Arrow batches and to streams.

Why two entry points: in-memory/memory-mapped datasets are cleaned with ``datasets.map`` over Arrow batches
(multi-process, cached) and the outcome of every row is kept in helper columns so a report can be computed
afterwards with Arrow; streams (FASTA iterators, streaming CSV) are cleaned record by record into a live
:class:`CleaningReport`. Both call :func:`clean_barcode`, so there is exactly one policy.

Record ids: a missing or blank id, or one holding a control or line-break character (a quoted CSV field may hold a
newline), is rejected with a ``record id ...`` reason before its barcode is looked at. Why: outputs list ids one per
line (``<output>.ids.txt`` of ``barcodemae embed``), where such an id would shift every later id onto another
record's vector. :data:`RECORD_ID_PATTERN` is that rule, evaluated by Python's ``re`` on streams and by Arrow on
batches; :func:`record_id_problem` words the reason for both.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Iterator, Mapping

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from barcodemae.tokenization.sequence_cleaning import (
    DEFAULT_MAX_LENGTH,
    IUPAC_LETTERS,
    InvalidBarcodeError,
    clean_barcode,
)

from .report import CleaningReport
from .schema import (
    MISSING_STRINGS,
    RECORD_COLUMNS,
    TAXONOMY_RANKS,
    BarcodeRecord,
    normalise_missing,
)

REASON_COLUMN = "_reject_reason"
TRUNCATED_COLUMN = "_truncated_bases"
TRIMMED_COLUMN = "_trimmed_n"
KEY_COLUMN = "_barcode_key"
SOURCE_REJECT_COLUMN = "_source_reject"
"""Optional input column: a reason set by the reader itself (e.g. another BOLD marker) rejects the row."""
HELPER_COLUMNS = (REASON_COLUMN, TRUNCATED_COLUMN, TRIMMED_COLUMN, KEY_COLUMN, SOURCE_REJECT_COLUMN)
NAME_COLUMNS = (*TAXONOMY_RANKS, "dna_bin")
DEFAULT_MIN_LENGTH = 1
"""No length floor by default, as in the official ``bioscan-dataset`` loader; pass e.g. 200 to drop fragments."""

NOT_N = IUPAC_LETTERS.replace("N", "")
_MISSING_VALUE_SET = pa.array(sorted(MISSING_STRINGS), pa.string())

ID_CONTROL_CHARACTERS = "[\x00-\x1f\x7f-\x9f\u2028\u2029]"
"""C0/C1 control characters (tab, ``\\r``, ``\\n``...) and the Unicode line/paragraph separators: every character
``str.splitlines`` breaks at is among them. The escapes are resolved by Python, so ``re`` and Arrow's RE2 read the
same literal characters (a test checks that both paths agree)."""
RECORD_ID_PATTERN = f"^ *$|{ID_CONTROL_CHARACTERS}"
"""An id matching this is unusable: blank, or holding one of :data:`ID_CONTROL_CHARACTERS`."""
_UNUSABLE_ID = re.compile(RECORD_ID_PATTERN)
_ID_CONTROL = re.compile(ID_CONTROL_CHARACTERS)


def normalise_missing_column(column: pa.Array | pa.ChunkedArray) -> pa.Array | pa.ChunkedArray:
    """Vectorised :func:`normalise_missing`: strip whitespace, placeholder strings -> null."""
    stripped = pc.utf8_trim_whitespace(column.cast(pa.string()))
    return pc.if_else(pc.is_in(stripped, value_set=_MISSING_VALUE_SET), pa.scalar(None, pa.string()), stripped)


def record_id_problem(record_id: object) -> str | None:
    """Why ``record_id`` cannot name a record (see :data:`RECORD_ID_PATTERN`), or ``None`` when it can."""
    if record_id is None:
        return "record id is missing or blank"
    text = str(record_id)
    if _UNUSABLE_ID.search(text) is None:
        return None
    control = _ID_CONTROL.search(text)
    if control is None:
        return "record id is missing or blank"
    char = control.group()
    return (
        f"record id contains the control character {char!r} (U+{ord(char):04X}) at position {control.start()}; "
        "written one id per line, it would shift every later id"
    )


def record_id_reasons(ids: pa.Array | pa.ChunkedArray) -> pa.Array:
    """Per row, :func:`record_id_problem` of its id (null when usable): Arrow finds the rows, Python words them."""
    ids = (ids.combine_chunks() if isinstance(ids, pa.ChunkedArray) else ids).cast(pa.string())
    unusable = pc.fill_null(pc.match_substring_regex(ids, RECORD_ID_PATTERN), True)
    rows = pa.array(np.flatnonzero(unusable.to_numpy(zero_copy_only=False)), pa.int64())
    reasons = [record_id_problem(record_id) for record_id in pc.take(ids, rows).to_pylist()]
    return pc.replace_with_mask(pa.nulls(len(ids), pa.string()), unusable, pa.array(reasons, pa.string()))


def already_clean_mask(
    sequences: pa.Array | pa.ChunkedArray, *, min_length: int, max_length: int | None
) -> np.ndarray:
    """Rows that :func:`clean_barcode` would return unchanged (upper-case IUPAC only, no leading/trailing N,
    length within bounds), found with one Arrow regex pass.

    Why: most rows of a curated file are already canonical, and skipping the per-record call for them makes
    cleaning several times faster without a second policy -- every other row still goes through
    :func:`clean_barcode`, which alone decides rejections, trimming and truncation.
    """
    pattern = f"^[{NOT_N}]([{IUPAC_LETTERS}]*[{NOT_N}])?$"
    mask = pc.match_substring_regex(sequences, pattern)
    lengths = pc.binary_length(sequences)
    mask = pc.and_(mask, pc.greater_equal(lengths, min_length))
    if max_length is not None:
        mask = pc.and_(mask, pc.less_equal(lengths, max_length))
    return np.asarray(pc.fill_null(mask, False).to_numpy(zero_copy_only=False), dtype=bool)


def clean_table(
    table: pa.Table,
    *,
    min_length: int = DEFAULT_MIN_LENGTH,
    max_length: int | None = DEFAULT_MAX_LENGTH,
    with_barcode_key: bool = False,
) -> pa.Table:
    """Clean one Arrow batch of records: cleaned ``dna_barcode`` (null when rejected), normalised names, and
    helper columns with each row's rejection reason, truncated bases and trimmed Ns.

    A row's reason is, first found: the reader's own (:data:`SOURCE_REJECT_COLUMN`), its id's
    (:func:`record_id_problem`), its barcode's (:func:`clean_barcode`) -- the order :class:`RecordCleaner` checks in.

    Rows are never removed here, so ``datasets.map`` stays 1:1 and the report can be computed exactly with
    Arrow afterwards (rejections are raised by the caller in strict mode, in the main process).
    ``with_barcode_key`` adds a uint64 digest of each cleaned barcode for vectorised de-duplication.
    """
    raw = table.column("dna_barcode").combine_chunks()
    needs_cleaning = np.flatnonzero(~already_clean_mask(raw, min_length=min_length, max_length=max_length))
    ids = pc.take(table.column("processid"), pa.array(needs_cleaning, pa.int64())).to_pylist()
    originals = pc.take(raw, pa.array(needs_cleaning, pa.int64())).to_pylist()
    cleaned_sequences: list[str | None] = []
    reasons: list[str | None] = []
    truncated = np.zeros(table.num_rows, dtype=np.int32)
    trimmed = np.zeros(table.num_rows, dtype=np.int32)
    for row, record_id, sequence in zip(needs_cleaning.tolist(), ids, originals):
        try:
            cleaned = clean_barcode(sequence, record_id, min_length=min_length, max_length=max_length)
        except InvalidBarcodeError as error:
            cleaned_sequences.append(None)
            reasons.append(error.reason)
            continue
        cleaned_sequences.append(cleaned.sequence)
        reasons.append(None)
        truncated[row] = cleaned.truncated_bases
        trimmed[row] = cleaned.trimmed_n
    replace = np.zeros(table.num_rows, dtype=bool)
    replace[needs_cleaning] = True
    replace_mask = pa.array(replace)
    sequences = pc.replace_with_mask(raw, replace_mask, pa.array(cleaned_sequences, pa.string()))
    no_reasons = pa.nulls(table.num_rows, pa.string())
    reason_column = pc.replace_with_mask(no_reasons, replace_mask, pa.array(reasons, pa.string()))
    reason_column = pc.coalesce(record_id_reasons(table.column("processid")), reason_column)
    if SOURCE_REJECT_COLUMN in table.column_names:
        reason_column = pc.coalesce(table.column(SOURCE_REJECT_COLUMN).combine_chunks(), reason_column)
    sequences = pc.if_else(pc.is_valid(reason_column), pa.scalar(None, pa.string()), sequences)

    ordered = [name for name in RECORD_COLUMNS if name in table.column_names]
    ordered += [name for name in table.column_names if name not in RECORD_COLUMNS]
    columns = {name: table.column(name) for name in ordered}
    columns["dna_barcode"] = sequences
    for name in NAME_COLUMNS:
        if name in columns:
            columns[name] = normalise_missing_column(columns[name])
    columns[REASON_COLUMN] = reason_column
    columns[TRUNCATED_COLUMN] = pa.array(truncated)
    columns[TRIMMED_COLUMN] = pa.array(trimmed)
    if with_barcode_key:
        keys = [0 if seq is None else int.from_bytes(barcode_key(seq), "little") for seq in sequences.to_pylist()]
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
        id_problem = record_id_problem(record_id)
        if id_problem is not None:
            if self.strict:
                raise InvalidBarcodeError(record_id, id_problem)
            report.add_rejected(str(record_id), id_problem)
            return None
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
