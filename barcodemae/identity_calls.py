"""Aligned hits ranked as BLAST ranks them, and calls in the field's terms: species, genus, family, order or none.

Why: biologists name a specimen from its best alignment's percent identity with thresholds they know (BOLDigger's
defaults: 97% species, 95% genus, 90% family, 85% order), not from an embedding's cosine. ``identify --align N``
aligns each query in full to the ``N`` of its embedding neighbours with the best local alignment score
(:mod:`barcodemae.alignment`); here the hits are ranked (local score, as BLAST's bit score orders hits, then
identity, then embedding similarity) and the call is made from the top hit's identity. Ranking by local score
rather than identity names the genus of a species absent from the library more often (docs/results.md, "Screen,
then align").

Only hits whose alignment covers at least :data:`MIN_QUERY_COVERAGE` percent of the query support a call: free end
gaps let two unrelated barcodes overlap by a few bases at 100% identity, which says nothing. They rank after the
covering hits; a query whose best hit does not cover it gets no call (``call_rule`` ``query_coverage<50``).

The rule, per query, with ``t`` the top hit's identity: the finest rank whose threshold ``t`` reaches is the level
the identity supports, and the call names the top hit's taxon at that rank, unless the hits at or above that
rank's threshold disagree on the rank (two species within 97%: the library cannot tell them apart) or the top hit
has no name at that rank; then the call moves one rank up, where the same test is made with that rank's
threshold, and so on. ``call_rule`` says what happened, e.g. ``identity>=97``, ``identity>=97, species_conflict ->
genus``, ``identity>=95, genus_unnamed -> family``, ``identity<85``. A hit without a name at a rank neither agrees
nor disagrees.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import astuple, dataclass
from itertools import pairwise
from typing import TYPE_CHECKING

import numpy as np

from barcodemae.call_levels import CallColumns

if TYPE_CHECKING:
    from barcodemae.alignment import AlignmentStatistics

IDENTITY_RANKS: tuple[str, ...] = ("species", "genus", "family", "order")
"""The ranks an identity call can name, finest first (one threshold each)."""
MIN_QUERY_COVERAGE = 50.0
"""Percent of the query a hit's aligned columns must cover for its identity to count."""


@dataclass(frozen=True)
class IdentityThresholds:
    """Percent identity at or above which the top hit can name each rank; never increasing from species to order."""

    species: float
    genus: float
    family: float
    order: float

    def __post_init__(self) -> None:
        values = astuple(self)
        if not all(0.0 <= value <= 100.0 for value in values):
            raise ValueError(f"--thresholds {self.text()}: each must be a percent identity in 0-100")
        if any(finer < coarser for finer, coarser in pairwise(values)):
            raise ValueError(f"--thresholds {self.text()}: must not increase from species to genus, family, order "
                             "(e.g. 97,95,90,85)")

    @classmethod
    def parse(cls, text: str) -> IdentityThresholds:
        """``"97,95,90,85"`` (species, genus, family, order) -> thresholds; a bad list is a one-line error."""
        parts = [part.strip() for part in str(text).split(",")]
        try:
            values = [float(part) for part in parts]
        except ValueError:
            values = []
        if len(values) != len(IDENTITY_RANKS) or not all(np.isfinite(values)):
            raise ValueError(f"--thresholds {text}: give four percent identities, for species, genus, family and "
                             "order, e.g. 97,95,90,85")
        return cls(*values)

    def text(self) -> str:
        return ",".join(f"{value:g}" for value in astuple(self))

    def for_rank(self, rank: str) -> float:
        return float(getattr(self, rank))


@dataclass(frozen=True)
class RankedHits:
    """Each query's hits, ``n`` queries by ``h``, best first (as :func:`rank_hits` orders them, or by embedding
    similarity alone without alignment)."""

    reference: np.ndarray
    """``(n, h)`` reference rows of the index."""
    similarity: np.ndarray
    """``(n, h)`` embedding cosine similarity of each hit."""
    alignment: AlignmentStatistics | None
    """Flattened ``(n * h,)``: hit ``j`` of query ``i`` is pair ``i * h + j``; ``None``: hits by embedding only."""
    local_score: np.ndarray | None = None
    """``(n, h)`` local alignment score (:func:`barcodemae.alignment.local_scores`); ``None`` without alignment."""

    @property
    def identity(self) -> np.ndarray:
        """``(n, h)`` percent identity."""
        return self.alignment.identity.reshape(self.reference.shape)

    @property
    def covering(self) -> np.ndarray:
        """``(n, h)`` bool: the hit covers enough of the query (:data:`MIN_QUERY_COVERAGE`) to support a call."""
        return self.alignment.query_coverage.reshape(self.reference.shape) >= MIN_QUERY_COVERAGE

    def head(self, count: int) -> RankedHits:
        """The best ``count`` hits of each query."""
        n, h = self.reference.shape
        count = min(count, h)
        flat = (np.arange(n)[:, None] * h + np.arange(count)).ravel()
        return RankedHits(self.reference[:, :count], self.similarity[:, :count],
                          None if self.alignment is None else self.alignment.take(flat),
                          None if self.local_score is None else self.local_score[:, :count])


def rank_hits(shortlist: np.ndarray, similarity: np.ndarray, alignment: AlignmentStatistics,
              local_score: np.ndarray) -> RankedHits:
    """Order each query's shortlist ``(n, h)``: hits covering the query first, then by local alignment score, then
    identity, then embedding similarity, then shortlist position.

    ``alignment`` holds the pairs flattened row by row (``(n * h,)``, as
    :func:`barcodemae.alignment.align_shortlist` returns them); ``local_score`` ``(n, h)``.
    """
    n, h = shortlist.shape
    unranked = RankedHits(shortlist, similarity, alignment, local_score)
    order = np.lexsort((np.broadcast_to(np.arange(h), (n, h)), -similarity, -unranked.identity, -local_score,
                        ~unranked.covering), axis=-1)
    flat = (order + np.arange(n)[:, None] * h).ravel()
    return RankedHits(np.take_along_axis(shortlist, order, axis=1), np.take_along_axis(similarity, order, axis=1),
                      alignment.take(flat), np.take_along_axis(local_score, order, axis=1))


def identity_calls(hits: RankedHits, names: Mapping[str, np.ndarray], thresholds: IdentityThresholds) -> CallColumns:
    """The call of each query from its ranked hits.

    Args:
        hits: each query's hits, as :func:`rank_hits` orders them.
        names: rank -> ``(n, h)`` object array of the hits' taxa (``None``: unnamed); a rank of
            :data:`IDENTITY_RANKS` the references do not have counts as unnamed.
        thresholds: the identity each rank needs.
    """
    covering = hits.covering
    identity = np.where(covering, hits.identity, -1.0)  # a hit that does not cover the query supports nothing
    n = len(identity)
    top = identity[:, 0]
    thresholds_by_rank = np.array([thresholds.for_rank(rank) for rank in IDENTITY_RANKS])
    # supported[i]: the finest rank index whose threshold the top hit reaches (len(IDENTITY_RANKS): none)
    reached = top[:, None] >= thresholds_by_rank[None, :]
    supported = np.where(reached.any(axis=1), reached.argmax(axis=1), len(IDENTITY_RANKS))
    outcome = np.zeros((n, len(IDENTITY_RANKS)), np.int8)  # 0 callable, 1 conflict, 2 unnamed
    taxa = np.empty((n, len(IDENTITY_RANKS)), object)
    for column, rank in enumerate(IDENTITY_RANKS):
        labels = names.get(rank)
        if labels is None:
            outcome[:, column] = 2
            continue
        named = np.not_equal(labels, None)
        within = identity >= thresholds_by_rank[column]
        disagree = within & named & (labels != labels[:, :1])
        outcome[:, column] = np.where(~named[:, 0], 2, np.where(disagree.any(axis=1), 1, 0))
        taxa[:, column] = np.where(named[:, 0], labels[:, 0], None)
    callable_at = (outcome == 0) & (np.arange(len(IDENTITY_RANKS))[None, :] >= supported[:, None])
    level_index = np.where(callable_at.any(axis=1), callable_at.argmax(axis=1), len(IDENTITY_RANKS))
    levels = np.array([*IDENTITY_RANKS, "none"], dtype=object)[level_index]
    called = np.where(level_index < len(IDENTITY_RANKS),
                      taxa[np.arange(n), np.minimum(level_index, len(IDENTITY_RANKS) - 1)], None)
    rules = _rules(supported, level_index, outcome, thresholds_by_rank)
    rules[~covering[:, 0]] = f"query_coverage<{MIN_QUERY_COVERAGE:g}"
    return CallColumns(levels, called, rules)


def _rules(supported: np.ndarray, level_index: np.ndarray, outcome: np.ndarray, thresholds: np.ndarray) -> np.ndarray:
    """``(n,)`` ``call_rule`` texts; built once per distinct (supported, called, outcomes) combination."""
    keys = np.column_stack([supported, level_index, outcome])
    unique, inverse = np.unique(keys, axis=0, return_inverse=True)
    texts = []
    for supported_rank, called_rank, *outcomes in unique.tolist():
        if supported_rank == len(IDENTITY_RANKS):
            texts.append(f"identity<{thresholds[-1]:g}")
            continue
        reasons = [f"{IDENTITY_RANKS[r]}_{'conflict' if outcomes[r] == 1 else 'unnamed'}"
                   for r in range(supported_rank, called_rank)]
        called = IDENTITY_RANKS[called_rank] if called_rank < len(IDENTITY_RANKS) else "none"
        text = f"identity>={thresholds[supported_rank]:g}"
        texts.append(text if not reasons else f"{text}, {', '.join(reasons)} -> {called}")
    return np.array(texts, dtype=object)[inverse.ravel()]


__all__ = ["IDENTITY_RANKS", "MIN_QUERY_COVERAGE", "IdentityThresholds", "RankedHits", "identity_calls",
           "rank_hits"]
