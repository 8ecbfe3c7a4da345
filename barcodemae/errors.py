"""How command-line entry points report expected failures: one line on stderr and exit status 2.

Expected failures are the user's to fix (a bad file, a missing folder, a used output folder, a corrupt
checkpoint, an unwritable output path); their messages name the file or record. Anything else is a bug and keeps
its traceback. Output locations are checked before long work, so a run does not compute for an hour and then fail
to write.
"""

from __future__ import annotations

import errno
import os
import sys
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

EXPECTED_ERRORS: tuple[type[BaseException], ...] = (ValueError, FileNotFoundError, FileExistsError, KeyError,
                                                    PermissionError, IsADirectoryError, NotADirectoryError)
"""Exceptions whose message is the whole story (:class:`CheckpointError` among them, as a ``ValueError``)."""


class CheckpointError(ValueError):
    """A checkpoint that cannot be resumed from (``train.py``), exported (``barcodemae export``) or converted
    (``barcodemae convert``); the message names the folder or file and what is wrong.

    Why one class, and a ``ValueError``: every entry point reports it as an expected failure (one line, exit status 2)
    without a per-entry-point exception list, and code that catches checkpoint problems catches one type.
    """


def report_errors(prog: str, run: Callable[[], int]) -> int:
    """``run()``; an expected failure becomes ``<prog>: error: <message>`` on stderr and exit status 2."""
    try:
        return run()
    except EXPECTED_ERRORS as error:
        message = error.args[0] if isinstance(error, KeyError) and error.args else error
        print(f"{prog}: error: {message}", file=sys.stderr)
        return 2
    except OSError as error:
        if error.errno not in (errno.ENOSPC, errno.EDQUOT):
            raise
        where = error.filename or "an output file"
        print(f"{prog}: error: {where}: no space left on the device (or quota exceeded); free some space and run the "
              "same command again (with --resume where it has one: finished work is kept)", file=sys.stderr)
        return 2


@contextmanager
def naming_output(path: str | Path) -> Iterator[None]:
    """Give an ``OSError`` raised while writing ``path`` that file's name when it has none (a failed ``write`` or
    ``flush`` of a full disk names no file), so :func:`report_errors` can say which output could not be written."""
    try:
        yield
    except OSError as error:
        code = error.errno if error.errno is not None else (errno.ENOSPC if "No space left" in str(error) else None)
        if error.filename is None and code is not None:  # Arrow's IO errors carry the cause in words only
            raise OSError(code, error.strerror or str(error), str(path)) from error
        raise


def reserve_space(handle: BinaryIO, size: int, path: str | Path) -> None:
    """Allocate ``size`` bytes of the open file now, so a full disk fails here with ``ENOSPC`` naming ``path``.

    Why: a memory-mapped file is created sparse; when the disk fills while its pages are written, the kernel can only
    kill the process with SIGBUS (exit 135, no message). Reserving the blocks first turns that into an error.
    """
    try:
        os.posix_fallocate(handle.fileno(), 0, size)
    except OSError as error:
        if error.errno in (errno.EOPNOTSUPP, errno.EINVAL):  # file systems without fallocate keep the old behaviour
            return
        raise OSError(error.errno, error.strerror, str(path)) from error


def check_writable_folder(folder: str | Path) -> None:
    """Fail before long work when files cannot be created in ``folder`` (created if missing)."""
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".write-check-"):
            pass
    except OSError as error:
        raise PermissionError(f"{folder}: cannot write output here ({error.strerror or error})") from error


def check_new_folder(folder: str | Path) -> None:
    """Fail before long work when ``folder`` already holds files (a folder of its own is written there, and a user's
    files must not be overwritten or mixed with it), or cannot be written."""
    folder = Path(folder)
    if folder.is_dir() and any(folder.iterdir()):
        raise FileExistsError(f"{folder}: output folder exists and is not empty; choose a new folder")
    check_writable_folder(folder)


def check_output_file(
    path: str | Path, inputs: tuple[str | Path, ...] = (), input_folders: tuple[str | Path, ...] = ()
) -> None:
    """Fail before long work when ``path`` is one of ``inputs`` or lies inside one of ``input_folders`` (it would
    overwrite what is read), or cannot be written."""
    target = Path(path).resolve()
    for source in inputs:
        if Path(source).resolve() == target:
            raise ValueError(f"{path}: the output would overwrite the input {source}; choose another output path")
    for folder in input_folders:
        if Path(folder).resolve() in target.parents:
            raise ValueError(f"{path}: the output would be written inside the input folder {folder}, among its own "
                             "files; choose an output path outside it")
    if target.is_dir():
        raise IsADirectoryError(f"{path}: is a folder; give a file path for the output")
    check_writable_folder(target.parent)


__all__ = [
    "EXPECTED_ERRORS",
    "CheckpointError",
    "check_new_folder",
    "check_output_file",
    "check_writable_folder",
    "naming_output",
    "report_errors",
    "reserve_space",
]
