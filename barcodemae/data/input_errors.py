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


class InputFileError(ValueError):
    """An input file that cannot be read as barcodes; the message names the file and the problem."""


def describe(error: BaseException) -> str:
    """What went wrong, in words a user can act on."""
    if isinstance(error, UnicodeDecodeError):
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
        message = describe(root_cause(error))
        raise InputFileError(message if message.startswith(str(path)) else f"{path}: {message}") from error
    except (UnicodeDecodeError, EOFError, zlib.error, gzip.BadGzipFile) as error:
        raise InputFileError(f"{path}: {describe(error)}") from error
    except ValueError as error:
        if "corresponds to no data" in str(error):
            raise InputFileError(f"{path}: no records") from error
        raise


__all__ = ["InputFileError", "check_input_file", "describe", "reading", "root_cause"]
