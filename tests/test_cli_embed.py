"""`barcodemae embed`: vectors equal the Python API, resume after a kill, rejected records reported."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

import barcodemae.inference as embeddings_api
from barcodemae import BarcodeMAEConfig, BarcodeMAEForPreTraining, BarcodeTokenizer
from barcodemae.cli import main
from barcodemae.embed_files import embed_file, read_embeddings
from conftest import tiny_config_kwargs


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
    summary = json.loads(capsys.readouterr().out)
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


def test_resume_after_kill_equals_full_run(model_folder: Path, fixture_csv: Path, tmp_path, monkeypatch) -> None:
    full = embed_file(model_folder, fixture_csv, tmp_path / "full.npy", shard_size=32, progress=False)
    assert full.shards_computed == 7 and full.shards_reused == 0

    real = embeddings_api.embed_barcodes
    calls = {"n": 0}

    def killed_on_fourth_shard(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 4:
            raise KeyboardInterrupt("simulated kill")
        return real(*args, **kwargs)

    monkeypatch.setattr(embeddings_api, "embed_barcodes", killed_on_fourth_shard)
    output = tmp_path / "run.npy"
    with pytest.raises(KeyboardInterrupt):
        embed_file(model_folder, fixture_csv, output, shard_size=32, progress=False)
    parts = Path(f"{output}.parts")
    assert json.loads((parts / "manifest.json").read_text())["done"] == [0, 1, 2]
    assert not output.exists()
    (parts / "shard-000001.npy").unlink()  # a shard lost after the manifest listed it is recomputed

    monkeypatch.setattr(embeddings_api, "embed_barcodes", real)
    resumed = embed_file(model_folder, fixture_csv, output, shard_size=32, resume=True, progress=False)
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
        embed_file(model_folder, fixture_csv, output, shard_size=50, progress=False)
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
    calls = {"n": 0}

    def killed_on_third_shard(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt("simulated kill")
        return real(*args, **kwargs)

    monkeypatch.setattr(embeddings_api, "embed_barcodes", killed_on_third_shard)
    with pytest.raises(KeyboardInterrupt):
        embed_file(model_folder, data, tmp_path / "out.npy", shard_size=32, progress=False)
    monkeypatch.setattr(embeddings_api, "embed_barcodes", real)
    stat = data.stat()
    os.utime(data, ns=(stat.st_atime_ns, stat.st_mtime_ns + 3600 * 10**9))  # touch
    monkeypatch.chdir(tmp_path)
    code = main(["embed", "--model", str(model_folder), "--input", "./input.csv", "--output", "out.npy",
                 "--shard-size", "32", "--no-progress", "--resume"])
    assert code == 0, capsys.readouterr().err
    summary = json.loads(capsys.readouterr().out)
    assert (summary["shards_reused"], summary["shards_computed"]) == (2, 5)


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
    summary = embed_file(model_folder, fasta, output, progress=False)
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
