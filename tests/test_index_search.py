"""The searches of a reference index: torch's blocked products, faiss's exact search and the opt-in IVF index."""

from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa
import pytest

from barcodemae import index_search
from barcodemae.identify import ReferenceIndex
from barcodemae.index_search import IvfSearch, blocked_search, faiss_flat_search, ivf_lists, unit_rows


def clustered(num_references: int, num_queries: int, dim: int = 16, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Unit-norm references around 40 centres, and queries near some of them (what k-mer profiles look like)."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(40, dim))
    references = centres[rng.integers(0, 40, num_references)] + 0.3 * rng.normal(size=(num_references, dim))
    queries = centres[rng.integers(0, 40, num_queries)] + 0.3 * rng.normal(size=(num_queries, dim))
    return unit_rows(references), unit_rows(queries)


def inverted_lists(search: IvfSearch) -> Any:
    """The faiss ``ArrayInvertedLists`` holding an IVF index's cells."""
    import faiss

    return faiss.downcast_InvertedLists(faiss.extract_index_ivf(search.index).invlists)


def test_faiss_and_blocked_search_find_the_same_neighbours(monkeypatch) -> None:
    pytest.importorskip("faiss")
    references, queries = clustered(500, 60)
    monkeypatch.setattr(index_search, "REFERENCE_BLOCK", 37)  # many blocks, a short last one
    blocked_indices, blocked_similarities = blocked_search(references, queries, 7, query_block=16)
    faiss_indices, faiss_similarities = faiss_flat_search(references, queries, 7)
    np.testing.assert_array_equal(faiss_indices, blocked_indices)  # continuous data: no ties
    np.testing.assert_allclose(faiss_similarities, blocked_similarities, atol=1e-5)
    brute = queries @ references.T
    np.testing.assert_array_equal(blocked_indices, np.argsort(-brute, axis=1)[:, :7])


def test_blocked_search_holds_a_bounded_block_and_breaks_ties_by_reference_order(monkeypatch) -> None:
    """Whatever the number of queries, one block multiplies at most SEARCH_CELLS similarities; equal similarities
    (duplicate references: the same barcode deposited twice) rank the earlier reference first, in every block."""
    references, queries = clustered(200, 90)
    references = np.concatenate([references, references[:50]])  # rows 200-249 repeat rows 0-49
    monkeypatch.setattr(index_search, "REFERENCE_BLOCK", 64)
    monkeypatch.setattr(index_search, "SEARCH_CELLS", 64 * 16)
    blocks = []
    top_k_columns = index_search.top_k_columns
    monkeypatch.setattr(index_search, "top_k_columns",
                        lambda block, k: blocks.append(block.size) or top_k_columns(block, k))
    indices, similarities = blocked_search(references, queries, 6)
    assert len(blocks) > 10 and max(blocks) <= 64 * 16
    brute = queries @ references.T
    expected = np.argsort(-brute, axis=1, kind="stable")[:, :6]  # stable: the earlier of two equal rows first
    np.testing.assert_allclose(similarities, np.take_along_axis(brute, expected, axis=1), atol=1e-6)
    np.testing.assert_array_equal(indices[:, 0], expected[:, 0])
    duplicated = np.isin(indices, np.arange(50)).any(axis=1)
    assert duplicated.any() and not np.isin(indices[:, 0], np.arange(200, 250)).any()


def test_a_large_index_is_searched_by_faiss_with_the_same_answer(monkeypatch) -> None:
    pytest.importorskip("faiss")
    references, queries = clustered(300, 20)
    index = ReferenceIndex(references, pa.table({"processid": [f"r{i}" for i in range(300)]}), {})
    expected = index.search(queries * 3.0, top_k=4)  # below FAISS_MIN_REFERENCES: torch
    used = []
    monkeypatch.setattr(index_search, "FAISS_MIN_REFERENCES", 300)
    monkeypatch.setattr(index_search, "faiss_flat_search",
                        lambda *args: used.append(True) or faiss_flat_search(*args))
    found = index.search(queries * 3.0, top_k=4)
    assert used == [True]
    np.testing.assert_array_equal(found[0], expected[0])
    np.testing.assert_allclose(found[1], expected[1], atol=1e-5)


def test_ivf_search_scans_nprobe_cells_and_falls_back_to_exact_for_short_answers(tmp_path) -> None:
    pytest.importorskip("faiss")
    references, queries = clustered(2000, 100)
    assert ivf_lists(2000) == 51 and ivf_lists(48) == 1 and ivf_lists(1_000_000) == 4000
    ivf = IvfSearch.build(references, tmp_path / "ivf.faiss", block=300)
    assert ivf.lists == 51 and ivf.index.ntotal == 2000
    _, exact_similarities = blocked_search(references, queries, 5)
    every_cell = IvfSearch.load(tmp_path / "ivf.faiss", 2000, nprobe=51)
    _, similarities = every_cell.search(references, queries, 5)
    np.testing.assert_allclose(similarities, exact_similarities, atol=1e-5)  # all cells scanned: the exact answer
    one_cell = IvfSearch.load(tmp_path / "ivf.faiss", 2000, nprobe=1)
    _, approximate = one_cell.search(references, queries, 5)
    assert np.isclose(approximate[:, 0], exact_similarities[:, 0], atol=1e-5).mean() > 0.9
    # a cell holds about 2000 / 51 references: 300 neighbours need more, so those queries are answered exactly
    indices, similarities = one_cell.search(references, queries, 300)
    assert (indices >= 0).all()
    np.testing.assert_allclose(similarities, blocked_search(references, queries, 300)[1], atol=1e-5)
    # read mapped: every cell's vectors are views of the file, not copies, and answer as the index built in memory
    owned = [[lists.codes.at(cell).is_owned for cell in range(51)] for lists in map(inverted_lists, (ivf, every_cell))]
    assert all(owned[0]) and not any(owned[1])
    ivf.index.nprobe = every_cell.index.nprobe = 4
    for built, loaded in zip(ivf.search(references, queries, 7), every_cell.search(references, queries, 7)):
        np.testing.assert_array_equal(loaded, built)
    with pytest.raises(ValueError, match=r"ivf.faiss: indexes 2000 vectors but the index holds 1999"):
        IvfSearch.load(tmp_path / "ivf.faiss", 1999)
    with pytest.raises(ValueError, match=r"nprobe must be >= 1"):
        IvfSearch.load(tmp_path / "ivf.faiss", 2000, nprobe=0)


def test_a_faiss_that_would_copy_the_ivf_index_is_refused_in_one_line(tmp_path, monkeypatch) -> None:
    faiss = pytest.importorskip("faiss")
    references, _ = clustered(100, 1)
    IvfSearch.build(references, tmp_path / "ivf.faiss")
    monkeypatch.setattr(faiss, "__version__", "1.13.0")  # takes IO_FLAG_MMAP_IFC but reads the lists whole
    with pytest.raises(ValueError, match=r"ivf.faiss needs faiss >= 1.14, found 1.13.0: pip install -U"):
        IvfSearch.load(tmp_path / "ivf.faiss", 100)
