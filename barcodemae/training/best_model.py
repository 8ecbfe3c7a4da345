"""Keep the weights of the step with the best validation metric (``--load_best_model_at_end``).

Why: pretraining can make embeddings worse before it makes them better (the genus probe of a small model dips
far below its untrained value, then climbs back), so the last step is not always the best encoder. As
``transformers``' ``load_best_model_at_end`` / ``metric_for_best_model``: every validation compares the metric
with the best so far; a better one writes the weights to ``<output_dir>/best_model/`` (written to a ``.tmp``
folder and renamed, so a kill mid-write leaves the previous best intact), and at the end ``final_model/`` is
exported from those weights. The best step and value travel in each checkpoint's trainer state, so a resumed run
makes the same choices as an uninterrupted one.

The metric is read from the validation record: the genus probe's (``genus_1nn_accuracy``, any
``genus_1nn_accuracy_layer_<i>``) on ``--query_split``, or a masked-token loss / perplexity. Metrics whose name
ends in ``loss`` or ``perplexity`` are minimised, all others maximised. Selecting on a test split is refused:
the protocol's test numbers must not choose the model.
"""

from __future__ import annotations

import json
import logging
import shutil
from typing import Any

from barcodemae.data.splits import resolve_splits
from barcodemae.file_modes import apply_umask
from barcodemae.run_layout import RunLayout

logger = logging.getLogger(__name__)

BEST_MODEL_INFO = "best_model.json"
PROBE_METRIC_PREFIXES = ("genus_1nn_accuracy", "top_pc_variance_share")
"""Metrics computed by the genus probe on ``--query_split``; the others come from ``--val_split`` batches or
the ``unseen_val_*`` batches of ``--query_split``."""


def greater_is_better(metric: str) -> bool:
    """Losses and perplexities are minimised; accuracies (everything else) maximised."""
    return not metric.endswith(("loss", "perplexity"))


def metric_split(metric: str, val_split: str, query_split: str) -> str:
    """The split a validation metric is computed on (to refuse choosing a model on a test split)."""
    if metric.startswith(PROBE_METRIC_PREFIXES) or metric.startswith("unseen_val_"):
        return query_split
    return val_split


def check_selection_split(metric: str, val_split: str, query_split: str) -> None:
    """Refuse selecting the best model on any ``test*`` split; choose on ``val`` / ``val_unseen``."""
    split = metric_split(metric, val_split, query_split)
    if not split or split == "none":
        raise ValueError(f"--metric_for_best_model {metric}: its split is switched off ({split!r})")
    tests = [name for name in resolve_splits(split) if name.startswith("test")]
    if tests:
        raise ValueError(
            f"--metric_for_best_model {metric} would be computed on {', '.join(tests)}: test splits must not choose "
            "the model; use val / val_unseen (--val_split, --query_split)"
        )


class BestModelTracker:
    """The best value of one validation metric so far, its step, and the folder holding its weights (the run
    folder's ``best_model/``)."""

    def __init__(self, metric: str, layout: RunLayout) -> None:
        self.metric = metric
        self.folder, self.staging = layout.best_model, layout.best_model_staging
        self.maximise = greater_is_better(metric)
        self.best_value: float | None = None
        self.best_step: int | None = None

    def improves(self, value: float | None) -> bool:
        """Whether ``value`` beats the best so far (``None``: not computed at this step; ties keep the earlier)."""
        if value is None:
            return False
        if self.best_value is None:
            return True
        return value > self.best_value if self.maximise else value < self.best_value

    def update(self, value: float | None, step: int, model, tokenizer, write: bool = True) -> bool:
        """Record ``value`` at ``step`` if it improves, saving ``model`` + ``tokenizer`` when ``write`` (the main
        process; the others only keep the bookkeeping). Returns whether it improved."""
        if not self.improves(value):
            return False
        self.best_value, self.best_step = float(value), int(step)
        if write:
            shutil.rmtree(self.staging, ignore_errors=True)
            model.save_pretrained(self.staging, safe_serialization=True)
            tokenizer.save_pretrained(self.staging)
            (self.staging / BEST_MODEL_INFO).write_text(json.dumps(self.state_dict(), indent=2))
            apply_umask(self.staging)
            shutil.rmtree(self.folder, ignore_errors=True)
            self.staging.rename(self.folder)
        return True

    def load_best_weights(self, model) -> None:
        """Load the best step's weights into ``model`` (an unwrapped ``BarcodeMAEForPreTraining``)."""
        from safetensors.torch import load_file

        weights = self.folder / "model.safetensors"
        if self.best_step is None or not weights.is_file():
            raise FileNotFoundError(f"no best model was saved in {self.folder} (was {self.metric} ever computed?)")
        info = json.loads((self.folder / BEST_MODEL_INFO).read_text())
        if info.get("step") != self.best_step:
            raise RuntimeError(
                f"{self.folder} holds step {info.get('step')}, but the run's best {self.metric} was at step "
                f"{self.best_step}; the folder was changed outside this run"
            )
        model.load_state_dict(load_file(str(weights)), strict=True)

    def state_dict(self) -> dict[str, Any]:
        return {"metric": self.metric, "step": self.best_step, "value": self.best_value}

    def load_state_dict(self, state: dict[str, Any] | None) -> None:
        if state and state.get("metric") == self.metric:
            self.best_step, self.best_value = state.get("step"), state.get("value")


__all__ = [
    "BEST_MODEL_INFO",
    "BestModelTracker",
    "check_selection_split",
    "greater_is_better",
]
