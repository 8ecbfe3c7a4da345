"""AdamW parameter groups shared by pretraining and fine-tuning: one rule for what is weight-decayed."""

from __future__ import annotations

from typing import Any

from torch import nn


def weight_decay_groups(model: nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    """Two AdamW groups: matrices decayed, biases / LayerNorms / the MAE mask embedding (1-D) not (BERT practice)."""
    decay, no_decay = [], []
    for name, parameter in model.named_parameters():
        if parameter.requires_grad:
            (no_decay if parameter.ndim < 2 or "LayerNorm" in name else decay).append(parameter)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


__all__ = ["weight_decay_groups"]
