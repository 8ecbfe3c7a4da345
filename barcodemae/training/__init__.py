"""Pretraining with accelerate: arguments and presets, deterministic batches, checkpoints, validation, the loop.

Entry points: ``python train.py`` (or ``accelerate launch train.py``; :func:`barcodemae.training.command.main`) and
:func:`run_training`.

The names of ``__all__`` load on first use (:mod:`barcodemae.lazy_names`). Why: ``train.py --help`` imports
:mod:`.arguments`, and this file runs first; importing the loop here loaded torch, transformers and datasets to
print the help.
"""

from __future__ import annotations

from barcodemae.lazy_names import lazy_names

_SUBMODULES = {
    "CheckpointError": "barcodemae.errors",
    "TrainingArguments": ".arguments",
    "load_preset": ".arguments",
    "parse_args": ".arguments",
    "list_checkpoints": ".checkpoints",
    "validate_checkpoint": ".checkpoints",
    "run_training": ".loop",
}
"""Public name -> the module that defines it (relative to this package, or absolute)."""

__getattr__, __dir__ = lazy_names(__name__, _SUBMODULES)

__all__ = [
    "CheckpointError",
    "TrainingArguments",
    "list_checkpoints",
    "load_preset",
    "parse_args",
    "run_training",
    "validate_checkpoint",
]
