"""The safetensors header reader: tensor names and shapes from the header alone, and a damaged file named."""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import save_file

from barcodemae.safetensors_header import SafetensorsHeaderError, read_safetensors_header


def test_safetensors_header_gives_shapes_without_reading_data(tmp_path):
    path = tmp_path / "weights.safetensors"
    save_file({"a": torch.zeros(3, 4), "b": torch.zeros(2, dtype=torch.int64)}, path)
    header = read_safetensors_header(path)
    assert {name: entry["shape"] for name, entry in header.items()} == {"a": [3, 4], "b": [2]}
    assert header["a"]["dtype"] == "F32"


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda data: data[:-4], "truncated safetensors file"),
        (lambda data: data[:5], r"truncated safetensors file \(5 bytes\)"),
        (lambda data: (2**40).to_bytes(8, "little") + data[8:], "corrupt safetensors header .claims"),
        (lambda data: (2).to_bytes(8, "little") + b"[]" + data[10:], r"corrupt safetensors header \(not a JSON"),
        (lambda data: (12).to_bytes(8, "little") + b'{"a": {}}   ' + data[20:], "tensor 'a' has no valid shape"),
    ],
    ids=["cut-data", "cut-length", "huge-length", "not-an-object", "no-shape"],
)
def test_damaged_safetensors_headers_name_the_file(damage, message, tmp_path):
    path = tmp_path / "weights.safetensors"
    save_file({"a": torch.zeros(3, 4)}, path)
    path.write_bytes(damage(path.read_bytes()))
    with pytest.raises(SafetensorsHeaderError, match=message) as refused:
        read_safetensors_header(path)
    assert str(path) in str(refused.value) and isinstance(refused.value, ValueError)
