"""Call levels for identification: is a query's best match close enough to name the species, only the genus, or
nothing?

Why: a nearest neighbour always exists, so a bare top hit overstates what is known about a specimen of a species
missing from the library. BOLD's identification engine answers with a species-level match only above a high
similarity and falls back to a genus-level one below it; here the two similarity thresholds are fitted on labelled
calibration queries (BIOSCAN-5M's ``val``: species present in the library; ``val_unseen``: species absent, genus
present) and stored in the index, so every later query gets the same rule.

The rule: with ``s`` the cosine similarity of the nearest reference, call the species when ``s >= species``, else
the genus when ``s >= genus``, else nothing. The species threshold is fitted first, on its own: it maximises the
calibration queries' right minus wrong species calls (a call is right when the voted species is the query's), so
the species is named wherever that is more often right than wrong. The genus threshold then maximises right minus
wrong genus calls among the queries below it. Judging a species call against a genus call instead would never name
a species: the genus is right whenever the species is. Between equally good thresholds, the finer call wins.

This is the rule of ``identify query --align 0``; with alignment, calls come from percent identity
(:mod:`barcodemae.identity_calls`). Either way a call is three :class:`CallColumns`: the level, the taxon named
and the rule that made it, so every output row says why it names what it names.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass

import numpy as np

CALL_LEVELS: tuple[str, ...] = ("species", "genus", "family", "order", "none")
"""Every level a call can have, finest first (the calibrated similarity rule uses species, genus and none)."""
UNCALIBRATED = "uncalibrated"
"""The ``call_rule`` of a query that gets no call because nothing can make one: no alignment and no calibration."""


@dataclass(frozen=True)
class CallColumns:
    """The call of each of ``n`` queries, ``(n,)`` object arrays: level (:data:`CALL_LEVELS`), the taxon named
    (``None`` for no call) and the rule that made it (``call_rule``)."""

    level: np.ndarray
    taxon: np.ndarray
    rule: np.ndarray

    @classmethod
    def uncalibrated(cls, count: int) -> CallColumns:
        """No call for ``count`` queries, saying why: neither identity nor calibrated thresholds to make one."""
        return cls(np.full(count, "none", object), np.full(count, None, object), np.full(count, UNCALIBRATED, object))


@dataclass(frozen=True)
class CallThresholds:
    """Similarity thresholds of the species and genus calls (``species >= genus``), as fitted and measured."""

    species: float
    genus: float
    num_calibration_queries: int = 0
    calibration_score: float = 0.0
    """(correct calls - wrong calls) / queries on the calibration set, with these thresholds."""

    def __post_init__(self) -> None:
        if not self.species >= self.genus:
            raise ValueError(f"the species threshold ({self.species}) must not be below the genus one ({self.genus})")

    def levels(self, top1_similarity: np.ndarray) -> np.ndarray:
        """``(n,)`` call level per query (:data:`CALL_LEVELS`) from its nearest reference's similarity ``(n,)``."""
        similarity = np.asarray(top1_similarity, dtype=np.float64)
        return np.where(similarity >= self.species, "species", np.where(similarity >= self.genus, "genus", "none"))

    def calls(self, top1_similarity: np.ndarray, voted_species: np.ndarray, voted_genus: np.ndarray) -> CallColumns:
        """The calls of ``n`` queries from their nearest reference's similarity and their neighbours' votes
        ``(n,)``: the voted species at a species level, the voted genus at a genus level."""
        levels = self.levels(top1_similarity)
        taxa = np.where(levels == "species", voted_species, np.where(levels == "genus", voted_genus, None))
        rules = np.where(levels == "none", f"calibrated_similarity<{self.genus:.4f}",
                         np.where(levels == "species", f"calibrated_similarity>={self.species:.4f}",
                                  f"calibrated_similarity>={self.genus:.4f}"))
        return CallColumns(levels.astype(object), taxa.astype(object), rules.astype(object))

    def to_dict(self) -> dict[str, float | int]:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, float | int]) -> CallThresholds:
        return cls(**values)


def fit_call_thresholds(
    top1_similarity: np.ndarray, species_correct: np.ndarray, genus_correct: np.ndarray
) -> CallThresholds:
    """The species threshold, then the genus threshold, each maximising right minus wrong calls, in ``O(n log n)``.

    Args:
        top1_similarity: ``(n,)`` similarity of each calibration query's nearest reference.
        species_correct: ``(n,)`` bool, the voted species is the query's (always False for a species absent from
            the library).
        genus_correct: ``(n,)`` bool, the voted genus is the query's.

    Candidate thresholds are the observed similarities (a threshold above all of them calls nothing at that
    level). With queries sorted by similarity, descending, calling the species for the first ``i`` scores
    ``S[i]`` and the genus for the next ``j - i`` adds ``G[j] - G[i]`` (``S``, ``G``: prefix sums of +1 / -1 per
    query); ``i`` maximises ``S``, then ``j >= i`` maximises ``G``.
    """
    similarity = np.asarray(top1_similarity, dtype=np.float64)
    species_ok = np.asarray(species_correct, dtype=bool)
    genus_ok = np.asarray(genus_correct, dtype=bool)
    if not similarity.ndim == 1 or not len(similarity) == len(species_ok) == len(genus_ok):
        raise ValueError("top1_similarity, species_correct and genus_correct must be 1-D and of equal length")
    if len(similarity) == 0:
        raise ValueError("calibration needs at least one labelled query")
    order = np.argsort(-similarity, kind="stable")
    similarity, species_ok, genus_ok = similarity[order], species_ok[order], genus_ok[order]
    species_gain = np.concatenate([[0], np.cumsum(np.where(species_ok, 1, -1))])
    genus_gain = np.concatenate([[0], np.cumsum(np.where(genus_ok, 1, -1))])
    # a cut after position i is only possible between distinct similarities (ties get the same call)
    cuts = np.flatnonzero(np.concatenate([[True], similarity[1:] < similarity[:-1], [True]]))
    i = _last_argmax(species_gain[cuts])  # ties: the finer call (more species calls)
    j = i + _last_argmax(genus_gain[cuts[i:]])  # ties: more genus calls rather than none
    species_cut, genus_cut = cuts[i], cuts[j]
    score = species_gain[species_cut] + genus_gain[genus_cut] - genus_gain[species_cut]
    return CallThresholds(
        species=_threshold(similarity, species_cut),
        genus=_threshold(similarity, genus_cut),
        num_calibration_queries=len(similarity),
        calibration_score=float(score) / len(similarity),
    )


def _last_argmax(values: np.ndarray) -> int:
    """Index of the last occurrence of the largest value."""
    return len(values) - 1 - int(np.argmax(values[::-1]))


def _threshold(descending_similarity: np.ndarray, cut: int) -> float:
    """The threshold that calls the first ``cut`` queries: their lowest similarity; above all for ``cut == 0``."""
    if cut == 0:
        return float(np.nextafter(descending_similarity[0], np.inf))
    return float(descending_similarity[cut - 1])


def call_report(levels: np.ndarray, correct: Mapping[str, np.ndarray]) -> dict[str, float | int | None]:
    """Share of queries per call level and the precision of each level's calls: how far a call can be trusted.

    ``levels`` ``(n,)`` (:data:`CALL_LEVELS`); ``correct``: level -> ``(n,)`` bool, whether a call at that level
    would be right for each query (for the calibrated rule, as in :func:`fit_call_thresholds`: species and genus).
    Reports ``<level>_call_share`` and ``<level>_call_precision`` for each level of ``correct`` (precision ``None``
    where that level made no call), then ``none_call_share``.
    """
    levels = np.asarray(levels)
    report: dict[str, float | int | None] = {"num_queries": len(levels)}
    for level, right in (*correct.items(), ("none", None)):
        chosen = levels == level
        report[f"{level}_call_share"] = float(chosen.mean()) if len(levels) else 0.0
        if right is not None:
            report[f"{level}_call_precision"] = float(np.asarray(right, bool)[chosen].mean()) if chosen.any() else None
    return report


__all__ = ["CALL_LEVELS", "UNCALIBRATED", "CallColumns", "CallThresholds", "call_report", "fit_call_thresholds"]
