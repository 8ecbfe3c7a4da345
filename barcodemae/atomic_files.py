"""Output files that appear whole or not at all.

Why: a table written in place and killed half-way (Ctrl-C, a job's time limit, a full disk) leaves a truncated file
that still parses, so a later step reads a part of the answer as the whole. Writing to a temporary file beside the
target and renaming it over the target once complete (atomic on one file system) leaves either the old file or the
new one.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def atomic_write_path(path: str | Path) -> Iterator[Path]:
    """A temporary path beside ``path`` for the block to write; moved onto ``path`` when the block succeeds and
    removed when it fails. It keeps ``path``'s name as its end, so writers that pick a format or compression from
    the suffix (``.csv.gz``) treat both alike."""
    path = Path(path)
    temporary = path.with_name(f".tmp-{os.getpid()}-{path.name}")
    try:
        yield temporary
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


__all__ = ["atomic_write_path"]
