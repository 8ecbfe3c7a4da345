"""The training data a checkpoint was trained on, by content: a resumed run must read the same records.

Why content: comparing the ``--data`` strings let a different file at the same path resume silently (a re-exported
CSV, a new release under the old name) and refused the same file spelled ``./data.csv`` instead of absolute. Every
checkpoint's trainer state records the file's size and SHA-256 (:func:`barcodemae.checksums.file_fingerprint`), or
``None`` for the simulated default dataset (the compared ``--simulate_genera`` and ``--seed`` define that one);
a resume compares them before any data is loaded.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from barcodemae.checksums import file_fingerprint
from barcodemae.data.input_errors import check_input_file
from barcodemae.errors import CheckpointError

from .checkpoints import TRAINER_STATE

logger = logging.getLogger(__name__)

DATA_FINGERPRINT = "data_fingerprint"
"""The trainer-state key of the data's fingerprint."""


def data_fingerprint(data: str | None) -> dict[str, Any] | None:
    """Size and SHA-256 of the ``--data`` file; ``None`` without one (the simulated default dataset)."""
    if not data:
        return None
    check_input_file(data)
    return file_fingerprint(Path(data))


def describe_data(fingerprint: dict[str, Any] | None) -> str:
    """A fingerprint in words, for error messages."""
    if fingerprint is None:
        return "the simulated default dataset"
    return f"a file of {fingerprint['size']} bytes with SHA-256 {fingerprint['sha256']}"


def check_resume_data(checkpoint: Path, data: str | None, fingerprint: dict[str, Any] | None) -> None:
    """Refuse to resume ``checkpoint`` on data other than it was trained on, naming the file.

    A checkpoint written before fingerprints were recorded is resumed with a warning; an unreadable trainer state
    is left to :func:`~barcodemae.training.checkpoints.validate_checkpoint`, which names the problem.
    """
    try:
        state = json.loads((checkpoint / TRAINER_STATE).read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return
    if not isinstance(state, dict):
        return
    if DATA_FINGERPRINT not in state:
        logger.warning("%s records no data fingerprint (written by an older version): cannot check that the data "
                       "is what it was trained on", checkpoint / TRAINER_STATE)
        return
    saved = state[DATA_FINGERPRINT]
    if saved == fingerprint:
        return
    problem = f"{data} changed since the checkpoint was written" if data and saved is not None else "other data"
    given = f"{data}, {describe_data(fingerprint)}" if data else describe_data(fingerprint)
    raise CheckpointError(
        f"cannot resume from {checkpoint}: {problem}: it was trained on {describe_data(saved)}, this run reads "
        f"{given}. Resume with the data the run was trained on."
    )


__all__ = ["DATA_FINGERPRINT", "check_resume_data", "data_fingerprint", "describe_data"]
