"""Streaming (``datasets.IterableDataset``) cleaning: one batched Arrow map that selects splits, cleans,
drops rejects and repeats, and adds label ids, counting everything into a live :class:`CleaningReport`.

Why a batched Arrow map rather than a Python generator of rows: per-row feature encoding in ``datasets``
costs more than the cleaning itself; Arrow batches keep streaming within a small factor of in-memory loading.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence

import datasets
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from barcodemae.tokenization.sequence_cleaning import InvalidBarcodeError

from .cleaning import (
    HELPER_COLUMNS,
    KEY_COLUMN,
    REASON_COLUMN,
    TRIMMED_COLUMN,
    TRUNCATED_COLUMN,
    clean_table,
)
from .labels import LabelVocabulary
from .report import CleaningReport
from .schema import RECORD_COLUMNS, label_column, raw_features, record_features

STREAM_BATCH_SIZE = 10_000
RAW_SCHEMA = raw_features().arrow_schema


class BatchCleaner:
    """The map function of a streaming load; state (report, seen barcodes) restarts with every pass.

    A pass is recognised by the running example index restarting at 0, so iterating a streaming dataset twice
    reports the second pass alone instead of adding it to the first. ``pending_rejections`` is a deque the raw
    source appends ``(record_id, reason)`` to for records it skips itself; they are counted with the next batch.
    Duplicate record ids are not tracked in streams (it would mean remembering every id); load in memory to have them
    listed.
    """

    def __init__(
        self,
        report: CleaningReport,
        vocab: LabelVocabulary,
        ranks: Sequence[str],
        *,
        splits: Sequence[str] | None,
        min_length: int,
        max_length: int | None,
        strict: bool,
        drop_duplicates: bool,
        pending_rejections: deque[tuple[str, str]] | None = None,
    ):
        self.report = report
        self.pending_rejections = pending_rejections if pending_rejections is not None else deque()
        self.vocab = vocab
        self.ranks = tuple(ranks)
        self.split_values = None if splits is None else pa.array(list(splits), pa.string())
        self.min_length = min_length
        self.max_length = max_length
        self.strict = strict
        self.drop_duplicates = drop_duplicates
        self._seen: set[int] = set()

    def __call__(self, batch: pa.Table | dict[str, list], indices: list[int]) -> pa.Table | dict[str, list]:
        if isinstance(batch, dict):
            return self.clean(
                pa.table({name: batch[name] for name in RECORD_COLUMNS}, schema=RAW_SCHEMA), indices
            ).to_pydict()
        return self.clean(batch, indices)

    def clean(self, table: pa.Table, indices: list[int]) -> pa.Table:
        """Clean one Arrow batch (``indices`` are the running example indices of its rows)."""
        if indices and indices[0] == 0:
            self.report.reset()
            self._seen.clear()
        while self.pending_rejections:  # records the source itself skipped (e.g. other BOLD markers)
            self.report.read += 1
            self.report.add_rejected(*self.pending_rejections.popleft())
        if self.split_values is not None:
            table = table.filter(pc.fill_null(pc.is_in(table.column("split"), value_set=self.split_values), False))
        out = clean_table(
            table.select(list(RECORD_COLUMNS)), min_length=self.min_length, max_length=self.max_length,
            with_barcode_key=self.drop_duplicates,
        )
        report = self.report
        report.read += out.num_rows
        rejected = np.asarray(pc.is_valid(out.column(REASON_COLUMN)).to_numpy(zero_copy_only=False), dtype=bool)
        if rejected.any():
            ids = pc.filter(out.column("processid"), pa.array(rejected)).to_pylist()
            reasons = pc.filter(out.column(REASON_COLUMN), pa.array(rejected)).to_pylist()
            if self.strict:
                raise InvalidBarcodeError(ids[0], reasons[0])
            for record_id, reason in zip(ids, reasons):
                report.add_rejected(str(record_id), reason)
        keep = ~rejected
        if self.drop_duplicates:
            keep &= self._first_sightings(out.column(KEY_COLUMN).to_numpy(), keep)
            report.duplicates_dropped += int((~rejected).sum() - keep.sum())
        truncated = out.column(TRUNCATED_COLUMN).to_numpy()[keep]
        trimmed = out.column(TRIMMED_COLUMN).to_numpy()[keep]
        report.truncated += int((truncated > 0).sum())
        report.truncated_bases += int(truncated.sum())
        report.trimmed += int((trimmed > 0).sum())
        report.trimmed_bases += int(trimmed.sum())
        report.kept += int(keep.sum())
        kept = out.filter(pa.array(keep)).drop_columns([c for c in HELPER_COLUMNS if c in out.column_names])
        for rank in self.ranks:
            kept = kept.append_column(label_column(rank), pa.array(self.vocab.encode(rank, kept.column(rank))))
        return kept

    def _first_sightings(self, keys: np.ndarray, candidates: np.ndarray) -> np.ndarray:
        """Mask of candidate rows whose barcode key was not seen before (in this pass or earlier batches)."""
        first = np.zeros(len(keys), dtype=bool)
        for row in np.flatnonzero(candidates).tolist():
            key = int(keys[row])
            if key not in self._seen:
                self._seen.add(key)
                first[row] = True
        return first


def clean_stream(
    raw: datasets.IterableDataset,
    report: CleaningReport,
    vocab: LabelVocabulary,
    ranks: Sequence[str],
    *,
    arrow_batches: bool = True,
    **options,
) -> datasets.IterableDataset:
    """Wrap a raw streaming dataset (all record columns as strings) into the cleaned, labelled record stream.

    ``arrow_batches=False`` feeds the map Python batches instead, for generator-backed streams: ``datasets``
    builds the Arrow form of those row by row and fails to concatenate rows whose value is ``None``.
    """
    cleaner = BatchCleaner(report, vocab, ranks, **options)
    cleaned = (raw.with_format("arrow") if arrow_batches else raw).map(
        cleaner, batched=True, batch_size=STREAM_BATCH_SIZE, with_indices=True, features=record_features(tuple(ranks))
    )
    return cleaned.with_format(None)
