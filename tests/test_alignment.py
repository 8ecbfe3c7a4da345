"""`barcodemae.alignment`: parasail's semi-global alignments and their statistics equal a plain reference
Needleman-Wunsch's (bench/semiglobal_reference.py) on pairs whose answer is known by construction."""

from __future__ import annotations

from dataclasses import fields

import numpy as np
import pytest
from semiglobal_reference import align_semiglobal

from barcodemae import alignment
from barcodemae.alignment import (
    GAP_EXTEND,
    GAP_OPEN,
    LOCAL_GAP,
    MATCH,
    MISMATCH,
    align_pairs,
    align_shortlist,
    local_scores,
    substitution_scores,
)

STATISTICS = ("score", "matches", "mismatches", "gap_opens", "aligned_length", "query_start", "query_end",
              "reference_start", "reference_end")


def barcode(rng: np.random.Generator, length: int) -> str:
    return "".join(rng.choice(list("ACGT"), length))


def substitute(sequence: str, positions: list[int]) -> str:
    swap = {"A": "C", "C": "G", "G": "T", "T": "A"}
    letters = list(sequence)
    for position in positions:
        letters[position] = swap[letters[position]]
    return "".join(letters)


def aligned(query: str, reference: str) -> dict[str, float]:
    """parasail's statistics of one pair, checked against the reference implementation's on the way."""
    statistics = align_pairs([query], [reference], threads=1)
    found = {name: int(getattr(statistics, name)[0]) for name in STATISTICS}
    found["identity"] = float(statistics.identity[0])
    found["query_coverage"] = float(statistics.query_coverage[0])
    expected = align_semiglobal(query, reference).statistics()
    assert {name: found[name] for name in (*STATISTICS, "identity")} == pytest.approx(expected)
    return found


def test_identical_barcodes_align_at_100_percent():
    sequence = barcode(np.random.default_rng(0), 200)
    found = aligned(sequence, sequence)
    assert found["identity"] == 100 and found["aligned_length"] == 200 and found["query_coverage"] == 100
    assert found["score"] == 200 * MATCH and found["mismatches"] == found["gap_opens"] == 0


def test_substitutions_count_as_mismatches_and_lower_the_identity():
    sequence = barcode(np.random.default_rng(1), 200)
    found = aligned(substitute(sequence, [20, 70, 120, 170]), sequence)
    assert found["mismatches"] == 4 and found["gap_opens"] == 0 and found["aligned_length"] == 200
    assert found["identity"] == pytest.approx(100 * 196 / 200)
    assert found["score"] == 196 * MATCH + 4 * MISMATCH


@pytest.mark.parametrize(("query_window", "reference_window"), [
    ((40, 240), (0, 300)),    # the query inside a longer reference
    ((0, 300), (50, 200)),    # a short reference inside the query
    ((100, 300), (0, 250)),   # offset: the query overhangs the reference's end, the reference its start
])
def test_overhangs_are_terminal_gaps_that_cost_nothing(query_window, reference_window):
    sequence = barcode(np.random.default_rng(2), 300)
    query, reference = sequence[slice(*query_window)], sequence[slice(*reference_window)]
    found = aligned(query, reference)
    overlap = min(query_window[1], reference_window[1]) - max(query_window[0], reference_window[0])
    assert found["identity"] == 100 and found["aligned_length"] == overlap and found["score"] == overlap * MATCH
    assert found["query_start"] == max(reference_window[0] - query_window[0], 0)
    assert found["reference_start"] == max(query_window[0] - reference_window[0], 0)
    assert found["query_coverage"] == pytest.approx(100 * overlap / len(query))


def test_interior_indels_are_gap_opens_counted_in_the_aligned_length():
    sequence = barcode(np.random.default_rng(3), 240)
    deleted = sequence[:80] + sequence[83:160] + sequence[161:]  # 3 bases, then 1 base, missing from the query
    found = aligned(deleted, sequence)
    assert found["gap_opens"] == 2 and found["mismatches"] == 0
    assert found["aligned_length"] == 240 and found["identity"] == pytest.approx(100 * 236 / 240)
    assert found["score"] == 236 * MATCH - (GAP_OPEN + 2 * GAP_EXTEND) - GAP_OPEN
    inserted = aligned(sequence, deleted)  # the same gaps seen from the other side
    assert (inserted["gap_opens"], inserted["aligned_length"]) == (2, 240)


def test_ambiguity_codes_score_nothing_and_are_not_identities():
    sequence = barcode(np.random.default_rng(4), 100)
    found = aligned(sequence[:50] + "N" + sequence[51:], sequence)
    assert found["score"] == 99 * MATCH and found["mismatches"] == 1 and found["identity"] == 99


def test_mutated_barcodes_equal_the_reference_implementation():
    """Substitutions, indels and ragged ends at random: every statistic as the plain Needleman-Wunsch gives it."""
    rng = np.random.default_rng(5)
    queries, references = [], []
    for _ in range(12):
        reference = barcode(rng, int(rng.integers(150, 260)))
        letters = list(reference)
        for position in sorted(rng.choice(len(letters), 6, replace=False), reverse=True):
            kind = rng.integers(3)
            if kind == 0:
                letters[position] = "ACGT"[(("ACGT".index(letters[position])) + 1) % 4]
            elif kind == 1:
                del letters[position]
            else:
                letters.insert(position, "ACGT"[int(rng.integers(4))])
        start, end = int(rng.integers(0, 20)), len(letters) - int(rng.integers(0, 20))
        queries.append("".join(letters[start:end]))
        references.append(reference)
    statistics = align_pairs(queries, references, threads=2)
    for i, (query, reference) in enumerate(zip(queries, references)):
        expected = align_semiglobal(query, reference).statistics()
        assert {name: int(getattr(statistics, name)[i]) for name in STATISTICS} == \
            {name: expected[name] for name in STATISTICS}, i


def test_a_shortlist_comes_back_row_by_row(monkeypatch):
    rng = np.random.default_rng(6)
    references = np.array([barcode(rng, 120) for _ in range(5)], dtype=bytes)
    queries = [references[3].decode()[10:110], references[1].decode()]
    shortlist = np.array([[0, 3, 4], [1, 2, 3]])
    statistics = align_shortlist(queries, shortlist, references)
    identity, coverage = statistics.identity.reshape(2, 3), statistics.query_coverage.reshape(2, 3)
    assert identity[0, 1] == identity[1, 0] == 100 and coverage[0, 1] == coverage[1, 0] == 100
    # unrelated barcodes: free end gaps let a few bases overlap at a high identity, over a sliver of the query
    assert (coverage[[0, 0, 1, 1], [0, 2, 1, 2]] < 10).all()
    monkeypatch.setattr(alignment, "PAIRS_PER_BLOCK", 1)  # one query (its whole shortlist) at a time
    blocked = align_shortlist(queries, shortlist, references)
    for field in fields(statistics):
        assert getattr(blocked, field.name).tolist() == getattr(statistics, field.name).tolist(), field.name
    assert len(align_shortlist([], np.zeros((0, 3), np.int64), references).score) == 0
    with pytest.raises(ValueError, match=r"shortlist must be \(n_queries=2, h\)"):
        align_shortlist(queries, shortlist[:1], references)
    with pytest.raises(ValueError, match="2 queries but 1 references"):
        align_pairs(queries, queries[:1])


def smith_waterman(query: str, reference: str) -> int:
    """The best local score with a linear gap of LOCAL_GAP a base, cell by cell (the plain definition)."""
    scores = substitution_scores()
    previous = [0] * (len(reference) + 1)
    best = 0
    for letter in query.encode():
        current = [0]
        for j, other in enumerate(reference.encode(), start=1):
            current.append(max(0, previous[j - 1] + int(scores[letter, other]), previous[j] - LOCAL_GAP,
                               current[j - 1] - LOCAL_GAP))
        best = max(best, *current)
        previous = current
    return best


def test_local_scores_keep_the_best_matching_stretch_and_equal_the_plain_definition(monkeypatch):
    rng = np.random.default_rng(7)
    core = barcode(rng, 90)
    references = [barcode(rng, 30) + core + barcode(rng, 30), core[:60], substitute(core, [45]),
                  core[:40] + core[41:], barcode(rng, 90), core[:45] + "N" + core[46:]]
    stored = np.array(references, dtype=bytes)
    queries = [barcode(rng, 25) + core + barcode(rng, 25), core]
    candidates = np.array([[0, 1, 2, 3, 4, 5], [5, 4, 3, 2, 1, 0]])
    scores = local_scores(queries, candidates, stored, threads=2)
    assert scores.shape == (2, 6) and scores.dtype == np.int32
    # divergent flanks cost nothing: the shared 90 bases score at least as if alone (a flank base may match)
    assert scores[1, 5] == 90 * MATCH and scores[0, 0] >= 90 * MATCH
    assert scores[1, 4] == 60 * MATCH  # a reference covering part of the query: that part
    assert scores[1, 0] == 89 * MATCH  # an ambiguity code scores 0, never a mismatch
    for i, query in enumerate(queries):
        assert scores[i].tolist() == [smith_waterman(query, references[j]) for j in candidates[i]], i
    monkeypatch.setattr(alignment, "PAIRS_PER_BLOCK", 1)  # one query a task
    assert local_scores(queries, candidates, stored, threads=1).tolist() == scores.tolist()
    assert local_scores([], np.zeros((0, 6), np.int64), stored).shape == (0, 6)
    with pytest.raises(ValueError, match=r"candidates must be \(n_queries=2, m\)"):
        local_scores(queries, candidates[:1], stored)
