"""Nothing lost, nothing silently wrong: one-line errors naming the file, output checks before long work,
checksummed checkpoints, strict RNG state, shared-folder file modes."""

from __future__ import annotations

import gzip
import json
import logging
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from barcodemae.checksums import CHECKSUMS, write_checksums
from barcodemae.cli import main as cli_main
from barcodemae.errors import CheckpointError
from barcodemae.simulation import write_simulated_dataset
from barcodemae.training.arguments import parse_args
from barcodemae.training.checkpoints import list_checkpoints, validate_checkpoint
from barcodemae.training.command import main as train_main
from barcodemae.training.loop import run_training
from conftest import REPO_ROOT

TINY = ["--hidden_size", "32", "--num_hidden_layers", "1", "--num_attention_heads", "2", "--intermediate_size", "64",
        "--decoder_hidden_size", "32", "--decoder_num_hidden_layers", "1", "--decoder_num_attention_heads", "2",
        "--decoder_intermediate_size", "64", "--tokenizer", "kmer4", "--max_val_samples", "16", "--max_probe_keys",
        "32", "--per_device_batch_size", "8", "--evaluate", "false"]


@pytest.fixture(scope="module")
def bad_inputs(tmp_path_factory, fixture_csv: Path) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("bad")
    files = {
        "no_header.fasta": b"ACGTACGTACGTACGT\nACGTTT\n",
        "binary.fasta": bytes(range(128, 256)) * 3,
        "empty.fasta": b"",
        "header_only.csv": fixture_csv.read_bytes().splitlines(keepends=True)[0],
        "truncated.csv.gz": gzip.compress(fixture_csv.read_bytes())[:1500],
        "truncated.fasta.gz": gzip.compress(b"".join(b">r%d\n%s\n" % (i, b"ACGT" * 100) for i in range(300)))[:600],
        "latin1.csv": fixture_csv.read_bytes().replace(b"Diptera", "Dipt\u00e9ra".encode("latin-1"), 1),
        "latin1.csv.gz": gzip.compress(fixture_csv.read_bytes().replace(b"Diptera", "Dipt\u00e9ra".encode("latin-1"))),
    }
    paths = {}
    for name, content in files.items():
        paths[name] = folder / name
        paths[name].write_bytes(content)
    return paths


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("no_header.fasta", "sequence data before the first '>' header"),
        ("binary.fasta", "not a text file"),
        ("empty.fasta", "empty file, no records"),
        ("header_only.csv", "no records"),
        ("truncated.csv.gz", "truncated or corrupt gzip file"),
        ("truncated.fasta.gz", "truncated or corrupt gzip file"),
        ("latin1.csv", "line 84 is not UTF-8 (byte 0xE9"),
        ("latin1.csv.gz", "line 84 is not UTF-8 (byte 0xE9"),
    ],
)
def test_bad_input_files_are_one_line_errors_naming_the_file(name, message, bad_inputs, kmer4_model_folder,
                                                             tmp_path, capsys):
    path = bad_inputs[name]
    code = cli_main(["embed", "--model", str(kmer4_model_folder), "--input", str(path), "--output",
                     str(tmp_path / "out.npy"), "--no-progress"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert err[-1].startswith(f"barcodemae embed: error: {path}") and message in err[-1]
    assert "Traceback" not in "\n".join(err)


def test_identify_query_checks_its_output_and_top_k(kmer4_model_folder, fixture_csv, tmp_path, capsys):
    index = tmp_path / "index"
    assert cli_main(["identify", "build", "--model", str(kmer4_model_folder), "--reference", str(fixture_csv),
                     "--split", "train", "--output", str(index), "--no-progress"]) == 0
    capsys.readouterr()
    copy = tmp_path / "queries.csv"
    copy.write_bytes(fixture_csv.read_bytes())
    query = ["identify", "query", "--index", str(index), "--input", str(copy), "--no-progress"]
    assert cli_main([*query, "--output", str(copy)]) == 2
    assert "would overwrite the input" in capsys.readouterr().err
    assert copy.read_bytes() == fixture_csv.read_bytes()
    for k in ("0", "-3"):
        assert cli_main([*query, "--output", str(tmp_path / "ids.csv"), "--top-k", k]) == 2
        assert "top_k must be >= 1" in capsys.readouterr().err


def test_index_without_taxonomy_warns(kmer4_model_folder, tmp_path, caplog):
    fasta = tmp_path / "unlabelled.fasta"
    fasta.write_text("".join(f">r{i}\n{'ACGTTGCA' * 20}{'ACGT'[i % 4] * 8}\n" for i in range(6)))
    with caplog.at_level(logging.WARNING):
        assert cli_main(["identify", "build", "--model", str(kmer4_model_folder), "--reference", str(fasta),
                         "--output", str(tmp_path / "index"), "--no-progress"]) == 0
    assert "no reference has a genus, species or BIN" in caplog.text


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_unwritable_output_fails_before_any_work(kmer4_model_folder, fixture_csv, tmp_path):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    code = subprocess.run([sys.executable, str(REPO_ROOT / "eval" / "run.py"), "--model", str(kmer4_model_folder),
                           "--data", str(fixture_csv), "--output", str(locked / "eval")],
                          capture_output=True, text=True, check=False, timeout=300)
    assert code.returncode == 2 and "cannot write output here" in code.stderr


def test_output_checks_name_an_unwritable_place(monkeypatch, tmp_path):
    """As root (CI) a read-only folder is still writable, so the check is driven through a failing mkdir."""
    from barcodemae.errors import check_output_file, check_writable_folder

    def refuse(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(Path, "mkdir", refuse)
    with pytest.raises(PermissionError, match=r"cannot write output here \(Permission denied\)"):
        check_writable_folder(tmp_path / "x")
    monkeypatch.undo()
    with pytest.raises(IsADirectoryError, match="is a folder"):
        check_output_file(tmp_path)


def test_train_and_eval_entry_points_exit_2_with_one_line(tmp_path, fixture_csv, capsys):
    assert train_main([*TINY, "--data", str(tmp_path / "missing.csv"), "--output_dir", str(tmp_path / "r")]) == 2
    assert capsys.readouterr().err.strip().splitlines()[-1].startswith("train.py: error: ")
    from eval.run import main as eval_main

    assert eval_main(["--model", str(tmp_path / "nope"), "--data", str(fixture_csv), "--output", str(tmp_path)]) == 2
    assert capsys.readouterr().err.strip() == f"eval/run.py: error: model folder '{tmp_path / 'nope'}' does not exist"


@pytest.fixture
def stopped_run(tmp_path) -> Path:
    data = write_simulated_dataset(tmp_path / "sim.csv", num_genera=4, specimens_per_species=8, seed=1)
    out = tmp_path / "run"
    run_training(parse_args([*TINY, "--data", str(data), "--output_dir", str(out), "--max_steps", "4",
                             "--save_steps", "2", "--eval_steps", "10", "--stop_after_steps", "3"]))
    return out


def test_checkpoints_carry_checksums_and_flipped_bytes_are_refused(stopped_run):
    checkpoint = list_checkpoints(stopped_run)[-1]
    sums = json.loads((checkpoint / CHECKSUMS).read_text())
    assert set(sums) == {p.name for p in checkpoint.iterdir()} - {CHECKSUMS}
    assert validate_checkpoint(checkpoint, num_processes=1)["global_step"] == 2
    weights = checkpoint / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-10] ^= 0xFF  # one flipped byte inside a tensor: the header and size still look fine
    weights.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match=r"model.safetensors: content differs from checksums.json"):
        validate_checkpoint(checkpoint, num_processes=1)


@pytest.mark.parametrize(
    ("tamper", "message"),
    [
        (lambda c: (c / CHECKSUMS).unlink(), r"checksums.json: missing, but .* was written with checksums"),
        (lambda c: (c / CHECKSUMS).write_text("{}"), r"checksums.json: lists no file"),
        (lambda c: (c / CHECKSUMS).write_text("{not json"), r"checksums.json: not valid JSON"),
        (lambda c: (c / CHECKSUMS).write_text("[1, 2]"), r"checksums.json: not a \{file name: SHA-256\} object"),
        (lambda c: (c / "extra.bin").write_bytes(b"x"), r"extra.bin not listed in checksums.json"),
    ],
    ids=["deleted", "empty", "bad-json", "not-an-object", "unlisted-file"],
)
def test_a_checkpoint_whose_checksums_cannot_vouch_for_it_is_refused(stopped_run, tamper, message):
    """A checkpoint with a run id was written with checksums: removing or emptying them is no way around them."""
    checkpoint = list_checkpoints(stopped_run)[-1]
    tamper(checkpoint)
    with pytest.raises(CheckpointError, match=message):
        validate_checkpoint(checkpoint, num_processes=1)


def test_rng_state_of_the_wrong_structure_is_an_error(stopped_run):
    checkpoint = list_checkpoints(stopped_run)[-1]
    torch.save({"step": 2, "something": [1, 2]}, checkpoint / "random_states_0.pkl")
    write_checksums(checkpoint)  # consistent checksums: only the RNG check can catch it
    data = stopped_run.parent / "sim.csv"
    with pytest.raises(CheckpointError, match=r"random_states_0.pkl: not accelerate's random states"):
        run_training(parse_args([*TINY, "--data", str(data), "--output_dir", str(stopped_run), "--max_steps", "4",
                                 "--save_steps", "2", "--eval_steps", "10", "--resume_from_checkpoint", "latest"]))


def test_saved_weights_follow_the_umask(stopped_run, tmp_path):
    wanted = 0o666 & ~_umask()
    for path in [list_checkpoints(stopped_run)[-1] / "model.safetensors"]:
        assert stat.S_IMODE(path.stat().st_mode) & wanted == wanted
    data = stopped_run.parent / "sim.csv"
    run_training(parse_args([*TINY, "--data", str(data), "--output_dir", str(tmp_path / "full"), "--max_steps", "2",
                             "--save_steps", "2", "--eval_steps", "10", "--load_best_model_at_end", "true"]))
    for folder in ("final_model", "best_model"):
        mode = stat.S_IMODE((tmp_path / "full" / folder / "model.safetensors").stat().st_mode)
        assert mode & wanted == wanted, (folder, oct(mode))


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask
