"""Opening plain or gzipped text files by content, not by name."""

from __future__ import annotations

import atexit
import gzip
import io
import shutil
import tempfile
from functools import cache
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


@cache
def _link_folder() -> Path:
    """A folder for this process's renaming links, removed when the process exits."""
    folder = Path(tempfile.mkdtemp(prefix="barcodemae-links-"))
    atexit.register(shutil.rmtree, folder, True)
    return folder


def content_named_path(path: str | Path) -> Path:
    """``path``, or a link to it whose name ends as its content says (``.gz`` or not).

    Why: readers that pick decompression by name (``datasets``' CSV builder) fail on a plain-text ``x.csv.gz`` as
    "corrupt gzip" and on a gzipped ``x.csv`` as "not a text file", while every reader of ours goes by content.
    The link lives in a per-process temporary folder for as long as the process (a streaming dataset reads late).
    """
    path = Path(path)
    named_gz = path.name.lower().endswith(".gz")
    if is_gzipped(path) == named_gz:
        return path
    name = path.name[:-3] if named_gz else f"{path.name}.gz"
    link = _link_folder() / f"{abs(hash(str(path.resolve())))}-{name}"
    if not link.exists():
        link.symlink_to(path.resolve())
    return link
