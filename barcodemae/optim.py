"""Optimiser helpers shared by pretraining and fine-tuning: one rule for what is weight-decayed, one set of
learning-rate schedules."""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn
from transformers import (
    get_constant_schedule_with_warmup,
    get_cosine_schedule_with_warmup,
    get_linear_schedule_with_warmup,
)

SCHEDULERS = ("cosine", "linear", "onecycle", "constant")
"""Learning-rate schedules of :func:`learning_rate_schedule` (``--lr_scheduler``)."""


def weight_decay_groups(model: nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    """Two AdamW groups: matrices decayed, biases / LayerNorms / the MAE mask embedding (1-D) not (BERT practice)."""
    decay, no_decay = [], []
    for name, parameter in model.named_parameters():
        if parameter.requires_grad:
            (no_decay if parameter.ndim < 2 or "LayerNorm" in name else decay).append(parameter)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def learning_rate_schedule(
    optimizer: torch.optim.Optimizer, name: str, *, warmup_ratio: float, max_steps: int
) -> torch.optim.lr_scheduler.LRScheduler:
    """A linear warm-up over ``ceil(warmup_ratio * max_steps)`` steps to the optimiser's learning rate, then
    ``cosine`` / ``linear`` decay to 0 at ``max_steps`` or ``constant``; ``onecycle`` is torch's OneCycleLR (its
    own warm-up shape, ``warmup_ratio`` as ``pct_start``). Step it once per optimiser step."""
    if name not in SCHEDULERS:
        raise ValueError(f"learning-rate schedule must be one of {SCHEDULERS}, got {name!r}")
    warmup = math.ceil(warmup_ratio * max_steps)
    if name == "cosine":
        return get_cosine_schedule_with_warmup(optimizer, warmup, max_steps)
    if name == "linear":
        return get_linear_schedule_with_warmup(optimizer, warmup, max_steps)
    if name == "constant":
        return get_constant_schedule_with_warmup(optimizer, warmup)
    peak = max(group["lr"] for group in optimizer.param_groups)
    return torch.optim.lr_scheduler.OneCycleLR(
        optimizer, max_lr=peak, total_steps=max_steps, pct_start=max(warmup_ratio, 1e-3)
    )


__all__ = ["SCHEDULERS", "learning_rate_schedule", "weight_decay_groups"]
