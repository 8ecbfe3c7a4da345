"""The ``.npy`` output of ``barcodemae embed``: a matrix, its ids and a sidecar tying the two, replaced as a unit.

Why: the vectors and their ids are two files. Written one after the other, a re-run that failed in between left the
new vectors beside the previous run's ids, and row 0's id then named another barcode's vector without any error.

Files (``<output>`` ends in ``.npy``):

* ``<output>``: the float32 ``(rows, hidden_size)`` matrix, NumPy format, rows in input order of the kept records.
* ``<output>.ids.txt``: UTF-8, one record id per line, line ``i`` naming row ``i``. Cleaning rejects ids that are
  blank or hold a line break or other control character, so ``str.splitlines`` reads the file back exactly.
* ``<output>.json``: ``{"format": "barcodemae-embeddings/1", "rows", "hidden_size", "matrix_bytes",
  "matrix_sample_sha256", "ids_sha256"}``: the matrix's shape and file size, a SHA-256 of up to
  :data:`SAMPLED_ROWS` evenly spaced rows (first and last included) and a SHA-256 of the ids file. Checking it
  reads a few pages of the matrix, whatever its size; a matrix or ids file of another run fails it.

Writing order: ids and sidecar to temporary files; the old ids and sidecar deleted; the matrix moved in; then the
ids; then the sidecar. A run stopped anywhere leaves the old unit intact, or a matrix without ids (refused when
read), or the new matrix and ids without their sidecar (consistent, and checked by count) -- never a matrix beside
another run's ids. Outputs written before the sidecar existed are read with the count check alone.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

FORMAT = "barcodemae-embeddings/1"
SAMPLED_ROWS = 64
RERUN_HINT = "re-run barcodemae embed (--resume reuses finished shards)"


def ids_path(output: Path) -> Path:
    """``<output>.ids.txt``: the record id of each row."""
    return Path(f"{output}.ids.txt")


def sidecar_path(output: Path) -> Path:
    """``<output>.json``: what ties the matrix and its ids together."""
    return Path(f"{output}.json")


def sidecar(matrix: np.ndarray, matrix_bytes: int, ids_text: bytes) -> dict[str, Any]:
    """The sidecar's content for ``matrix`` (its file ``matrix_bytes`` long) and the ids file's bytes."""
    rows = np.unique(np.linspace(0, len(matrix) - 1, num=min(len(matrix), SAMPLED_ROWS)).round().astype(np.int64))
    return {
        "format": FORMAT,
        "rows": int(matrix.shape[0]),
        "hidden_size": int(matrix.shape[1]),
        "matrix_bytes": int(matrix_bytes),
        "matrix_sample_sha256": hashlib.sha256(np.ascontiguousarray(matrix[rows]).tobytes()).hexdigest(),
        "ids_sha256": hashlib.sha256(ids_text).hexdigest(),
    }


def publish_npy_embeddings(matrix_path: Path, ids: Sequence[str], output: Path) -> None:
    """Move the finished ``matrix_path`` (same file system) to ``output`` with its ids and sidecar, as a unit."""
    ids_text = "".join(f"{record_id}\n" for record_id in ids).encode("utf-8")
    matrix = np.load(matrix_path, mmap_mode="r", allow_pickle=False)
    if len(matrix) != len(ids):
        raise RuntimeError(f"{matrix_path}: {len(matrix)} rows for {len(ids)} ids")
    content = sidecar(matrix, matrix_path.stat().st_size, ids_text)
    del matrix
    final = (ids_path(output), sidecar_path(output))
    staged = tuple(path.with_name(path.name + ".tmp") for path in final)
    staged[0].write_bytes(ids_text)
    staged[1].write_text(json.dumps(content, indent=1))
    for old in final:  # from here until the new ids are in, the matrix has no ids: refused, never misnamed
        old.unlink(missing_ok=True)
    os.replace(matrix_path, output)
    for source, target in zip(staged, final):
        os.replace(source, target)


def read_npy_embeddings(path: Path) -> tuple[np.ndarray, list[str]]:
    """The memory-mapped matrix at ``path`` and its ids, refused (``ValueError`` naming the files) unless they are
    one unit: ids file present, one id per row, and the sidecar, when there is one, matching both."""
    names = ids_path(path)
    if not names.is_file():
        raise ValueError(
            f"{path}: its ids file {names} is missing, so its rows cannot be named (a run stopped while replacing "
            f"them, or the file was moved); {RERUN_HINT}"
        )
    try:
        matrix = np.load(path, mmap_mode="r", allow_pickle=False)
    except (ValueError, OSError) as error:  # numpy names no file: "EOF: reading array header"
        raise ValueError(f"{path}: not a readable NumPy matrix ({error}); {RERUN_HINT}") from error
    ids_text = names.read_bytes()
    ids = ids_text.decode("utf-8").splitlines()
    if len(ids) != len(matrix):
        raise ValueError(
            f"{path} has {len(matrix)} rows but {names} lists {len(ids)} ids: they are not from the same run; "
            f"{RERUN_HINT}"
        )
    meta = sidecar_path(path)
    if meta.is_file():
        recorded = json.loads(meta.read_text())
        if recorded.get("format") != FORMAT:
            raise ValueError(f"{meta}: unknown format {recorded.get('format')!r}, expected {FORMAT!r}")
        actual = sidecar(matrix, path.stat().st_size, ids_text)
        changed = [key for key in actual if actual[key] != recorded.get(key)]
        differ = sorted({"ids" if key == "ids_sha256" else "matrix" for key in changed})
        if differ:
            raise ValueError(
                f"{path} and {names} do not match {meta} ({', '.join(differ)}): the files are not from the same "
                f"run; {RERUN_HINT}"
            )
    return matrix, ids
