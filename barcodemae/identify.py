"""Identify specimens: retrieve the nearest reference barcodes by embedding, confirm by alignment, and call.

A reference library (e.g. the labelled BIOSCAN/BOLD records of a region) is embedded *once* with
:func:`build_reference_index`, by a pretrained model or as k-mer frequency profiles (no model;
:mod:`barcodemae.index_embedders`), and saved as unit-norm float32 vectors (``embeddings.npy``, memory-mapped at query
time), their taxonomy (``references.parquet``), ``index.json`` (embedder, counts, cleaning report), the optional post-
processing fitted on the references (``postprocess.safetensors``: centring or whitening, applied to queries), the
cleaned barcodes themselves (``sequences.npy``, fixed-width bytes, memory-mapped: alignment reads only the rows it
needs), each barcode's place on the library's anchor barcode (``anchor_shifts.npy``, for the diagonal screen of
:mod:`barcodemae.diagonal_screen`; the anchor itself is in ``index.json``) and the optional approximate-search index
(``ivf.faiss``), all covered by ``checksums.json``; a load hashes only the files changed since they were last verified
(:data:`~barcodemae.checksums.VERIFIED`, written beside them). Queries are embedded by the same embedder and matched
by an exact top-k search that never holds the reference set in memory twice, or by the IVF index
(:mod:`barcodemae.index_search`).

With ``align=N`` (``identify query --align N``, the default) each query's ``candidates`` nearest references are
screened by their best ungapped segment on the pair's diagonal (:mod:`barcodemae.diagonal_screen`), the ``N`` best-
screened are scored by local alignment and aligned in full (:mod:`barcodemae.alignment`), the hits are ranked by local
score (as BLAST ranks by bit score) and the call (species, genus, family, order or none) follows the field's identity
thresholds on the top hit (:mod:`barcodemae.identity_calls`). With ``align=0`` the hits are the ``top_k`` nearest by
cosine similarity, and an index built with calibration queries calls species, genus or nothing from the similarity
(:mod:`barcodemae.call_levels`); without calibration nothing is called. Either way the ``top_k`` best hits also vote,
per rank (genus, species, BIN), for the label most frequent among those that have one (ties: larger summed similarity,
or identity, then the better hit); the votes are reported as ``vote_<rank>`` beside the call, not as the call. The
tables: :mod:`barcodemae.identify_tables`.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from barcodemae.alignment import align_shortlist, local_scores
from barcodemae.call_levels import (
    CALL_LEVELS,
    UNCALIBRATED,
    CallColumns,
    CallThresholds,
    call_report,
    fit_call_thresholds,
)
from barcodemae.checksums import CHECKSUMS, VERIFIED, file_fingerprint, verify_checksums, write_checksums
from barcodemae.cli_options import DEFAULT_ALIGN, DEFAULT_CANDIDATES, DEFAULT_IDENTITY_THRESHOLDS, DEFAULT_TOP_K
from barcodemae.diagonal_screen import anchor_shifts, choose_anchor, diagonal_scores, weak_screens
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
from barcodemae.embedding_settings import DEFAULT_EMBEDDING, DEFAULT_SHARD_SIZE, EmbeddingSettings
from barcodemae.errors import check_output_file, check_writable_folder
from barcodemae.eval.postprocess import POSTPROCESS_FILE, POSTPROCESSING, EmbeddingPostprocessor
from barcodemae.file_modes import apply_umask
from barcodemae.identify_tables import (
    HIT_RANKS,
    hit_frame,
    hits_path,
    output_format,
    query_table,
    write_identification,
)
from barcodemae.identity_calls import (
    IDENTITY_RANKS,
    IdentityThresholds,
    RankedHits,
    identity_calls,
    rank_hits,
)
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
SEQUENCES = "sequences.npy"
ANCHOR_SHIFTS = "anchor_shifts.npy"
CLEANING_REPORT = "cleaning_report.json"
PARTS = "parts"
INDEX_FILES = (INDEX_INFO, EMBEDDINGS, REFERENCES, SEQUENCES, ANCHOR_SHIFTS, CLEANING_REPORT, POSTPROCESS_FILE,
               IVF_FILE, CHECKSUMS, VERIFIED)
"""Every file a build writes (and ``parts/``, its work folder, removed once the index is complete)."""


def normalise_rows(matrix: np.ndarray, block: int = REFERENCE_BLOCK) -> None:
    """L2-normalise rows in place, block by block (the matrix may be a memory map larger than RAM)."""
    for start in range(0, len(matrix), block):
        rows = matrix[start:start + block]
        rows /= np.maximum(np.linalg.norm(rows, axis=1, keepdims=True), 1e-12)


def save_barcodes(barcodes: pa.ChunkedArray, path: Path, block: int = REFERENCE_BLOCK) -> None:
    """Write ``barcodes`` as a ``.npy`` of ``(n,)`` fixed-width bytes as wide as the longest (:data:`SEQUENCES`),
    ``block`` at a time: the whole column as Python strings and an array at once took twice the file in memory."""
    dtype = np.dtype(f"S{pc.max(pc.binary_length(barcodes)).as_py()}")
    header = {"descr": np.lib.format.dtype_to_descr(dtype), "fortran_order": False, "shape": (len(barcodes),)}
    with path.open("wb") as handle:  # the bytes np.save writes for the whole array
        np.lib.format.write_array_header_1_0(handle, header)
        for start in range(0, len(barcodes), block):
            handle.write(np.array(barcodes.slice(start, block).to_pylist(), dtype=dtype).tobytes())


@dataclass
class ReferenceIndex:
    """Unit-norm reference embeddings, their taxonomy, their barcodes and how they were made; ``ivf``: the
    approximate search of an index built with one (else the search is exact)."""

    embeddings: np.ndarray
    references: pa.Table
    info: dict[str, Any]
    postprocessor: EmbeddingPostprocessor = field(default_factory=lambda: EmbeddingPostprocessor("none"))
    ivf: IvfSearch | None = None
    sequences: np.ndarray | None = None
    """``(n_references,)`` cleaned barcodes as fixed-width bytes (memory-mapped); ``None`` for an index built
    before alignment, which can only be queried with ``align=0``."""
    shifts: np.ndarray | None = None
    """``(n_references,)`` each barcode's shift on :attr:`anchor` (:func:`~barcodemae.diagonal_screen.anchor_shifts`);
    ``None`` until :meth:`screen_shifts` computes them for an index built without them."""

    @property
    def anchor(self) -> str:
        """The barcode the screen places every other on (``index.json``'s ``screen_anchor``; chosen from the
        references, :func:`~barcodemae.diagonal_screen.choose_anchor`, for an index built without one)."""
        if "screen_anchor" not in self.info:
            barcodes = pa.array(self.sequences.tolist(), pa.binary()).cast(pa.string())  # trailing NULs dropped
            self.info["screen_anchor"] = choose_anchor(barcodes)
        return self.info["screen_anchor"]

    def screen_shifts(self, threads: int = 1) -> np.ndarray:
        """:attr:`shifts`, computed once (and a warning) for an index built before the diagonal screen stored
        them: rebuilding stores them, so that no query run pays for placing every reference."""
        if self.shifts is None:
            logger.warning("the index holds no %s (built before the diagonal screen): placing its %d references on "
                           "the anchor for this run; rebuild the index to store them", ANCHOR_SHIFTS,
                           len(self.sequences))
            self.shifts = anchor_shifts(self.sequences, self.anchor, threads)
        return self.shifts

    @classmethod
    def load(cls, folder: str | Path, nprobe: int | None = None) -> ReferenceIndex:
        """Read an index folder, verifying its checksums and that every vector is finite (errors name the file).

        Each file is hashed at most once, and only when it changed since it was last verified (or was never
        verified here): :func:`~barcodemae.checksums.verify_checksums` with ``remember``.

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
        verify_checksums(folder, required=bool(info.get("checksums")), error=ValueError, unlisted_is_error=False,
                         remember=True)
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
        sequences = None
        if (folder / SEQUENCES).is_file():
            sequences = np.load(folder / SEQUENCES, mmap_mode="r", allow_pickle=False)
            if sequences.dtype.kind != "S" or sequences.shape != (len(references),):
                raise ValueError(f"{folder / SEQUENCES}: expected {len(references)} barcodes as bytes, got "
                                 f"{sequences.dtype} {sequences.shape}; rebuild the index")
        shifts = None
        if sequences is not None and (folder / ANCHOR_SHIFTS).is_file():
            shifts = np.load(folder / ANCHOR_SHIFTS, allow_pickle=False)
            if shifts.dtype.kind != "i" or shifts.shape != (len(references),) or "screen_anchor" not in info:
                raise ValueError(f"{folder / ANCHOR_SHIFTS}: expected {len(references)} integer shifts and an "
                                 f"anchor in {INDEX_INFO}, got {shifts.dtype} {shifts.shape}; rebuild the index")
        ivf = None
        if "ivf_lists" in info:
            ivf = IvfSearch.load(folder / IVF_FILE, len(embeddings), IVF_NPROBE if nprobe is None else nprobe)
        elif nprobe is not None:
            raise ValueError(f"{folder}: --nprobe applies to an index built with --ivf; this one is searched exactly")
        return cls(embeddings, references, info, postprocessor, ivf=ivf, sequences=sequences, shifts=shifts)

    @property
    def call_thresholds(self) -> CallThresholds | None:
        """The species / genus call thresholds fitted when the index was built (``None``: not calibrated)."""
        stored = self.info.get("call_thresholds")
        return CallThresholds.from_dict(stored) if stored else None

    def search(
        self, queries: np.ndarray, top_k: int = DEFAULT_TOP_K, query_block: int | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Indices and cosine similarities ``(n_queries, k)`` of the ``top_k`` nearest references, best first."""
        if queries.ndim != 2 or queries.shape[1] != self.embeddings.shape[1]:
            raise ValueError(f"queries must be (n, {self.embeddings.shape[1]}), got {queries.shape}")
        k = min(top_k, len(self.embeddings))
        unit = unit_rows(queries)
        if self.ivf is not None:
            return self.ivf.search(self.embeddings, unit, k)
        return exact_search(self.embeddings, unit, k, query_block)


def check_alignable(index: ReferenceIndex, align: int, where: str | Path) -> None:
    """Refuse ``align > 0`` for an index without its reference barcodes (one built before alignment existed)."""
    if align and index.sequences is None:
        raise ValueError(f"{where}: built before alignment, it holds no reference barcodes ({SEQUENCES}) to align "
                         "to; rebuild it with `barcodemae identify build`, or query with --align 0")


def _alignment_threads() -> int:
    """Threads the aligners use: torch's thread count when torch is loaded (the one setting a Python caller gives
    every part of a run), else the count torch would take: ``OMP_NUM_THREADS``, or the CPUs this process may use.

    Why not import torch to ask: a k-mer index needs no torch, and loading it costs a query seconds of start-up.
    """
    torch = sys.modules.get("torch")
    if torch is not None:
        return torch.get_num_threads()
    configured = os.environ.get("OMP_NUM_THREADS", "")
    if configured.isdigit() and int(configured) > 0:
        return int(configured)
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


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


def labelled_ranks(table: pa.Table, ranks: tuple[str, ...] = VOTE_RANKS) -> list[str]:
    """The ``ranks`` (in that order) that at least one record of ``table`` carries."""
    return [rank for rank in ranks if rank in table.column_names and table.column(rank).null_count < len(table)]


def _codes(column: pa.ChunkedArray) -> tuple[np.ndarray, np.ndarray]:
    """Integer codes ``(n,)`` (-1 for null) and the names they stand for, with ``None`` last (code -1)."""
    encoded = pc.dictionary_encode(column).combine_chunks()
    codes = pc.fill_null(encoded.indices, -1).to_numpy(zero_copy_only=False).astype(np.int64)
    return codes, np.asarray(encoded.dictionary.to_pylist() + [None], dtype=object)


def vote_columns(labels: dict[str, tuple[np.ndarray, np.ndarray]], rows: np.ndarray,
                 weights: np.ndarray) -> dict[str, np.ndarray]:
    """``vote_<rank>``, ``vote_<rank>_count`` and ``vote_<rank>_agreement`` of the hits ``rows`` ``(n, k)``
    (ties broken by ``weights`` ``(n, k)`` in [-1, 1]) for each rank of :data:`VOTE_RANKS` in ``labels``."""
    columns = {}
    for rank in VOTE_RANKS:
        if rank in labels:
            codes, names = labels[rank]
            winner, votes = majority_vote(codes[rows], weights)
            columns[f"vote_{rank}"] = names[winner]
            columns[f"vote_{rank}_count"] = votes
            columns[f"vote_{rank}_agreement"] = votes / rows.shape[1]
    return columns


@dataclass
class Identification:
    """What :func:`identify` found: the query table (one row per query) and, with alignment, the hits table (the
    best ``top_k`` hits of each query, best first; ``None`` without alignment)."""

    table: pd.DataFrame
    hits: pd.DataFrame | None


def identify(
    index: ReferenceIndex, query_embeddings: np.ndarray, query_ids: list[str], top_k: int = DEFAULT_TOP_K, *,
    query_sequences: list[str] | None = None, align: int = 0, candidates: int = 0,
    thresholds: IdentityThresholds | None = None,
) -> Identification:
    """Call every query from its nearest references (:mod:`barcodemae.identify_tables` names the columns).

    ``align > 0``: each of ``query_sequences`` is screened against its ``max(align, candidates)`` nearest
    references by diagonal score (:mod:`~barcodemae.diagonal_screen`); the ``align`` best are scored by local
    alignment, aligned in full and ranked by local score, and the query called by percent identity
    (``thresholds``, :data:`~barcodemae.cli_options.DEFAULT_IDENTITY_THRESHOLDS` when ``None``). ``align ==
    0``: the ``top_k`` nearest by cosine are the hits, called by the index's calibrated similarity thresholds, or
    not at all (``call_rule`` ``uncalibrated``); the table then also lists each neighbour
    (``neighbor<j>_processid``, ``_similarity``, ``_<rank>``).
    """
    check_finite(query_embeddings, query_ids, holder="the query embeddings hold")
    check_alignable(index, align, "the index")
    screened = max(align, candidates) if align else 0
    neighbours, similarities = index.search(query_embeddings, top_k=max(top_k, screened))
    ids = np.asarray(query_ids, dtype=object)
    reference_ids = np.asarray(index.references.column("processid").to_pylist(), dtype=object)
    labels = {rank: _codes(index.references.column(rank))
              for rank in dict.fromkeys((*VOTE_RANKS, *IDENTITY_RANKS, *HIT_RANKS))
              if rank in index.references.column_names}

    def names(rows: np.ndarray) -> dict[str, np.ndarray]:
        return {rank: taxa[codes[rows]] for rank, (codes, taxa) in labels.items()}

    extra: dict[str, np.ndarray] = {}
    if align:
        threads = _alignment_threads()
        pool = neighbours[:, :screened]
        shifts = anchor_shifts(query_sequences, index.anchor, threads)
        screen = diagonal_scores(query_sequences, shifts, pool, index.sequences, index.screen_shifts(threads),
                                 threads=threads)
        weak = weak_screens(screen, np.array([len(query) for query in query_sequences]))
        if weak.any():  # reads with indels: their diagonals rank nothing, so Smith-Waterman screens them
            logger.info("%d of %d queries screened by Smith-Waterman (their best diagonal is short: reads with "
                        "indels)", weak.sum(), len(weak))
            screen[weak] = local_scores([query_sequences[i] for i in np.flatnonzero(weak)], pool[weak],
                                        index.sequences, threads=threads)
        best = np.argsort(-screen, axis=1, kind="stable")[:, :align]  # ties keep the embedding's order
        shortlist = np.take_along_axis(pool, best, axis=1)
        aligned = align_shortlist(query_sequences, shortlist, index.sequences, threads=threads)
        found = rank_hits(shortlist, np.take_along_axis(similarities[:, :screened], best, axis=1), aligned,
                          local_scores(query_sequences, shortlist, index.sequences, threads=threads))
        calls = identity_calls(found, names(found.reference),
                               thresholds or IdentityThresholds.parse(DEFAULT_IDENTITY_THRESHOLDS))
        shown = found.head(top_k)
        extra.update(vote_columns(labels, shown.reference, shown.identity / 100))
    else:
        shown = RankedHits(neighbours[:, :top_k], similarities[:, :top_k], None)
        extra.update(vote_columns(labels, shown.reference, shown.similarity))
        calibrated = index.call_thresholds
        calls = CallColumns.uncalibrated(len(ids))
        if calibrated is not None and {"vote_species", "vote_genus"} <= extra.keys():
            calls = calibrated.calls(similarities[:, 0], extra["vote_species"], extra["vote_genus"])
        neighbour_names = names(shown.reference)
        for j in range(shown.reference.shape[1]):
            extra[f"neighbor{j + 1}_processid"] = reference_ids[shown.reference[:, j]]
            extra[f"neighbor{j + 1}_similarity"] = shown.similarity[:, j]
            for rank in VOTE_RANKS:
                if rank in neighbour_names:
                    extra[f"neighbor{j + 1}_{rank}"] = neighbour_names[rank][:, j]
    hits = hit_frame(ids, shown, reference_ids, names(shown.reference))
    table = query_table(ids, calls, hits[hits["hit_rank"] == 1], extra)
    return Identification(table, hits if align else None)


def build_reference_index(
    embedder: str | Path | IndexEmbedder,
    reference_path: str | Path,
    output_dir: str | Path,
    *,
    split: str = "all",
    settings: EmbeddingSettings = DEFAULT_EMBEDDING,
    shard_size: int = DEFAULT_SHARD_SIZE,
    resume: bool = False,
    postprocess: str = "none",
    calibration_split: str | None = None,
    ivf: bool = False,
) -> ReferenceIndex:
    """Embed a labelled reference file once and save it as an index folder for :func:`identify_file`.

    ``embedder``: a model folder, run with ``settings`` (batch size, device, remote-code policy; the model's own
    pooling and layer, so ``pooling``, ``layer`` and ``dtype`` stay unset), or an
    :class:`~barcodemae.index_embedders.IndexEmbedder` such as ``KmerProfileEmbedder(k)`` (no model).
    ``settings.progress``: show progress bars.
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
        embedder = ModelEmbedder(embedder, settings)
    # Hashed once, before the records are read: the resume identity and the loaders' cache key (reading and
    # calibration), so a file changed since a killed build is still refused at its resume.
    reference = file_fingerprint(Path(reference_path))
    dataset, report = load_records(reference_path, min_length=embedder.min_length, split=split,
                                   content_sha256=reference["sha256"])
    if len(dataset) == 0:
        raise ValueError(f"{reference_path}: no valid reference barcodes ({report.num_rejected} rejected)")
    table = dataset.with_format("arrow")[:]
    if not labelled_ranks(table):
        logger.warning("%s: no reference has a genus, species or BIN; queries will get neighbours but no predicted "
                       "taxonomy", reference_path)
    calibration = None
    if calibration_split is not None:  # read and checked before the long embedding of the references
        calibration = calibration_records(reference_path, embedder.min_length, calibration_split, table,
                                          content_sha256=reference["sha256"])
    identity = {"reference": reference, "split": split,
                "embedder": embedder.fingerprint, "num_records": len(dataset),
                "records": records_fingerprint(table), "shard_size": shard_size}
    store = ShardStore(output / PARTS, identity, resume, same={
        "embedder": lambda recorded: embedder.matches({"kind": embedder.kind, "fingerprint": recorded})})
    embed_records(embedder.embed, table.column("dna_barcode"), output / EMBEDDINGS, store, shard_size=shard_size,
                  progress=settings.progress, ids=table.column("processid"))
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
    save_barcodes(table.column("dna_barcode"), output / SEQUENCES)
    anchor = choose_anchor(table.column("dna_barcode"))
    np.save(output / ANCHOR_SHIFTS, anchor_shifts(np.load(output / SEQUENCES, mmap_mode="r"), anchor,
                                                  _alignment_threads()))
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
        "screen_anchor": anchor,
        **({"ivf_lists": search.lists} if search is not None else {}),
        "checksums": CHECKSUMS,
    }
    if calibration is not None:
        references = pq.read_table(output / REFERENCES)
        info.update(calibrate_calls(ReferenceIndex(embeddings, references, info, transform, search), embedder,
                                    calibration, progress=settings.progress))
        info["calibration"]["split"] = calibration_split
    # The load below maps the vectors and reads ivf.faiss again: with the build's own still held, its peak memory was
    # four to five times the vectors (docs/results.md, "What the 1M load and build paid for").
    del embeddings, search
    shutil.rmtree(store.folder)  # last before index.json: a build killed until here resumes from its shards
    (output / INDEX_INFO).write_text(json.dumps(info, indent=2))
    write_checksums(output, remember=True)  # last: covers every other file; remembered, so the load does not re-hash
    return ReferenceIndex.load(output)


CALIBRATION_TOP_K = DEFAULT_TOP_K
"""Neighbours that vote for the calibration queries' genus and species (``identify query``'s default)."""


def calibration_records(reference_path: str | Path, min_length: int, split: str, references: pa.Table, *,
                        content_sha256: str | None = None) -> pa.Table:
    """The labelled calibration records of ``split``, refused when they cannot calibrate anything.

    Each needs a genus and a species (unlabelled ones are dropped, with a count in the log); none may also be a
    reference, or its match would be itself. ``min_length``: the embedder's shortest barcode. ``content_sha256``:
    the file's SHA-256 when the build has it already (:func:`~barcodemae.embed_files.load_records`).
    """
    dataset, report = load_records(reference_path, min_length=min_length, split=split,
                                   content_sha256=content_sha256)
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
                       top_k=CALIBRATION_TOP_K).table
    matches["true_species"] = calibration.column("species").to_pylist()
    matches["true_genus"] = calibration.column("genus").to_pylist()
    species_ok, genus_ok = call_correctness(matches)
    similarity = matches["top_similarity"].to_numpy()
    thresholds = fit_call_thresholds(similarity, species_ok, genus_ok)
    measured = call_report(thresholds.levels(similarity), {"species": species_ok, "genus": genus_ok})
    logger.info("call thresholds: species >= %.4f, genus >= %.4f (%s)", thresholds.species, thresholds.genus,
                ", ".join(f"{key} {value:.3f}" for key, value in measured.items() if key != "num_queries"))
    return {"call_thresholds": thresholds.to_dict(), "calibration": {"top_k": CALIBRATION_TOP_K, **measured}}


def call_correctness(result: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """Whether each row's voted species and genus are its own (``true_species`` / ``true_genus`` columns), ``(n,)``
    bools each: what the calibration of a species and a genus call judges."""
    return (
        (result["vote_species"] == result["true_species"]).to_numpy(),
        (result["vote_genus"] == result["true_genus"]).to_numpy(),
    )


def labelled_call_report(result: pd.DataFrame) -> dict[str, float | int | None] | None:
    """:func:`~barcodemae.call_levels.call_report` over the rows of an :func:`identify_file` table that know their
    genus and species: a call at a level is right when ``called_taxon`` is the query's ``true_<level>``. ``None``
    for queries without that taxonomy."""
    if not {"true_species", "true_genus"} <= set(result):
        return None
    rows = result[result["true_species"].notna() & result["true_genus"].notna()]
    if rows.empty:
        return None
    correct = {level: (rows["called_taxon"] == rows[f"true_{level}"]).to_numpy()
               for level in CALL_LEVELS if f"true_{level}" in rows}
    return call_report(rows["call_level"].to_numpy(), correct)


def identify_file(
    index_dir: str | Path,
    input_path: str | Path,
    output: str | Path,
    *,
    model_dir: str | Path | None = None,
    kmer: int | None = None,
    nprobe: int | None = None,
    split: str = "all",
    top_k: int = DEFAULT_TOP_K,
    align: int = DEFAULT_ALIGN,
    candidates: int = DEFAULT_CANDIDATES,
    thresholds: str = DEFAULT_IDENTITY_THRESHOLDS,
    table_format: str | None = None,
    settings: EmbeddingSettings = DEFAULT_EMBEDDING,
) -> pd.DataFrame:
    """Identify every valid barcode of ``input_path`` against the index; write and return the query table.

    The queries are embedded by the index's own embedder: its model (``model_dir`` overrides the stored path, e.g.
    after moving the files; it must be the same model) or its k-mer profiles (``kmer``, optional, must be the
    index's k; a model is refused). ``nprobe``: cells scanned per query by an index built with ``ivf=True``.
    ``split`` picks BIOSCAN-5M split(s) of a CSV. ``align``, ``candidates``,
    ``thresholds`` (``"98,95,90,85"``: percent identity of a species, genus, family, order call) and ``top_k``: see
    :func:`identify`. ``table_format`` (``csv``, ``tsv``, ``blast6``; default from ``output``'s suffix) applies to
    the query table and the hits table written beside it (:func:`~barcodemae.identify_tables.hits_path`). Known
    query taxonomy (CSV input) is kept as ``true_<rank>`` columns so a labelled file doubles as an evaluation.
    Rejected queries go to ``<output>.cleaning_report.json``. ``settings``: as for :func:`build_reference_index`.
    """
    if top_k < 1:
        raise ValueError(f"top_k must be >= 1 (the neighbours that vote), got {top_k}")
    if align < 0:
        raise ValueError(f"--align must be >= 0 (references aligned per query; 0: no alignment), got {align}")
    if candidates < 0:
        raise ValueError(f"--candidates must be >= 0 (references screened per query; at most --align: screen only "
                         f"those aligned), got {candidates}")
    identity_thresholds = IdentityThresholds.parse(thresholds)
    table_format = output_format(output, table_format)
    if table_format == "blast6" and not align:
        raise ValueError("--format blast6 reports alignments: use --align N with N >= 1")
    index = ReferenceIndex.load(index_dir, nprobe=nprobe)
    check_alignable(index, align, index_dir)
    check_output_file(output, inputs=(input_path,), input_folders=(index_dir,))
    if align:
        check_output_file(hits_path(output), inputs=(input_path,), input_folders=(index_dir,))
    elif index.call_thresholds is None:
        logger.warning("%s: no calibration and --align 0: no query gets a call (call_rule %r); the vote_* columns "
                       "are the neighbours' votes, not identifications", index_dir, UNCALIBRATED)
    embedder = index_embedder(index.info, index_dir, model_dir=model_dir, kmer=kmer, settings=settings)
    check_input(input_path, split)
    dataset, report = load_records(input_path, min_length=embedder.min_length, split=split)
    report.save(Path(f"{output}.cleaning_report.json"))
    if report.num_rejected:
        logger.warning("%s", report.summary())
    if len(dataset) == 0:
        raise ValueError(f"{input_path}: no valid query barcodes ({report.num_rejected} rejected)")
    table = dataset.with_format("arrow")[:]
    barcodes = table.column("dna_barcode").to_pylist()
    queries = index.postprocessor.transform(embedder.embed(barcodes, progress=settings.progress))
    found = identify(index, queries, table.column("processid").to_pylist(), top_k=top_k, query_sequences=barcodes,
                     align=align, candidates=candidates, thresholds=identity_thresholds)
    result = found.table
    after_top_hit = 1 + max(i for i, name in enumerate(result.columns) if name.startswith("top_"))
    for rank in reversed(labelled_ranks(table, HIT_RANKS)):
        result.insert(after_top_hit, f"true_{rank}", table.column(rank).to_pylist())
    write_identification(result, found.hits, output, table_format)
    return result


__all__ = [
    "CALIBRATION_TOP_K",
    "DEFAULT_ALIGN",
    "Identification",
    "ReferenceIndex",
    "build_reference_index",
    "calibrate_calls",
    "calibration_records",
    "call_correctness",
    "identify",
    "identify_file",
    "labelled_call_report",
    "majority_vote",
    "vote_columns",
]
