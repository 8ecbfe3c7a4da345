"""One entry point for any barcode file (:mod:`barcodemae.data.barcode_files`) -> the cleaned, labelled dataset."""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

import datasets

from barcodemae.checksums import file_sha256
from barcodemae.tokenization.sequence_cleaning import DEFAULT_MAX_LENGTH

from .barcode_files import BarcodeFile, open_barcode_file
from .bioscan5m import load_bioscan5m
from .bold import DEFAULT_MARKER
from .cleaning import DEFAULT_MIN_LENGTH, SOURCE_REJECT_COLUMN
from .input_errors import reading
from .labels import LabelVocabulary
from .pipeline import clean_and_label
from .report import CleaningReport
from .schema import LABEL_RANKS, raw_features
from .splits import resolve_splits
from .streaming import clean_stream

logger = logging.getLogger(__name__)


def _raw_rows(
    source: BarcodeFile, splits: Sequence[str] | None, marker: str | None, report: CleaningReport | None
) -> Iterator[dict]:
    """Rows of the records the reader keeps; those it sets aside (other BOLD markers) go to ``report``."""
    for record, reject in source.records(splits, marker):
        if reject is None:
            yield record.to_dict()
        elif report is not None:
            report.read += 1
            report.add_rejected(record.processid, reject)


def _generate_raw(
    source: BarcodeFile, splits: Sequence[str] | None, marker: str | None, content_sha256: str
) -> Iterator[dict]:
    """Raw rows for ``Dataset.from_generator``, records the reader rejects included with their reason (so the
    cached dataset alone yields the full report); ``content_sha256``, part of the cache key, makes the cache
    follow the file's content (size and mtime miss an edit that keeps both)."""
    for record, reject in source.records(splits, marker):
        yield {**record.to_dict(), SOURCE_REJECT_COLUMN: reject}


def load_barcodes(
    path: str | Path,
    *,
    split: str | Iterable[str] = "all",
    streaming: bool = False,
    drop_duplicates: bool = False,
    max_length: int | None = DEFAULT_MAX_LENGTH,
    min_length: int = DEFAULT_MIN_LENGTH,
    strict: bool = False,
    num_proc: int | None = None,
    cache_dir: str | Path | None = None,
    label_vocab: LabelVocabulary | None = None,
    label_ranks: Sequence[str] = LABEL_RANKS,
    marker: str | None = DEFAULT_MARKER,
    return_report: bool = False,
    content_sha256: str | None = None,
):
    """Load barcodes from any file :func:`~barcodemae.data.barcode_files.open_barcode_file` recognises (FASTA with
    or without taxonomy in the headers, a BIOSCAN-5M CSV, a BOLD TSV, any CSV/TSV with an id and a sequence column;
    each optionally gzipped) into the common record schema, cleaned and labelled exactly like
    :func:`load_bioscan5m`.

    ``split`` applies to files with a split column (``""`` for the others' records); ``marker`` to BOLD TSVs
    only (records of other markers are rejected and counted). ``content_sha256``: the file's SHA-256 when the caller
    has already hashed it (a run recording its input's fingerprint), the cache key without hashing the file again;
    hashed here when ``None``. Returns the dataset, or ``(dataset, report, label_vocab)`` with ``return_report=True``.
    """
    source = open_barcode_file(path, split=split)
    logger.info("%s: reading as %s", source.path, source.description)
    common = {
        "streaming": streaming, "drop_duplicates": drop_duplicates, "max_length": max_length, "min_length": min_length,
        "strict": strict, "label_vocab": label_vocab, "label_ranks": label_ranks, "return_report": return_report,
    }
    if source.kind == "bioscan_csv":
        return load_bioscan5m(path, split, num_proc=num_proc, cache_dir=cache_dir, content_sha256=content_sha256,
                              **common)
    splits = None if split == "all" else tuple(resolve_splits(split))  # a list in gen_kwargs would be read as shards
    path = str(path)
    label_ranks = tuple(label_ranks)
    if streaming:
        dataset, report, vocab = _stream_records(
            source, splits, marker, label_vocab, label_ranks,
            {"min_length": min_length, "max_length": max_length, "strict": strict, "drop_duplicates": drop_duplicates},
        )
        return (dataset, report, vocab) if return_report else dataset

    features = raw_features()
    features[SOURCE_REJECT_COLUMN] = datasets.Value("string")
    with reading(path):
        raw = datasets.Dataset.from_generator(
            _generate_raw,
            features=features,
            gen_kwargs={"source": source, "splits": splits, "marker": marker,
                        "content_sha256": content_sha256 or file_sha256(Path(path))},
            cache_dir=str(cache_dir) if cache_dir is not None else None,
        )
    dataset, report, vocab = clean_and_label(
        raw, source=path, min_length=min_length, max_length=max_length, strict=strict,
        drop_duplicates=drop_duplicates, num_proc=num_proc, label_vocab=label_vocab, label_ranks=label_ranks,
    )
    return (dataset, report, vocab) if return_report else dataset


def _stream_records(
    source: BarcodeFile,
    splits: Sequence[str] | None,
    marker: str | None,
    label_vocab: LabelVocabulary | None,
    label_ranks: tuple[str, ...],
    options: dict,
) -> tuple[datasets.IterableDataset, CleaningReport, LabelVocabulary]:
    if label_vocab is None:
        label_vocab = LabelVocabulary.from_columns(
            {rank: [[row[rank] for row in _raw_rows(source, splits, marker, None)]] for rank in label_ranks}
        )
    report = CleaningReport(source=str(source.path))
    pending: deque[tuple[str, str]] = deque()  # not a list: datasets would read a list as shards
    raw = datasets.IterableDataset.from_generator(
        _generate_raw_counting_markers,
        features=raw_features(),
        gen_kwargs={"source": source, "splits": splits, "marker": marker, "pending": pending},
    )
    dataset = clean_stream(
        raw, report, label_vocab, label_ranks, splits=None, arrow_batches=False, pending_rejections=pending, **options
    )
    return dataset, report, label_vocab


def _generate_raw_counting_markers(
    source: BarcodeFile, splits: Sequence[str] | None, marker: str | None, pending: deque[tuple[str, str]]
) -> Iterator[dict]:
    """Raw rows of a streaming load; BOLD records of other markers go to ``pending`` as rejections (the cleaning
    map counts them, so they land in the same pass's report)."""
    pending.clear()
    markers = CleaningReport()
    for row in _raw_rows(source, splits, marker, markers):
        pending.extend(markers.rejected)
        markers.rejected.clear()
        yield row
    pending.extend(markers.rejected)
