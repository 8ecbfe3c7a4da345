"""BIOSCAN-5M metadata CSV loader (and the optional official download).

The CSV is parsed once by the ``datasets`` csv builder into a memory-mapped Arrow cache (all columns read as
strings, so numeric-looking ids keep their text and missing values stay null); splits are selected with a
vectorised Arrow mask; cleaning is a cached, multi-process ``datasets.map``. ``streaming=True`` instead
reads the file batch by batch with ``pyarrow.csv`` and returns an :class:`datasets.IterableDataset` with the
same columns.

``drop_duplicates`` and ``max_length`` mirror ``reduce_repeated_barcodes`` and ``max_nucleotides`` of the
official ``bioscan-dataset`` package: barcodes are compared after truncation and N-trimming. Two documented
differences: repeats are removed within the *selected* splits, keeping the first record in file order
(the official loader de-duplicates the whole file after a seeded shuffle), and cleaning (upper-casing, gap
removal, IUPAC check) happens before the comparison.
"""

from __future__ import annotations

import csv
import logging
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

import datasets
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from barcodemae.checksums import file_sha256
from barcodemae.tokenization.sequence_cleaning import DEFAULT_MAX_LENGTH

from .cleaning import DEFAULT_MIN_LENGTH, NAME_COLUMNS, normalise_missing_column
from .input_errors import check_input_file, reading
from .io_utils import content_named_path, is_gzipped, open_text
from .labels import LabelVocabulary
from .pipeline import clean_and_label
from .report import CleaningReport
from .schema import LABEL_RANKS, RECORD_COLUMNS, raw_features
from .splits import BIOSCAN5M_SPLITS, resolve_splits
from .streaming import clean_stream

logger = logging.getLogger(__name__)

STREAM_BLOCK_BYTES = 16 << 20
BIOSCAN5M_CSV_NAME = "BIOSCAN_5M_Insect_Dataset_metadata.csv"


def read_csv_header(path: str | Path) -> list[str]:
    """Column names of a (possibly gzipped) CSV file."""
    with open_text(path) as handle:
        header = next(csv.reader(handle), None)
    if not header:
        raise ValueError(f"{path}: empty file, expected a BIOSCAN-5M metadata CSV header")
    return header


def check_bioscan_columns(path: str | Path, header: Sequence[str]) -> None:
    """Raise :class:`ValueError` naming every record column the CSV lacks."""
    missing = [name for name in RECORD_COLUMNS if name not in header]
    if missing:
        raise ValueError(
            f"{path}: not a BIOSCAN-5M metadata CSV, missing column(s): {', '.join(missing)} "
            f"(required: {', '.join(RECORD_COLUMNS)})"
        )


def _split_mask(split_column: pa.ChunkedArray | pa.Array, splits: Sequence[str]) -> pa.Array:
    return pc.fill_null(pc.is_in(split_column, value_set=pa.array(list(splits), pa.string())), False)


def load_bioscan5m(
    path: str | Path,
    split: str | Iterable[str] = "all",
    *,
    streaming: bool = False,
    drop_duplicates: bool = False,
    max_length: int | None = DEFAULT_MAX_LENGTH,
    min_length: int = DEFAULT_MIN_LENGTH,
    strict: bool = False,
    num_proc: int | None = None,
    cache_dir: str | Path | None = None,
    label_vocab: LabelVocabulary | None = None,
    label_ranks: Sequence[str] = LABEL_RANKS,
    return_report: bool = False,
    content_sha256: str | None = None,
):
    """Load a BIOSCAN-5M metadata CSV (``.csv`` or ``.csv.gz``) as a cleaned, labelled dataset.

    Args:
        path: the metadata CSV (the official 5.15M-row file or one in the same format).
        split: a partition (``"train"``), a meta-split (``"all"``, ``"seen"``, ``"unseen"``), a ``+``-joined
            list (``"pretrain+other_heldout"``) or a list of names; see :func:`resolve_splits`.
            ``"all"`` keeps every row, whatever its split value.
        streaming: return a :class:`datasets.IterableDataset` read lazily from the file.
        drop_duplicates: keep one record per cleaned barcode (``reduce_repeated_barcodes``).
        max_length / min_length: truncate longer barcodes (660 bp, the BIOSCAN convention) / reject shorter.
        strict: raise on the first rejected record (and on duplicate ids) instead of counting it.
        num_proc: worker processes for cleaning (in-memory mode).
        cache_dir: where ``datasets`` keeps the Arrow cache (default: its usual cache).
        label_vocab: reuse a vocabulary (e.g. the training one, or ``LabelVocabulary.load(model_dir)``) so ids
            match; names it lacks get ``-1``. By default one is built from the selected rows.
        label_ranks: ranks that get a ``<rank>_label`` int64 column (-1 = missing or unknown).
        return_report: also return the :class:`CleaningReport` and the :class:`LabelVocabulary`.
        content_sha256: the file's SHA-256 when the caller has already hashed it (the cache key); hashed when
            ``None``.

    Returns:
        The dataset, or ``(dataset, report, label_vocab)`` with ``return_report=True``. The report is always
        logged too. In streaming mode the report fills up as the dataset is iterated (and restarts with each
        new pass) and is not logged; the vocabulary is built up front with one columnar pass over the file unless given.
    """
    path = Path(path)
    check_input_file(path)
    with reading(path):
        header = read_csv_header(path)
    check_bioscan_columns(path, header)
    splits = None if split == "all" else resolve_splits(split)
    label_ranks = tuple(label_ranks)
    if streaming:
        dataset, report, label_vocab = _stream_bioscan5m(
            path, splits, drop_duplicates=drop_duplicates, max_length=max_length, min_length=min_length,
            strict=strict, label_vocab=label_vocab, label_ranks=label_ranks,
        )
        return (dataset, report, label_vocab) if return_report else dataset

    with reading(path):
        raw = datasets.load_dataset(
            "csv",
            # the cache key: datasets' own is the path and mtime, not the content
            name=f"sha256-{content_sha256 or file_sha256(path)}",
            data_files=str(content_named_path(path)),
            split="train",
            features=raw_features(),
            usecols=list(RECORD_COLUMNS),
            cache_dir=str(cache_dir) if cache_dir is not None else None,
        )
    if splits is None:
        _warn_unknown_splits(raw.data.column("split"), path)
    else:
        raw = raw.select(np.flatnonzero(_split_mask(raw.data.column("split"), splits).to_numpy(zero_copy_only=False)))
    dataset, report, label_vocab = clean_and_label(
        raw, source=str(path), min_length=min_length, max_length=max_length, strict=strict,
        drop_duplicates=drop_duplicates, num_proc=num_proc, label_vocab=label_vocab, label_ranks=label_ranks,
    )
    return (dataset, report, label_vocab) if return_report else dataset


def _warn_unknown_splits(split_column: pa.ChunkedArray, path: Path) -> None:
    """Tell the user when ``split`` values outside the BIOSCAN-5M names are present (kept by ``"all"``)."""
    values = set(pc.unique(split_column).to_pylist()) - set(BIOSCAN5M_SPLITS)
    if values:
        logger.warning(
            "%s: split values outside BIOSCAN-5M names kept by split='all': %s", path, sorted(map(str, values))
        )


def iter_csv_batches(path: Path, columns: Sequence[str], splits: Sequence[str] | None) -> Iterator[pa.Table]:
    """Stream ``columns`` of a (gzipped) CSV as Arrow tables, rows outside ``splits`` removed, names normalised."""
    reader = pacsv.open_csv(
        pa.input_stream(str(path), compression="gzip" if is_gzipped(path) else None),
        read_options=pacsv.ReadOptions(block_size=STREAM_BLOCK_BYTES),
        convert_options=pacsv.ConvertOptions(
            include_columns=list(columns),
            column_types={name: pa.string() for name in columns},
            strings_can_be_null=True,
        ),
    )
    for batch in reader:
        table = pa.Table.from_batches([batch])
        if splits is not None:
            table = table.filter(_split_mask(table.column("split"), splits))
        for name in NAME_COLUMNS:
            if name in table.column_names:
                table = table.set_column(
                    table.column_names.index(name), name, normalise_missing_column(table.column(name))
                )
        yield table


def vocabulary_from_csv(path: Path, splits: Sequence[str] | None, ranks: Sequence[str]) -> LabelVocabulary:
    """Label vocabulary of the selected rows with one columnar pass (only the split and rank columns are parsed)."""
    chunks: dict[str, list[pa.Array]] = {rank: [] for rank in ranks}
    for table in iter_csv_batches(path, ["split", *ranks], splits):
        for rank in ranks:
            chunks[rank].append(pc.unique(table.column(rank)))
    return LabelVocabulary.from_columns(chunks)


def _stream_bioscan5m(
    path: Path,
    splits: Sequence[str] | None,
    *,
    label_vocab: LabelVocabulary | None,
    label_ranks: tuple[str, ...],
    **options,
) -> tuple[datasets.IterableDataset, CleaningReport, LabelVocabulary]:
    if label_vocab is None:
        label_vocab = vocabulary_from_csv(path, splits, label_ranks)
    report = CleaningReport(source=str(path))
    raw = datasets.load_dataset(
        "csv", data_files=str(content_named_path(path)), split="train", streaming=True, features=raw_features(),
        usecols=list(RECORD_COLUMNS),
    )
    dataset = clean_stream(raw, report, label_vocab, label_ranks, splits=splits, **options)
    return dataset, report, label_vocab


def download_bioscan5m(root: str | Path) -> Path:
    """Download the official BIOSCAN-5M metadata CSV into ``root`` and return its path.

    Uses the optional ``bioscan-dataset`` package (Zenodo, with the Hugging Face Hub as mirror), which checks
    file integrity. Never called by the tests; needs network access.
    """
    try:
        from bioscan_dataset import BIOSCAN5M
    except ImportError as error:
        raise ImportError(
            "download_bioscan5m needs the optional 'bioscan-dataset' package: pip install bioscan-dataset "
            "(or download BIOSCAN_5M_Insect_Dataset_metadata.csv yourself from "
            "https://zenodo.org/records/11973457 or the bioscan-ml/BIOSCAN-5M dataset on the Hugging Face Hub)"
        ) from error
    dataset = BIOSCAN5M(str(root), split="all", modality=("dna",), download=True)
    return Path(dataset.metadata_path)
