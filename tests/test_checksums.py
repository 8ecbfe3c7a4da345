"""checksums.json with a remembered verification: a folder loaded often hashes only the files that changed."""

from __future__ import annotations

import json
import os
import shutil
from collections import Counter
from pathlib import Path

import pytest

from barcodemae.checksums import CHECKSUMS, VERIFIED, verify_checksums, write_checksums
from conftest import count_file_hashes, edit_keeping_size_and_mtime, settle


@pytest.fixture
def hashed(monkeypatch) -> Counter:
    """File names counted each time their SHA-256 is computed."""
    return count_file_hashes(monkeypatch)


def folder_of_two(tmp_path: Path) -> Path:
    folder = tmp_path / "folder"
    folder.mkdir()
    (folder / "vectors.bin").write_bytes(bytes(range(256)) * 64)
    (folder / "info.json").write_text('{"rows": 64}')
    settle(*folder.iterdir())
    return folder


def verify(folder: Path) -> None:
    verify_checksums(folder, required=True, error=ValueError, remember=True)


def test_a_remembered_verification_hashes_only_the_files_that_changed(tmp_path, hashed) -> None:
    folder = folder_of_two(tmp_path)
    write_checksums(folder, remember=True)
    assert hashed == Counter({"vectors.bin": 1, "info.json": 1})
    assert set(json.loads((folder / CHECKSUMS).read_text())) == {"vectors.bin", "info.json"}  # VERIFIED not listed
    hashed.clear()
    verify(folder)
    assert hashed == Counter()  # unchanged since the build: nothing hashed

    with (folder / "vectors.bin").open("r+b") as handle:  # a flipped byte, same size
        handle.seek(100)
        handle.write(b"\xff")
    with pytest.raises(ValueError, match=r"vectors.bin: content differs from checksums.json"):
        verify(folder)
    with pytest.raises(ValueError, match=r"vectors.bin: content differs from checksums.json"):
        verify(folder)  # still refused: a file that failed is never recorded as verified
    assert hashed == Counter({"vectors.bin": 2})

    with (folder / "vectors.bin").open("r+b") as handle:
        handle.seek(100)
        handle.write(bytes([100]))
    hashed.clear()
    verify(folder)
    verify(folder)
    assert hashed == Counter({"vectors.bin": 2})  # the same bytes again, but written just now: not yet recorded
    settle(folder / "vectors.bin")
    hashed.clear()
    verify(folder)
    verify(folder)
    assert hashed == Counter({"vectors.bin": 1})  # hashed once, then remembered

    edit_keeping_size_and_mtime(folder / "vectors.bin", bytes([100]), bytes([101]))
    with pytest.raises(ValueError, match=r"vectors.bin: content differs from checksums.json"):
        verify(folder)  # its ctime says it was written
    edit_keeping_size_and_mtime(folder / "vectors.bin", bytes([101]), bytes([100]))
    settle(folder / "vectors.bin")
    verify(folder)

    copy = folder / "copy.tmp"  # `cp -p` / `rsync -t`: same bytes, size and mtime, another inode
    shutil.copy2(folder / "vectors.bin", copy)
    os.replace(copy, folder / "vectors.bin")
    hashed.clear()
    verify(folder)
    assert hashed == Counter({"vectors.bin": 1})

    (folder / VERIFIED).unlink()  # the way to have every file hashed again
    hashed.clear()
    verify(folder)
    assert hashed == Counter({"vectors.bin": 1, "info.json": 1})


def test_without_remember_every_file_is_hashed_once_and_nothing_is_recorded(tmp_path, hashed) -> None:
    """Checkpoints: loaded rarely, verified in full every time."""
    folder = folder_of_two(tmp_path)
    write_checksums(folder)
    verify_checksums(folder, required=True, error=ValueError)
    assert hashed == Counter({"vectors.bin": 2, "info.json": 2})
    assert not (folder / VERIFIED).exists()


def test_a_record_that_cannot_be_written_or_read_only_costs_hashing(tmp_path, hashed, caplog) -> None:
    folder = folder_of_two(tmp_path)
    write_checksums(folder)
    (folder / VERIFIED).mkdir()  # neither readable nor replaceable as a file, even by root
    verify(folder)
    verify(folder)
    assert hashed == Counter({"vectors.bin": 3, "info.json": 3})
    assert "cannot record which files were verified" in caplog.text
    (folder / VERIFIED).rmdir()
    (folder / VERIFIED).write_text("{not json")
    verify(folder)
    verify(folder)
    assert hashed == Counter({"vectors.bin": 4, "info.json": 4})  # unreadable: hashed, and the record rewritten
