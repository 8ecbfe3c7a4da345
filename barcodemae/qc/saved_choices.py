"""What ``eval/qc.py`` saves in the model folders it writes, for ``barcodemae qc`` to read back: the read
corrector's task name and the detector's verdict threshold, compared in log space.

Why its own module: ``barcodemae qc`` checks a folder's config and converts a ``--threshold`` before it loads any
model, and without a model never loads one; keeping these rules apart from the torch code of
:mod:`barcodemae.qc.inference` lets the translation check start without torch or transformers.
"""

from __future__ import annotations

import numpy as np

READ_CORRECTION_TASK = "read_correction"
"""``config.finetuning_task`` of a model fine-tuned for read correction (set by ``eval/qc.py``): an ENBED
pretraining folder has the same architecture but generates span-corruption targets, not corrected reads."""
VERDICT_THRESHOLD_KEY = "verdict_clean_nll_threshold"
"""The detector config's key for the threshold ``eval/qc.py`` chose on validation reads (a :func:`flag_reads`
threshold): ``barcodemae qc``'s default."""


def flag_reads(clean_log_probability: np.ndarray, clean_nll_threshold: float) -> np.ndarray:
    """``(n,)`` bool: reads whose negative log-probability of being clean exceeds ``clean_nll_threshold``.

    A threshold ``t`` on ``error_score`` is ``-log(1 - t)`` here (:func:`clean_nll_threshold`); comparing in log
    space keeps thresholds near ``error_score = 1`` (where long reads' scores lie) meaningful.
    """
    return -np.asarray(clean_log_probability, dtype=np.float64) > clean_nll_threshold


def clean_nll_threshold(error_score_threshold: float) -> float:
    """The :func:`flag_reads` threshold equal to an ``error_score`` threshold in ``[0, 1]`` (1 flags nothing)."""
    if not 0 <= error_score_threshold <= 1:
        raise ValueError(f"an error_score threshold is a probability in [0, 1], got {error_score_threshold}")
    return float(-np.log1p(-error_score_threshold)) if error_score_threshold < 1 else float("inf")


DEFAULT_CLEAN_NLL_THRESHOLD = clean_nll_threshold(0.5)
"""The verdict threshold of a detector folder that names none: ``error_score > 0.5``."""


__all__ = ["DEFAULT_CLEAN_NLL_THRESHOLD", "READ_CORRECTION_TASK", "VERDICT_THRESHOLD_KEY", "clean_nll_threshold",
           "flag_reads"]
