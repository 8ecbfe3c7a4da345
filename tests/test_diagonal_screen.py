"""The diagonal screen: anchor shifts, the best ungapped segment on each pair's diagonal, and the anchor's choice."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from barcodemae import diagonal_screen
from barcodemae.alignment import MATCH, MISMATCH
from barcodemae.diagonal_screen import anchor_shifts, choose_anchor, diagonal_scores, weak_screens
from conftest import mutate_bases, with_indels


def barcode(rng: np.random.Generator, length: int) -> str:
    return "".join(rng.choice(list("ACGT"), length))


def best_segment_on_diagonal(query: str, reference: str, offset: int) -> int:
    """The plain definition: query base ``p`` against reference base ``p + offset``, best-scoring run (Kadane)."""
    best = running = 0
    for p, letter in enumerate(query):
        r = p + offset
        other = reference[r] if 0 <= r < len(reference) else None
        if other is None or letter not in "ACGT" or other not in "ACGT":
            score = 0
        else:
            score = MATCH if letter == other else MISMATCH
        running = max(0, running + score)
        best = max(best, running)
    return best


def test_diagonal_scores_equal_the_plain_definition(monkeypatch):
    rng = np.random.default_rng(3)
    core = barcode(rng, 120)
    references = [core, barcode(rng, 15) + core[:100], mutate_bases(rng, core, 0.1), core[:50] + "NN" + core[52:],
                  barcode(rng, 130), core[60:], mutate_bases(rng, core, 0.4)]
    stored = np.array(references, dtype=bytes)
    reference_shifts = np.array([0, -15, 0, 0, 0, 60, 0], np.int32)  # each one's place relative to ``core``
    queries = [core, core[30:110], barcode(rng, 10) + mutate_bases(rng, core, 0.05), "ACGTN" * 4]
    query_shifts = np.array([0, 30, -10, 5], np.int32)
    candidates = np.array([[0, 1, 2, 3, 4, 5, 6], [6, 5, 4, 3, 2, 1, 0], [2, 0, 1, 3, 6, 5, 4], [0, 1, 2, 3, 4, 5, 6]])
    scores = diagonal_scores(queries, query_shifts, candidates, stored, reference_shifts, threads=2)
    assert scores.shape == (4, 7) and scores.dtype == np.int32
    for i, query in enumerate(queries):
        expected = [best_segment_on_diagonal(query, references[j], int(query_shifts[i] - reference_shifts[j]))
                    for j in candidates[i]]
        assert scores[i].tolist() == expected, i
    assert scores[0, 0] == 120 * MATCH and scores[0, 1] == 100 * MATCH and scores[0, 5] == 60 * MATCH
    assert scores[1, 6] == 80 * MATCH  # a query inside the reference: its whole length
    monkeypatch.setattr(diagonal_screen, "SCREEN_CELLS", 1)  # one query a block
    assert diagonal_scores(queries, query_shifts, candidates, stored, reference_shifts).tolist() == scores.tolist()
    assert diagonal_scores([], np.zeros(0, np.int32), np.zeros((0, 7), np.int64), stored,
                           reference_shifts).shape == (0, 7)
    with pytest.raises(ValueError, match=r"candidates must be \(n_queries=4, m\)"):
        diagonal_scores(queries, query_shifts, candidates[:1], stored, reference_shifts)


def test_a_shift_beyond_the_overlap_scores_nothing():
    stored = np.array(["ACGTACGTAC"], dtype=bytes)
    scores = diagonal_scores(["ACGTACGTAC"], np.array([0]), np.array([[0]]), stored, np.array([40]))
    assert scores.tolist() == [[0]]


def test_anchor_shifts_place_each_barcode_where_it_lies_on_the_anchor(monkeypatch):
    rng = np.random.default_rng(5)
    anchor = barcode(rng, 300)
    barcodes = [anchor, anchor[37:250], barcode(rng, 20) + anchor[:200], mutate_bases(rng, anchor[10:290], 0.1)]
    shifts = anchor_shifts(barcodes, anchor)
    assert shifts.tolist() == [0, 37, -20, 10] and shifts.dtype == np.int32
    monkeypatch.setattr(diagonal_screen, "ANCHOR_BLOCK", 1)
    assert anchor_shifts(np.array(barcodes, dtype=bytes), anchor, threads=2).tolist() == shifts.tolist()
    assert anchor_shifts([], anchor).shape == (0,)


def test_shifted_copies_meet_on_their_diagonal_through_the_anchor():
    """A query and a reference that overlap only in part, neither the anchor, score their whole overlap."""
    rng = np.random.default_rng(9)
    anchor = barcode(rng, 400)
    relative = mutate_bases(rng, anchor, 0.05)
    references = np.array([relative[50:380], mutate_bases(rng, anchor, 0.3)[:350]], dtype=bytes)
    query = relative[100:300]
    scores = diagonal_scores([query], anchor_shifts([query], anchor), np.array([[0, 1]]), references,
                             anchor_shifts(references, anchor))
    assert scores[0, 0] == 200 * MATCH and scores[0, 1] < scores[0, 0]


def test_the_anchor_is_a_median_length_barcode_without_ambiguity_codes():
    barcodes = pa.array(["ACGTNACGTA", "ACG", "ACGTACGTAC", "ACGTACGTACGTACGT", "ACGTACGTAG", "ACGTACG"])
    assert choose_anchor(barcodes) == "ACGTACGTAC"  # lengths 3, 7, 10, 10, 16 without the N: median 10, first
    assert choose_anchor(pa.array(["NNNN", "ANNA"])) == "NNNN"  # none plain: all barcodes
    with pytest.raises(ValueError, match="no barcodes"):
        choose_anchor(pa.array([], pa.string()))


def test_a_read_with_indels_has_a_weak_screen_and_a_clean_one_not():
    """Indels break the diagonal: the best run of a read with a few percent of them is short against its length."""
    rng = np.random.default_rng(11)
    anchor = barcode(rng, 600)
    stored = np.array([anchor], dtype=bytes)
    clean, noisy = mutate_bases(rng, anchor, 0.02), with_indels(rng, anchor, 12, margin=20)  # 2% indels
    queries = [clean, noisy]
    scores = diagonal_scores(queries, anchor_shifts(queries, anchor), np.zeros((2, 1), np.int64), stored,
                             anchor_shifts(stored, anchor))
    assert weak_screens(scores, np.array([len(clean), len(noisy)])).tolist() == [False, True]
    assert weak_screens(np.zeros((1, 0), np.int32), np.array([100])).tolist() == [True]  # no candidate: nothing ranked
