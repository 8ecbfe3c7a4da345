"""Resumable checkpoints: ``accelerator.save_state`` plus a JSON trainer state, written atomically and checked.

Layout of ``<output_dir>/checkpoints/step_N/``: accelerate's files (``model.safetensors``, ``optimizer.bin``,
``scheduler.bin``, ``random_states_<rank>.pkl``) and ``trainer_state.json`` (global step, data position,
masking-curriculum phase, best step and the run's identity: :class:`~.trainer_state.TrainerState`). The trainer
state is plain JSON rather than an accelerate "custom checkpoint" pickle, so nothing of ours needs unpickling.

A checkpoint is written to ``step_N.tmp`` and renamed once complete, so a job killed mid-save leaves a ``.tmp``
folder that is never picked as ``latest``. Loading checks the files first (present, non-empty, safetensors
header and size consistent) and raises :class:`CheckpointError` naming the folder and the problem, instead of a
deep ``torch``/``safetensors`` traceback; a file that passes those checks and still fails to load (corrupt
pickle) is reported the same way by :func:`load_checkpoint`, with the original error chained.
"""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path
from typing import Any

import torch
from accelerate.utils import DistributedType, load

from barcodemae.checksums import verify_checksums, write_checksums
from barcodemae.errors import CheckpointError
from barcodemae.file_modes import apply_umask
from barcodemae.run_layout import STAGING_SUFFIX, RunLayout
from barcodemae.safetensors_header import SafetensorsHeaderError, read_safetensors_header

from .arguments import RESUME_MAY_CHANGE, TrainingArguments, resume_mismatches

logger = logging.getLogger(__name__)

TRAINER_STATE = "trainer_state.json"
RNG_KEYS = ("random_state", "numpy_random_seed", "torch_manual_seed")


def list_checkpoints(output_dir: str | Path) -> list[Path]:
    """Complete checkpoint folders (``step_N``, not ``.tmp``) of the run folder ``output_dir``, oldest first."""
    root = RunLayout(output_dir).checkpoints
    if not root.is_dir():
        return []
    found = [(step, p) for p in root.iterdir() if p.is_dir() and (step := RunLayout.checkpoint_step(p)) is not None]
    return [p for _, p in sorted(found)]


def resolve_checkpoint(spec: str, layout: RunLayout) -> Path:
    """``latest`` (newest complete checkpoint of the run folder) or an explicit folder."""
    if spec == "latest":
        found = list_checkpoints(layout.root)
        if not found:
            raise CheckpointError(f"--resume_from_checkpoint latest: no complete checkpoint in {layout.checkpoints}")
        return found[-1]
    path = Path(spec)
    if not path.is_dir():
        raise CheckpointError(f"checkpoint {path} does not exist or is not a folder")
    return path


def check_resume_arguments(checkpoint: Path, args: TrainingArguments) -> None:
    """Refuse to resume with model, data or schedule arguments other than those the checkpoint was trained with.

    Why: ``train.py`` does not read the saved arguments back (flags stay explicit), so resuming with fewer flags
    than the original run would rebuild the default preset and either fail deep inside ``load_state`` or
    silently train something else. The saved ``training_args.json`` is the run folder's (above ``checkpoints/``).
    """
    saved_path = RunLayout.of_checkpoint(checkpoint).training_args
    if not saved_path.is_file():
        logger.warning("%s not found: cannot check that the resumed run uses the checkpoint's arguments", saved_path)
        return
    differing = resume_mismatches(json.loads(saved_path.read_text()), args)
    if differing:
        raise CheckpointError(
            f"cannot resume from {checkpoint}: these arguments differ from the run that wrote it ({saved_path}):\n  "
            + "\n  ".join(differing)
            + "\nResume with the original run's flags (preset, data, model, masking and schedule) plus "
            "--resume_from_checkpoint; only these may change: "
            + ", ".join(f"--{name}" for name in sorted(RESUME_MAY_CHANGE))
        )


def checkpoint_run_id(path: Path) -> str | None:
    """The run id in a checkpoint's trainer state (``None`` if absent or unreadable: validation reports that)."""
    try:
        return json.loads((path / TRAINER_STATE).read_text()).get("run_id")
    except (OSError, json.JSONDecodeError, AttributeError):
        return None


def check_safetensors(path: Path) -> None:
    """Header readable and data length consistent with it: catches truncated or overwritten files."""
    try:
        read_safetensors_header(path)
    except SafetensorsHeaderError as error:
        raise CheckpointError(str(error)) from error


def validate_checkpoint(path: Path, num_processes: int, sharded: bool = False) -> dict[str, Any]:
    """Check a checkpoint folder before ``accelerator.load_state``; returns its trainer state.

    ``sharded``: DeepSpeed / FSDP write their own weight and optimizer layout, so only the trainer state and
    the per-rank RNG files are checked for them.
    """
    if path.name.endswith(STAGING_SUFFIX):
        raise CheckpointError(
            f"{path} is a partial checkpoint (the job stopped while saving it); resume from an earlier one"
        )
    required = [TRAINER_STATE] if sharded else [TRAINER_STATE, "model.safetensors", "optimizer.bin", "scheduler.bin"]
    required += [f"random_states_{rank}.pkl" for rank in range(num_processes)]
    missing = [name for name in required if not (path / name).is_file()]
    if missing:
        raise CheckpointError(f"{path} is not a complete checkpoint: missing {', '.join(missing)}")
    empty = [name for name in required if (path / name).stat().st_size == 0]
    if empty:
        raise CheckpointError(f"{path}: empty file(s) {', '.join(empty)} (interrupted write?)")
    if not sharded:
        check_safetensors(path / "model.safetensors")
    try:
        state = json.loads((path / TRAINER_STATE).read_text())
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise CheckpointError(f"{path / TRAINER_STATE}: not valid JSON ({error})") from error
    if not isinstance(state, dict):
        raise CheckpointError(f"{path / TRAINER_STATE}: not a JSON object")
    # Run ids and checksums came in together: a checkpoint with a run id whose checksums are gone was tampered with.
    verify_checksums(path, required="run_id" in state, error=CheckpointError)
    for key in ("global_step", "data_position"):
        if key not in state:
            raise CheckpointError(f"{path / TRAINER_STATE}: missing {key!r}")
    if state.get("num_processes", num_processes) != num_processes:
        # The data position is process-count independent, but accelerate's RNG files are per rank.
        raise CheckpointError(
            f"{path} was written by {state['num_processes']} process(es); resume it with the same number "
            f"(this run has {num_processes})"
        )
    return state


def restore_checkpoint(accelerator, checkpoint: Path) -> dict[str, Any]:
    """Check ``checkpoint`` (:func:`validate_checkpoint`), then load it into the prepared model, optimiser, scheduler
    and random states (:func:`load_checkpoint`); returns its trainer state."""
    sharded = accelerator.distributed_type in (DistributedType.DEEPSPEED, DistributedType.FSDP)  # their own layout
    state = validate_checkpoint(checkpoint, accelerator.num_processes, sharded=sharded)
    load_checkpoint(accelerator, checkpoint)
    return state


def check_rng_state(states: object, path: Path) -> None:
    """An RNG file must hold accelerate's random states; accelerate itself skips a bad one with an INFO line."""
    if not isinstance(states, dict) or any(key not in states for key in RNG_KEYS):
        found = sorted(states) if isinstance(states, dict) else type(states).__name__
        raise CheckpointError(f"{path}: not accelerate's random states (expected keys {list(RNG_KEYS)}, found {found})")
    if torch.cuda.is_available() and "torch_cuda_manual_seed" not in states:
        raise CheckpointError(
            f"{path}: no CUDA random state, but this run uses CUDA; resume on the kind of device that wrote it"
        )


def load_checkpoint(accelerator, checkpoint: Path) -> None:
    """``accelerator.load_state`` with any failure raised as :class:`CheckpointError` naming the folder and file.

    This process's RNG file is read and checked first because accelerate catches a failure to load or apply it and
    only logs it at INFO level: the run would resume with fresh random states and silently stop matching an
    uninterrupted one.
    """
    try:
        rng_file = checkpoint / f"random_states_{accelerator.process_index}.pkl"
        check_rng_state(load(rng_file), rng_file)
        accelerator.load_state(str(checkpoint))
    except CheckpointError:
        raise
    except Exception as error:
        where = failing_file(error, checkpoint) or checkpoint
        raise CheckpointError(
            f"{where}: cannot load the checkpoint ({type(error).__name__}, chained above): corrupt, or not written "
            f"by this training code; resume from another checkpoint in {checkpoint.parent}"
        ) from error


def failing_file(error: BaseException, folder: Path) -> Path | None:
    """The file of ``folder`` a failed load was reading: the innermost traceback frame holding one such path.

    Why the traceback: torch and accelerate name no file in their errors (a corrupt pickle raises
    ``UnpicklingError: invalid load key``), but the frame that opened it (``torch.load(f)``) still holds the path.
    A frame holding several (accelerate's, with every file loaded so far) says nothing and is skipped; ``None``
    when no frame names exactly one.
    """
    folder = folder.resolve()
    found = None
    frame = error.__traceback__
    while frame is not None:
        paths = {v for v in frame.tb_frame.f_locals.values() if isinstance(v, Path) and v.resolve().parent == folder}
        if len(paths) == 1:
            found = paths.pop()
        frame = frame.tb_next
    return found


def save_checkpoint(accelerator, layout: RunLayout, step: int, trainer_state: dict[str, Any], keep: int) -> Path:
    """``save_state`` into ``step_N.tmp``, add the trainer state, rename, and drop checkpoints beyond ``keep``."""
    final, staging = layout.checkpoint(step), layout.checkpoint_staging(step)
    if accelerator.is_main_process:
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir(parents=True)
    accelerator.wait_for_everyone()
    accelerator.save_state(str(staging), safe_serialization=True)
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        (staging / TRAINER_STATE).write_text(json.dumps(trainer_state, indent=2))
        apply_umask(staging)
        write_checksums(staging)  # last: covers the rest
        shutil.rmtree(final, ignore_errors=True)
        staging.rename(final)
        for old in list_checkpoints(layout.root)[:-keep] if keep > 0 else []:
            shutil.rmtree(old, ignore_errors=True)
    accelerator.wait_for_everyone()
    return final


__all__ = [
    "check_resume_arguments",
    "check_rng_state",
    "check_safetensors",
    "checkpoint_run_id",
    "failing_file",
    "list_checkpoints",
    "load_checkpoint",
    "resolve_checkpoint",
    "restore_checkpoint",
    "save_checkpoint",
    "validate_checkpoint",
]
