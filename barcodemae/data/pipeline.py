"""Clean, de-duplicate and label a raw ``datasets.Dataset`` of records, computing the report with Arrow.

Why this shape: the only per-record Python work is :func:`clean_barcode` inside a batched, cached,
multi-process ``datasets.map``; everything else (rejection counts, de-duplication, duplicate ids, label
vocabulary and label ids) is computed on whole Arrow columns, so a 5M-row BIOSCAN file never becomes a list of
Python rows or a pandas frame.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from functools import partial

import datasets
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from datasets.fingerprint import Hasher
from datasets.table import InMemoryTable

from barcodemae.tokenization.sequence_cleaning import InvalidBarcodeError

from .cleaning import (
    HELPER_COLUMNS,
    KEY_COLUMN,
    REASON_COLUMN,
    SOURCE_REJECT_COLUMN,
    TRIMMED_COLUMN,
    TRUNCATED_COLUMN,
    clean_table,
)
from .labels import LabelVocabulary
from .report import CleaningReport
from .schema import LABEL_RANKS, label_column, record_features

logger = logging.getLogger(__name__)

CLEAN_BATCH_SIZE = 10_000


def _numpy(column: pa.ChunkedArray | pa.Array) -> np.ndarray:
    return column.to_numpy() if isinstance(column, pa.ChunkedArray) else column.to_numpy(zero_copy_only=False)


def _workers(num_proc: int | None, num_rows: int) -> int | None:
    """Worker processes worth starting: none for small tables, where process start-up costs more."""
    return num_proc if num_proc and num_proc > 1 and num_rows >= 2 * CLEAN_BATCH_SIZE else None


def _keep_and_label(
    table: pa.Table, indices: list[int], keep: np.ndarray, vocab: LabelVocabulary, ranks: tuple[str, ...]
) -> pa.Table:
    kept = table.filter(pa.array(keep[np.asarray(indices)]))
    kept = kept.drop_columns([name for name in HELPER_COLUMNS if name in kept.column_names])
    for rank in ranks:
        kept = kept.append_column(label_column(rank), pa.array(vocab.encode(rank, kept.column(rank))))
    return kept


def _write_kept(
    cleaned: datasets.Dataset,
    keep: np.ndarray,
    num_rows: int,
    vocab: LabelVocabulary,
    ranks: tuple[str, ...],
    num_proc: int | None,
) -> datasets.Dataset:
    """Write the kept rows with their label ids as one new cached Arrow file.

    Why not ``select``: an indices mapping hides the row selection from Arrow-level readers of
    ``dataset.data``, and flattening it gathers row by row (minutes for millions of rows); a batched Arrow
    filter writes the same table in one vectorised pass.
    """
    mask = np.zeros(num_rows, dtype=bool)
    mask[keep] = True
    fingerprint = Hasher.hash(
        ("barcodemae.keep_and_label/1", cleaned._fingerprint, mask.tobytes(), vocab.to_dict(), ranks)
    )
    return cleaned.with_format("arrow").map(
        _keep_and_label,
        batched=True,
        batch_size=CLEAN_BATCH_SIZE,
        with_indices=True,
        remove_columns=cleaned.column_names,
        fn_kwargs={"keep": mask, "vocab": vocab, "ranks": ranks},
        features=record_features(ranks),
        num_proc=_workers(num_proc, num_rows),
        new_fingerprint=fingerprint,
        desc="dropping rejected records",
    ).with_format(None)


def first_occurrences(keys: np.ndarray, candidates: np.ndarray) -> np.ndarray:
    """Sorted row indices among ``candidates`` holding the first occurrence of each key."""
    _, first = np.unique(keys[candidates], return_index=True)
    return np.sort(candidates[first])


def duplicate_values(column: pa.ChunkedArray | pa.Array) -> list[str]:
    """Values occurring more than once in ``column`` (Arrow ``value_counts``), sorted."""
    counts = pc.value_counts(column)
    repeated = pc.filter(counts.field("values"), pc.greater(counts.field("counts"), 1))
    return sorted(value for value in repeated.to_pylist() if value is not None)


def log_report(report: CleaningReport) -> None:
    """Log the summary; at WARNING level when anything was rejected so it is seen without configuring logging.

    Repeated record ids get a WARNING line of their own: the records are kept, but any output that names rows by
    id (``barcodemae embed``'s ``.ids.txt``, ``identify`` neighbours) can no longer tell them apart.
    """
    level = logging.WARNING if report.num_rejected else logging.INFO
    logger.log(level, "%s", report.summary())
    if report.duplicate_ids:
        logger.warning(
            "%s: %d record ids occur more than once (e.g. %r); their records are kept, but rows named by id "
            "cannot be told apart (listed under duplicate_ids in the cleaning report)",
            report.source, len(report.duplicate_ids), report.duplicate_ids[0],
        )


def clean_and_label(
    raw: datasets.Dataset,
    *,
    source: str,
    min_length: int,
    max_length: int | None,
    strict: bool,
    drop_duplicates: bool,
    num_proc: int | None,
    label_vocab: LabelVocabulary | None,
    label_ranks: Sequence[str] = LABEL_RANKS,
) -> tuple[datasets.Dataset, CleaningReport, LabelVocabulary]:
    """Turn raw string records into the cleaned, labelled record dataset plus its report and vocabulary.

    The label vocabulary, when not given, is built from every selected record (including those cleaning rejects,
    excluding those the reader set aside, such as other BOLD markers), so it depends on the data and split only, not
    on the cleaning options or on streaming vs. in-memory loading.
    """
    clean = partial(clean_table, min_length=min_length, max_length=max_length, with_barcode_key=drop_duplicates)
    if len(raw) == 0:  # map() does not call the function on an empty table, so build the empty schema here
        cleaned = datasets.Dataset(InMemoryTable(clean(raw.with_format("arrow")[:0])))
    else:
        cleaned = raw.with_format("arrow").map(
            clean,
            batched=True,
            batch_size=CLEAN_BATCH_SIZE,
            num_proc=_workers(num_proc, len(raw)),
            desc="cleaning barcodes",
        ).with_format(None)
    table = cleaned.data.table
    num_rows = table.num_rows
    reasons = table.column(REASON_COLUMN)
    rejected_mask = _numpy(pc.is_valid(reasons)).astype(bool)
    # rows the reader itself set aside (e.g. other BOLD markers): counted, but neither strict errors nor labels
    from_source = (
        _numpy(pc.is_valid(table.column(SOURCE_REJECT_COLUMN))).astype(bool)
        if SOURCE_REJECT_COLUMN in table.column_names
        else np.zeros(num_rows, dtype=bool)
    )

    report = CleaningReport(source=source, read=num_rows)
    if rejected_mask.any():
        rejected_ids = pc.filter(table.column("processid"), pa.array(rejected_mask)).to_pylist()
        rejected_reasons = pc.filter(reasons, pa.array(rejected_mask)).to_pylist()
        invalid = np.flatnonzero(rejected_mask & ~from_source)
        if strict and len(invalid):
            first = int(invalid[0])
            raise InvalidBarcodeError(table.column("processid")[first].as_py(), reasons[first].as_py())
        for record_id, reason in zip(rejected_ids, rejected_reasons):
            report.add_rejected(str(record_id), reason)

    keep = np.flatnonzero(~rejected_mask)
    if drop_duplicates:
        deduplicated = first_occurrences(_numpy(table.column(KEY_COLUMN)), keep)
        report.duplicates_dropped = len(keep) - len(deduplicated)
        keep = deduplicated
    kept_all = len(keep) == num_rows

    kept_ids = table.column("processid") if kept_all else table.column("processid").take(pa.array(keep))
    report.duplicate_ids = duplicate_values(kept_ids)
    if report.duplicate_ids and strict:
        raise ValueError(
            f"record {report.duplicate_ids[0]!r}: duplicate record id ({len(report.duplicate_ids)} ids repeat)"
        )

    truncated = _numpy(table.column(TRUNCATED_COLUMN))[keep]
    trimmed = _numpy(table.column(TRIMMED_COLUMN))[keep]
    report.kept = len(keep)
    report.truncated, report.truncated_bases = int((truncated > 0).sum()), int(truncated.sum())
    report.trimmed, report.trimmed_bases = int((trimmed > 0).sum()), int(trimmed.sum())

    if label_vocab is None:
        selected = pa.array(~from_source)
        label_vocab = LabelVocabulary.from_columns(
            {rank: [pc.filter(table.column(rank), selected)] for rank in label_ranks}
        )
    if kept_all:  # nothing to drop: label columns are added without rewriting the table
        result = cleaned.remove_columns([name for name in HELPER_COLUMNS if name in cleaned.column_names])
        for rank in label_ranks:
            result = result.add_column(label_column(rank), label_vocab.encode(rank, table.column(rank)))
    else:
        result = _write_kept(cleaned, keep, num_rows, label_vocab, tuple(label_ranks), num_proc)
    log_report(report)
    return result, report, label_vocab

