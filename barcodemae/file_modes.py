"""Saved weights readable by whoever may read the folder: the modes a plain ``open`` would have given.

Why: ``safetensors`` writes ``model.safetensors`` through a private temporary file, so it lands with mode 0600
(owner only) whatever the user's umask says; in a shared lab folder colleagues then cannot load the model.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path


def current_umask() -> int:
    """The process umask (read by setting and restoring it)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def apply_umask(folder: str | Path) -> None:
    """Give every file under ``folder`` at least the mode ``0o666 & ~umask`` (only widens, never narrows)."""
    wanted = 0o666 & ~current_umask()
    for path in Path(folder).rglob("*"):
        if path.is_file() and not path.is_symlink():
            mode = stat.S_IMODE(path.stat().st_mode)
            if mode | wanted != mode:
                path.chmod(mode | wanted)


__all__ = ["apply_umask", "current_umask"]
