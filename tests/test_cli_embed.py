"""`barcodemae embed`: vectors equal the Python API, resume after a kill, rejected records reported (bad ids
included), duplicate ids warned about, NaN/inf vectors refused, and a .npy matrix never read with another run's ids."""

from __future__ import annotations

import errno
import hashlib
import json
import logging
import os
import re
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
import torch

import barcodemae.inference as embeddings_api
from barcodemae import BarcodeMAEConfig, BarcodeMAEForPreTraining, BarcodeTokenizer
from barcodemae.cli import main
from barcodemae.embed_files import check_finite, embed_file, read_embeddings
from barcodemae.embedding_settings import EmbeddingSettings
from conftest import tiny_config_kwargs

QUIET = EmbeddingSettings(progress=False)


def direct_embeddings_of(encoder, tokenizer, barcodes: list[str], batch_size: int = 128) -> np.ndarray:
    """Mean-pooled encoder output computed straight from the model classes, no embedding helpers involved."""
    parts = []
    with torch.no_grad():
        for start in range(0, len(barcodes), batch_size):
            batch = tokenizer(barcodes[start:start + batch_size], padding=True, return_tensors="pt")
            parts.append(encoder(**batch).pooler_output.numpy())
    return np.concatenate(parts)


@pytest.fixture(scope="module")
def model_folder(tmp_path_factory) -> Path:
    """A save_pretrained folder of a tiny pretraining model (embed must accept training folders as well)."""
    folder = tmp_path_factory.mktemp("model")
    tokenizer = BarcodeTokenizer.kmer()
    torch.manual_seed(0)
    config = BarcodeMAEConfig(**tiny_config_kwargs(), vocab_size=len(tokenizer))
    BarcodeMAEForPreTraining(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def direct_embeddings(folder: Path, barcodes: list[str]) -> np.ndarray:
    """The training folder's encoder applied directly (the reference the CLI output must equal)."""
    encoder = BarcodeMAEForPreTraining.from_pretrained(folder).barcodemae.eval()
    return direct_embeddings_of(encoder, BarcodeTokenizer.from_pretrained(folder), barcodes)


def test_embed_demo_to_parquet_matches_python_api(model_folder: Path, demo_csv: Path, tmp_path, capsys) -> None:
    output = tmp_path / "demo_test.parquet"
    code = main(["embed", "--model", str(model_folder), "--input", str(demo_csv), "--output", str(output),
                 "--split", "test", "--batch-size", "64", "--shard-size", "300", "--no-progress"])
    assert code == 0
    captured = capsys.readouterr()
    summary = json.loads(captured.out)
    assert "barcodemae embed finished: 779 records embedded, 0 rejected" in captured.err
    assert f"{output}\n" in captured.err and "next: barcodemae identify build" in captured.err
    demo = pd.read_csv(demo_csv)
    expected_rows = demo[demo["split"] == "test"]
    assert summary["num_records"] == len(expected_rows) == 779
    assert summary["shards_computed"] == 3 and summary["num_rejected"] == 0
    vectors, ids = read_embeddings(output)
    assert ids == expected_rows["processid"].tolist()  # input order, although embedded longest-first
    # The Python API on the raw CSV barcodes (the tokenizer cleans them itself) gives the same vectors.
    raw = expected_rows["dna_barcode"].tolist()
    np.testing.assert_allclose(vectors, direct_embeddings(model_folder, raw), atol=2e-5)
    table = pd.read_parquet(output)
    assert table["genus"].tolist() == expected_rows["genus"].tolist()
    assert not (tmp_path / "demo_test.parquet.parts").exists()
    assert json.loads((tmp_path / "demo_test.parquet.cleaning_report.json").read_text())["kept"] == 779


def killed_on_shard(shard: int, embed: Callable[..., np.ndarray]) -> Callable[..., np.ndarray]:
    """``embed`` that raises ``KeyboardInterrupt`` at its ``shard``-th call (1-based), as a kill mid-run would."""
    calls = {"n": 0}

    def killed(*args: Any, **kwargs: Any) -> np.ndarray:
        calls["n"] += 1
        if calls["n"] == shard:
            raise KeyboardInterrupt("simulated kill")
        return embed(*args, **kwargs)

    return killed


def test_resume_after_kill_equals_full_run(model_folder: Path, fixture_csv: Path, tmp_path, monkeypatch) -> None:
    full = embed_file(model_folder, fixture_csv, tmp_path / "full.npy", shard_size=32, settings=QUIET)
    assert full.shards_computed == 7 and full.shards_reused == 0

    real = embeddings_api.embed_barcodes
    monkeypatch.setattr(embeddings_api, "embed_barcodes", killed_on_shard(4, real))
    output = tmp_path / "run.npy"
    with pytest.raises(KeyboardInterrupt):
        embed_file(model_folder, fixture_csv, output, shard_size=32, settings=QUIET)
    parts = Path(f"{output}.parts")
    assert json.loads((parts / "manifest.json").read_text())["done"] == [0, 1, 2]
    assert not output.exists()
    (parts / "shard-000001.npy").unlink()  # a shard lost after the manifest listed it is recomputed

    monkeypatch.setattr(embeddings_api, "embed_barcodes", real)
    resumed = embed_file(model_folder, fixture_csv, output, shard_size=32, resume=True, settings=QUIET)
    assert (resumed.shards_reused, resumed.shards_computed) == (2, 5)
    np.testing.assert_array_equal(np.load(output), np.load(tmp_path / "full.npy"))
    assert Path(f"{output}.ids.txt").read_text() == (tmp_path / "full.npy.ids.txt").read_text()
    assert not parts.exists()


def test_unfinished_run_needs_resume_and_same_settings(model_folder: Path, fixture_csv: Path, tmp_path,
                                                      monkeypatch, capsys) -> None:
    def fail(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(embeddings_api, "embed_barcodes", fail)
    output = tmp_path / "x.parquet"
    with pytest.raises(KeyboardInterrupt):
        embed_file(model_folder, fixture_csv, output, shard_size=50, settings=QUIET)
    args = ["embed", "--model", str(model_folder), "--input", str(fixture_csv), "--output", str(output),
            "--no-progress"]
    assert main(args + ["--shard-size", "50"]) == 2
    assert "pass resume=True (--resume)" in capsys.readouterr().err
    assert main(args + ["--shard-size", "64", "--resume"]) == 2
    assert "['shard_size']" in capsys.readouterr().err


def test_touched_or_respelled_input_resumes(model_folder: Path, fixture_csv: Path, tmp_path, monkeypatch,
                                           capsys) -> None:
    """#26 item 10: the run's identity held the input's mtime, so a merely touched input (same records) was refused;
    it is the input's content that must match, however the path is spelled."""
    data = tmp_path / "input.csv"
    shutil.copyfile(fixture_csv, data)
    real = embeddings_api.embed_barcodes
    monkeypatch.setattr(embeddings_api, "embed_barcodes", killed_on_shard(3, real))
    with pytest.raises(KeyboardInterrupt):
        embed_file(model_folder, data, tmp_path / "out.npy", shard_size=32, settings=QUIET)
    monkeypatch.setattr(embeddings_api, "embed_barcodes", real)
    stat = data.stat()
    os.utime(data, ns=(stat.st_atime_ns, stat.st_mtime_ns + 3600 * 10**9))  # touch
    monkeypatch.chdir(tmp_path)
    code = main(["embed", "--model", str(model_folder), "--input", "./input.csv", "--output", "out.npy",
                 "--shard-size", "32", "--no-progress", "--resume"])
    assert code == 0, capsys.readouterr().err
    summary = json.loads(capsys.readouterr().out)
    assert (summary["shards_reused"], summary["shards_computed"]) == (2, 5)


def test_a_run_begun_before_content_fingerprints_resumes_from_the_same_model(model_folder: Path, fixture_csv: Path,
                                                                            tmp_path, monkeypatch, capsys) -> None:
    """An unfinished run whose manifest recorded the older size-and-mtime model fingerprint resumes from that model
    (its shards are reused), and is refused once the model's weights were rewritten."""
    model = tmp_path / "model"
    shutil.copytree(model_folder, model)
    output = tmp_path / "out.npy"
    real = embeddings_api.embed_barcodes
    monkeypatch.setattr(embeddings_api, "embed_barcodes", killed_on_shard(3, real))
    with pytest.raises(KeyboardInterrupt):
        embed_file(model, fixture_csv, output, shard_size=32, settings=QUIET)
    monkeypatch.setattr(embeddings_api, "embed_barcodes", real)
    manifest_path = Path(f"{output}.parts") / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    weights = (model / "model.safetensors").stat()
    legacy = hashlib.sha256((model / "config.json").read_bytes())
    legacy.update(f"model.safetensors:{weights.st_size}:{weights.st_mtime_ns}".encode())
    manifest["identity"]["model"] = legacy.hexdigest()  # as an older version recorded it
    manifest_path.write_text(json.dumps(manifest))
    args = ["embed", "--model", str(model), "--input", str(fixture_csv), "--output", str(output),
            "--shard-size", "32", "--no-progress", "--resume"]

    saved = model / "model.safetensors"
    original = saved.read_bytes()
    saved.write_bytes(original[:-4] + bytes(4))  # other weights, same size: the legacy rule sees the new mtime
    assert main(args) == 2
    assert "['model']" in capsys.readouterr().err
    saved.write_bytes(original)
    os.utime(saved, ns=(weights.st_atime_ns, weights.st_mtime_ns))
    assert main(args) == 0, capsys.readouterr().err
    summary = json.loads(capsys.readouterr().out)
    assert (summary["shards_reused"], summary["shards_computed"]) == (2, 5)
    full = embed_file(model, fixture_csv, tmp_path / "full.npy", shard_size=32, settings=QUIET)
    np.testing.assert_array_equal(np.load(output), np.load(full.output))


def test_rejected_records_are_reported_not_lost(model_folder: Path, fixture_csv: Path, tmp_path) -> None:
    barcodes = pd.read_csv(fixture_csv)["dna_barcode"].tolist()[:3]
    fasta = tmp_path / "specimens.fasta"
    fasta.write_text(
        f">good1 some description\n{barcodes[0][:300]}\n{barcodes[0][300:]}\n"
        f">bad_letters\nACGTACGTQQACGT\n"
        f">good2\n{barcodes[1].lower()}\n"
        f">too_short\nACGT\n"
        f">good3\n{barcodes[2]}\n"
    )
    output = tmp_path / "specimens.npy"
    summary = embed_file(model_folder, fasta, output, settings=QUIET)
    assert (summary.num_records, summary.num_rejected) == (3, 2)
    report = json.loads(summary.report_path.read_text())
    rejected = dict(report["rejected_records"])
    assert set(rejected) == {"bad_letters", "too_short"}
    assert "non-IUPAC" in rejected["bad_letters"]
    assert Path(f"{output}.ids.txt").read_text().split() == ["good1", "good2", "good3"]
    np.testing.assert_allclose(np.load(output), direct_embeddings(model_folder, barcodes), atol=2e-5)


def test_bad_output_suffix_is_refused(model_folder: Path, fixture_csv: Path, tmp_path, capsys) -> None:
    code = main(["embed", "--model", str(model_folder), "--input", str(fixture_csv),
                 "--output", str(tmp_path / "out.csv")])
    assert code == 2
    assert "output must end in one of ('.parquet', '.npy')" in capsys.readouterr().err


def test_empty_and_multi_line_ids_are_rejected_before_embedding(model_folder: Path, fixture_csv: Path,
                                                                tmp_path) -> None:
    rows = pd.read_csv(fixture_csv, dtype=str, keep_default_na=False).head(5)
    rows.loc[1, "processid"] = ""
    rows.loc[3, "processid"] = "TWO\nLINES"
    specimens = tmp_path / "specimens.csv"
    rows.to_csv(specimens, index=False)
    output = tmp_path / "specimens.npy"
    summary = embed_file(model_folder, specimens, output, settings=QUIET)
    assert (summary.num_records, summary.num_rejected) == (3, 2)
    report = json.loads(summary.report_path.read_text())
    assert report["rejected_by_reason"] == {"bad_id": 2}
    (_, empty), (_, two_lines) = report["rejected_records"]
    assert empty == "record id is missing or blank" and two_lines.startswith("record id contains the control")
    vectors, ids = read_embeddings(output)
    assert ids == rows["processid"][[0, 2, 4]].tolist() and len(vectors) == 3


def test_duplicate_ids_warn_on_the_console(model_folder: Path, fixture_csv: Path, tmp_path, caplog) -> None:
    barcodes = pd.read_csv(fixture_csv)["dna_barcode"].tolist()[:5]
    fasta = tmp_path / "dups.fasta"
    fasta.write_text("".join(f">{name}\n{barcode}\n" for name, barcode in zip(["a", "b", "a", "c", "b"], barcodes)))
    with caplog.at_level(logging.WARNING):
        summary = embed_file(model_folder, fasta, tmp_path / "dups.npy", settings=QUIET)
    assert summary.num_records == 5  # kept: the vectors are right, only the ids are ambiguous
    warnings = [record.getMessage() for record in caplog.records if record.levelno == logging.WARNING]
    assert any("2 record ids occur more than once (e.g. 'a')" in message for message in warnings), warnings


def test_non_finite_vectors_are_refused_naming_the_record(model_folder: Path, fixture_csv: Path, tmp_path,
                                                         monkeypatch) -> None:
    barcodes = pd.read_csv(fixture_csv)["dna_barcode"].tolist()[:3]
    fasta = tmp_path / "specimens.fasta"
    fasta.write_text("".join(f">rec{i}\n{barcode}\n" for i, barcode in enumerate(barcodes)))
    real = embeddings_api.embed_barcodes

    def nan_for_rec1(model, tokenizer, sequences, **kwargs):
        vectors = real(model, tokenizer, sequences, **kwargs)
        vectors[[sequence == barcodes[1] for sequence in sequences]] = np.nan
        return vectors

    monkeypatch.setattr(embeddings_api, "embed_barcodes", nan_for_rec1)
    output = tmp_path / "specimens.npy"
    with pytest.raises(ValueError, match=r"the model produced NaN/inf for record 'rec1'; .*float32"):
        embed_file(model_folder, fasta, output, settings=QUIET)
    assert not output.exists()
    assert json.loads(Path(f"{output}.parts/manifest.json").read_text())["done"] == []  # the shard was not saved


def test_non_finite_check_names_rows_without_ids_and_counts_the_rest() -> None:
    vectors = np.ones((6, 2), dtype=np.float32)
    vectors[1:, 0] = [np.inf, np.nan, 1, -np.inf, np.nan]
    rows = np.array([10, 11, 12, 13, 14, 15])
    with pytest.raises(ValueError, match="NaN/inf for the record in row 11 of the cleaned input and 3 more"):
        check_finite(vectors, None, rows=rows)
    ids = pa.array([f"id{i}" for i in range(16)])
    with pytest.raises(ValueError, match="NaN/inf for records 'id11', 'id12', 'id14' and 1 more;"):
        check_finite(vectors, ids, rows=rows)
    check_finite(vectors[[0, 3]], ids, rows=rows[[0, 3]])


def write_fasta(path: Path, ids: list[str], barcodes: list[str]) -> Path:
    path.write_text("".join(f">{name}\n{barcode}\n" for name, barcode in zip(ids, barcodes)))
    return path


def test_rerun_failing_after_the_matrix_never_leaves_the_old_ids_beside_it(model_folder: Path, fixture_csv: Path,
                                                                           tmp_path, monkeypatch) -> None:
    """Issue #26: the second run replaced the matrix, then failed; the first run's ids named its rows."""
    barcodes = pd.read_csv(fixture_csv)["dna_barcode"].tolist()[:3]
    output = tmp_path / "out.npy"
    embed_file(model_folder, write_fasta(tmp_path / "a.fasta", ["a0", "a1", "a2"], barcodes), output, settings=QUIET)
    assert read_embeddings(output)[1] == ["a0", "a1", "a2"]

    real_replace = os.replace

    def fail_once_the_matrix_is_in(source, target):
        real_replace(source, target)
        if Path(target) == output:
            raise OSError("disk full (simulated) right after the matrix was replaced")

    monkeypatch.setattr(os, "replace", fail_once_the_matrix_is_in)
    rerun = write_fasta(tmp_path / "b.fasta", ["b2", "b1", "b0"], barcodes[::-1])
    with pytest.raises(OSError, match="simulated"):
        embed_file(model_folder, rerun, output, settings=QUIET)
    monkeypatch.setattr(os, "replace", real_replace)
    with pytest.raises(ValueError, match=re.escape(f"{output}: its ids file {output}.ids.txt is missing")):
        read_embeddings(output)
    assert main(["embed", "--model", str(model_folder), "--input", str(rerun), "--output", str(output),
                 "--no-progress", "--resume"]) == 0  # the finished shards are reused and the unit rewritten
    vectors, ids = read_embeddings(output)
    assert ids == ["b2", "b1", "b0"]
    np.testing.assert_allclose(vectors, direct_embeddings(model_folder, barcodes[::-1]), atol=2e-5)


def test_matrix_and_ids_of_different_runs_are_refused(model_folder: Path, fixture_csv: Path, tmp_path) -> None:
    barcodes = pd.read_csv(fixture_csv)["dna_barcode"].tolist()[:4]
    first, second = tmp_path / "first.npy", tmp_path / "second.npy"
    embed_file(model_folder, write_fasta(tmp_path / "1.fasta", ["a", "b", "c"], barcodes[:3]), first, settings=QUIET)
    embed_file(model_folder, write_fasta(tmp_path / "2.fasta", ["x", "y", "z"], barcodes[1:]), second, settings=QUIET)
    assert json.loads(Path(f"{first}.json").read_text())["rows"] == 3

    shutil.copy(second, first)  # another run's matrix of the same shape beside first's ids
    with pytest.raises(ValueError, match=re.escape(f"{first} and {first}.ids.txt do not match {first}.json (matrix)")):
        read_embeddings(first)
    shutil.copy(f"{second}.json", f"{first}.json")  # ... and its sidecar too: now the ids are the odd one out
    with pytest.raises(ValueError, match=r"do not match .* \(ids\)"):
        read_embeddings(first)
    shutil.copy(f"{second}.ids.txt", f"{first}.ids.txt")
    assert read_embeddings(first)[1] == ["x", "y", "z"]

    # Outputs written before the sidecar existed stay readable, with the row count checked.
    Path(f"{first}.json").unlink()
    assert read_embeddings(first)[1] == ["x", "y", "z"]
    Path(f"{first}.ids.txt").write_text("x\ny\n")
    with pytest.raises(ValueError, match=re.escape(f"{first} has 3 rows but {first}.ids.txt lists 2 ids")):
        read_embeddings(first)
    first.write_bytes(first.read_bytes()[:100])  # truncated inside the header: numpy's error names no file
    with pytest.raises(ValueError, match=re.escape(f"{first}: not a readable NumPy matrix")):
        read_embeddings(first)


def test_a_full_disk_is_one_line_naming_the_file_and_resume_stays_exact(model_folder: Path, fixture_csv: Path,
                                                                       tmp_path, monkeypatch, capsys) -> None:
    """Disk full while assembling the output used to end in SIGBUS (exit 135, no message): the file's blocks are
    now reserved before the memory map is written, so the failure is an ENOSPC error naming the file."""
    full = embed_file(model_folder, fixture_csv, tmp_path / "full.npy", shard_size=32, settings=QUIET)
    real_fallocate = os.posix_fallocate

    def disk_full(fd, offset, length):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "posix_fallocate", disk_full)
    output = tmp_path / "run.npy"
    args = ["embed", "--model", str(model_folder), "--input", str(fixture_csv), "--output", str(output),
            "--shard-size", "32", "--no-progress"]
    assert main(args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("barcodemae embed: error: ") and "run.npy" in err[-1]
    assert "no space left on the device" in err[-1] and "--resume" in err[-1]
    monkeypatch.setattr(os, "posix_fallocate", real_fallocate)
    assert main([*args, "--resume"]) == 0
    assert json.loads(capsys.readouterr().out)["shards_reused"] == full.shards_computed
    np.testing.assert_array_equal(np.load(output), np.load(tmp_path / "full.npy"))
