"""SHA-256 checksums of a folder's files, written last and verified before the files are trusted.

Why: checkpoints and reference indexes are read long after they were written, often after copies between
machines; a flipped byte, a truncated copy or a file swapped in from another folder must fail with the file's name
rather than resume corrupted weights or answer queries from wrong vectors. ``checksums.json`` covers every file of
the folder (not sub-folders) and is written after them, so its presence also says the folder was completed.

The same hash is the project's one identity of an input file by content (:func:`file_fingerprint`): the key of the
loaders' ``datasets`` caches and what a resumed ``embed``, ``identify build`` or ``train.py`` run compares.
"""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path
from typing import Any

from barcodemae.atomic_files import atomic_write_path

logger = logging.getLogger(__name__)

CHECKSUMS = "checksums.json"
HASH_BLOCK = 1 << 20


def file_sha256(path: Path) -> str:
    """Hex SHA-256 of a file, read in 1 MiB blocks (the file may be far larger than memory)."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(HASH_BLOCK), b""):
            digest.update(block)
    return digest.hexdigest()


def file_fingerprint(path: Path) -> dict[str, Any]:
    """Size and SHA-256 of an input file: what it holds, not where it lies or when it was last touched.

    Why content: a run resumed on, or a cache reused for, a file is only right if the bytes are the same. Path and
    mtime say neither (``cp -p``, ``rsync -t`` and ``touch -r`` keep the mtime of a changed file; ``touch``, a
    copy or another spelling of the path change them for the same bytes).
    """
    return {"size": path.stat().st_size, "sha256": file_sha256(path)}


def file_checksums(folder: Path) -> dict[str, str]:
    """SHA-256 of every file in ``folder`` (not recursing, the checksum file itself excluded)."""
    return {path.name: file_sha256(path) for path in sorted(folder.iterdir())
            if path.is_file() and path.name != CHECKSUMS}


def write_checksums(folder: Path) -> None:
    """Record the checksums of ``folder``'s files, atomically; call it after the last other file is written."""
    sums = file_checksums(folder)  # before the temporary file exists, so it is never listed
    with atomic_write_path(folder / CHECKSUMS) as temporary:
        temporary.write_text(json.dumps(sums, indent=1))


def read_checksums(folder: Path, error: type[Exception]) -> dict[str, str]:
    """The recorded checksums; ``error`` naming the file when it is not a non-empty ``{name: sha256}`` object."""
    path = folder / CHECKSUMS
    try:
        recorded = json.loads(path.read_text())
    except (UnicodeDecodeError, json.JSONDecodeError) as problem:
        raise error(f"{path}: not valid JSON ({problem}); the folder's files cannot be verified") from problem
    if not isinstance(recorded, dict) or not all(isinstance(v, str) for v in recorded.values()):
        raise error(f"{path}: not a {{file name: SHA-256}} object; the folder's files cannot be verified")
    if not recorded:
        raise error(f"{path}: lists no file, so nothing in the folder can be verified")
    return recorded


def verify_checksums(folder: Path, *, required: bool, error: type[Exception], unlisted_is_error: bool = True) -> None:
    """Compare ``folder``'s files with its ``checksums.json``; raise ``error`` naming the file that differs.

    ``required``: the folder was written by a version that records checksums, so a missing file means it was
    deleted (an error); otherwise the folder predates checksums and is trusted with a warning. A file present but
    not listed was added after saving: an error, or a warning where users may keep notes beside the files
    (``unlisted_is_error=False``).
    """
    if not (folder / CHECKSUMS).is_file():
        if required:
            raise error(f"{folder / CHECKSUMS}: missing, but {folder} was written with checksums; its files cannot "
                        "be verified (deleted or incompletely copied)")
        logger.warning("%s has no %s (written by an older version): its files cannot be verified", folder, CHECKSUMS)
        return
    recorded = read_checksums(folder, error)
    present = {path.name for path in folder.iterdir() if path.is_file() and path.name != CHECKSUMS}
    for name, digest in recorded.items():
        if name not in present:
            raise error(f"{folder / name}: listed in {CHECKSUMS} but missing")
        if file_sha256(folder / name) != digest:
            raise error(f"{folder / name}: content differs from {CHECKSUMS} (corrupted or replaced since saving)")
    unlisted = sorted(present - recorded.keys())
    if unlisted and unlisted_is_error:
        raise error(f"{folder}: {', '.join(unlisted)} not listed in {CHECKSUMS} (added after saving)")
    if unlisted:
        logger.warning("%s: %s not listed in %s (added after saving); not used", folder, ", ".join(unlisted),
                       CHECKSUMS)


__all__ = [
    "CHECKSUMS",
    "file_checksums",
    "file_fingerprint",
    "file_sha256",
    "read_checksums",
    "verify_checksums",
    "write_checksums",
]
