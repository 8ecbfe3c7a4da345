"""What a checkpoint records beside accelerate's state (its ``trainer_state.json``), and how a resume restores it.

Why one class: the keys a save writes and a resume reads back sit side by side; a key kept on one side only would
resume a run that silently stops matching an uninterrupted one (``tests/test_train.py`` checks the match exactly).
"""

from __future__ import annotations

from typing import Any

from barcodemae.masking.curriculum import MaskingCurriculum

from .batches import GlobalBatchStream
from .best_model import BestModelTracker
from .data_identity import DATA_FINGERPRINT


class TrainerState:
    """The run's resumable bookkeeping: the batch stream's data position, the masking curriculum's phase and
    ``--load_best_model_at_end``'s best step, with what a resume checks the run against (run id, data fingerprint,
    process count)."""

    def __init__(
        self, run_id: str, data_identity: dict[str, Any] | None, max_steps: int, num_processes: int,
        stream: GlobalBatchStream, curriculum: MaskingCurriculum | None, best: BestModelTracker | None,
    ) -> None:
        self.run_id, self.data_identity, self.max_steps = run_id, data_identity, max_steps
        self.num_processes, self.stream, self.curriculum, self.best = num_processes, stream, curriculum, best

    def state_dict(self, global_step: int) -> dict[str, Any]:
        """The trainer state after optimiser step ``global_step`` (plain JSON)."""
        return {
            "run_id": self.run_id,
            DATA_FINGERPRINT: self.data_identity,
            "global_step": global_step,
            "max_steps": self.max_steps,
            "data_position": self.stream.state_dict(),
            "curriculum": self.curriculum.state_dict() if self.curriculum is not None else None,
            "num_processes": self.num_processes,
            "best_model": self.best.state_dict() if self.best is not None else None,
        }

    def load_state_dict(self, state: dict[str, Any]) -> int:
        """Restore the stream, curriculum and best step from a checkpoint's trainer state; returns its step."""
        self.stream.load_state_dict(state["data_position"])
        if self.curriculum is not None and state.get("curriculum") is not None:
            self.curriculum.load_state_dict(state["curriculum"])
        if self.best is not None:
            self.best.load_state_dict(state.get("best_model"))
        return int(state["global_step"])


__all__ = ["TrainerState"]
