"""``--init_from``: continue pretraining from an existing BarcodeMAE / BarcodeBERT pretraining folder.

Why a new run instead of ``--resume_from_checkpoint``: resuming replays one run exactly (same data, schedule and
``--max_steps``), while continued pretraining -- more steps, a lab's own barcodes, a converted checkpoint of the
authors' models -- starts a fresh optimiser and learning-rate schedule from pretrained weights.

The folder fixes what the weights need: the architecture (every size, dropout) and the tokenizer. Those
arguments are overwritten from the folder before ``training_args.json`` is written, so the file says what was
trained, and a resumed continued run checks them like any other run.
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path

from barcodemae.run_layout import FINAL_MODEL_DIR
from modeling_barcodemae.configuration_barcodemae import BarcodeMAEConfig
from modeling_barcodemae.modeling_barcodemae import BarcodeMAEForPreTraining

from .arguments import ARCHITECTURE_ARGUMENTS, TrainingArguments

logger = logging.getLogger(__name__)

def initial_config(folder: str | Path) -> BarcodeMAEConfig:
    """The config of a pretraining folder, with errors that name the folder and what is wrong."""
    path = Path(folder)
    if not (path / "config.json").is_file():
        raise FileNotFoundError(f"--init_from {folder}: not a model folder (no config.json)")
    if not (path / "tokenizer.json").is_file():
        raise FileNotFoundError(f"--init_from {folder}: no tokenizer.json (the weights need their tokenizer)")
    try:
        return BarcodeMAEConfig.from_pretrained(path)
    except (OSError, ValueError, TypeError) as error:
        raise ValueError(f"--init_from {folder}: config.json is not a BarcodeMAE config: {error}") from error


def adopt_initial_model(args: TrainingArguments) -> TrainingArguments:
    """``args`` with the architecture and tokenizer of ``args.init_from`` (unchanged without ``--init_from``).

    The objective must match the folder's: an MLM folder has no decoder for an MAE run, and an MAE folder's
    decoder means nothing to an MLM run.
    """
    if not args.init_from:
        return args
    config = initial_config(args.init_from)
    if config.pretraining_objective != args.objective:
        raise ValueError(
            f"--init_from {args.init_from} was pretrained with objective {config.pretraining_objective!r}, "
            f"this run asks for {args.objective!r}; pass --objective {config.pretraining_objective}"
        )
    adopted = {name: getattr(config, attribute) for name, attribute in ARCHITECTURE_ARGUMENTS.items()}
    changed = {name: (getattr(args, name), value) for name, value in adopted.items() if getattr(args, name) != value}
    if changed:
        logger.info(
            "--init_from %s fixes the architecture: %s",
            args.init_from,
            ", ".join(f"{name} {old} -> {new}" for name, (old, new) in changed.items()),
        )
    return dataclasses.replace(args, tokenizer=str(args.init_from), **adopted)


NEW_HEADS = ("taxonomy_head.", "composition_head.")
"""Heads a run's choices may add to a folder's model (``--taxonomy_loss ce``, ``--composition_weight``): they start
from scratch, as in a fresh run, so their absence from the folder is expected."""


def load_initial_model(folder: str | Path, **run_config: object) -> BarcodeMAEForPreTraining:
    """The pretraining model of ``folder`` with every weight present (encoder, and decoder for an MAE).

    ``run_config`` sets config attributes that are this run's choices, not part of the architecture
    (``mask_ratio``, ``pooled_layers``, ``taxonomy_loss``, ... : the attributes of ``RUN_CONFIG_ARGUMENTS``, and
    ``taxonomy_num_classes``). They are applied before the model is built, so a head they ask for exists (freshly
    initialised, see :data:`NEW_HEADS`).

    A feature-extraction export (``barcodemae export``: encoder only) is refused rather than continued with a
    randomly initialised decoder and head.
    """
    config = initial_config(folder)
    for attribute, value in run_config.items():
        if not hasattr(config, attribute):
            raise AttributeError(f"BarcodeMAEConfig has no attribute {attribute!r}")
        setattr(config, attribute, value)
    config.validate_architecture()
    model, info = BarcodeMAEForPreTraining.from_pretrained(Path(folder), config=config, output_loading_info=True)
    missing = sorted(key for key in info["missing_keys"] if not key.startswith(NEW_HEADS))
    if missing:
        shown = ", ".join(missing[:4]) + (f" and {len(missing) - 4} more" if len(missing) > 4 else "")
        raise ValueError(
            f"--init_from {folder}: the folder lacks pretraining weights ({shown}); an encoder-only export cannot "
            f"continue pretraining: use train.py's {FINAL_MODEL_DIR}/ or a converted pretraining checkpoint"
        )
    return model


__all__ = ["adopt_initial_model", "initial_config", "load_initial_model"]
