"""Opening plain or gzipped text files by content, not by name."""

from __future__ import annotations

import gzip
import io
from pathlib import Path

GZIP_MAGIC = b"\x1f\x8b"


def is_gzipped(path: str | Path) -> bool:
    """True when the file starts with the gzip magic bytes (whatever its extension says)."""
    with open(path, "rb") as handle:
        return handle.read(2) == GZIP_MAGIC


def open_text(path: str | Path) -> io.TextIOBase:
    """Open ``path`` for reading text, decompressing gzip transparently; a missing file names the path."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no such file: {path}")
    if is_gzipped(path):
        return io.TextIOWrapper(gzip.open(path, "rb"), encoding="utf-8", newline="")
    return open(path, encoding="utf-8", newline="")


def strip_compression_suffix(path: str | Path) -> str:
    """File name without a trailing ``.gz`` (``a.fasta.gz`` -> ``a.fasta``), lower-cased, for format dispatch."""
    name = Path(path).name.lower()
    return name.removesuffix(".gz")
