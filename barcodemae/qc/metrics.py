"""Evaluation of barcode quality control against injected errors: per-base precision / recall / F1 per error type
and per-record AUROC.

Why: an error detector (ENBED, issue #15) and the translation baseline (:mod:`barcodemae.qc.translation`) are
compared on the same ground truth, the labels of :mod:`barcodemae.qc.error_injection`.

Units. A read of length ``L`` has ``L`` bases, each labelled :data:`~barcodemae.qc.error_injection.BASE_LABELS`,
and ``L + 1`` boundaries, each with or without a deletion. A prediction is the same pair: ``(L,)`` labels and
``(L + 1,)`` deletion flags.

* Per label class (:data:`LABEL_CLASSES`): ``substitution``, ``insertion`` and ``n`` are scored on bases whose
  label is 1, 2, 3; ``deletion`` on boundaries. These are what a model outputs, so homopolymer slips count here as
  the insertions and deletions they are.
* ``overall``: micro-average of the four classes (a unit is a true positive only with the right label).
* ``detection``: type-agnostic, over all bases and boundaries: is the unit flagged as any error? The translation
  baseline cannot tell types apart, so compare it with a model on this one.
* Per event kind (:data:`~barcodemae.qc.error_injection.ERROR_KINDS`, ``homopolymer`` included): recall only.
  Every labelled unit is attributed to the event at its read position
  (:func:`~barcodemae.qc.error_injection.event_units`): a homopolymer slip's inserted base or deletion boundary
  counts for ``homopolymer``, not ``insertion`` / ``deletion``. A unit is found when predicted with its label.
  Predictions carry no event kind, so a false positive cannot be charged to one kind: precision is per label
  class only.

Undefined ratios (no true units, or no predictions) are ``nan``, not 0: "nothing to find" is not "found nothing".
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from sklearn.metrics import roc_auc_score

from .error_injection import ERROR_KINDS, INSERTED, N_BASE, SUBSTITUTED, CorruptedRead, event_units

LABEL_CLASSES: tuple[str, ...] = ("substitution", "insertion", "deletion", "n")
_BASE_CLASSES = {"substitution": SUBSTITUTED, "insertion": INSERTED, "n": N_BASE}


@dataclass(frozen=True)
class PRF:
    """Precision, recall and F1 of ``predicted`` positive units against ``support`` true ones."""

    precision: float
    recall: float
    f1: float
    true_positives: int
    predicted: int
    support: int

    @classmethod
    def from_counts(cls, true_positives: int, predicted: int, support: int) -> PRF:
        precision = true_positives / predicted if predicted else float("nan")
        recall = true_positives / support if support else float("nan")
        f1 = 2 * true_positives / (predicted + support) if predicted + support else float("nan")
        return cls(precision, recall, f1, int(true_positives), int(predicted), int(support))


def precision_recall_f1(truth: np.ndarray, predicted: np.ndarray) -> PRF:
    """:class:`PRF` of two boolean arrays of the same shape."""
    truth, predicted = np.asarray(truth, dtype=bool), np.asarray(predicted, dtype=bool)
    if truth.shape != predicted.shape:
        raise ValueError(f"truth {truth.shape} and predicted {predicted.shape} must have the same shape")
    return PRF.from_counts(int((truth & predicted).sum()), int(predicted.sum()), int(truth.sum()))


@dataclass(frozen=True)
class BaseLevelReport:
    """Per-base scores of one set of predictions (see the module docstring)."""

    per_class: dict[str, PRF]
    """Keyed by :data:`LABEL_CLASSES`."""
    overall: PRF
    detection: PRF
    recall_by_kind: dict[str, float]
    """Keyed by ``ERROR_KINDS``; ``nan`` for a kind with no units."""


def base_level_metrics(
    reads: Sequence[CorruptedRead],
    predicted_labels: Sequence[np.ndarray],
    predicted_deletions: Sequence[np.ndarray] | None = None,
) -> BaseLevelReport:
    """Score per-base predictions against the injected errors of ``reads``.

    Args:
        reads: the corrupted reads (truth).
        predicted_labels: per read, ``(len(read),)`` predicted base labels (0..3).
        predicted_deletions: per read, ``(len(read) + 1,)`` bool predicted deletion boundaries; ``None`` for a
            method that predicts none (all False).
    """
    if len(predicted_labels) != len(reads) or (predicted_deletions is not None
                                               and len(predicted_deletions) != len(reads)):
        raise ValueError(f"need one prediction per read ({len(reads)} reads)")
    truth_bases, truth_boundaries, pred_bases, pred_boundaries, kind_bases, kind_boundaries = [], [], [], [], [], []
    for index, read in enumerate(reads):
        labels = np.asarray(predicted_labels[index])
        deletions = (np.zeros(len(read.read) + 1, dtype=bool) if predicted_deletions is None
                     else np.asarray(predicted_deletions[index], dtype=bool))
        if labels.shape != read.base_labels.shape or deletions.shape != read.deletion_after.shape:
            raise ValueError(f"read {index}: predictions must have shapes {read.base_labels.shape} (labels) and "
                             f"{read.deletion_after.shape} (deletions), got {labels.shape} and {deletions.shape}")
        truth_bases.append(read.base_labels)
        truth_boundaries.append(read.deletion_after)
        pred_bases.append(labels)
        pred_boundaries.append(deletions)
        base_kind, boundary_kind = event_units(read)
        kind_bases.append(base_kind)
        kind_boundaries.append(boundary_kind)
    truth_base, pred_base = _concatenate(truth_bases, np.int8), _concatenate(pred_bases, np.int8)
    truth_boundary, pred_boundary = _concatenate(truth_boundaries, bool), _concatenate(pred_boundaries, bool)
    kind_base, kind_boundary = _concatenate(kind_bases, np.int8), _concatenate(kind_boundaries, np.int8)

    per_class = {name: precision_recall_f1(truth_base == label, pred_base == label)
                 for name, label in _BASE_CLASSES.items()}
    per_class["deletion"] = precision_recall_f1(truth_boundary, pred_boundary)
    per_class = {name: per_class[name] for name in LABEL_CLASSES}
    overall = PRF.from_counts(*(sum(getattr(prf, field) for prf in per_class.values())
                                for field in ("true_positives", "predicted", "support")))
    detection = precision_recall_f1(np.concatenate([truth_base != 0, truth_boundary]),
                                    np.concatenate([pred_base != 0, pred_boundary]))
    found_base = pred_base == truth_base
    recall_by_kind = {}
    for index, kind in enumerate(ERROR_KINDS):
        units = int((kind_base == index).sum() + (kind_boundary == index).sum())
        found = int((found_base & (kind_base == index)).sum() + (pred_boundary & (kind_boundary == index)).sum())
        recall_by_kind[kind] = found / units if units else float("nan")
    return BaseLevelReport(per_class, overall, detection, recall_by_kind)


def _concatenate(arrays: list[np.ndarray], dtype: type) -> np.ndarray:
    return np.concatenate(arrays).astype(dtype, copy=False) if arrays else np.zeros(0, dtype=dtype)


def record_truth(reads: Sequence[CorruptedRead]) -> np.ndarray:
    """``(n,)`` bool: the read has at least one injected error."""
    return np.array([read.has_errors for read in reads], dtype=bool)


def record_auroc(scores: np.ndarray, has_errors: np.ndarray) -> float:
    """Area under the ROC curve of per-record error ``scores`` ``(n,)`` (higher = more likely erroneous) against
    the truth ``has_errors`` ``(n,)`` bool. Ties between a clean and an erroneous record count one half."""
    scores, has_errors = np.asarray(scores, dtype=np.float64), np.asarray(has_errors, dtype=bool)
    if scores.shape != has_errors.shape or scores.ndim != 1:
        raise ValueError(f"scores {scores.shape} and has_errors {has_errors.shape} must be 1-D of the same length")
    if has_errors.all() or not has_errors.any():
        raise ValueError(f"AUROC needs both clean and erroneous records; all {len(has_errors)} records are "
                         f"{'erroneous' if has_errors.any() else 'clean'} (set ErrorRates.clean_fraction in (0, 1))")
    return float(roc_auc_score(has_errors, scores))


def best_threshold(scores: np.ndarray, has_errors: np.ndarray) -> float:
    """The threshold ``t`` whose verdicts ``scores > t`` have the highest F1 against ``has_errors`` (both ``(n,)``).

    Every distinct cut of the sorted scores is tried at once (cumulative true positives, no loop); ``t`` lies halfway
    between the last score flagged and the first one not (below the lowest score when flagging all is best).
    Choose it on validation reads, then apply it to the test reads.
    """
    scores, has_errors = np.asarray(scores, dtype=np.float64), np.asarray(has_errors, dtype=bool)
    if scores.shape != has_errors.shape or scores.ndim != 1 or not has_errors.any():
        raise ValueError("best_threshold needs 1-D scores and truths of the same length with at least one error")
    order = np.argsort(-scores, kind="stable")
    ordered, truth = scores[order], has_errors[order]
    true_positives = np.cumsum(truth)
    flagged = np.arange(1, len(scores) + 1)
    f1 = 2 * true_positives / (flagged + has_errors.sum())
    cuts = np.append(ordered[1:] < ordered[:-1], True)  # flag the top k only where score k+1 is strictly lower
    best = int(np.argmax(np.where(cuts, f1, -1.0)))
    if best == len(scores) - 1:
        return float(ordered[-1] - 1.0)
    return float((ordered[best] + ordered[best + 1]) / 2)


def verdict_metrics(predicted: np.ndarray, has_errors: np.ndarray) -> PRF:
    """:class:`PRF` of per-record verdicts ``(n,)`` bool (True = has errors) against the truth ``(n,)``."""
    return precision_recall_f1(has_errors, predicted)


__all__ = [
    "LABEL_CLASSES",
    "PRF",
    "BaseLevelReport",
    "base_level_metrics",
    "best_threshold",
    "precision_recall_f1",
    "record_auroc",
    "record_truth",
    "verdict_metrics",
]
