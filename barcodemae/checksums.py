"""SHA-256 checksums of a folder's files, written last and verified before the files are trusted.

Why: checkpoints and reference indexes are read long after they were written, often after copies between
machines; a flipped byte, a truncated copy or a file swapped in from another folder must fail with the file's name
rather than resume corrupted weights or answer queries from wrong vectors. ``checksums.json`` covers every file of
the folder (not sub-folders) and is written after them, so its presence also says the folder was completed.

The same hash is the project's one identity of an input file by content (:func:`file_fingerprint`): the key of the
loaders' ``datasets`` caches and what a resumed ``embed``, ``identify build`` or ``train.py`` run compares.

A folder read often and large (a reference index: gigabytes of vectors, loaded by every ``identify query``) can
``remember`` its verification: :data:`VERIFIED` records, for each file hashed and found equal to ``checksums.json``,
its state then (:func:`file_state`: size, mtime, ctime, inode), and a later verification hashes only the files whose
state differs. Every write to a file sets its ctime, which no ordinary tool can set back (``cp -p``, ``rsync -t`` and
``touch -r`` restore the mtime only), and a copy or a replacement makes a new inode, so a file changed through the
file system since it was verified is hashed again and refused when it differs. Not caught: bytes that change
without a write (a failing disk; file systems with checksums, ZFS or btrfs, catch those). A file written in the
last :data:`SETTLED_NS` is hashed but not recorded: a second write within the file system's clock tick would keep
its times. Deleting :data:`VERIFIED` makes the next verification hash every file.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from barcodemae.atomic_files import atomic_write_path

logger = logging.getLogger(__name__)

CHECKSUMS = "checksums.json"
VERIFIED = ".verified.json"
"""``{file name: {"sha256", "size", "mtime_ns", "ctime_ns", "inode"}}``: the files last hashed and found equal to
``checksums.json`` and their state then (see the module docstring). Neither file is itself checksummed."""
HASH_BLOCK = 1 << 20
SETTLED_NS = 2_000_000_000
"""A file modified less than this long before it was hashed is not recorded as verified: a second write within the
same tick of a file system's clock (up to 2 s on FAT, 1 s on ext3, milliseconds elsewhere) would keep its times."""


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


MODEL_FINGERPRINT_PREFIX = "sha256:"
"""Marks a :func:`model_fingerprint`; fingerprints recorded without it are the older size-and-mtime kind."""


def model_fingerprint(model_dir: str | Path) -> str:
    """The identity of a model folder by content: ``"sha256:"`` and the SHA-256 of its ``config.json``'s hash and
    of each ``*.safetensors`` file's name and hash.

    Why content: an index's queries and a resumed ``embed`` must use the model that made the stored vectors, and the
    same model copied to another machine (new mtimes) is that model, while weights rewritten in place are not.
    Hashing a paper-size encoder's 344 MB of weights takes about half a second.
    """
    folder = Path(model_dir)
    return MODEL_FINGERPRINT_PREFIX + _weights_digest(folder, file_sha256(folder / "config.json").encode(),
                                                      file_sha256)


def is_same_model(model_dir: str | Path, recorded: str) -> bool:
    """Whether the folder is the model a recorded fingerprint names.

    Indexes and embed runs written before :func:`model_fingerprint` hashed content recorded a hash of
    ``config.json`` and the weights' sizes and mtimes (no prefix); those are compared by that rule, so an older
    index still answers from its model's folder.
    """
    if recorded.startswith(MODEL_FINGERPRINT_PREFIX):
        return model_fingerprint(model_dir) == recorded
    folder = Path(model_dir)
    return _weights_digest(folder, (folder / "config.json").read_bytes(),
                           lambda weights: f"{weights.stat().st_size}:{weights.stat().st_mtime_ns}") == recorded


def _weights_digest(folder: Path, config: bytes, describe: Callable[[Path], str]) -> str:
    """Hex SHA-256 of ``config`` followed by ``name:describe(file)`` of each ``*.safetensors`` file, by name."""
    digest = hashlib.sha256(config)
    for weights in sorted(folder.glob("*.safetensors")):
        digest.update(f"{weights.name}:{describe(weights)}".encode())
    return digest.hexdigest()


def file_state(path: Path) -> dict[str, int]:
    """What changes when a file is written, copied over or replaced: its size, mtime and ctime (ns) and inode.

    ``chmod``, ``chown`` and a new hard link set the ctime too: the file is then hashed once more. Not the device
    number, which differs between the machines mounting one network folder.
    """
    state = path.stat()
    return {"size": state.st_size, "mtime_ns": state.st_mtime_ns, "ctime_ns": state.st_ctime_ns,
            "inode": state.st_ino}


def checked_files(folder: Path) -> list[Path]:
    """The files of ``folder`` that ``checksums.json`` covers: every one (not recursing) but it and :data:`VERIFIED`."""
    return [path for path in sorted(folder.iterdir()) if path.is_file() and path.name not in (CHECKSUMS, VERIFIED)]


def verified_sha256(path: Path, verified: dict[str, dict[str, Any]]) -> str:
    """SHA-256 of ``path``, recording it with the file's state in ``verified`` (by name) when the file did not change
    while it was read (a state taken after the hash could describe other bytes) and any later write will change its
    mtime (:data:`SETTLED_NS`)."""
    before = file_state(path)
    digest = file_sha256(path)
    if file_state(path) == before and time.time_ns() - before["mtime_ns"] > SETTLED_NS:
        verified[path.name] = {"sha256": digest, **before}
    return digest


def read_verified(folder: Path) -> dict[str, dict[str, Any]]:
    """The :data:`VERIFIED` record of ``folder``; empty when there is none or it is unreadable (it is a cache: what
    it cannot vouch for is hashed)."""
    try:
        recorded = json.loads((folder / VERIFIED).read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return {}
    return recorded if isinstance(recorded, dict) else {}


def write_verified(folder: Path, verified: dict[str, dict[str, Any]]) -> None:
    """Replace :data:`VERIFIED` atomically; a folder that cannot be written keeps hashing, with a warning saying so."""
    try:
        with atomic_write_path(folder / VERIFIED) as temporary:
            temporary.write_text(json.dumps(verified, indent=1))
    except OSError as problem:
        logger.warning("%s: cannot record which files were verified (%s); every load hashes them again",
                       folder, problem)


def write_checksums(folder: Path, *, remember: bool = False) -> None:
    """Record the checksums of ``folder``'s files, atomically; call it after the last other file is written.

    ``remember``: also record them as verified (:data:`VERIFIED`), so the first load does not hash them again.
    """
    verified: dict[str, dict[str, Any]] = {}
    # listed before the temporary file exists, so it is never among them
    sums = {path.name: verified_sha256(path, verified) for path in checked_files(folder)}
    with atomic_write_path(folder / CHECKSUMS) as temporary:
        temporary.write_text(json.dumps(sums, indent=1))
    if remember:
        write_verified(folder, verified)


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


def verify_checksums(folder: Path, *, required: bool, error: type[Exception], unlisted_is_error: bool = True,
                     remember: bool = False) -> None:
    """Compare ``folder``'s files with its ``checksums.json``; raise ``error`` naming the file that differs.

    ``required``: the folder was written by a version that records checksums, so a missing file means it was
    deleted (an error); otherwise the folder predates checksums and is trusted with a warning. A file present but
    not listed was added after saving: an error, or a warning where users may keep notes beside the files
    (``unlisted_is_error=False``). Each file is hashed at most once; with ``remember``, only those whose state
    differs from the one :data:`VERIFIED` recorded with the same SHA-256, and the record is updated.
    """
    if not (folder / CHECKSUMS).is_file():
        if required:
            raise error(f"{folder / CHECKSUMS}: missing, but {folder} was written with checksums; its files cannot "
                        "be verified (deleted or incompletely copied)")
        logger.warning("%s has no %s (written by an older version): its files cannot be verified", folder, CHECKSUMS)
        return
    recorded = read_checksums(folder, error)
    present = {path.name for path in checked_files(folder)}
    known = read_verified(folder) if remember else {}
    verified: dict[str, dict[str, Any]] = {}
    for name, digest in recorded.items():
        if name not in present:
            raise error(f"{folder / name}: listed in {CHECKSUMS} but missing")
        if known.get(name) == {"sha256": digest, **file_state(folder / name)}:
            verified[name] = known[name]
        elif verified_sha256(folder / name, verified) != digest:
            raise error(f"{folder / name}: content differs from {CHECKSUMS} (corrupted or replaced since saving)")
    unlisted = sorted(present - recorded.keys())
    if unlisted and unlisted_is_error:
        raise error(f"{folder}: {', '.join(unlisted)} not listed in {CHECKSUMS} (added after saving)")
    if unlisted:
        logger.warning("%s: %s not listed in %s (added after saving); not used", folder, ", ".join(unlisted),
                       CHECKSUMS)
    if remember and verified != known:
        write_verified(folder, verified)


__all__ = [
    "CHECKSUMS",
    "MODEL_FINGERPRINT_PREFIX",
    "VERIFIED",
    "file_fingerprint",
    "file_sha256",
    "file_state",
    "is_same_model",
    "model_fingerprint",
    "read_checksums",
    "verify_checksums",
    "write_checksums",
]
