"""The pretraining data collator: pad a list of tokenized barcodes and choose the tokens to mask.

Output: ``input_ids`` (uncorrupted), ``attention_mask`` and ``masked_positions`` (bool) -- exactly what
``BarcodeMAEForPreTraining.forward`` takes. The model itself applies BERT 80/10/10 corruption in ``mlm`` mode and
drops masked tokens from the encoder in ``mae`` mode, so the collator never rewrites ids.

Everything runs on the padded ``(batch, length)`` numpy array; no Python loop touches tokens or samples.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch.utils.data import get_worker_info

from modeling_barcodemae.configuration_barcodemae import BarcodeMAEConfig

from .curriculum import MaskingCurriculum
from .npmi import NPMITable
from .selection import mask_budget, select_by_key
from .spans import token_base_table
from .strategies import MaskingBatch, MaskingStrategy, build_strategy


def _pad(rows: Sequence[Any], length: int, fill: int, dtype) -> np.ndarray:
    """Right-pad ragged rows into a ``(len(rows), length)`` array with one concatenate and one boolean write."""
    lengths = np.fromiter((len(r) for r in rows), dtype=np.int64, count=len(rows))
    out = np.full((len(rows), length), fill, dtype=dtype)
    if lengths.sum():
        out[np.arange(length)[None, :] < lengths[:, None]] = np.concatenate([np.asarray(r, dtype=dtype) for r in rows])
    return out


class BarcodeMaskingCollator:
    """``collate_fn`` for masked pretraining; see the module docstring.

    Args:
        tokenizer: the :class:`BarcodeTokenizer` that produced ``input_ids`` (any scheme).
        strategy: a name from ``strategies.STRATEGIES`` or a :class:`MaskingStrategy`; ignored (may be ``None``)
            when ``curriculum`` is given, since the curriculum names its strategies.
        mask_ratio: fraction of maskable tokens masked per sample (exact, rounded); a curriculum's ratio schedule
            overrides it. Default: the model config's (``BarcodeMAEConfig.mask_ratio``).
        seed: seeds the masks. In DataLoader workers it is combined with the worker's seed (which differs per
            worker and per epoch and follows ``torch.manual_seed``), so workers never repeat each other's masks.
        curriculum: a :class:`MaskingCurriculum` read at every batch (shared memory, works across workers).
        pad_to_multiple_of: round the padded length up (tensor-core friendly shapes).
        npmi_table: required by ``genemask`` / ``global`` / ``stochastic_global``.
        strategy_kwargs: extra arguments for strategies built from names (e.g. ``{"temperature": 0.2}``).
    """

    def __init__(
        self,
        tokenizer,
        strategy: str | MaskingStrategy | None = "random",
        mask_ratio: float = BarcodeMAEConfig.mask_ratio,
        seed: int = 0,
        curriculum: MaskingCurriculum | None = None,
        pad_to_multiple_of: int | None = None,
        npmi_table: NPMITable | None = None,
        strategy_kwargs: dict[str, Any] | None = None,
    ) -> None:
        if not 0 < mask_ratio < 1:
            raise ValueError(f"mask_ratio must be in (0, 1), got {mask_ratio}")
        if pad_to_multiple_of is not None and pad_to_multiple_of < 1:
            raise ValueError(f"pad_to_multiple_of must be positive, got {pad_to_multiple_of}")
        self.tokenizer = tokenizer
        self.mask_ratio = mask_ratio
        self.seed = seed
        self.curriculum = curriculum
        self.pad_to_multiple_of = pad_to_multiple_of
        self.pad_token_id = tokenizer.pad_token_id
        never = {tokenizer.pad_token_id, tokenizer.cls_token_id, tokenizer.sep_token_id, tokenizer.mask_token_id}
        self.never_masked = np.array(sorted(i for i in never if i is not None), dtype=np.int64)
        kwargs = strategy_kwargs or {}
        if curriculum is not None:
            self.strategy = build_strategy(curriculum.early, npmi_table, **kwargs.get(curriculum.early, {}))
            self.late_strategy = (
                build_strategy(curriculum.late, npmi_table, **kwargs.get(curriculum.late, {}))
                if curriculum.late is not None
                else None
            )
        else:
            if strategy is None:
                raise ValueError("give a masking strategy or a curriculum")
            self.strategy = build_strategy(strategy, npmi_table, **kwargs)
            self.late_strategy = None
        self.base_table = token_base_table(tokenizer)
        lengths = tokenizer.token_lengths()
        self.token_step = float(lengths[lengths > 0].mean()) if (lengths > 0).any() else 1.0
        self._rng = np.random.default_rng(seed)
        self._worker_seed: int | None = None

    # ------------------------------------------------------------------------------------------ randomness
    def _generator(self) -> np.random.Generator:
        """The main-process generator, or one per DataLoader worker (re-seeded when the worker seed changes)."""
        info = get_worker_info()
        if info is not None and info.seed != self._worker_seed:
            self._worker_seed = info.seed
            self._rng = np.random.default_rng(np.random.SeedSequence([self.seed, info.seed]))
        return self._rng

    # ------------------------------------------------------------------------------------------ masking
    def mask_batch(
        self, input_ids: np.ndarray, attention_mask: np.ndarray, rng: np.random.Generator | None = None
    ) -> np.ndarray:
        """Boolean ``(B, L)`` mask for a padded batch (numpy in, numpy out); exact budget per row."""
        rng = self._generator() if rng is None else rng
        input_ids = np.asarray(input_ids, dtype=np.int64)
        maskable = np.asarray(attention_mask).astype(bool) & ~np.isin(input_ids, self.never_masked)
        ratio = self.mask_ratio
        if self.curriculum is not None and self.curriculum.mask_ratio is not None:
            ratio = self.curriculum.mask_ratio
        budget = mask_budget(maskable, ratio)
        real = np.asarray(attention_mask).astype(bool)
        starts, ends = self.tokenizer.nucleotide_spans(np.where(real, input_ids, self.pad_token_id))
        keys = np.empty(input_ids.shape, dtype=np.float64)
        late = np.zeros(input_ids.shape[0], dtype=bool)
        if self.late_strategy is not None:
            late = rng.random(input_ids.shape[0]) < self.curriculum.late_probability
        for strategy, rows in ((self.strategy, ~late), (self.late_strategy, late)):
            if not rows.any():
                continue
            batch = MaskingBatch(
                input_ids=input_ids[rows],
                maskable=maskable[rows],
                budget=budget[rows],
                token_starts=starts[rows],
                token_ends=ends[rows],
                base_table=self.base_table,
                token_step=self.token_step,
            )
            keys[rows] = strategy.keys(batch, rng)
        return select_by_key(keys, maskable, budget)

    def __call__(self, features: Sequence[dict[str, Any]]) -> dict[str, torch.Tensor]:
        if not features:
            raise ValueError("cannot collate an empty batch")
        ids_rows = [f["input_ids"] for f in features]
        length = max(len(r) for r in ids_rows)
        if self.pad_to_multiple_of:
            length = -(-length // self.pad_to_multiple_of) * self.pad_to_multiple_of
        input_ids = _pad(ids_rows, length, self.pad_token_id, np.int64)
        if "attention_mask" in features[0]:
            attention_mask = _pad([f["attention_mask"] for f in features], length, 0, np.int64)
        else:
            attention_mask = _pad([np.ones(len(r), np.int64) for r in ids_rows], length, 0, np.int64)
        if "masked_positions" in features[0]:  # fixed (validation) masks travel with the features
            masked = _pad([f["masked_positions"] for f in features], length, False, bool)
        else:
            masked = self.mask_batch(input_ids, attention_mask)
        return {
            "input_ids": torch.from_numpy(input_ids),
            "attention_mask": torch.from_numpy(attention_mask),
            "masked_positions": torch.from_numpy(masked),
        }


def fixed_validation_masks(
    collator: BarcodeMaskingCollator,
    features: Sequence[dict[str, Any]],
    seed: int = 0,
    batch_size: int = 256,
) -> list[dict[str, Any]]:
    """Copies of ``features`` with a ``masked_positions`` list each, fixed by ``seed``.

    The collator passes such masks through unchanged, so validation perplexity is measured on the same masked
    tokens at every evaluation (the CM-GEMS switch compares consecutive perplexities) whatever the batch order or
    worker count. Uses the collator's strategy and ratio (its early strategy under a curriculum).
    """
    out: list[dict[str, Any]] = []
    for index, start in enumerate(range(0, len(features), batch_size)):
        chunk = features[start : start + batch_size]
        rng = np.random.default_rng(np.random.SeedSequence([seed, index]))
        ids_rows = [f["input_ids"] for f in chunk]
        length = max(len(r) for r in ids_rows)
        input_ids = _pad(ids_rows, length, collator.pad_token_id, np.int64)
        attention = (
            _pad([f["attention_mask"] for f in chunk], length, 0, np.int64)
            if "attention_mask" in chunk[0]
            else _pad([np.ones(len(r), np.int64) for r in ids_rows], length, 0, np.int64)
        )
        masks = collator.mask_batch(input_ids, attention, rng=rng)
        for feature, row, n in zip(chunk, masks, (len(r) for r in ids_rows)):
            out.append({**feature, "masked_positions": row[:n].tolist()})
    return out
