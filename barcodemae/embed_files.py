"""Embed a FASTA/CSV/TSV barcode file into Parquet or NumPy: batched, length-sorted, resumable, rejects reported.

Why this shape: a BIOSCAN-5M-sized file takes hours to embed, so the work is cut into *shards* of the
length-sorted records. Each finished shard is saved (``.npy``) and recorded in a ``manifest.json`` before the
next starts, so a killed run restarted with ``resume=True`` recomputes at most one shard. Sorting by length
(longest first, so an out-of-memory batch fails at once) keeps padding, and therefore wasted compute, minimal.
The final file is assembled in *input* order through a memory-mapped array, so memory stays bounded by one shard.
Records the cleaning rejects are counted and listed in ``<output>.cleaning_report.json``; none vanish silently.
A ``.npy`` output is the matrix, ``<output>.ids.txt`` and ``<output>.json``, replaced and read back as one unit
(:mod:`barcodemae.npy_embeddings`), so a failed re-run cannot leave one run's vectors beside another run's ids.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import datasets
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from tqdm.auto import tqdm

from barcodemae.checksums import file_fingerprint, is_same_model, model_fingerprint
from barcodemae.data import CleaningReport, load_barcodes, open_barcode_file
from barcodemae.embedding_settings import DEFAULT_EMBEDDING, DEFAULT_SHARD_SIZE, EmbeddingSettings
from barcodemae.errors import check_output_file, naming_output, reserve_space
from barcodemae.npy_embeddings import publish_npy_embeddings, read_npy_embeddings

logger = logging.getLogger(__name__)

OUTPUT_FORMATS = (".parquet", ".npy")
METADATA_COLUMNS = ("processid", "split", "phylum", "class", "order", "family", "subfamily", "genus", "species",
                    "dna_bin")
"""Record columns copied next to the embeddings in Parquet output (the barcode itself is not repeated)."""
MANIFEST = "manifest.json"
PARQUET_ROW_GROUP = 65_536


@dataclass
class EmbedSummary:
    """What one ``embed_file`` run did."""

    output: Path
    num_records: int
    num_rejected: int
    hidden_size: int
    shards_computed: int
    shards_reused: int
    report_path: Path

    def to_dict(self) -> dict[str, Any]:
        return {**self.__dict__, "output": str(self.output), "report_path": str(self.report_path)}


# -------------------------------------------------------------------------------------------------- model
def check_input(path: str | Path, split: str = "all") -> None:
    """Refuse an input file the readers cannot use (missing, empty, of unknown format, a table without an id or a
    sequence column, ``split`` on a file without splits: :func:`~barcodemae.data.open_barcode_file`) before the model
    loads (seconds for a large one, and a progress bar before the one-line error); the records are read after it."""
    open_barcode_file(path, split=split)


def load_model(model_dir: str | Path, trust_remote_code: bool = False) -> tuple[Any, Any]:
    """The encoder and tokenizer of a model folder (exported, or any BarcodeMAE ``save_pretrained`` folder).

    Device placement is left to ``embed_barcodes(..., device=...)``, the one embedding loop of the project.
    ``trust_remote_code``: see :func:`barcodemae.inference.load_pretrained` (BarcodeMAE folders run none of
    their own code).
    """
    from barcodemae.inference import load_encoder

    return load_encoder(model_dir, trust_remote_code=trust_remote_code)


def records_fingerprint(table: pa.Table) -> str:
    """SHA-256 of the records' ids and cleaned barcodes, in order: a resumed run must embed the same records.

    The input's content fingerprint catches edits to the file; this also catches a change in which records
    cleaning keeps, or how it cleans them, for the same file.
    """
    digest = hashlib.sha256()
    for name in ("processid", "dna_barcode"):
        for chunk in table.column(name).chunks:
            # A chunk may be a slice of larger buffers: its offset and length say which part of them it is.
            digest.update(f"{chunk.offset}:{len(chunk)};".encode())
            for buffer in chunk.buffers():
                if buffer is not None:
                    digest.update(memoryview(buffer))
    return digest.hexdigest()


# --------------------------------------------------------------------------------------------- records
def token_min_length(tokenizer: Any) -> int:
    """Bases in a tokenizer's shortest token: ``k`` for k-mers, else 1."""
    return max(1, int(getattr(tokenizer, "k", 1)))


def load_records(
    input_path: str | Path, *, min_length: int, split: str = "all", content_sha256: str | None = None
) -> tuple[datasets.Dataset, CleaningReport]:
    """Cleaned records of a barcode file (read as :func:`~barcodemae.data.open_barcode_file` recognises it) and the
    report of what cleaning rejected.

    Barcodes shorter than ``min_length`` (the embedder's shortest unit: one token, :func:`token_min_length`, or one
    k-mer) are rejected here, with the rest of the cleaning, so one such record cannot fail a whole batch later.
    ``content_sha256``: the file's SHA-256 from the run's :func:`~barcodemae.checksums.file_fingerprint`, so the
    loader's cache key does not hash the file a second time (see :func:`~barcodemae.data.load_barcodes`).
    """
    dataset, report, _ = load_barcodes(input_path, split=split, min_length=min_length, return_report=True,
                                       content_sha256=content_sha256)
    return dataset, report


def length_order(barcodes: pa.ChunkedArray | pa.Array) -> np.ndarray:
    """Record indices, longest barcode first (stable, so the order and the shards are reproducible)."""
    lengths = pc.utf8_length(barcodes).to_numpy(zero_copy_only=False)
    return np.argsort(-lengths, kind="stable")


# ------------------------------------------------------------------------------------------ shard store
class ShardStore:
    """Length-sorted shards of one embedding run and the manifest saying which are finished.

    The manifest also records the run's *identity* (input file, model, shard size, pooling, layer, frames, record
    count); resuming with anything different is refused, because mixing shards of two runs would give wrong
    vectors without any error. ``same`` names the entries that may also match by a rule when they are not equal:
    the model's fingerprint, which an unfinished run of an older version recorded by size and mtime
    (:func:`~barcodemae.checksums.is_same_model`).
    """

    def __init__(self, folder: Path, identity: dict[str, Any], resume: bool,
                 same: Mapping[str, Callable[[Any], bool]] | None = None) -> None:
        self.folder = folder
        self.manifest_path = folder / MANIFEST
        if self.manifest_path.exists():
            if not resume:
                raise FileExistsError(
                    f"{folder}: an unfinished run is stored here; pass resume=True (--resume) to continue it, "
                    "or delete the folder to start again"
                )
            manifest = json.loads(self.manifest_path.read_text())
            stored, rules = manifest["identity"], same or {}
            # equal entries match at once (no second hash of the model); a rule is asked only about the others
            changed = sorted(k for k in identity if stored.get(k) != identity[k]
                             and not (k in rules and k in stored and rules[k](stored[k])))
            if changed:
                raise ValueError(
                    f"{folder}: cannot resume, the run differs from the stored one in {changed}; "
                    "delete the folder to start again"
                )
            # A shard is finished only if it is listed *and* its file is there (a kill can fall in between).
            self.done = {i for i in manifest["done"] if self.shard_path(i).is_file()}
        else:
            if folder.is_dir() and any(folder.iterdir()):
                raise FileExistsError(
                    f"{folder}: exists and holds files, but no {MANIFEST} of an unfinished run; it is not this run's "
                    "work folder and would be deleted at the end: move it, or choose another output"
                )
            folder.mkdir(parents=True, exist_ok=True)
            self.done = set()
        self.identity = identity
        self._write_manifest()

    def shard_path(self, index: int) -> Path:
        return self.folder / f"shard-{index:06d}.npy"

    def _write_manifest(self) -> None:
        tmp = self.manifest_path.with_suffix(".tmp")
        tmp.write_text(json.dumps({"identity": self.identity, "done": sorted(self.done)}, indent=1))
        os.replace(tmp, self.manifest_path)

    def save(self, index: int, embeddings: np.ndarray) -> None:
        """Write one shard atomically, then mark it finished."""
        tmp = self.folder / f"shard-{index:06d}.tmp.npy"
        with naming_output(tmp):
            np.save(tmp, np.ascontiguousarray(embeddings, dtype=np.float32))
        os.replace(tmp, self.shard_path(index))
        self.done.add(index)
        self._write_manifest()

    def load(self, index: int) -> np.ndarray:
        return np.load(self.shard_path(index), allow_pickle=False)


FINITE_CHECK_BLOCK = 65_536
"""Rows checked at a time: a memory-mapped matrix larger than RAM is read block by block."""


def nonfinite_rows(matrix: np.ndarray, block: int = FINITE_CHECK_BLOCK) -> np.ndarray:
    """Indices of the rows of ``(n, d)`` ``matrix`` holding a NaN or infinity, in order."""
    found = [start + np.flatnonzero(~np.isfinite(matrix[start:start + block]).all(axis=1))
             for start in range(0, len(matrix), block)]
    return np.concatenate(found) if found else np.zeros(0, dtype=np.int64)


def check_finite(
    vectors: np.ndarray,
    ids: pa.ChunkedArray | pa.Array | list[str] | None,
    *,
    rows: np.ndarray | None = None,
    holder: str = "the model produced",
) -> None:
    """Refuse vectors holding NaN/inf, naming their records.

    Why: a non-finite row compares as nearest to every query (or to none), so one of them silently turns every
    answer of a search wrong; it is refused where vectors are made (each shard, before it is saved) and where they
    are read (a reference index, query embeddings). ``rows``: the vectors' record indices when they are a subset
    (a shard of length-sorted records); ``ids`` names the records when given, else the row is named.
    ``holder`` starts the message (``"<file> holds"``).
    """
    bad = nonfinite_rows(vectors)
    if not len(bad):
        return
    records = bad if rows is None else rows[bad]
    if ids is None:
        shown, named = records[:1], f"the record in row {int(records[0])} of the cleaned input"
    else:
        shown = records[:3]
        names = ids.take(pa.array(shown)).to_pylist() if isinstance(ids, (pa.Array, pa.ChunkedArray)) else [
            ids[int(row)] for row in shown]
        named = f"record{'s' if len(bad) > 1 else ''} {', '.join(repr(name) for name in names)}"
    more = f" and {len(bad) - len(shown)} more" if len(bad) > len(shown) else ""
    raise ValueError(
        f"{holder} NaN/inf for {named}{more}; try float32 (no --dtype: bf16/fp16 can overflow) or check the model "
        "(its weights may hold NaN/inf)"
    )


def embed_records(
    embed: Callable[[list[str]], np.ndarray],
    barcodes: pa.ChunkedArray | pa.Array,
    output_npy: Path,
    store: ShardStore,
    *,
    shard_size: int,
    progress: bool,
    ids: pa.ChunkedArray | pa.Array | None = None,
) -> tuple[int, int]:
    """Embed ``barcodes`` shard by shard into ``store``, then assemble ``output_npy`` in input order.

    ``embed(sequences)`` returns their ``(len(sequences), d)`` float32 vectors (an encoder through
    :func:`~barcodemae.inference.embed_barcodes`, or k-mer profiles). Every shard is checked to be finite before it
    is saved (:func:`check_finite`; ``ids``, the records' ids in the order of ``barcodes``, name the culprits).
    Returns ``(shards_computed, shards_reused)``.
    """
    order = length_order(barcodes)
    num_shards = -(-len(order) // shard_size)
    reused = len(store.done & set(range(num_shards)))
    done_records = sum(min(shard_size, len(order) - i * shard_size) for i in store.done if i < num_shards)
    bar = tqdm(total=len(order), initial=done_records, unit="barcode", desc="embedding", disable=not progress)
    for index in range(num_shards):
        if index in store.done:
            continue
        rows = order[index * shard_size:(index + 1) * shard_size]
        sequences = barcodes.take(pa.array(rows)).to_pylist()
        vectors = embed(sequences)
        if len(vectors) != len(rows):
            raise RuntimeError(f"shard {index}: the embedder returned {len(vectors)} vectors for {len(rows)} barcodes")
        check_finite(vectors, ids, rows=rows)
        store.save(index, vectors)
        bar.update(len(rows))
    bar.close()

    hidden = np.load(store.shard_path(0), mmap_mode="r").shape[1] if num_shards else embed([]).shape[1]
    tmp = output_npy.with_name(output_npy.name + ".tmp.npy")
    assembled = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.float32, shape=(len(order), hidden))
    with open(tmp, "r+b") as handle:  # a full disk fails here, not as SIGBUS while the pages are written
        reserve_space(handle, tmp.stat().st_size, tmp)
    for index in range(num_shards):
        assembled[order[index * shard_size:(index + 1) * shard_size]] = store.load(index)
    assembled.flush()
    del assembled
    os.replace(tmp, output_npy)
    return num_shards - reused, reused


# ------------------------------------------------------------------------------------------------ output
def write_parquet(table: pa.Table, embeddings: np.ndarray, path: Path) -> None:
    """Record metadata plus an ``embedding`` fixed-size-list column, written one row group at a time."""
    columns = [name for name in METADATA_COLUMNS if name in table.column_names]
    hidden = embeddings.shape[1]
    schema = table.select(columns).schema.append(pa.field("embedding", pa.list_(pa.float32(), hidden)))
    tmp = path.with_name(path.name + ".tmp")
    with naming_output(tmp), pq.ParquetWriter(tmp, schema) as writer:
        for start in range(0, len(table), PARQUET_ROW_GROUP):
            block = np.ascontiguousarray(embeddings[start:start + PARQUET_ROW_GROUP], dtype=np.float32)
            vectors = pa.FixedSizeListArray.from_arrays(pa.array(block.reshape(-1)), hidden)
            part = table.select(columns).slice(start, len(block))
            writer.write_table(pa.Table.from_arrays([*part.columns, vectors], schema=schema))
    os.replace(tmp, path)


def read_embeddings(path: str | Path) -> tuple[np.ndarray, list[str]]:
    """Embeddings and record ids of an ``embed_file`` output (``.parquet``, or ``.npy`` + ``.ids.txt`` + ``.json``,
    refused when those are not one unit: see :func:`barcodemae.npy_embeddings.read_npy_embeddings`)."""
    path = Path(path)
    if path.suffix == ".parquet":
        table = pq.read_table(path, columns=["processid", "embedding"])
        column = table.column("embedding").combine_chunks()
        vectors = column.values.to_numpy().reshape(len(table), column.type.list_size)
        return vectors, table.column("processid").to_pylist()
    return read_npy_embeddings(path)


def embed_file(
    model_dir: str | Path,
    input_path: str | Path,
    output_path: str | Path,
    *,
    settings: EmbeddingSettings = DEFAULT_EMBEDDING,
    shard_size: int = DEFAULT_SHARD_SIZE,
    resume: bool = False,
    split: str = "all",
    keep_shards: bool = False,
) -> EmbedSummary:
    """Embed every valid barcode of ``input_path`` with the model in ``model_dir`` into ``output_path``.

    ``output_path`` ends in ``.parquet`` (record metadata + ``embedding`` column) or ``.npy`` (float32 matrix in
    input order, with the record ids in ``<output>.ids.txt`` and ``<output>.json`` tying the two; see
    :mod:`barcodemae.npy_embeddings`). Work in progress, the assembled matrix included, lives in ``<output>.parts/``;
    ``resume=True`` continues a killed run from its finished shards. Rows follow the input order of the kept
    records; rejected records are listed in ``<output>.cleaning_report.json``. ``settings``: batch size, device,
    autocast dtype, pooling, layer, progress bars and remote-code policy
    (:class:`~barcodemae.embedding_settings.EmbeddingSettings`); a resumed run must use the same dtype, pooling,
    layer and frames.
    """
    from barcodemae.inference import embed_barcodes

    output = Path(output_path)
    if output.suffix not in OUTPUT_FORMATS:
        raise ValueError(f"{output}: output must end in one of {OUTPUT_FORMATS}")
    if shard_size < 1:
        raise ValueError(f"shard_size must be positive, got {shard_size}")
    check_output_file(output, inputs=(input_path,))
    check_input(input_path, split)
    model, tokenizer = load_model(model_dir, trust_remote_code=settings.trust_remote_code)
    source = file_fingerprint(Path(input_path))  # hashed once: the resume identity and the loader's cache key
    dataset, report = load_records(input_path, min_length=token_min_length(tokenizer), split=split,
                                   content_sha256=source["sha256"])
    report_path = report.save(Path(f"{output}.cleaning_report.json"))
    if report.num_rejected:
        logger.warning("%s", report.summary())
    if len(dataset) == 0:
        raise ValueError(
            f"{input_path}: no valid barcodes to embed ({report.num_rejected} rejected, see {report_path})"
        )

    table = dataset.with_format("arrow")[:]  # honours any indices mapping left by filtering; zero-copy otherwise
    identity = {
        "input": source,
        "split": split,
        "model": model_fingerprint(model_dir),
        "num_records": len(dataset),
        "records": records_fingerprint(table),
        "shard_size": shard_size,
        "pooling": settings.pooling,
        "layer": settings.layer,
        "frames": settings.frames,
        "dtype": settings.dtype,
    }
    store = ShardStore(Path(f"{output}.parts"), identity, resume,
                       same={"model": lambda recorded: is_same_model(model_dir, recorded)})
    matrix_path = store.folder / "embeddings.npy"
    embed = partial(embed_barcodes, model, tokenizer, **settings.forward_options(), progress=False)
    computed, reused = embed_records(embed, table.column("dna_barcode"), matrix_path, store, shard_size=shard_size,
                                     progress=settings.progress, ids=table.column("processid"))
    embeddings = np.load(matrix_path, mmap_mode="r")
    hidden = int(embeddings.shape[1])
    if output.suffix == ".parquet":
        write_parquet(table, embeddings, output)
    del embeddings  # closes the memory map before the matrix file is moved
    if output.suffix == ".npy":
        publish_npy_embeddings(matrix_path, table.column("processid").to_pylist(), output)
    if not keep_shards:
        shutil.rmtree(store.folder)
    return EmbedSummary(output, len(dataset), report.num_rejected, hidden, computed, reused, report_path)
