"""Calls by percent identity (`barcodemae.identity_calls`): thresholds, the downgrade of a call the hits disagree
on, hits too short to count, and the ranking of hits."""

from __future__ import annotations

import numpy as np
import pytest

from barcodemae.alignment import AlignmentStatistics
from barcodemae.identity_calls import IdentityThresholds, RankedHits, identity_calls, rank_hits

DEFAULT = IdentityThresholds.parse("97,95,90,85")


def statistics(identity: list[list[float]], coverage: list[list[float]] | None = None) -> AlignmentStatistics:
    """Alignments of 1,000 columns with the given percent identities and query coverages, flattened row by row."""
    identity_array = np.asarray(identity, float).ravel()
    covered = np.full(identity_array.shape, 100.0) if coverage is None else np.asarray(coverage, float).ravel()
    size = len(identity_array)
    zeros = np.zeros(size, np.int64)
    thousand = np.full(size, 1000, np.int64)
    return AlignmentStatistics(
        score=zeros, matches=np.round(identity_array * 10).astype(np.int64), mismatches=zeros, gap_opens=zeros,
        aligned_length=thousand, query_start=zeros, query_end=np.round(covered * 10).astype(np.int64),
        reference_start=zeros, reference_end=thousand, query_length=thousand, reference_length=thousand)


def hits(identity: list[list[float]], coverage: list[list[float]] | None = None) -> RankedHits:
    shape = np.asarray(identity).shape
    return RankedHits(np.zeros(shape, np.int64), np.zeros(shape), statistics(identity, coverage))


def taxonomy(species: list[list[str | None]]) -> dict[str, np.ndarray]:
    """Names per rank from species names ``"Genus epithet"`` (family ``F-<genus>``, one order)."""
    species_array = np.array(species, dtype=object)
    genus = np.vectorize(lambda name: None if name is None else name.split()[0], otypes=[object])(species_array)
    family = np.vectorize(lambda name: None if name is None else f"F-{name}", otypes=[object])(genus)
    order = np.where(np.equal(genus, None), None, "Lepidoptera").astype(object)
    return {"species": species_array, "genus": genus, "family": family, "order": order}


def call(identity, species, coverage=None, thresholds=DEFAULT) -> list[tuple[str, str | None, str]]:
    made = identity_calls(hits(identity, coverage), taxonomy(species), thresholds)
    return list(zip(made.level, made.taxon, made.rule))


def test_the_finest_rank_the_top_identity_reaches_is_called():
    identity = [[99.0, 90.0], [96.0, 80.0], [92.0, 80.0], [86.0, 80.0], [80.0, 70.0]]
    species = [["Aus bus", "Cus dus"]] * 5
    assert call(identity, species) == [
        ("species", "Aus bus", "identity>=97"), ("genus", "Aus", "identity>=95"), ("family", "F-Aus", "identity>=90"),
        ("order", "Lepidoptera", "identity>=85"), ("none", None, "identity<85")]


def test_hits_that_disagree_at_the_threshold_downgrade_the_call_one_rank_at_a_time():
    identity = [[99.0, 97.5, 80.0], [99.0, 97.5, 95.5], [99.0, 96.0, 80.0], [99.0, 97.0, 94.0]]
    species = [["Aus bus", "Aus cus", "Xus yus"],   # two species of one genus within 97%: the genus
               ["Aus bus", "Aus cus", "Xus yus"],   # ... another genus (and family) within 95%: the order
               ["Aus bus", "Aus cus", "Xus yus"],   # the other species is below 97%: no conflict
               ["Aus bus", "Aus bus", "Xus yus"]]   # agreeing hits; another genus below 95% does not matter
    assert call(identity, species) == [
        ("genus", "Aus", "identity>=97, species_conflict -> genus"),
        ("order", "Lepidoptera", "identity>=97, species_conflict, genus_conflict, family_conflict -> order"),
        ("species", "Aus bus", "identity>=97"), ("species", "Aus bus", "identity>=97")]
    # the two genera in one family: the family is called
    names = taxonomy([["Aus bus", "Aus cus", "Xus yus"]])
    names["family"] = np.array([["Noctuidae"] * 3], dtype=object)
    made = identity_calls(hits([[99.0, 97.5, 95.5]]), names, DEFAULT)
    assert (made.level[0], made.taxon[0]) == ("family", "Noctuidae")


def test_unnamed_ranks_move_the_call_up_and_unnamed_hits_do_not_disagree():
    identity = [[99.0, 98.0], [99.0, 98.0]]
    species = [[None, "Aus bus"],       # the top hit has no name at all
               ["Aus bus", None]]       # the second hit has none: it neither agrees nor disagrees
    assert call(identity, species) == [
        ("none", None, "identity>=97, species_unnamed, genus_unnamed, family_unnamed, order_unnamed -> none"),
        ("species", "Aus bus", "identity>=97")]
    names = taxonomy([["Aus bus", "Aus cus"]])
    del names["family"]  # references without a family column
    names["genus"] = np.array([["Aus", "Bus"]], dtype=object)
    made = identity_calls(hits([[99.0, 98.0]]), names, DEFAULT)
    assert (made.level[0], made.taxon[0]) == ("order", "Lepidoptera")
    assert made.rule[0] == "identity>=97, species_conflict, genus_conflict, family_unnamed -> order"


def test_a_hit_that_covers_too_little_of_the_query_supports_no_call():
    identity, coverage = [[100.0, 96.0], [100.0, 60.0]], [[4.0, 90.0], [3.0, 2.0]]
    species = [["Aus bus", "Cus dus"], ["Aus bus", "Cus dus"]]
    found = rank_hits(np.array([[0, 1], [2, 3]]), np.zeros((2, 2)), statistics(identity, coverage),
                      np.array([[900, 100], [900, 100]]))
    assert found.reference.tolist() == [[1, 0], [2, 3]]  # the covering hit first, whatever its identity or score
    made = identity_calls(found, taxonomy([["Cus dus", "Aus bus"], species[1]]), DEFAULT)
    assert list(zip(made.level, made.taxon, made.rule)) == [("genus", "Cus", "identity>=95"),
                                                           ("none", None, "query_coverage<50")]


def test_hits_rank_by_local_score_then_identity_then_similarity_then_shortlist_position():
    identity = [[95.0, 99.0, 99.0, 99.0, 98.0]]
    similarity = np.array([[0.9, 0.5, 0.7, 0.7, 0.1]])
    score = np.array([[800, 700, 700, 700, 700]])  # a longer local alignment at lower identity outscores the rest
    found = rank_hits(np.array([[10, 11, 12, 13, 14]]), similarity, statistics(identity), score)
    assert found.reference.tolist() == [[10, 12, 13, 11, 14]]
    assert found.similarity.tolist() == [[0.9, 0.7, 0.7, 0.5, 0.1]]
    assert found.identity.tolist() == [[95.0, 99.0, 99.0, 99.0, 98.0]]
    assert found.local_score.tolist() == [[800, 700, 700, 700, 700]]
    head = found.head(2)
    assert head.reference.tolist() == [[10, 12]] and head.identity.tolist() == [[95.0, 99.0]]
    assert head.local_score.tolist() == [[800, 700]]


def test_configurable_thresholds_and_bad_ones_are_refused_in_one_line():
    assert call([[98.5, 80.0]], [["Aus bus", "Cus dus"]], thresholds=IdentityThresholds.parse("99, 98, 90, 85")) \
        == [("genus", "Aus", "identity>=98")]
    assert IdentityThresholds.parse("97,97,90,80").text() == "97,97,90,80"  # equal neighbours are allowed
    for text, message in (("97,98,90,85", "must not increase from species to genus"),
                          ("101,95,90,85", "each must be a percent identity in 0-100"),
                          ("97,95,90,-1", "each must be a percent identity in 0-100"),
                          ("97,95", "give four percent identities"),
                          ("97,95,x,85", "give four percent identities"),
                          ("97,95,nan,85", "give four percent identities")):
        with pytest.raises(ValueError, match=message) as error:
            IdentityThresholds.parse(text)
        assert str(error.value).startswith("--thresholds ") and "\n" not in str(error.value)
