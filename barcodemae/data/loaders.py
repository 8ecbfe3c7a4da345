"""One entry point for any barcode file: BIOSCAN-style CSV, FASTA or BOLD TSV -> the same dataset schema."""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

import datasets

from barcodemae.checksums import file_sha256
from barcodemae.tokenization.sequence_cleaning import DEFAULT_MAX_LENGTH

from .bioscan5m import load_bioscan5m
from .bold import DEFAULT_MARKER, iter_bold_raw, iter_bold_rows
from .cleaning import DEFAULT_MIN_LENGTH, SOURCE_REJECT_COLUMN
from .fasta import iter_fasta_raw
from .input_errors import check_input_file, reading
from .io_utils import strip_compression_suffix
from .labels import LabelVocabulary
from .pipeline import clean_and_label
from .report import CleaningReport
from .schema import LABEL_RANKS, BarcodeRecord, raw_features
from .streaming import clean_stream

CSV_SUFFIXES = (".csv",)
FASTA_SUFFIXES = (".fasta", ".fa", ".fna", ".fas", ".ffn")
TSV_SUFFIXES = (".tsv", ".txt")


def detect_format(path: str | Path) -> str:
    """``"csv"``, ``"fasta"`` or ``"bold_tsv"`` from the file name (``.gz`` ignored); unknown -> ValueError."""
    name = strip_compression_suffix(path)
    for suffixes, kind in ((CSV_SUFFIXES, "csv"), (FASTA_SUFFIXES, "fasta"), (TSV_SUFFIXES, "bold_tsv")):
        if name.endswith(suffixes):
            return kind
    known = ", ".join((*CSV_SUFFIXES, *FASTA_SUFFIXES, *TSV_SUFFIXES))
    raise ValueError(f"{path}: cannot tell the file format from its name; expected one of {known} (optionally .gz)")


def _raw_rows(kind: str, path: str, marker: str | None, report: CleaningReport | None) -> Iterator[dict]:
    records: Iterable[BarcodeRecord] = (
        iter_fasta_raw(path) if kind == "fasta" else iter_bold_raw(path, marker=marker, report=report)
    )
    for record in records:
        yield record.to_dict()


def _generate_raw(kind: str, path: str, marker: str | None, content_sha256: str) -> Iterator[dict]:
    """Raw rows for ``Dataset.from_generator``, records the reader rejects included with their reason (so the
    cached dataset alone yields the full report); ``content_sha256``, part of the cache key, makes the cache
    follow the file's content (size and mtime miss an edit that keeps both)."""
    if kind == "fasta":
        for record in iter_fasta_raw(path):
            yield {**record.to_dict(), SOURCE_REJECT_COLUMN: None}
        return
    for record, reject in iter_bold_rows(path, marker=marker):
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
):
    """Load barcodes from a BIOSCAN-format ``.csv``, a ``.fasta/.fa/.fna`` or a BOLD ``.tsv`` (each optionally
    gzipped) into the common record schema, cleaned and labelled exactly like :func:`load_bioscan5m`.

    ``split`` applies to CSV files only (FASTA and BOLD records have ``split == ""``); ``marker`` to BOLD TSVs
    only (records of other markers are rejected and counted). Returns the dataset, or
    ``(dataset, report, label_vocab)`` with ``return_report=True``.
    """
    check_input_file(path)
    kind = detect_format(path)
    common = {
        "streaming": streaming, "drop_duplicates": drop_duplicates, "max_length": max_length, "min_length": min_length,
        "strict": strict, "label_vocab": label_vocab, "label_ranks": label_ranks, "return_report": return_report,
    }
    if kind == "csv":
        return load_bioscan5m(path, split, num_proc=num_proc, cache_dir=cache_dir, **common)
    if split != "all":
        raise ValueError(f"{path}: split={split!r} needs a BIOSCAN-format CSV; {kind} files carry no splits")
    path = str(path)
    label_ranks = tuple(label_ranks)
    if streaming:
        dataset, report, vocab = _stream_records(
            kind, path, marker, label_vocab, label_ranks,
            {"min_length": min_length, "max_length": max_length, "strict": strict, "drop_duplicates": drop_duplicates},
        )
        return (dataset, report, vocab) if return_report else dataset

    features = raw_features()
    features[SOURCE_REJECT_COLUMN] = datasets.Value("string")
    with reading(path):
        raw = datasets.Dataset.from_generator(
            _generate_raw,
            features=features,
            gen_kwargs={"kind": kind, "path": path, "marker": marker, "content_sha256": file_sha256(Path(path))},
            cache_dir=str(cache_dir) if cache_dir is not None else None,
        )
    dataset, report, vocab = clean_and_label(
        raw, source=path, min_length=min_length, max_length=max_length, strict=strict,
        drop_duplicates=drop_duplicates, num_proc=num_proc, label_vocab=label_vocab, label_ranks=label_ranks,
    )
    return (dataset, report, vocab) if return_report else dataset


def _stream_records(
    kind: str,
    path: str,
    marker: str | None,
    label_vocab: LabelVocabulary | None,
    label_ranks: tuple[str, ...],
    options: dict,
) -> tuple[datasets.IterableDataset, CleaningReport, LabelVocabulary]:
    if label_vocab is None:
        label_vocab = LabelVocabulary.from_columns(
            {rank: [[row[rank] for row in _raw_rows(kind, path, marker, None)]] for rank in label_ranks}
        )
    report = CleaningReport(source=path)
    pending: deque[tuple[str, str]] = deque()  # not a list: datasets would read a list as shards
    raw = datasets.IterableDataset.from_generator(
        _generate_raw_counting_markers,
        features=raw_features(),
        gen_kwargs={"kind": kind, "path": path, "marker": marker, "pending": pending},
    )
    dataset = clean_stream(
        raw, report, label_vocab, label_ranks, splits=None, arrow_batches=False, pending_rejections=pending, **options
    )
    return dataset, report, label_vocab


def _generate_raw_counting_markers(
    kind: str, path: str, marker: str | None, pending: deque[tuple[str, str]]
) -> Iterator[dict]:
    """Raw rows of a streaming FASTA/BOLD load; BOLD records of other markers go to ``pending`` as rejections
    (the cleaning map counts them, so they land in the same pass's report)."""
    pending.clear()
    markers = CleaningReport()
    for row in _raw_rows(kind, path, marker, markers):
        pending.extend(markers.rejected)
        markers.rejected.clear()
        yield row
    pending.extend(markers.rejected)
