"""Identify specimens: nearest reference barcodes by cosine similarity, with a rank-wise majority vote.

A reference library (e.g. the labelled BIOSCAN/BOLD records of a region) is embedded *once* with
:func:`build_reference_index`, by a pretrained model or as k-mer frequency profiles (no model;
:mod:`barcodemae.index_embedders`), and saved as unit-norm float32 vectors (``embeddings.npy``, memory-mapped at query
time), their taxonomy (``references.parquet``), ``index.json`` (embedder, counts, cleaning report), the optional
post-processing fitted on the references (``postprocess.safetensors``: centring or whitening, applied to queries) and
the optional approximate-search index (``ivf.faiss``). Queries are embedded by the same embedder and matched by an
exact top-k search that never holds the reference set in memory twice, or by the IVF index
(:mod:`barcodemae.index_search`). For each rank (genus, species, BIN) the prediction is the label most
frequent among the ``top_k`` neighbours that have one; ties go to the label with the larger summed similarity,
then to the nearest. The vote agreement and the similarities tell the user how much to trust the call; an index
built with calibration queries also says, per query, whether the match is close enough to call the species, only
the genus, or nothing (:mod:`barcodemae.call_levels`).
"""

from __future__ import annotations

import json
import logging
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from barcodemae.atomic_files import atomic_write_path
from barcodemae.call_levels import CallThresholds, call_report, fit_call_thresholds
from barcodemae.checksums import CHECKSUMS, file_fingerprint, verify_checksums, write_checksums
from barcodemae.embed_files import (
    MANIFEST,
    METADATA_COLUMNS,
    ShardStore,
    check_finite,
    check_input,
    embed_records,
    load_records,
    records_fingerprint,
)
from barcodemae.errors import check_output_file, check_writable_folder
from barcodemae.eval.postprocess import POSTPROCESS_FILE, POSTPROCESSING, EmbeddingPostprocessor
from barcodemae.file_modes import apply_umask
from barcodemae.index_embedders import IndexEmbedder, ModelEmbedder, index_embedder
from barcodemae.index_search import (
    IVF_FILE,
    IVF_NPROBE,
    REFERENCE_BLOCK,
    IvfSearch,
    exact_search,
    require_faiss,
    unit_rows,
)

logger = logging.getLogger(__name__)

VOTE_RANKS: tuple[str, ...] = ("genus", "species", "dna_bin")
INDEX_INFO = "index.json"
EMBEDDINGS = "embeddings.npy"
REFERENCES = "references.parquet"
CLEANING_REPORT = "cleaning_report.json"
PARTS = "parts"
INDEX_FILES = (INDEX_INFO, EMBEDDINGS, REFERENCES, CLEANING_REPORT, POSTPROCESS_FILE, IVF_FILE, CHECKSUMS)
"""Every file a build writes (and ``parts/``, its work folder, removed once the index is complete)."""


def normalise_rows(matrix: np.ndarray, block: int = REFERENCE_BLOCK) -> None:
    """L2-normalise rows in place, block by block (the matrix may be a memory map larger than RAM)."""
    for start in range(0, len(matrix), block):
        rows = matrix[start:start + block]
        rows /= np.maximum(np.linalg.norm(rows, axis=1, keepdims=True), 1e-12)


@dataclass
class ReferenceIndex:
    """Unit-norm reference embeddings, their taxonomy and how they were made; ``ivf``: the approximate search of an
    index built with one (else the search is exact)."""

    embeddings: np.ndarray
    references: pa.Table
    info: dict[str, Any]
    postprocessor: EmbeddingPostprocessor = field(default_factory=lambda: EmbeddingPostprocessor("none"))
    ivf: IvfSearch | None = None

    @classmethod
    def load(cls, folder: str | Path, nprobe: int | None = None) -> ReferenceIndex:
        """Read an index folder, verifying its checksums and that every vector is finite (errors name the file).

        ``nprobe``: cells the IVF search of an index built with ``--ivf`` scans per query (default
        :data:`~barcodemae.index_search.IVF_NPROBE`); refused for an index searched exactly.
        """
        folder = Path(folder)
        missing = [n for n in (INDEX_INFO, EMBEDDINGS, REFERENCES) if not (folder / n).is_file()]
        if missing:
            raise FileNotFoundError(f"{folder}: not a reference index, missing {missing}; build one first")
        try:
            info = json.loads((folder / INDEX_INFO).read_text())
        except (UnicodeDecodeError, json.JSONDecodeError) as error:
            raise ValueError(f"{folder / INDEX_INFO}: not valid JSON ({error}); rebuild the index") from error
        # Indexes built before checksums say nothing of them and load with a warning.
        verify_checksums(folder, required=bool(info.get("checksums")), error=ValueError, unlisted_is_error=False)
        try:
            embeddings = np.load(folder / EMBEDDINGS, mmap_mode="r", allow_pickle=False)
            references = pq.read_table(folder / REFERENCES)
        except (ValueError, OSError, pa.ArrowException) as error:
            name = REFERENCES if isinstance(error, pa.ArrowException) else EMBEDDINGS
            raise ValueError(f"{folder / name}: unreadable ({error}); rebuild the index") from error
        if len(references) != len(embeddings):
            raise ValueError(f"{folder}: {len(references)} references but {len(embeddings)} embeddings")
        check_finite(embeddings, references.column("processid"), holder=f"{folder / EMBEDDINGS} holds")
        postprocessor = EmbeddingPostprocessor.load(folder)  # indexes built before post-processing have none
        if postprocessor.method != info.get("postprocess", "none"):
            raise ValueError(
                f"{folder}: index.json says post-processing {info.get('postprocess', 'none')!r} but "
                f"{POSTPROCESS_FILE} holds {postprocessor.method!r}"
            )
        if "ivf_lists" not in info:
            if nprobe is not None:
                raise ValueError(f"{folder}: --nprobe applies to an index built with --ivf; this one is searched "
                                 "exactly")
            return cls(embeddings, references, info, postprocessor)
        ivf = IvfSearch.load(folder / IVF_FILE, len(embeddings), IVF_NPROBE if nprobe is None else nprobe)
        return cls(embeddings, references, info, postprocessor, ivf)

    @property
    def call_thresholds(self) -> CallThresholds | None:
        """The species / genus call thresholds fitted when the index was built (``None``: not calibrated)."""
        stored = self.info.get("call_thresholds")
        return CallThresholds.from_dict(stored) if stored else None

    def search(self, queries: np.ndarray, top_k: int = 5, query_block: int = 4096) -> tuple[np.ndarray, np.ndarray]:
        """Indices and cosine similarities ``(n_queries, k)`` of the ``top_k`` nearest references, best first."""
        if queries.ndim != 2 or queries.shape[1] != self.embeddings.shape[1]:
            raise ValueError(f"queries must be (n, {self.embeddings.shape[1]}), got {queries.shape}")
        k = min(top_k, len(self.embeddings))
        unit = unit_rows(queries)
        if self.ivf is not None:
            return self.ivf.search(self.embeddings, unit, k)
        return exact_search(self.embeddings, unit, k, query_block)


def majority_vote(labels: np.ndarray, similarities: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Rank-wise vote over neighbours: ``labels`` are integer codes ``(n, k)`` with ``-1`` for unknown.

    Returns ``(winner, votes)``: the winning code per row (``-1`` when no neighbour has a label) and how many
    neighbours carry it. Ties: larger summed similarity, then the nearer neighbour. Vectorised over ``(n, k, k)``.
    """
    known = labels >= 0
    same = (labels[:, :, None] == labels[:, None, :]) & known[:, None, :]
    votes = same.sum(axis=2)
    similarity_sum = (same * similarities[:, None, :]).sum(axis=2)
    k = labels.shape[1]
    score = votes + (similarity_sum + k) / (2 * k + 1)  # summed similarity in [-k, k] -> a tie-break in [0, 1)
    score = np.where(known, score, -np.inf)
    pick = score.argmax(axis=1)
    rows = np.arange(len(labels))
    winner = np.where(known.any(axis=1), labels[rows, pick], -1)
    return winner, np.where(winner >= 0, votes[rows, pick], 0)


def labelled_ranks(table: pa.Table) -> list[str]:
    """The ranks of :data:`VOTE_RANKS` (in that order) that at least one record of ``table`` carries."""
    return [rank for rank in VOTE_RANKS if rank in table.column_names and table.column(rank).null_count < len(table)]


def _codes(column: pa.ChunkedArray) -> tuple[np.ndarray, list[str]]:
    """Integer codes (-1 for null) and their labels."""
    encoded = pc.dictionary_encode(column).combine_chunks()
    codes = pc.fill_null(encoded.indices, -1).to_numpy(zero_copy_only=False).astype(np.int64)
    return codes, encoded.dictionary.to_pylist()


def identify(
    index: ReferenceIndex, query_embeddings: np.ndarray, query_ids: list[str], top_k: int = 5
) -> pd.DataFrame:
    """One row per query: voted genus/species/BIN with vote counts, and the ``top_k`` neighbours' details."""
    check_finite(query_embeddings, query_ids, holder="the query embeddings hold")
    neighbours, similarities = index.search(query_embeddings, top_k=top_k)
    k = neighbours.shape[1]
    result: dict[str, Any] = {"processid": query_ids}
    reference_ids = np.asarray(index.references.column("processid").to_pylist(), dtype=object)
    neighbour_labels = {}
    for rank in VOTE_RANKS:
        if rank not in index.references.column_names:
            continue
        codes, names = _codes(index.references.column(rank))
        names_array = np.asarray(names + [None], dtype=object)  # code -1 -> None
        labels = codes[neighbours]
        winner, votes = majority_vote(labels, similarities)
        result[f"predicted_{rank}"] = names_array[winner]
        result[f"{rank}_votes"] = votes
        result[f"{rank}_agreement"] = votes / k
        neighbour_labels[rank] = names_array[labels]
    result["top1_similarity"] = similarities[:, 0]
    thresholds = index.call_thresholds
    if thresholds is not None and {"predicted_species", "predicted_genus"} <= result.keys():
        levels = thresholds.levels(similarities[:, 0])
        result["call_level"] = levels
        result["called_taxon"] = np.where(
            levels == "species", result["predicted_species"],
            np.where(levels == "genus", result["predicted_genus"], None),
        )
    for j in range(k):
        result[f"neighbor{j + 1}_processid"] = reference_ids[neighbours[:, j]]
        result[f"neighbor{j + 1}_similarity"] = similarities[:, j]
        for rank, names in neighbour_labels.items():
            result[f"neighbor{j + 1}_{rank}"] = names[:, j]
    return pd.DataFrame(result)


def build_reference_index(
    embedder: str | Path | IndexEmbedder,
    reference_path: str | Path,
    output_dir: str | Path,
    *,
    split: str = "all",
    batch_size: int = 128,
    device: str | None = None,
    shard_size: int = 16_384,
    resume: bool = False,
    postprocess: str = "none",
    calibration_split: str | None = None,
    ivf: bool = False,
    progress: bool = True,
    trust_remote_code: bool = False,
) -> ReferenceIndex:
    """Embed a labelled reference file once and save it as an index folder for :func:`identify_file`.

    ``embedder``: a model folder (``batch_size``, ``device`` and ``trust_remote_code`` apply to it) or an
    :class:`~barcodemae.index_embedders.IndexEmbedder` such as ``KmerProfileEmbedder(k)`` (no model).
    The embedding is resumable like ``barcodemae embed`` (``resume=True`` continues a killed build).
    ``postprocess`` (``none`` | ``center`` | ``whiten``) is fitted on the reference embeddings and saved in the
    index (``postprocess.safetensors``), so every query is transformed the same way before the cosine search.
    ``calibration_split`` (e.g. ``"val+val_unseen"`` of a BIOSCAN-5M CSV, disjoint from ``split``) names labelled
    records of the same file whose matches fit the species / genus call thresholds stored in the index
    (:mod:`barcodemae.call_levels`); queries then get a ``call_level`` and ``called_taxon``.
    ``ivf``: also save a faiss IVF index (``ivf.faiss``, needs the ``faiss`` extra) that queries search instead of
    every reference: approximate, for libraries of millions (:class:`~barcodemae.index_search.IvfSearch`).
    """
    if postprocess not in POSTPROCESSING:
        raise ValueError(f"postprocess must be one of {POSTPROCESSING}, got {postprocess!r}")
    if ivf:
        require_faiss("--ivf")
    output = Path(output_dir)
    if (output / INDEX_INFO).exists():
        raise FileExistsError(f"{output}: a reference index already exists here")
    unfinished = (output / PARTS / MANIFEST).is_file()  # a killed build: its own files may be there already
    taken = [name for name in INDEX_FILES if (output / name).exists()]
    if taken and not unfinished:
        raise FileExistsError(f"{output}: holds {', '.join(taken)}, which building an index would overwrite, but no "
                              "index or unfinished build; choose a new or empty --output folder")
    check_writable_folder(output)
    check_input(reference_path, split)
    if calibration_split is not None:
        check_input(reference_path, calibration_split)
    if isinstance(embedder, (str, Path)):
        embedder = ModelEmbedder(embedder, batch_size=batch_size, device=device, trust_remote_code=trust_remote_code)
    dataset, report = load_records(reference_path, min_length=embedder.min_length, split=split)
    if len(dataset) == 0:
        raise ValueError(f"{reference_path}: no valid reference barcodes ({report.num_rejected} rejected)")
    table = dataset.with_format("arrow")[:]
    if not labelled_ranks(table):
        logger.warning("%s: no reference has a genus, species or BIN; queries will get neighbours but no predicted "
                       "taxonomy", reference_path)
    calibration = None
    if calibration_split is not None:  # read and checked before the long embedding of the references
        calibration = calibration_records(reference_path, embedder.min_length, calibration_split, table)
    identity = {"reference": file_fingerprint(Path(reference_path)), "split": split,
                "embedder": embedder.fingerprint, "num_records": len(dataset),
                "records": records_fingerprint(table), "shard_size": shard_size}
    store = ShardStore(output / PARTS, identity, resume)
    embed_records(embedder.embed, table.column("dna_barcode"), output / EMBEDDINGS, store, shard_size=shard_size,
                  progress=progress, ids=table.column("processid"))
    embeddings = np.load(output / EMBEDDINGS, mmap_mode="r+")
    transform = EmbeddingPostprocessor.fit(embeddings, postprocess)
    if transform.method != "none":  # no pass over a reference library that stays as it is
        for start in range(0, len(embeddings), REFERENCE_BLOCK):
            block = slice(start, start + REFERENCE_BLOCK)
            embeddings[block] = transform.transform(embeddings[block])
    normalise_rows(embeddings)
    embeddings.flush()
    check_finite(embeddings, table.column("processid"), holder=f"{output / EMBEDDINGS} after {postprocess!r} holds")
    search = IvfSearch.build(embeddings, output / IVF_FILE) if ivf else None
    transform.save(output)
    apply_umask(output)  # safetensors writes postprocess.safetensors owner-only; the index is shared like its peers
    pq.write_table(table.select([c for c in METADATA_COLUMNS if c in table.column_names]), output / REFERENCES)
    report.save(output / CLEANING_REPORT)
    info = {
        "embedder": embedder.info(),
        "reference": str(Path(reference_path).resolve()),
        "split": split,
        "num_references": len(dataset),
        "num_rejected": report.num_rejected,
        "hidden_size": int(embeddings.shape[1]),
        "similarity": "cosine",
        "postprocess": postprocess,
        **({"ivf_lists": search.lists} if search is not None else {}),
        "checksums": CHECKSUMS,
    }
    if calibration is not None:
        index = ReferenceIndex(np.load(output / EMBEDDINGS, mmap_mode="r"), pq.read_table(output / REFERENCES),
                               info, transform, search)
        info.update(calibrate_calls(index, embedder, calibration, progress=progress))
        info["calibration"]["split"] = calibration_split
    shutil.rmtree(store.folder)  # last before index.json: a build killed until here resumes from its shards
    (output / INDEX_INFO).write_text(json.dumps(info, indent=2))
    write_checksums(output)  # last: covers every other file of the index
    return ReferenceIndex.load(output)


CALIBRATION_TOP_K = 5
"""Neighbours that vote for the calibration queries' genus and species (``identify query``'s default)."""


def calibration_records(reference_path: str | Path, min_length: int, split: str, references: pa.Table) -> pa.Table:
    """The labelled calibration records of ``split``, refused when they cannot calibrate anything.

    Each needs a genus and a species (unlabelled ones are dropped, with a count in the log); none may also be a
    reference, or its match would be itself. ``min_length``: the embedder's shortest barcode.
    """
    dataset, report = load_records(reference_path, min_length=min_length, split=split)
    table = dataset.with_format("arrow")[:]
    missing = [rank for rank in ("genus", "species") if rank not in table.column_names]
    if missing or "genus" not in references.column_names or "species" not in references.column_names:
        raise ValueError(f"{reference_path}: calibration needs genus and species labels for the references and the "
                         f"{split!r} records")
    labelled = pc.and_(pc.is_valid(table.column("genus")), pc.is_valid(table.column("species")))
    unlabelled = len(table) - pc.sum(labelled).as_py() if len(table) else 0
    table = table.filter(labelled)
    if len(table) == 0:
        raise ValueError(f"{reference_path}: split {split!r} has no record with a genus and a species to calibrate "
                         f"the calls on ({report.num_rejected} rejected by cleaning, {unlabelled} unlabelled)")
    if unlabelled:
        logger.info("calibration: %d records of %r without a genus or species are not used", unlabelled, split)
    shared = pc.is_in(table.column("processid"), value_set=references.column("processid").combine_chunks())
    if pc.any(shared).as_py():
        raise ValueError(f"{reference_path}: calibration split {split!r} shares records with the references "
                         f"(e.g. {table.filter(shared).column('processid')[0]}); use disjoint splits")
    return table


def calibrate_calls(
    index: ReferenceIndex, embedder: IndexEmbedder, calibration: pa.Table, *, progress: bool
) -> dict[str, Any]:
    """Fit the call thresholds on the calibration records' matches; ``index.json`` entries with the measurement."""
    vectors = embedder.embed(calibration.column("dna_barcode").to_pylist(), progress=progress)
    matches = identify(index, index.postprocessor.transform(vectors), calibration.column("processid").to_pylist(),
                       top_k=CALIBRATION_TOP_K)
    matches["true_species"] = calibration.column("species").to_pylist()
    matches["true_genus"] = calibration.column("genus").to_pylist()
    species_ok, genus_ok = call_correctness(matches)
    similarity = matches["top1_similarity"].to_numpy()
    thresholds = fit_call_thresholds(similarity, species_ok, genus_ok)
    measured = call_report(thresholds.levels(similarity), species_ok, genus_ok)
    logger.info("call thresholds: species >= %.4f, genus >= %.4f (%s)", thresholds.species, thresholds.genus,
                ", ".join(f"{key} {value:.3f}" for key, value in measured.items() if key != "num_queries"))
    return {"call_thresholds": thresholds.to_dict(), "calibration": {"top_k": CALIBRATION_TOP_K, **measured}}


def call_correctness(result: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """Whether each row's voted species and genus are its own (``true_species`` / ``true_genus`` columns), ``(n,)``
    bools each: what a species and a genus call are judged by."""
    return (
        (result["predicted_species"] == result["true_species"]).to_numpy(),
        (result["predicted_genus"] == result["true_genus"]).to_numpy(),
    )


def labelled_call_report(result: pd.DataFrame) -> dict[str, float | int | None] | None:
    """:func:`~barcodemae.call_levels.call_report` over the rows of an :func:`identify_file` table that know their
    genus and species; ``None`` for an uncalibrated index or queries without that taxonomy."""
    if "call_level" not in result or not {"true_species", "true_genus"} <= set(result):
        return None
    rows = result[result["true_species"].notna() & result["true_genus"].notna()]
    if rows.empty:
        return None
    return call_report(rows["call_level"].to_numpy(), *call_correctness(rows))


def identify_file(
    index_dir: str | Path,
    input_path: str | Path,
    output_csv: str | Path,
    *,
    model_dir: str | Path | None = None,
    kmer: int | None = None,
    nprobe: int | None = None,
    split: str = "all",
    top_k: int = 5,
    batch_size: int = 128,
    device: str | None = None,
    progress: bool = True,
    trust_remote_code: bool = False,
) -> pd.DataFrame:
    """Identify every valid barcode of ``input_path`` against the index; write and return the table.

    The queries are embedded by the index's own embedder: its model (``model_dir`` overrides the stored path, e.g.
    after moving the files; it must be the same model) or its k-mer profiles (``kmer``, optional, must be the
    index's k; a model is refused). ``nprobe``: cells scanned per query by an index built with ``ivf=True``.
    ``split`` picks BIOSCAN-5M split(s) of a CSV. Known query taxonomy (CSV input) is kept as ``true_<rank>``
    columns so a labelled file doubles as an evaluation. Rejected queries go to ``<output>.cleaning_report.json``.
    """
    if top_k < 1:
        raise ValueError(f"top_k must be >= 1 (the neighbours that vote), got {top_k}")
    index = ReferenceIndex.load(index_dir, nprobe=nprobe)
    check_output_file(output_csv, inputs=(input_path,), input_folders=(index_dir,))
    embedder = index_embedder(index.info, index_dir, model_dir=model_dir, kmer=kmer, batch_size=batch_size,
                              device=device, trust_remote_code=trust_remote_code)
    check_input(input_path, split)
    dataset, report = load_records(input_path, min_length=embedder.min_length, split=split)
    report.save(Path(f"{output_csv}.cleaning_report.json"))
    if report.num_rejected:
        logger.warning("%s", report.summary())
    if len(dataset) == 0:
        raise ValueError(f"{input_path}: no valid query barcodes ({report.num_rejected} rejected)")
    table = dataset.with_format("arrow")[:]
    queries = index.postprocessor.transform(embedder.embed(table.column("dna_barcode").to_pylist(), progress=progress))
    result = identify(index, queries, table.column("processid").to_pylist(), top_k=top_k)
    for rank in reversed(labelled_ranks(table)):
        result.insert(1, f"true_{rank}", table.column(rank).to_pylist())
    with atomic_write_path(output_csv) as temporary:  # a killed query leaves no truncated table that parses
        result.to_csv(temporary, index=False)
    return result


__all__ = [
    "CALIBRATION_TOP_K",
    "ReferenceIndex",
    "build_reference_index",
    "calibrate_calls",
    "calibration_records",
    "call_correctness",
    "identify",
    "identify_file",
    "labelled_call_report",
    "majority_vote",
]
