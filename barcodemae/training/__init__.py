"""Pretraining with accelerate: arguments and presets, deterministic batches, checkpoints, validation, the loop.

Entry points: ``python train.py`` (or ``accelerate launch train.py``) and :func:`run_training`.
"""

from barcodemae.errors import CheckpointError

from .arguments import TrainingArguments, load_preset, parse_args
from .checkpoints import list_checkpoints, validate_checkpoint
from .loop import run_training

__all__ = [
    "CheckpointError",
    "TrainingArguments",
    "list_checkpoints",
    "load_preset",
    "parse_args",
    "run_training",
    "validate_checkpoint",
]
