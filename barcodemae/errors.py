"""How command-line entry points report expected failures: one line on stderr and exit status 2.

Expected failures are the user's to fix (a bad file, a missing folder, a used output folder, a corrupt
checkpoint, an unwritable output path); their messages name the file or record. Anything else is a bug and keeps
its traceback. Output locations are checked before long work, so a run does not compute for an hour and then fail
to write.
"""

from __future__ import annotations

import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

EXPECTED_ERRORS: tuple[type[BaseException], ...] = (ValueError, FileNotFoundError, FileExistsError, KeyError,
                                                    PermissionError, IsADirectoryError, NotADirectoryError)
"""Exceptions whose message is the whole story (more can be added per entry point, e.g. ``CheckpointError``)."""


def report_errors(prog: str, run: Callable[[], int], extra: tuple[type[BaseException], ...] = ()) -> int:
    """``run()``; an expected failure becomes ``<prog>: error: <message>`` on stderr and exit status 2."""
    try:
        return run()
    except EXPECTED_ERRORS + extra as error:
        message = error.args[0] if isinstance(error, KeyError) and error.args else error
        print(f"{prog}: error: {message}", file=sys.stderr)
        return 2


def check_writable_folder(folder: str | Path) -> None:
    """Fail before long work when files cannot be created in ``folder`` (created if missing)."""
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".write-check-"):
            pass
    except OSError as error:
        raise PermissionError(f"{folder}: cannot write output here ({error.strerror or error})") from error


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


__all__ = ["EXPECTED_ERRORS", "check_output_file", "check_writable_folder", "report_errors"]
