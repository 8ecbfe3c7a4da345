"""Masking curricula (CM-GEMS, CM-Step) and masking-ratio schedules, shared with DataLoader workers.

The training loop drives a curriculum in the main process (``on_step`` every optimisation step, ``on_evaluate``
after each validation pass); the collator reads the current phase in whichever process it runs in. The phase
lives in a small shared-memory tensor, so persistent DataLoader workers (forked or spawned) see a switch made in
the main process at their next batch. ``state_dict`` / ``load_state_dict`` make the phase part of a checkpoint
(``accelerator.register_for_checkpointing(curriculum)``), so a resumed run continues in the same phase.

Each curriculum mixes an ``early`` and a ``late`` strategy: every sample uses ``late`` with probability
``late_probability`` (CM-GEMS: 0 then 1 after the switch; CM-Step: rising linearly), and the mask ratio comes from
an optional :class:`MaskRatioSchedule`.
"""

from __future__ import annotations

import math
from typing import Any

import torch

_LATE, _RATIO, _SIZE = 0, 1, 2


class MaskRatioSchedule:
    """Mask ratio as a function of training progress: ``constant``, ``linear`` or ``cosine`` from start to end."""

    KINDS = ("constant", "linear", "cosine")

    def __init__(self, start: float = 0.5, end: float | None = None, kind: str = "linear") -> None:
        end = start if end is None else end
        if kind not in self.KINDS:
            raise ValueError(f"kind must be one of {self.KINDS}, got {kind!r}")
        if not (0 < start < 1 and 0 < end < 1):
            raise ValueError(f"mask ratios must be in (0, 1), got start={start}, end={end}")
        self.start, self.end, self.kind = start, end, kind

    def __call__(self, step: int, max_steps: int) -> float:
        progress = min(max(step / max(max_steps, 1), 0.0), 1.0)
        if self.kind == "constant":
            return self.start
        if self.kind == "cosine":
            progress = (1 - math.cos(math.pi * progress)) / 2
        return self.start + (self.end - self.start) * progress

    def __repr__(self) -> str:
        return f"MaskRatioSchedule(start={self.start}, end={self.end}, kind={self.kind!r})"


class MaskingCurriculum:
    """A fixed strategy (``late=None``) with an optional ratio schedule; base class of the curricula."""

    def __init__(self, early: str = "random", late: str | None = None, ratio_schedule: MaskRatioSchedule | None = None):
        self.early, self.late = early, late
        self.ratio_schedule = ratio_schedule
        self.step = 0
        self._shared = torch.zeros(_SIZE, dtype=torch.float64).share_memory_()
        self._shared[_RATIO] = math.nan

    # ---------------------------------------------------------------- read by the collator (any process)
    @property
    def late_probability(self) -> float:
        return float(self._shared[_LATE])

    @property
    def mask_ratio(self) -> float | None:
        """The scheduled ratio, or ``None`` to use the collator's own ``mask_ratio``."""
        ratio = float(self._shared[_RATIO])
        return None if math.isnan(ratio) else ratio

    def _set(self, late_probability: float | None = None, mask_ratio: float | None = None) -> None:
        if late_probability is not None:
            self._shared[_LATE] = float(late_probability)
        if mask_ratio is not None:
            self._shared[_RATIO] = float(mask_ratio)

    # ---------------------------------------------------------------- driven by the training loop
    def on_step(self, step: int, max_steps: int) -> None:
        """Advance schedules to ``step`` of ``max_steps``."""
        self.step = step
        if self.ratio_schedule is not None:
            self._set(mask_ratio=self.ratio_schedule(step, max_steps))

    def on_evaluate(self, step: int, val_perplexity: float) -> bool:
        """Record a validation perplexity; returns True when the phase changed (never, for this class)."""
        return False

    # ---------------------------------------------------------------- checkpointing
    def state_dict(self) -> dict[str, Any]:
        return {"step": self.step, "late_probability": self.late_probability, "mask_ratio": self.mask_ratio}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.step = int(state["step"])
        self._set(late_probability=state["late_probability"])
        self._shared[_RATIO] = math.nan if state.get("mask_ratio") is None else float(state["mask_ratio"])

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(early={self.early!r}, late={self.late!r}, late_probability="
            f"{self.late_probability:.3f}, mask_ratio={self.mask_ratio}, ratio_schedule={self.ratio_schedule})"
        )


class CMGEMSCurriculum(MaskingCurriculum):
    """CM-GEMS: GeneMask until validation perplexity stops improving, then Global for the rest of training.

    Switches after ``patience`` consecutive evaluations whose perplexity drop (previous - current) is below
    ``threshold``. Perplexity must be measured on fixed masks (:func:`collator.fixed_validation_masks`), or the
    drop would mostly measure mask noise.
    """

    def __init__(
        self,
        threshold: float = 0.05,
        early: str = "genemask",
        late: str = "global",
        patience: int = 1,
        ratio_schedule: MaskRatioSchedule | None = None,
    ) -> None:
        super().__init__(early, late, ratio_schedule)
        if threshold < 0 or patience < 1:
            raise ValueError(f"need threshold >= 0 and patience >= 1, got {threshold}, {patience}")
        self.threshold, self.patience = threshold, patience
        self.history: list[tuple[int, float]] = []
        self.switch_step: int | None = None
        self._flat_evaluations = 0

    @property
    def switched(self) -> bool:
        return self.switch_step is not None

    def on_evaluate(self, step: int, val_perplexity: float) -> bool:
        if not math.isfinite(val_perplexity):
            raise ValueError(f"validation perplexity at step {step} is {val_perplexity}; cannot decide the phase")
        previous = self.history[-1][1] if self.history else None
        self.history.append((int(step), float(val_perplexity)))
        if self.switched or previous is None:
            return False
        self._flat_evaluations = self._flat_evaluations + 1 if previous - val_perplexity < self.threshold else 0
        if self._flat_evaluations >= self.patience:
            self.switch_step = int(step)
            self._set(late_probability=1.0)
            return True
        return False

    def state_dict(self) -> dict[str, Any]:
        return {
            **super().state_dict(),
            "history": [list(h) for h in self.history],
            "switch_step": self.switch_step,
            "flat_evaluations": self._flat_evaluations,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        self.history = [(int(s), float(p)) for s, p in state.get("history", [])]
        self.switch_step = state.get("switch_step")
        self._flat_evaluations = int(state.get("flat_evaluations", 0))
        self._set(late_probability=1.0 if self.switched else 0.0)


class CMStepCurriculum(MaskingCurriculum):
    """CM-Step: each sample uses ``late`` (Global) with a probability rising linearly from start to end."""

    def __init__(
        self,
        early: str = "random",
        late: str = "global",
        start_probability: float = 0.0,
        end_probability: float = 1.0,
        ratio_schedule: MaskRatioSchedule | None = None,
    ) -> None:
        super().__init__(early, late, ratio_schedule)
        if not (0 <= start_probability <= 1 and 0 <= end_probability <= 1):
            raise ValueError(f"probabilities must be in [0, 1], got {start_probability}, {end_probability}")
        self.start_probability, self.end_probability = start_probability, end_probability
        self._set(late_probability=start_probability)

    def on_step(self, step: int, max_steps: int) -> None:
        super().on_step(step, max_steps)
        progress = min(max(step / max(max_steps, 1), 0.0), 1.0)
        self._set(late_probability=self.start_probability + (self.end_probability - self.start_probability) * progress)
