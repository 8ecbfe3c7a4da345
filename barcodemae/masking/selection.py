"""Exact per-sample masking budgets and the one vectorised "take the first ``budget`` tokens" step.

Every strategy expresses its choice as a per-token *priority key* (lower = masked first); this module turns keys
into a boolean mask holding exactly ``budget[b]`` tokens per row. One selection rule for all strategies is what
makes budgets exact (spans that overshoot are trimmed from their tail, spans that undershoot are topped up at
random), so MAE batches of equal-length barcodes always have equal visible counts.
"""

from __future__ import annotations

import numpy as np

#: Key of tokens that may never be masked ([CLS], [SEP], [PAD], [MASK]).
NEVER = np.inf


def mask_budget(maskable: np.ndarray, mask_ratio: float | np.ndarray) -> np.ndarray:
    """``round(mask_ratio * n_maskable)`` per row, kept in ``[1, n_maskable - 1]``.

    Same rule as the model's own ``random_token_mask``: at least one token masked (there is something to
    predict) and one visible (the MAE encoder never sees an empty sequence).
    """
    counts = maskable.sum(axis=1)
    budget = np.rint(counts * np.asarray(mask_ratio, dtype=np.float64)).astype(np.int64)
    return np.minimum(np.maximum(budget, 1), np.maximum(counts - 1, 0))


def select_by_key(keys: np.ndarray, maskable: np.ndarray, budget: np.ndarray) -> np.ndarray:
    """Mask the ``budget[b]`` maskable tokens with the smallest keys in each row (ties: stable, by position)."""
    keys = np.where(maskable, keys, NEVER)
    order = np.argsort(keys, axis=1, kind="stable")
    chosen = np.arange(keys.shape[1])[None, :] < budget[:, None]
    mask = np.zeros(keys.shape, dtype=bool)
    np.put_along_axis(mask, order, chosen, axis=1)
    return mask & maskable
