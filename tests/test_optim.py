"""The optimiser helpers pretraining and fine-tuning share: weight-decay groups and learning-rate schedules."""

from __future__ import annotations

import math
from itertools import pairwise

import pytest
import torch

from barcodemae.optim import SCHEDULERS, learning_rate_schedule, weight_decay_groups


def _learning_rates(name: str, max_steps: int = 100, warmup_ratio: float = 0.1) -> list[float]:
    optimizer = torch.optim.AdamW([torch.nn.Parameter(torch.zeros(2, 2))], lr=1e-3)
    schedule = learning_rate_schedule(optimizer, name, warmup_ratio=warmup_ratio, max_steps=max_steps)
    rates = []
    for _ in range(max_steps):
        rates.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        schedule.step()
    return rates


@pytest.mark.parametrize("name", ["cosine", "linear", "constant"])
def test_warm_up_reaches_the_peak_then_the_schedule_runs(name):
    rates = _learning_rates(name)
    assert rates[0] == 0.0 and rates[5] == pytest.approx(5e-4) and rates[10] == pytest.approx(1e-3)
    assert all(later >= earlier for earlier, later in pairwise(rates[:11]))
    if name == "constant":
        assert rates[-1] == pytest.approx(1e-3)
    else:
        assert all(later <= earlier for earlier, later in pairwise(rates[10:])) and rates[-1] < 1e-4
        halfway = rates[55]  # half-way through the decay
        assert halfway == pytest.approx(5e-4 if name == "linear" else 1e-3 * 0.5 * (1 + math.cos(math.pi * 0.5)))


def test_onecycle_peaks_at_the_learning_rate_and_names_are_checked():
    rates = _learning_rates("onecycle")
    assert max(rates) == pytest.approx(1e-3) and rates[0] < 1e-4 and rates[-1] < 1e-5
    assert set(SCHEDULERS) == {"cosine", "linear", "onecycle", "constant"}
    with pytest.raises(ValueError, match="must be one of"):
        _learning_rates("step")


def test_biases_norms_and_vectors_are_not_decayed():
    model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.LayerNorm(4))
    model.register_parameter("mask_embedding", torch.nn.Parameter(torch.zeros(4)))
    decay, no_decay = weight_decay_groups(model, 0.05)
    assert decay["weight_decay"] == 0.05 and no_decay["weight_decay"] == 0.0
    assert [p.shape for p in decay["params"]] == [torch.Size([4, 3])]
    assert len(no_decay["params"]) == 4  # linear bias, LayerNorm weight and bias, the mask embedding
