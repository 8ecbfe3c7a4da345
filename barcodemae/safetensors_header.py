"""What a safetensors file says it holds, read from its header alone (no tensor data is touched).

Why a reader of our own: a file's tensor names and shapes are needed *before* a model is built from a folder (a
config whose sizes do not fit its weights must be refused before anything is allocated), and a truncated or
overwritten file must be named as such rather than fail inside a loader. The format is an 8-byte little-endian
header length, a JSON header (``{name: {"dtype", "shape", "data_offsets"}, "__metadata__": {...}}``), then the data.
"""

from __future__ import annotations

import json
import struct
from pathlib import Path
from typing import Any

MAX_HEADER_BYTES = 100_000_000
"""The largest header the ``safetensors`` library itself accepts: a larger claimed length is a corrupt file, and
is refused before that many bytes are read."""


class SafetensorsHeaderError(ValueError):
    """A safetensors file whose header cannot be trusted; the message names the file (a caller with its own error
    type, such as a checkpoint check, can catch this one precisely)."""


def read_safetensors_header(path: str | Path) -> dict[str, dict[str, Any]]:
    """``{tensor name: {"dtype", "shape", "data_offsets"}}`` of a safetensors file (``__metadata__`` left out).

    Raises :class:`SafetensorsHeaderError` naming the file when it is shorter than its header says, its header is
    not the JSON object the format defines, a tensor entry lacks a shape or data offsets, or the data the header
    describes runs past the end of the file (a truncated write).
    """
    path = Path(path)
    size = path.stat().st_size
    if size < 8:
        raise SafetensorsHeaderError(f"{path}: truncated safetensors file ({size} bytes)")
    with path.open("rb") as handle:
        (header_len,) = struct.unpack("<Q", handle.read(8))
        if header_len > min(size - 8, MAX_HEADER_BYTES):
            raise SafetensorsHeaderError(
                f"{path}: corrupt safetensors header (claims {header_len} bytes, file has {size})"
            )
        try:
            header = json.loads(handle.read(header_len))
        except (UnicodeDecodeError, json.JSONDecodeError) as error:
            raise SafetensorsHeaderError(f"{path}: corrupt safetensors header ({error})") from error
    if not isinstance(header, dict):
        raise SafetensorsHeaderError(f"{path}: corrupt safetensors header (not a JSON object)")
    tensors = {name: entry for name, entry in header.items() if name != "__metadata__"}
    for name, entry in tensors.items():
        if not _is_tensor_entry(entry):
            raise SafetensorsHeaderError(
                f"{path}: corrupt safetensors header (tensor {name!r} has no valid shape and data_offsets)"
            )
    needed = 8 + header_len + max((entry["data_offsets"][1] for entry in tensors.values()), default=0)
    if size < needed:
        raise SafetensorsHeaderError(f"{path}: truncated safetensors file ({size} bytes, header needs {needed})")
    return tensors


def _is_tensor_entry(entry: object) -> bool:
    """A header entry with a shape and a (begin, end) pair of byte offsets."""
    return (isinstance(entry, dict) and _is_index_list(entry.get("shape"))
            and _is_index_list(entry.get("data_offsets")) and len(entry["data_offsets"]) == 2)


def _is_index_list(value: object) -> bool:
    """A JSON list of non-negative integers (a shape or a pair of byte offsets)."""
    return isinstance(value, list) and all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in value)


__all__ = ["MAX_HEADER_BYTES", "SafetensorsHeaderError", "read_safetensors_header"]
