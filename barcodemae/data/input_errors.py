"""One-line errors for unreadable input files: a user learns which file is wrong and why, not a library traceback.

Why a wrapper: ``datasets`` runs our readers inside its dataset builder and re-raises any failure as
``DatasetGenerationError("An error occurred while generating the dataset")``, which names neither the file nor the
problem; an empty file surfaces as ``Instruction "train" corresponds to no data!``. :func:`reading` turns those
into :class:`InputFileError` (a ``ValueError``, so every command prints it as one line and exits with status 2).
"""

from __future__ import annotations

import gzip
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import datasets

from .io_utils import is_gzipped


class InputFileError(ValueError):
    """An input file that cannot be read as barcodes; the message names the file and the problem."""


TEXT_SAMPLE_BYTES = 8192


def first_non_utf8_line(path: str | Path) -> tuple[int, int] | None:
    """``(line number, offending byte)`` of the first line of ``path`` (gunzipped if need be) that is not UTF-8,
    or ``None`` when the file is mostly not text at all (NUL bytes, or over a third of its first 8 KiB above ASCII).

    Why: a CSV exported from a spreadsheet in Latin-1 (``Müller``) is a text file with one wrong byte, and the user
    needs the line to fix or re-encode it, not "not a text file".
    """
    with (gzip.open(path, "rb") if is_gzipped(path) else open(path, "rb")) as handle:
        sample = handle.read(TEXT_SAMPLE_BYTES)
        if b"\0" in sample or sum(byte >= 0x80 for byte in sample) * 3 > len(sample):
            return None
        handle.seek(0)
        for number, line in enumerate(handle, start=1):
            try:
                line.decode("utf-8")
            except UnicodeDecodeError as error:
                return number, line[error.start]
    return None


def describe(error: BaseException, path: str | Path | None = None) -> str:
    """What went wrong, in words a user can act on (``path``: the file, to find the line of an encoding error)."""
    if isinstance(error, UnicodeDecodeError):
        found = first_non_utf8_line(path) if path is not None else None
        if found is not None:
            return (f"line {found[0]} is not UTF-8 (byte 0x{found[1]:02X}, e.g. a Latin-1 accent); save the file as "
                    "UTF-8, e.g. iconv -f latin1 -t utf-8 IN > OUT")
        return (f"not a text file (undecodable byte at position {error.start}); expected FASTA, a BIOSCAN-format "
                "CSV or a BOLD TSV, optionally gzipped")
    if isinstance(error, (EOFError, zlib.error, gzip.BadGzipFile)):
        return f"truncated or corrupt gzip file ({error})"
    return str(error)


def root_cause(error: BaseException) -> BaseException:
    """The innermost chained exception (the reader's own error behind the builder's wrapper)."""
    while error.__cause__ is not None:
        error = error.__cause__
    return error


def check_input_file(path: str | Path) -> None:
    """Refuse a missing, non-regular or empty file before any parsing."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such file")
    if not path.is_file():
        raise InputFileError(f"{path}: not a regular file")
    if path.stat().st_size == 0:
        raise InputFileError(f"{path}: empty file, no records")


@contextmanager
def reading(path: str | Path) -> Iterator[None]:
    """Run a ``datasets`` build of ``path``, re-raising its failures as :class:`InputFileError`."""
    try:
        yield
    except datasets.exceptions.DatasetGenerationError as error:
        message = describe(root_cause(error), path)
        raise InputFileError(message if message.startswith(str(path)) else f"{path}: {message}") from error
    except (UnicodeDecodeError, EOFError, zlib.error, gzip.BadGzipFile) as error:
        raise InputFileError(f"{path}: {describe(error, path)}") from error
    except ValueError as error:
        if "corresponds to no data" in str(error):
            raise InputFileError(f"{path}: no records") from error
        raise


__all__ = ["InputFileError", "check_input_file", "describe", "reading", "root_cause"]
