"""The ``top_k`` most similar references of each query: inner products of unit-norm vectors (cosine similarity).

Three searches over a reference index's ``(n, d)`` matrix (usually memory-mapped, possibly larger than RAM):

* :func:`blocked_search`, exact, numpy only: one matrix product per block of queries and :data:`REFERENCE_BLOCK`
  references with a running top-k, so memory stays bounded by :data:`SEARCH_CELLS` similarities, whatever the
  number of queries and references.
* :func:`faiss_flat_search`, exact: ``faiss.knn`` (BLAS products with fused top-k heaps), used by :func:`exact_search`
  when faiss is installed (``pip install barcodemae[faiss]``) and the index holds more than one block of references;
  the same neighbours as the blocked search, ties aside, in a fraction of its memory.
* :class:`IvfSearch`, approximate, opt-in when the index is built (``identify build --ivf``): a faiss inverted-file
  index (``IndexIVFFlat``, inner product) whose ``nprobe`` nearest of :func:`ivf_lists` k-means cells are scanned
  per query. Its cost grows with ``n / lists ~ sqrt(n)`` instead of ``n``: on a million references it was 5 to 13
  times faster than the exact search, with the same top hit for every query (docs/results.md, "Identification at
  scale"). A query maps ``ivf.faiss`` rather than reading it (:meth:`IvfSearch.load`).
"""

from __future__ import annotations

import importlib.util
import math
from pathlib import Path
from typing import Any

import numpy as np

REFERENCE_BLOCK = 65_536
"""Reference rows multiplied per block."""
SEARCH_CELLS = 1 << 24
"""Similarities a block of :func:`blocked_search` holds at once (``query rows x reference rows``): 64 MiB of float32
and 128 MiB of the partition's int64 column indices. With a fixed 4,096 queries per block, a 27k-reference index
held 1.8 GB of them (``identify query``'s peak RSS rose from 0.8 to 2.2 GB between 1,000 and 5,476 queries)."""
FAISS_MIN_REFERENCES = REFERENCE_BLOCK
"""From this many references on (more than one block), the exact search is faiss's when faiss is installed."""
IVF_FILE = "ivf.faiss"
IVF_NPROBE = 16
"""Cells scanned per query by default: on 1M simulated references the top-1 similarity equals the exact search's
for every query (docs/results.md)."""
IVF_TRAINING_ROWS_PER_LIST = 64
"""k-means trains on at most this many sampled references per cell (faiss asks for at least 39)."""
FAISS_MIN_VERSION = (1, 14)
"""The first faiss whose ``IO_FLAG_MMAP_IFC`` maps an ``IndexIVFFlat``'s lists (1.11, 1.12 and 1.13 take the flag
but still copy the lists into memory); setup.cfg's ``faiss`` extra asks for it."""


def unit_rows(queries: np.ndarray) -> np.ndarray:
    """``(n, d)`` float32 rows scaled to unit L2 norm (all-zero rows stay zero)."""
    queries = np.asarray(queries, dtype=np.float32)
    return np.ascontiguousarray(queries / np.maximum(np.linalg.norm(queries, axis=1, keepdims=True), 1e-12))


def top_k_columns(similarities: np.ndarray, k: int) -> np.ndarray:
    """Column indices ``(rows, min(k, columns))`` of each row's ``k`` largest values, largest first, equal values
    in column order: a partial partition (linear in the columns) and a sort of the ``k`` kept only."""
    columns = similarities.shape[1]
    k = min(k, columns)
    if k < columns:  # the k largest end the partition: no negated copy of the block
        kept = np.argpartition(similarities, columns - k, axis=1)[:, columns - k:]
    else:
        kept = np.broadcast_to(np.arange(k), similarities.shape)
    kept = np.sort(kept, axis=1)  # equal values in column order: ties go to the earlier reference, reproducibly
    order = np.argsort(-np.take_along_axis(similarities, kept, axis=1), axis=1, kind="stable")
    return np.take_along_axis(kept, order, axis=1)


def blocked_search(references: np.ndarray, queries: np.ndarray, k: int,
                   query_block: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Indices and similarities ``(n_queries, k)`` of the ``k`` most similar ``references`` ``(n, d)`` of each
    unit-norm query ``(n_queries, d)``, best first (exact; numpy's BLAS product; ``k <= n``). ``query_block``:
    queries per block (default: as many as keep a block within :data:`SEARCH_CELLS` similarities).

    Why numpy and not torch: a k-mer index needs no torch, and loading it would cost each query command seconds.
    """
    if query_block is None:
        query_block = max(1, SEARCH_CELLS // max(1, min(len(references), REFERENCE_BLOCK)))
    indices, similarities = [], []
    for q_start in range(0, len(queries), query_block):
        block = np.asarray(queries[q_start:q_start + query_block], dtype=np.float32)
        best_sim = np.full((len(block), 0), -2.0, dtype=np.float32)
        best_idx = np.zeros((len(block), 0), dtype=np.int64)
        for r_start in range(0, len(references), REFERENCE_BLOCK):
            sims = block @ np.asarray(references[r_start:r_start + REFERENCE_BLOCK], dtype=np.float32).T
            top = top_k_columns(sims, k)
            best_sim = np.concatenate([best_sim, np.take_along_axis(sims, top, axis=1)], axis=1)
            best_idx = np.concatenate([best_idx, top + r_start], axis=1)
            keep = top_k_columns(best_sim, k)
            best_sim, best_idx = np.take_along_axis(best_sim, keep, axis=1), np.take_along_axis(best_idx, keep, axis=1)
        indices.append(best_idx)
        similarities.append(best_sim)
    return np.concatenate(indices), np.concatenate(similarities)


def faiss_flat_search(references: np.ndarray, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """:func:`blocked_search`'s answer (ties aside) from ``faiss.knn``, which reads ``references`` in place (a memory
    map is not copied)."""
    import faiss

    similarities, indices = faiss.knn(queries, np.ascontiguousarray(references, dtype=np.float32), k,
                                      metric=faiss.METRIC_INNER_PRODUCT)
    return indices.astype(np.int64), similarities


def exact_search(references: np.ndarray, queries: np.ndarray, k: int,
                 query_block: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The exact top-k: faiss's for an index of at least :data:`FAISS_MIN_REFERENCES` when faiss is installed,
    else :func:`blocked_search`."""
    if len(references) >= FAISS_MIN_REFERENCES and importlib.util.find_spec("faiss") is not None:
        return faiss_flat_search(references, queries, k)
    return blocked_search(references, queries, k, query_block)


def ivf_lists(num_references: int) -> int:
    """k-means cells of an IVF index: ``4 sqrt(n)`` (faiss's guide: 4 to 16 sqrt(n)), at most ``n / 39`` so each cell
    has the training points faiss asks for (1 for a small library: one cell is the exact search)."""
    return max(1, min(round(4 * math.sqrt(num_references)), num_references // 39))


def require_faiss(what: str) -> Any:
    """The faiss module; a one-line error naming the extra that installs it when it is missing or older than
    :data:`FAISS_MIN_VERSION`."""
    if importlib.util.find_spec("faiss") is None:
        raise ValueError(f"{what} needs faiss: pip install 'barcodemae[faiss]' (faiss-cpu)")
    import faiss

    if tuple(int(part) for part in faiss.__version__.split(".")[:2]) < FAISS_MIN_VERSION:
        raise ValueError(f"{what} needs faiss >= {'.'.join(map(str, FAISS_MIN_VERSION))}, found {faiss.__version__}: "
                         "pip install -U 'barcodemae[faiss]'")
    return faiss


class IvfSearch:
    """An approximate top-k over a faiss inverted-file index of the references (see the module docstring)."""

    def __init__(self, index: Any, nprobe: int = IVF_NPROBE) -> None:
        if nprobe < 1:
            raise ValueError(f"nprobe must be >= 1 (cells scanned per query), got {nprobe}")
        self.index = index
        self.index.nprobe = nprobe

    @property
    def lists(self) -> int:
        return int(self.index.nlist)

    @classmethod
    def build(cls, references: np.ndarray, path: Path, block: int = REFERENCE_BLOCK) -> IvfSearch:
        """Train the cells on a seeded sample of the unit-norm ``references`` ``(n, d)``, add every row block by
        block (a memory map is read once) and write the index to ``path``."""
        faiss = require_faiss("--ivf")
        lists = ivf_lists(len(references))
        sample = min(len(references), IVF_TRAINING_ROWS_PER_LIST * lists)
        rows = np.sort(np.random.default_rng(0).choice(len(references), sample, replace=False))
        index = faiss.IndexIVFFlat(faiss.IndexFlatIP(references.shape[1]), references.shape[1], lists,
                                   faiss.METRIC_INNER_PRODUCT)
        index.train(np.ascontiguousarray(references[rows], dtype=np.float32))
        for start in range(0, len(references), block):
            index.add(np.ascontiguousarray(references[start:start + block], dtype=np.float32))
        faiss.write_index(index, str(path))
        return cls(index)

    @classmethod
    def load(cls, path: Path, num_references: int, nprobe: int = IVF_NPROBE) -> IvfSearch:
        """Map ``path``; refused, naming it, unless it indexes ``num_references`` vectors.

        Mapped, not read: the cells' vectors stay views of the file (``IO_FLAG_MMAP_IFC``), paged in as the search
        scans them and shared with the page cache, instead of a copy read whole at every query (3 s and the
        vectors' size again in memory at a million 5-mer references). The search and its answers are faiss's own,
        unchanged. ``IO_FLAG_MMAP``, faiss's older flag, also maps the file but as on-disk lists, whose search was
        30-40% slower (docs/results.md, "Identification at scale").
        """
        faiss = require_faiss(f"{path}")
        try:
            index = faiss.read_index(str(path), faiss.IO_FLAG_MMAP_IFC)
        except RuntimeError as error:
            raise ValueError(f"{path}: unreadable faiss index ({str(error).splitlines()[0]}); rebuild the index") \
                from error
        if index.ntotal != num_references:
            raise ValueError(f"{path}: indexes {index.ntotal} vectors but the index holds {num_references}")
        return cls(index, nprobe)

    def search(self, references: np.ndarray, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Indices and similarities ``(n_queries, k)``, best first. A query whose scanned cells hold fewer than ``k``
        references (faiss pads with -1) gets the exact search of ``references`` instead."""
        similarities, indices = self.index.search(queries, k)
        short = (indices < 0).any(axis=1)
        if short.any():
            indices[short], similarities[short] = exact_search(references, queries[short], k)
        return indices.astype(np.int64), similarities


__all__ = [
    "FAISS_MIN_REFERENCES",
    "IVF_FILE",
    "IVF_NPROBE",
    "REFERENCE_BLOCK",
    "SEARCH_CELLS",
    "IvfSearch",
    "blocked_search",
    "exact_search",
    "faiss_flat_search",
    "ivf_lists",
    "require_faiss",
    "top_k_columns",
    "unit_rows",
]
