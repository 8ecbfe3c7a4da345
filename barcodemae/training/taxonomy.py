"""Taxon labels of the pretraining rows for taxonomy-aware pretraining (BarcodeMAE+, issue #28), and the guard
that keeps them from the evaluation splits.

Why a guard: the open-world evaluation (1-NN genus of unseen species, BIN clustering, the periodic probe) scores
embeddings against the labels of ``val*``, ``test*`` and ``*unseen*``; a taxonomy term trained on those labels
would teach the encoder the answers. Labels come only from the pretraining split(s) of ``--split``.

Why dense class ids: the run's :class:`~barcodemae.data.LabelVocabulary` names every taxon of the whole file,
evaluation splits included. The labels here are renumbered ``0..C-1`` over the taxa present in the pretraining rows
(in the vocabulary's sorted-name order), so the ``"ce"`` head has one output per taxon it trains on and its size
does not depend on what the evaluation splits hold.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, NamedTuple

import numpy as np

from barcodemae.data.splits import resolve_splits

if TYPE_CHECKING:  # the argument checks import the guard without the data stack
    from .data import TrainingData


def leaking_splits(split_spec: str) -> list[str]:
    """The partitions of ``split_spec`` (``+``-joined names or meta-splits) whose labels an evaluation scores:
    ``val*``, ``test*`` and ``*unseen*``."""
    return [
        name for name in resolve_splits(split_spec) if "unseen" in name or name.startswith(("val", "test"))
    ]


def check_taxonomy_splits(split_spec: str) -> None:
    """Refuse taxonomy labels from any evaluation partition: raise :class:`ValueError` naming them."""
    leaking = leaking_splits(split_spec)
    if leaking:
        raise ValueError(
            f"taxonomy-aware pretraining reads the labels of --split {split_spec!r}, which includes "
            f"{', '.join(leaking)}: the evaluation scores against those labels, so training on them would leak it; "
            "pretrain on pretraining splits only (e.g. pretrain+other_heldout)"
        )


class TaxonLabels(NamedTuple):
    """Labels of the pretraining rows, for the stream and the model (and ``summary.json``)."""

    labels: np.ndarray
    """``(num_rows,)`` int64 dense taxon ids, -1 for a row without a name at the rank."""
    num_classes: int
    """Taxa among the labelled rows: ``config.taxonomy_num_classes`` for the ``"ce"`` head."""
    num_labelled_rows: int
    """Rows with a label."""


def dense_labels(ids: np.ndarray) -> TaxonLabels:
    """Vocabulary ids ``(num_rows,)`` (-1 unlabelled) renumbered ``0..C-1`` in increasing id order."""
    ids = np.asarray(ids, dtype=np.int64)
    labelled = ids >= 0
    present, dense = np.unique(ids[labelled], return_inverse=True)
    labels = np.full(len(ids), -1, dtype=np.int64)
    labels[labelled] = dense
    return TaxonLabels(labels, len(present), int(labelled.sum()))


def pretraining_taxon_labels(
    data: TrainingData, split: str, rank: str, sample_size: int | None = None, seed: int = 0
) -> TaxonLabels:
    """The ``rank`` labels of the rows ``data.source(split, sample_size=sample_size, seed=seed)`` reads, in its
    order (row ``i`` of the pretraining source has label ``labels[i]``), via the run's label vocabulary.

    Refuses evaluation splits (:func:`check_taxonomy_splits`).
    """
    check_taxonomy_splits(split)
    rows = data.select_rows(split, sample_size=sample_size, seed=seed)
    names = data.dataset.data.column(rank).take(rows)
    return dense_labels(data.label_vocab.encode(rank, names))


__all__ = ["TaxonLabels", "check_taxonomy_splits", "dense_labels", "leaking_splits", "pretraining_taxon_labels"]
