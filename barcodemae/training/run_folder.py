"""Which run an output folder belongs to, and which of its files that run wrote.

Why: a second ``train.py`` into a used ``--output_dir`` without ``--resume_from_checkpoint`` used to overwrite
``training_args.json`` and ``metrics.jsonl`` while the old run's later checkpoints stayed, so the new run's own
checkpoints were pruned as "older" and a later resume continued the *old* run under the new arguments. And
``--overwrite_output_dir`` used to remove every folder with a run-like name (``data``, ``eval``, ``barcodemae``),
whoever made it: a user's ``data/`` of specimens, or a repository's ``eval/`` package with ``--output_dir .``.

Now every run has a record, ``run.json``: its id (also in every checkpoint's trainer state) and the names it
*owns*, the entries of :data:`RUN_ARTEFACTS` it planned to write and that were absent when it started. A fresh run
refuses a folder that holds another run's files unless ``--overwrite_output_dir`` is given, and then removes only
what that run owns, never a path holding ``--data`` or the working directory. A folder whose run-named entries no
run record owns is not a run: a new run refuses to write into them, with or without the flag, and deletes nothing.
A resume refuses a checkpoint written by another run than the folder's.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import shutil
import uuid
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path

from barcodemae.run_layout import (
    BEST_MODEL_DIR,
    BEST_MODEL_STAGING_DIR,
    CHECKPOINTS_DIR,
    EVAL_DIR,
    FINAL_MODEL_DIR,
    METRICS_FILE,
    NPMI_DIR,
    RUN_FILE,
    SIMULATED_DATA_DIR,
    SUMMARY_FILE,
    TRACKER_PROJECT,
    TRAINING_ARGS_FILE,
    RunLayout,
)

logger = logging.getLogger(__name__)

RUN_ARTEFACTS = (
    RUN_FILE,
    TRAINING_ARGS_FILE,
    METRICS_FILE,
    SUMMARY_FILE,
    CHECKPOINTS_DIR,
    BEST_MODEL_DIR,
    BEST_MODEL_STAGING_DIR,
    FINAL_MODEL_DIR,
    EVAL_DIR,
    NPMI_DIR,
    SIMULATED_DATA_DIR,
    TRACKER_PROJECT,
)
"""Every top-level name a run may write (``data/``: the simulated default dataset; ``barcodemae/``: TensorBoard logs
of ``--report_to``); the lock file is never counted as a run file. Only those a run's record owns are ever
removed."""
OWNED_BEFORE_MANIFESTS = tuple(name for name in RUN_ARTEFACTS if name not in (EVAL_DIR, SIMULATED_DATA_DIR,
                                                                                TRACKER_PROJECT))
"""What a ``run.json`` written before the record listed its files owns: the names only a run writes."""


class OutputDirInUseError(FileExistsError):
    """A run was pointed at a folder it must not write into as asked; the message names the ways out."""


def planned_artefacts(simulated_data: bool, tensorboard: bool) -> tuple[str, ...]:
    """The entries of :data:`RUN_ARTEFACTS` a run with these choices may write."""
    skipped = {SIMULATED_DATA_DIR} if not simulated_data else set()
    if not tensorboard:
        skipped.add(TRACKER_PROJECT)
    return tuple(name for name in RUN_ARTEFACTS if name not in skipped)


def read_run_record(output_dir: Path) -> dict | None:
    """The folder's ``run.json`` (``None``: no run recorded here)."""
    path = RunLayout(output_dir).run_record
    if not path.is_file():
        return None
    try:
        record = json.loads(path.read_text())
        str(record["run_id"])
    except (json.JSONDecodeError, UnicodeDecodeError, KeyError, TypeError) as error:
        raise OutputDirInUseError(
            f"{path}: unreadable run record ({error}); it is not this code's run file"
        ) from error
    return record


def read_run_id(output_dir: Path) -> str | None:
    """The id of the run that owns ``output_dir`` (``None``: no run recorded here)."""
    record = read_run_record(output_dir)
    return None if record is None else str(record["run_id"])


def owned_artefacts(output_dir: Path) -> list[str]:
    """The entries of ``output_dir`` that its recorded run wrote (empty when no run is recorded)."""
    record = read_run_record(output_dir)
    if record is None:
        return []
    owned = set(record.get("owned", OWNED_BEFORE_MANIFESTS)) | {RUN_FILE}
    return [name for name in RUN_ARTEFACTS if name in owned and (output_dir / name).exists()]


def _holds(path: Path, other: Path) -> bool:
    """Whether ``other`` is ``path`` or lies inside it (links resolved)."""
    path, other = path.resolve(), other.resolve()
    return other == path or path in other.parents


def check_new_run(
    output_dir: Path, overwrite: bool, planned: Iterable[str] = RUN_ARTEFACTS, protected: Iterable[Path] = ()
) -> list[str]:
    """The previous run's entries a new run would remove (only with ``overwrite``).

    Raises :class:`OutputDirInUseError` when an entry the new run would write exists but no run record owns it
    (never removed, flag or not); when the folder holds a run and ``overwrite`` is off; or when one of the previous
    run's entries holds a ``protected`` path (the training data) or the working directory. Read-only, so every
    process of a distributed run can check before the main one writes.
    """
    previous = owned_artefacts(output_dir)
    foreign = [name for name in planned if (output_dir / name).exists() and name not in previous]
    if foreign:
        raise OutputDirInUseError(
            f"--output_dir {output_dir} holds {', '.join(foreign)}, which this run would write into, but no run "
            f"record ({RUN_FILE}) there lists them as a run's files, so they are not a run's and nothing was "
            "deleted; choose a new --output_dir, or move them away yourself"
        )
    if previous and not overwrite:
        raise OutputDirInUseError(
            f"--output_dir {output_dir} already holds run {read_run_id(output_dir)} ({', '.join(previous)}). "
            "Continue it with --resume_from_checkpoint latest (and its original flags), choose a new --output_dir, "
            "or pass --overwrite_output_dir true to delete that run's files and start afresh"
        )
    for name in previous:
        held = [str(path) for path in (*protected, Path.cwd()) if _holds(output_dir / name, path)]
        if held:
            raise OutputDirInUseError(
                f"--overwrite_output_dir would delete {output_dir / name}, which holds {', '.join(held)}; nothing "
                "was deleted: copy that data elsewhere, or choose a new --output_dir"
            )
    return previous


def _record(output_dir: Path, run_id: str, planned: Iterable[str], **extra: str) -> None:
    """Write ``run.json``: the run's id and the planned names it owns (those absent now, and the record itself)."""
    owned = [name for name in planned if name == RUN_FILE or not (output_dir / name).exists()]
    record = {"run_id": run_id, "owned": owned, **extra}
    RunLayout(output_dir).run_record.write_text(json.dumps(record, indent=2))


def start_run(
    output_dir: Path, overwrite: bool, planned: Iterable[str] = RUN_ARTEFACTS, protected: Iterable[Path] = ()
) -> str:
    """Claim ``output_dir`` for a new run (main process) and return its id; with ``overwrite``, the previous run's
    own files are removed first (see :func:`check_new_run` for what is refused)."""
    planned = tuple(planned)
    previous = check_new_run(output_dir, overwrite, planned, protected)
    for name in previous:
        path = output_dir / name
        shutil.rmtree(path) if path.is_dir() and not path.is_symlink() else path.unlink()
    if previous:
        logger.warning("--overwrite_output_dir: removed the previous run's %s from %s", ", ".join(previous), output_dir)
    run_id = uuid.uuid4().hex
    output_dir.mkdir(parents=True, exist_ok=True)
    _record(output_dir, run_id, planned, created=datetime.now(timezone.utc).isoformat(timespec="seconds"))
    return run_id


@contextmanager
def exclusive_run_folder(output_dir: Path, is_main_process: bool = True) -> Iterator[None]:
    """Hold ``output_dir`` for one training job (its main process) while the block runs.

    Why: a second ``train.py`` with ``--overwrite_output_dir`` (or a resume) into a folder whose run is still live
    would delete or interleave the live run's checkpoints and metrics. An ``flock`` on the folder's lock file is
    released by the kernel when the holder exits, however it exits (``kill -9`` too), so a stale lock never blocks a
    folder.
    """
    if not is_main_process:
        yield
        return
    output_dir.mkdir(parents=True, exist_ok=True)
    with open(RunLayout(output_dir).lock, "a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as error:
            handle.seek(0)
            holder = handle.read().strip() or "unknown"
            raise OutputDirInUseError(
                f"--output_dir {output_dir}: another training job (pid {holder}) is running in this folder; wait "
                "for it to end, or choose another --output_dir"
            ) from error
        handle.seek(0)
        handle.truncate()
        handle.write(f"{os.getpid()}\n")
        handle.flush()
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


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


def adopt_resumed_run(
    output_dir: Path, checkpoint: Path, checkpoint_run_id: str | None, planned: Iterable[str] = RUN_ARTEFACTS
) -> None:
    """Record the resumed run in ``output_dir`` (main process) when the folder has no run file yet, e.g. a
    checkpoint resumed into a new folder."""
    if checkpoint_run_id is not None and read_run_id(output_dir) is None:
        output_dir.mkdir(parents=True, exist_ok=True)
        _record(output_dir, checkpoint_run_id, planned, resumed_from=str(checkpoint))


__all__ = [
    "RUN_ARTEFACTS",
    "OutputDirInUseError",
    "adopt_resumed_run",
    "check_new_run",
    "check_resumed_run",
    "exclusive_run_folder",
    "owned_artefacts",
    "planned_artefacts",
    "read_run_id",
    "read_run_record",
    "start_run",
]
