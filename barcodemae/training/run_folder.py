"""Which run an output folder belongs to: a new run never silently reuses another run's folder.

Why: a second ``train.py`` into a used ``--output_dir`` without ``--resume_from_checkpoint`` used to overwrite
``training_args.json`` and ``metrics.jsonl`` while the old run's later checkpoints stayed, so the new run's own
checkpoints were pruned as "older" and a later resume continued the *old* run under the new arguments. Now every
run has an id (``run.json`` in the folder, and in every checkpoint's trainer state): a fresh run refuses a folder
that holds another run's files unless ``--overwrite_output_dir`` removes them as a whole, and a resume refuses a
checkpoint written by another run than the folder's.
"""

from __future__ import annotations

import json
import logging
import shutil
import uuid
from datetime import datetime, timezone
from pathlib import Path

logger = logging.getLogger(__name__)

RUN_FILE = "run.json"
RUN_ARTEFACTS = (
    RUN_FILE,
    "training_args.json",
    "metrics.jsonl",
    "summary.json",
    "checkpoints",
    "best_model",
    "best_model.tmp",
    "final_model",
    "eval",
    "npmi",
    "data",
    "barcodemae",
)
"""What a run writes into its folder (``data/``: the simulated default dataset; ``barcodemae/``: TensorBoard logs of
``--report_to``); nothing else is ever removed."""


class OutputDirInUseError(FileExistsError):
    """A fresh run was pointed at a folder holding another run; the message names the ways out."""


def run_artefacts(output_dir: Path) -> list[str]:
    """The run files present in ``output_dir`` (empty for a new or unrelated folder)."""
    return [name for name in RUN_ARTEFACTS if (output_dir / name).exists()]


def read_run_id(output_dir: Path) -> str | None:
    """The id of the run that owns ``output_dir`` (``None``: no run, or one written before run ids existed)."""
    path = output_dir / RUN_FILE
    if not path.is_file():
        return None
    try:
        return str(json.loads(path.read_text())["run_id"])
    except (json.JSONDecodeError, KeyError, TypeError) as error:
        raise OutputDirInUseError(
            f"{path}: unreadable run identity ({error}); it is not this code's run file"
        ) from error


def check_new_run(output_dir: Path, overwrite: bool) -> list[str]:
    """The files of another run in ``output_dir`` that a new run would remove (only with ``overwrite``).

    Raises :class:`OutputDirInUseError`, naming the ways out, when the folder holds a run and ``overwrite`` is off.
    Read-only, so every process of a distributed run can check before the main one writes.
    """
    found = run_artefacts(output_dir)
    if found and not overwrite:
        raise OutputDirInUseError(
            f"--output_dir {output_dir} already holds a run ({', '.join(found)}). Continue it with "
            "--resume_from_checkpoint latest (and its original flags), choose a new --output_dir, or pass "
            "--overwrite_output_dir true to delete that run's files and start afresh"
        )
    return found


def start_run(output_dir: Path, overwrite: bool) -> str:
    """Claim ``output_dir`` for a new run (main process): remove a previous run's files if ``overwrite``, write
    ``run.json`` and return the new run's id."""
    found = check_new_run(output_dir, overwrite)
    for name in found:
        path = output_dir / name
        shutil.rmtree(path) if path.is_dir() else path.unlink()
    if found:
        logger.warning("--overwrite_output_dir: removed the previous run's %s from %s", ", ".join(found), output_dir)
    run_id = uuid.uuid4().hex
    output_dir.mkdir(parents=True, exist_ok=True)
    created = datetime.now(timezone.utc).isoformat(timespec="seconds")
    (output_dir / RUN_FILE).write_text(json.dumps({"run_id": run_id, "created": created}, indent=2))
    return run_id


def check_resumed_run(output_dir: Path, checkpoint: Path, checkpoint_run_id: str | None) -> None:
    """Refuse to resume ``checkpoint`` into a folder that holds another run (read-only: every process checks).

    A checkpoint written before run ids existed resumes with a warning (nothing to compare).
    """
    folder_run_id = read_run_id(output_dir)
    if checkpoint_run_id is None:
        logger.warning("%s records no run id (written by an older version): cannot check it belongs to %s",
                       checkpoint, output_dir)
    elif folder_run_id is not None and folder_run_id != checkpoint_run_id:
        raise OutputDirInUseError(
            f"{checkpoint} belongs to run {checkpoint_run_id}, but {output_dir} holds run {folder_run_id}: resume a "
            f"checkpoint of this folder's run, or resume into a new --output_dir"
        )


def adopt_resumed_run(output_dir: Path, checkpoint: Path, checkpoint_run_id: str | None) -> None:
    """Record the resumed run in ``output_dir`` (main process) when the folder has no run file yet, e.g. a
    checkpoint resumed into a new folder."""
    if checkpoint_run_id is not None and read_run_id(output_dir) is None:
        output_dir.mkdir(parents=True, exist_ok=True)
        record = {"run_id": checkpoint_run_id, "resumed_from": str(checkpoint)}
        (output_dir / RUN_FILE).write_text(json.dumps(record, indent=2))


__all__ = [
    "RUN_ARTEFACTS",
    "RUN_FILE",
    "OutputDirInUseError",
    "adopt_resumed_run",
    "check_new_run",
    "check_resumed_run",
    "read_run_id",
    "run_artefacts",
    "start_run",
]
