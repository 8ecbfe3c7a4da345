"""train.py: arguments and presets, end-to-end runs (both objectives), exact resume, checkpoint checks, 2 processes."""

from __future__ import annotations

import inspect
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from barcodemae.checksums import write_checksums
from barcodemae.errors import CheckpointError
from barcodemae.masking.span_corruption import SpanCorruptionCollator
from barcodemae.presets import PRESET_DIR
from barcodemae.tokenization import BarcodeTokenizer
from barcodemae.training.arguments import (
    RUN_CONFIG_ARGUMENTS,
    architecture_defaults,
    load_preset,
    parse_args,
)
from barcodemae.training.builders import build_model
from barcodemae.training.checkpoints import list_checkpoints, validate_checkpoint
from barcodemae.training.data import load_training_data
from barcodemae.training.loop import run_training
from conftest import count_file_hashes, edit_keeping_size_and_mtime
from modeling_barcodemae.configuration_barcodemae import BarcodeMAEConfig
from modeling_barcodemae.modeling_enbed import enbed_config

REPO = Path(__file__).resolve().parents[1]

# A model of a few thousand parameters per layer: every run below takes seconds on a 2-core CPU.
TINY = [
    "--hidden_size", "32", "--num_hidden_layers", "1", "--num_attention_heads", "2", "--intermediate_size", "64",
    "--decoder_hidden_size", "32", "--decoder_num_hidden_layers", "1", "--decoder_num_attention_heads", "2",
    "--decoder_intermediate_size", "64", "--tokenizer", "kmer4", "--max_val_samples", "32", "--max_probe_keys", "64",
    "--logging_steps", "1", "--learning_rate", "3e-3", "--warmup_ratio", "0.2", "--mixed_precision", "no",
    "--contrastive_weight", "0",  # the papers' objectives; the contrastive term has its own tests
]


def flags(**values: object) -> list[str]:
    """``--name value`` command-line flags from keyword arguments (the tests below state runs this way)."""
    return [item for name, value in values.items() for item in (f"--{name}", str(value))]


def train(**values: object) -> dict:
    """``run_training`` of the tiny model with the given flags."""
    return run_training(parse_args([*TINY, *flags(**values)]))


def read_metrics(output_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (output_dir / "metrics.jsonl").read_text().splitlines()]


def losses(output_dir: Path) -> list[tuple[int, float]]:
    return [(r["step"], r["loss"]) for r in read_metrics(output_dir) if "loss" in r]


# ------------------------------------------------------------------------------------------------ arguments
def test_presets_and_flag_precedence():
    paper = load_preset("barcodemae")
    assert (
        paper["hidden_size"], paper["num_hidden_layers"], paper["decoder_num_hidden_layers"], paper["mask_ratio"]
    ) == (768, 6, 6, 0.5)
    assert paper["tokenizer"] == "kmer6" and paper["objective"] == "mae"
    bert = load_preset("barcodebert")
    assert bert["objective"] == "mlm" and bert["hidden_size"] == paper["hidden_size"]
    args = parse_args(["--preset", "barcodebert", "--max_steps", "7", "--learning_rate", "5e-4"])
    assert (args.objective, args.max_steps, args.learning_rate, args.hidden_size) == ("mlm", 7, 5e-4, 768)
    assert parse_args([]).preset == "tiny" and parse_args([]).hidden_size == load_preset("tiny")["hidden_size"]
    small = parse_args(["--preset", "small"])  # the CPU recipe of issue #12: MLM, start shift, layer-average output
    assert (small.objective, small.max_start_shift, small.pooled_layers) == ("mlm", 300, "mean")
    assert (small.hidden_size, small.num_hidden_layers, small.max_steps, small.per_device_batch_size) == (
        64, 2, 1500, 64
    )


@pytest.mark.parametrize("preset", sorted(path.stem for path in PRESET_DIR.glob("*.yaml")))
def test_every_shipped_preset_builds_its_model(preset):
    """GPU presets (barcodemae, barcodebert, enbed) cannot train here; their models must still build as stated."""
    args = parse_args(["--preset", preset])
    with torch.device("meta"):  # shapes only: the paper sizes build in well under a second
        # a ce taxonomy head's width is the data's taxon count, known once labels are read: here, any
        model = build_model(args, BarcodeTokenizer.from_spec(args.tokenizer), taxonomy_num_classes=10)
    config = model.config
    if args.objective == "enbed":
        assert (config.d_model, config.num_layers, config.num_decoder_layers, config.d_ff) == (
            args.hidden_size, args.num_hidden_layers, args.decoder_num_hidden_layers, args.intermediate_size
        )
        assert config.encoder_attention_type == args.encoder_attention
    else:
        assert (config.hidden_size, config.num_hidden_layers, config.pretraining_objective) == (
            args.hidden_size, args.num_hidden_layers, args.objective
        )
        assert (config.mask_ratio, config.pooled_layers) == (args.mask_ratio, args.pooled_layers)
    assert sum(parameter.numel() for parameter in model.parameters()) > 10_000


def test_unset_architecture_flags_take_the_model_configs_defaults():
    """The architecture's defaults live in the model config only: an unset flag reads them from there."""
    mae = parse_args(["--preset", "none", "--max_steps", "1"])
    assert (mae.hidden_size, mae.num_hidden_layers, mae.decoder_num_hidden_layers, mae.dropout) == (
        BarcodeMAEConfig.hidden_size, BarcodeMAEConfig.num_hidden_layers, BarcodeMAEConfig.decoder_num_hidden_layers,
        BarcodeMAEConfig.hidden_dropout_prob,
    )
    assert mae.encoder_attention is None  # ENBED's flags do not apply to BarcodeMAE
    enbed = parse_args(["--preset", "none", "--objective", "enbed", "--tokenizer", "char", "--hidden_size", "32"])
    keywords = inspect.signature(enbed_config).parameters
    assert enbed.hidden_size == 32 and enbed.num_hidden_layers == keywords["num_hidden_layers"].default
    assert enbed.decoder_num_hidden_layers == keywords["num_decoder_layers"].default
    assert enbed.encoder_attention == keywords["encoder_attention"].default and enbed.decoder_hidden_size is None
    assert architecture_defaults("mlm") == architecture_defaults("mae")


def test_unset_run_flags_take_the_model_configs_defaults_and_checks():
    """Run choices that land in the config (RUN_CONFIG_ARGUMENTS) default to, and are judged by, the config."""
    mae = parse_args(["--preset", "none", "--max_steps", "1"])
    for flag, attribute in RUN_CONFIG_ARGUMENTS.items():
        assert getattr(mae, flag) == getattr(BarcodeMAEConfig, attribute), flag
    enbed = parse_args(["--preset", "none", "--objective", "enbed", "--tokenizer", "char"])
    assert enbed.mask_ratio == inspect.signature(SpanCorruptionCollator).parameters["noise_density"].default == 0.15
    for flags, problem in (
        (["--mask_ratio", "1.5"], "mask_ratio must be in \\(0, 1\\), got 1.5"),
        (["--pooled_layers", "max"], "pooled_layers must be one of"),
        (["--contrastive_temperature", "0"], "contrastive_temperature must be > 0"),
        (["--composition_kmer_size", "9"], "composition_kmer_size must be in 1..6"),
    ):
        with pytest.raises(ValueError, match=f"invalid run flag .*{problem}"):
            parse_args(["--preset", "none", *flags])
    shown = subprocess.run([sys.executable, str(REPO / "train.py"), "--preset", "none", "--help"],
                           capture_output=True, text=True, check=True).stdout
    shown = " ".join(shown.split())  # argparse wraps lines
    assert "(default: the model config's: BarcodeMAE 0.5, ENBED 0.15)" in shown  # --mask_ratio, not "None"
    assert f"(default: the model config's: BarcodeMAE {BarcodeMAEConfig.hidden_size}, ENBED" in shown


def test_bad_arguments_fail_clearly(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("hiden_size: 3\n")
    with pytest.raises(ValueError, match="hiden_size"):
        parse_args(["--preset", str(bad)])
    with pytest.raises(FileNotFoundError, match="tiny"):
        parse_args(["--preset", "no_such_preset"])
    with pytest.raises(ValueError, match="objective"):
        parse_args(["--objective", "clm"])


def test_tokenizer_specs(tmp_path):
    """One grammar for train.py, the converter and the command line: BarcodeTokenizer.parse_spec / from_spec."""
    from barcodemae.tokenization import BarcodeTokenizer

    parse = BarcodeTokenizer.parse_spec
    assert parse("kmer6") == parse("kmer:6") == parse("kmer:k=6") == {"scheme": "kmer", "k": 6}
    assert parse("kmer:k=5,stride=1") == parse("kmer:5:1") == {"scheme": "kmer", "k": 5, "stride": 1}
    assert parse("char") == {"scheme": "char"}
    assert BarcodeTokenizer.from_spec("kmer4").k == 4  # the converter used to read "kmer4" as 6-mers
    (tmp_path / "tokenizer.json").write_text("{}")
    assert parse(str(tmp_path / "tokenizer.json"))["scheme"] == "file"
    with pytest.raises(ValueError, match="kmer:k=6,stride=x"):
        parse("kmer:k=6,stride=x")
    for bad in ("bpe-missing", "kmer4x", "kmer:x", "kmer:k=6,width=3"):
        with pytest.raises(ValueError, match="tokenizer spec|expected kmer"):
            parse(bad)


# ------------------------------------------------------------------------------------------------ end to end
@pytest.mark.parametrize("objective", ["mae", "mlm"])
def test_end_to_end_on_demo_data(objective, demo_csv, tmp_path):
    from transformers import AutoModel, AutoModelForPreTraining

    out = tmp_path / objective
    pooled_layers = "mean" if objective == "mlm" else "last"
    summary = run_training(parse_args([
        *TINY, "--objective", objective, "--data", str(demo_csv), "--output_dir", str(out), "--max_steps", "6",
        "--per_device_batch_size", "16", "--eval_steps", "3", "--save_steps", "3", "--max_val_samples", "64",
        "--eval_reducer", "pca", "--eval_plots", "false", "--evaluate", str(objective == "mae"),  # suite once
        "--pooled_layers", pooled_layers,
    ]))
    assert summary["global_step"] == 6
    records = read_metrics(out)
    curve = losses(out)
    assert [s for s, _ in curve] == list(range(1, 7))
    assert curve[-1][1] < curve[0][1]  # it learns
    validations = [r for r in records if "val_loss" in r]
    assert [r["step"] for r in validations] == [0, 3, 6]  # step 0: the untrained baseline
    assert all(r["val_perplexity"] > 1 and 0 <= r["genus_1nn_accuracy"] <= 1 for r in validations)
    headline_layer = "mean" if pooled_layers == "mean" else TINY[TINY.index("--num_hidden_layers") + 1]
    assert all(r["genus_1nn_accuracy"] == r[f"genus_1nn_accuracy_layer_{headline_layer}"] for r in validations)
    assert all(r["tokens_per_second"] > 0 and r["learning_rate"] >= 0 for r in records if "loss" in r)
    assert [p.name for p in list_checkpoints(out)] == ["step_3", "step_6"]
    if objective == "mae":
        results = json.loads((out / "eval" / "results.json").read_text())
        assert results == summary["evaluation"]
        genus = results["metrics"]["open_world_genus"]["one_nn"]  # the barcodemae.eval suite's results
        assert 0 <= genus["accuracy"] <= 1 and genus["num_queries"] > 0
        assert any(k.startswith("eval/metrics/open_world_genus") for r in records for k in r)  # also in metrics.jsonl
        assert not any("per_genus" in k or k.startswith("eval/settings") for r in records for k in r)  # not the rest
    else:
        assert not (out / "eval").exists()
    # The export loads through the Auto classes and has the label vocabulary and tokenizer.
    encoder = AutoModel.from_pretrained(out / "final_model", trust_remote_code=True)
    assert encoder.config.pretraining_objective == objective
    assert encoder.config.pooled_layers == pooled_layers  # the exported embedding is the one the probe scored
    assert (out / "final_model" / "label_vocab.json").is_file() and (out / "final_model" / "tokenizer.json").is_file()
    assert json.loads((out / "training_args.json").read_text())["objective"] == objective
    # The parameter count probe_table prints is the trained model's: encoder and pretraining head / decoder.
    pretraining_model = AutoModelForPreTraining.from_pretrained(out / "final_model", trust_remote_code=True)
    assert summary["parameters"] == sum(p.numel() for p in pretraining_model.parameters())
    assert json.loads((out / "summary.json").read_text())["parameters"] == summary["parameters"]


# ------------------------------------------------------------------------------------------------ resume
def test_resume_after_stop_matches_uninterrupted_run(sim_csv, tmp_path):
    """MLM with dropout exercises every source of randomness: data order, frames, masks, corruption, dropout."""
    common = [*TINY, "--objective", "mlm", "--dropout", "0.1", "--data", str(sim_csv), "--max_steps", "8",
              "--per_device_batch_size", "8", "--gradient_accumulation_steps", "2", "--eval_steps", "4",
              "--save_steps", "3", "--evaluate", "false", "--masking", "span"]
    full, parted = tmp_path / "full", tmp_path / "parted"
    run_training(parse_args([*common, "--output_dir", str(full)]))
    stopped = run_training(parse_args([*common, "--output_dir", str(parted), "--stop_after_steps", "5"]))
    assert stopped["stopped_early"] and [p.name for p in list_checkpoints(parted)] == ["step_3"]
    assert max(s for s, _ in losses(parted)) == 5  # the "killed" run logged past its last checkpoint
    run_training(parse_args([*common, "--output_dir", str(parted), "--resume_from_checkpoint", "latest"]))

    assert losses(parted) == losses(full)  # same steps, bit-identical losses, no duplicated lines
    assert [r for r in read_metrics(parted) if "val_loss" in r] == [r for r in read_metrics(full) if "val_loss" in r]
    reference = load_file(full / "final_model" / "model.safetensors")
    resumed = load_file(parted / "final_model" / "model.safetensors")
    assert reference.keys() == resumed.keys()
    for name in reference:
        torch.testing.assert_close(resumed[name], reference[name], rtol=0, atol=1e-6, msg=name)
    state = json.loads((parted / "checkpoints" / "step_8" / "trainer_state.json").read_text())
    assert state["global_step"] == 8 and state["data_position"] == json.loads(
        (full / "checkpoints" / "step_8" / "trainer_state.json").read_text())["data_position"]


@pytest.mark.parametrize("loss", ["ce", "pair"])
def test_taxonomy_pretraining_logs_its_term_and_resumes_exactly(sim_csv, tmp_path, loss):
    """Issue #28: the taxonomy term on class-balanced batches, warmed up over the first steps, labels from the
    pretraining split only (counted in summary.json); a stopped and resumed run equals an uninterrupted one."""
    common = [*TINY, "--data", str(sim_csv), "--max_steps", "6", "--per_device_batch_size", "16",
              "--eval_steps", "3", "--save_steps", "2", "--evaluate", "false", "--taxonomy_loss", loss,
              "--taxonomy_classes_per_batch", "4", "--taxonomy_per_class", "2", "--taxonomy_warmup_steps", "3"]
    full, parted = tmp_path / "full", tmp_path / "parted"
    summary = run_training(parse_args([*common, "--output_dir", str(full)]))
    labels = summary["taxonomy_labels"]
    assert labels["rank"] == "genus" and labels["classes"] >= 2 and 0 < labels["labelled_rows"] <= labels["rows"]
    logged = [r for r in read_metrics(full) if "loss" in r]
    assert len(logged) == 6 and all(r["taxonomy_loss"] > 0 for r in logged)
    run_training(parse_args([*common, "--output_dir", str(parted), "--stop_after_steps", "3"]))
    run_training(parse_args([*common, "--output_dir", str(parted), "--resume_from_checkpoint", "latest"]))
    assert losses(parted) == losses(full)
    assert [(r["step"], r["taxonomy_loss"]) for r in read_metrics(parted) if "loss" in r] == [
        (r["step"], r["taxonomy_loss"]) for r in logged]
    reference = load_file(full / "final_model" / "model.safetensors")
    resumed = load_file(parted / "final_model" / "model.safetensors")
    if loss == "ce":
        assert any(name.startswith("taxonomy_head.") for name in reference)
    for name in reference:
        torch.testing.assert_close(resumed[name], reference[name], rtol=0, atol=1e-6, msg=name)


def test_init_from_a_plain_run_adds_the_taxonomy_head(sim_csv, tmp_path):
    """--init_from continues a run without the term: the ce head a taxonomy run asks for starts from scratch."""
    run = {"data": sim_csv, "max_steps": 1, "per_device_batch_size": 16, "evaluate": False}
    train(**run, output_dir=tmp_path / "plain")
    summary = train(**run, output_dir=tmp_path / "taxo", init_from=tmp_path / "plain" / "final_model",
                    taxonomy_loss="ce", taxonomy_classes_per_batch=4, taxonomy_per_class=2)
    assert summary["taxonomy_labels"]["classes"] >= 2
    weights = load_file(tmp_path / "taxo" / "final_model" / "model.safetensors")
    assert weights["taxonomy_head.classifier.weight"].shape[0] == summary["taxonomy_labels"]["classes"]


def test_taxonomy_labels_from_an_evaluation_split_are_refused():
    with pytest.raises(ValueError, match="test_unseen"):
        parse_args([*TINY, "--taxonomy_loss", "ce", "--split", "pretrain+test_unseen"])


def test_resume_drops_a_torn_last_metrics_line_and_refuses_a_corrupt_one(sim_csv, tmp_path, caplog):
    """Issue #26 item 7: a run killed mid-write leaves a torn last line in metrics.jsonl; resuming drops it with a
    warning naming the file and line. An unreadable line before the last is corruption, named by file and line."""
    run = {"data": sim_csv, "output_dir": tmp_path / "run", "max_steps": 3, "per_device_batch_size": 8,
           "save_steps": 1, "eval_steps": 10, "evaluate": False}
    train(**run, stop_after_steps=2)
    log = tmp_path / "run" / "metrics.jsonl"
    lines = log.read_text().splitlines()
    assert len(lines) >= 2

    log.write_text("".join(line + "\n" for line in ['{"step": 1, "lo', *lines[1:]]))
    with pytest.raises(ValueError, match=rf"{re.escape(str(log))}: line 1 is not a metrics record"):
        train(**run, resume_from_checkpoint="latest")

    log.write_text("".join(line + "\n" for line in lines) + '{"step": 9, "lo')  # killed mid-write
    with caplog.at_level("WARNING", logger="barcodemae.training.metrics_log"):
        assert train(**run, resume_from_checkpoint="latest")["global_step"] == 3
    assert f"{log}: line {len(lines) + 1} is a torn last record" in caplog.text
    assert [r["step"] for r in read_metrics(tmp_path / "run") if "loss" in r] == [1, 2, 3]  # torn line gone


def test_corrupt_or_partial_checkpoints_are_rejected(sim_csv, tmp_path):
    out = tmp_path / "run"
    run_training(parse_args([*TINY, "--data", str(sim_csv), "--output_dir", str(out), "--max_steps", "2",
                             "--per_device_batch_size", "8", "--save_steps", "1", "--eval_steps", "10",
                             "--evaluate", "false", "--save_total_limit", "5"]))
    step1, step2 = list_checkpoints(out)
    assert validate_checkpoint(step2, num_processes=1)["global_step"] == 2

    weights = step2 / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:-100])
    with pytest.raises(CheckpointError, match="truncated safetensors"):
        validate_checkpoint(step2, num_processes=1)
    (step1 / "optimizer.bin").unlink()
    with pytest.raises(CheckpointError, match=r"step_1 is not a complete checkpoint: missing optimizer.bin"):
        run_training(parse_args([*TINY, "--data", str(sim_csv), "--output_dir", str(out), "--max_steps", "2",
                                 "--per_device_batch_size", "8", "--resume_from_checkpoint", str(step1)]))
    partial = step2.with_name("step_9.tmp")
    partial.mkdir()
    with pytest.raises(CheckpointError, match="partial checkpoint"):
        validate_checkpoint(partial, num_processes=1)
    assert partial not in list_checkpoints(out)  # never picked as "latest"
    with pytest.raises(CheckpointError, match="no complete checkpoint"):
        run_training(parse_args([*TINY, "--data", str(sim_csv), "--output_dir", str(tmp_path / "empty"),
                                 "--max_steps", "1", "--resume_from_checkpoint", "latest"]))


def test_resume_refuses_arguments_other_than_the_checkpoints(sim_csv, tmp_path):
    """Resuming with fewer flags than the original run (the docs/training.md case) names each differing argument."""
    out = tmp_path / "run"
    original = {"data": sim_csv, "output_dir": out, "max_steps": 3, "per_device_batch_size": 8, "evaluate": False}
    train(**original, save_steps=1, stop_after_steps=1)

    with pytest.raises(CheckpointError) as refused:
        run_training(parse_args(["--output_dir", str(out), "--resume_from_checkpoint", "latest"]))
    message = str(refused.value)
    assert "step_1" in message and "training_args.json" in message
    assert f"--data: saved '{sim_csv}', given None" in message
    assert "--hidden_size: saved 32, given 64" in message and "--tokenizer: saved 'kmer4', given 'kmer6'" in message
    assert "original run's flags" in message
    assert not (out / "data").exists()  # refused before simulating the default data
    with pytest.raises(CheckpointError, match="--mask_ratio: saved 0.5, given 0.3") as refused:
        train(**original, mask_ratio=0.3, resume_from_checkpoint="latest")
    assert "hidden_size" not in str(refused.value)  # only what differs is listed

    # Logging, validation, saving and evaluation settings may change.
    resumed = train(**original, resume_from_checkpoint="latest", logging_steps=2, eval_steps=1, save_steps=5)
    assert resumed["global_step"] == 3
    assert json.loads((out / "training_args.json").read_text())["logging_steps"] == 2


def test_resume_compares_the_data_by_content_not_by_spelling(sim_csv, tmp_path, monkeypatch):
    """#26 item 6: only the --data string was compared, so another file at the same path resumed silently and the
    same file spelled relative instead of absolute was refused."""
    data = tmp_path / "data.csv"
    shutil.copyfile(sim_csv, data)
    out = tmp_path / "run"
    run = {"output_dir": out, "max_steps": 3, "per_device_batch_size": 8, "save_steps": 1, "evaluate": False}
    train(**run, data=data, stop_after_steps=1)
    row = data.read_text().splitlines()[1]
    edit_keeping_size_and_mtime(data, row.encode(), row.replace("A", "C", 1).encode())
    with pytest.raises(CheckpointError, match=f"{re.escape(str(data))} changed since"):
        train(**run, data=data, resume_from_checkpoint="latest")

    shutil.copyfile(sim_csv, data)  # the file the run was trained on, spelled relative to the working directory
    monkeypatch.chdir(tmp_path)
    assert train(**run, data="./data.csv", resume_from_checkpoint="latest")["global_step"] == 3


def test_resume_data_check_of_older_checkpoints_and_of_the_simulated_dataset(sim_csv, tmp_path, caplog):
    from barcodemae.training.data_identity import check_resume_data, data_fingerprint

    checkpoint = tmp_path / "step_1"
    checkpoint.mkdir()
    given = data_fingerprint(str(sim_csv))
    (checkpoint / "trainer_state.json").write_text(json.dumps({"global_step": 1}))  # before fingerprints
    check_resume_data(checkpoint, str(sim_csv), given)
    assert "records no data fingerprint" in caplog.text
    (checkpoint / "trainer_state.json").write_text(json.dumps({"global_step": 1, "data_fingerprint": None}))
    with pytest.raises(CheckpointError, match="other data: it was trained on the simulated default dataset, this "
                                              f"run reads {re.escape(str(sim_csv))}, a file of"):
        check_resume_data(checkpoint, str(sim_csv), given)
    check_resume_data(checkpoint, None, None)


def test_a_run_hashes_its_data_file_once(sim_csv, tmp_path, monkeypatch):
    """The ``--data`` file's SHA-256 is the run's data identity and the loader's cache key: computed once per run
    (a BIOSCAN-5M CSV is gigabytes), wherever the package imported the hash function."""
    data = tmp_path / "data.csv"
    shutil.copyfile(sim_csv, data)
    counts = count_file_hashes(monkeypatch)
    train(data=data, output_dir=tmp_path / "run", max_steps=1, per_device_batch_size=8, evaluate=False)
    assert counts["data.csv"] == 1


def test_simulated_default_data_resumes(tmp_path):
    """Without --data there is no file to compare: the simulated dataset is defined by the compared arguments."""
    run = {"output_dir": tmp_path / "run", "simulate_genera": 4, "max_steps": 2, "per_device_batch_size": 8,
           "save_steps": 1, "evaluate": False}
    train(**run, stop_after_steps=1)
    assert train(**run, resume_from_checkpoint="latest")["global_step"] == 2


# ------------------------------------------------------------------------------------------------ 2 processes
def test_two_processes_match_one_process_at_the_same_global_batch(sim_csv, tmp_path):
    common = [*TINY, "--objective", "mae", "--dropout", "0", "--data", str(sim_csv), "--max_steps", "4",
              "--eval_steps", "2", "--save_steps", "4", "--evaluate", "false", "--seed", "7"]
    single, double = tmp_path / "one", tmp_path / "two"
    run_training(parse_args([*common, "--per_device_batch_size", "16", "--output_dir", str(single)]))
    # accelerate's --cpu flag runs one process; torchrun-style CPU processes are --multi_gpu + ACCELERATE_USE_CPU.
    env = {**os.environ, "OMP_NUM_THREADS": "1", "ACCELERATE_USE_CPU": "true", "PYTHONPATH": str(REPO)}
    launched = subprocess.run(
        [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
         "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no", "--main_process_port", "29517",
         str(REPO / "train.py"), *common, "--per_device_batch_size", "8", "--output_dir", str(double)],
        env=env, capture_output=True, text=True, timeout=240, check=False,
    )
    assert launched.returncode == 0, launched.stderr[-3000:]
    assert "2 processes" in launched.stderr  # really distributed (gloo), not two independent runs
    one, two = losses(single), losses(double)
    assert [s for s, _ in one] == [s for s, _ in two] == [1, 2, 3, 4]
    for (_, a), (_, b) in zip(one, two):
        assert a == pytest.approx(b, rel=1e-5)
    val_one = [r["val_loss"] for r in read_metrics(single) if "val_loss" in r]
    val_two = [r["val_loss"] for r in read_metrics(double) if "val_loss" in r]
    assert val_one == pytest.approx(val_two, rel=1e-5)
    reference = load_file(single / "checkpoints" / "step_4" / "model.safetensors")
    other = load_file(double / "checkpoints" / "step_4" / "model.safetensors")
    for name in reference:
        torch.testing.assert_close(other[name], reference[name], rtol=1e-4, atol=1e-5, msg=name)


def test_curriculum_phase_is_checkpointed(sim_csv, tmp_path, caplog):
    """CM-GEMS (GeneMask -> Global, NPMI table built from the pretraining barcodes) records its phase."""
    out = tmp_path / "cmgems"
    summary = run_training(parse_args([*TINY, "--data", str(sim_csv), "--output_dir", str(out), "--max_steps", "2",
                                       "--per_device_batch_size", "8", "--masking", "cm-gems", "--eval_steps", "1",
                                       "--save_steps", "2", "--evaluate", "false", "--key_split", "none"]))
    state = json.loads((out / "checkpoints" / "step_2" / "trainer_state.json").read_text())
    curriculum = state["curriculum"]
    assert summary["curriculum_switch_step"] == curriculum["switch_step"]
    if curriculum["switch_step"] is None:  # a run that never left GeneMask says so
        assert "never switched to global" in caplog.text
    assert [step for step, _ in curriculum["history"]] == [1, 2]
    assert curriculum["history"][-1][1] == pytest.approx(read_metrics(out)[-1]["val_perplexity"])
    assert (out / "npmi" / "npmi_table.safetensors").is_file()


KILL_ON_THIRD_SAVE = """
import os, runpy, signal, sys
from accelerate import Accelerator

save_state, saves = Accelerator.save_state, []

def save_state_then_die(self, *args, **kwargs):
    save_state(self, *args, **kwargs)
    saves.append(args)
    if len(saves) == 3:
        os.kill(os.getpid(), signal.SIGKILL)

Accelerator.save_state = save_state_then_die
sys.argv = sys.argv[1:]
runpy.run_path(sys.argv[0], run_name="__main__")
"""
"""``python -c`` this, then ``train.py`` and its flags: the run is ``kill -9``ed by itself in the middle of its third
checkpoint (the weights saved, the trainer state not yet): a fixed point, where a watcher racing the run could kill
it too late or not at all on a busy machine."""


def test_sigkill_mid_run_then_resume_matches_uninterrupted_run(sim_csv, tmp_path):
    """A real ``kill -9`` of a training process mid-save of its third checkpoint, after the second is complete."""
    import signal

    common = [*TINY, "--objective", "mae", "--dropout", "0.1", "--data", str(sim_csv), "--max_steps", "20",
              "--per_device_batch_size", "8", "--save_steps", "2", "--eval_steps", "1000", "--evaluate", "false",
              "--save_total_limit", "2", "--logging_steps", "1"]
    killed = tmp_path / "killed"
    env = {**os.environ, "OMP_NUM_THREADS": "2", "PYTHONPATH": str(REPO)}  # as conftest: same kernels
    process = subprocess.run([sys.executable, "-c", KILL_ON_THIRD_SAVE, str(REPO / "train.py"), *common,
                              "--output_dir", str(killed)], env=env, capture_output=True, text=True,
                             timeout=600, check=False)  # a hang guard only: the run takes seconds
    assert process.returncode == -signal.SIGKILL, process.stderr[-3000:]
    assert [p.name for p in list_checkpoints(killed)] == ["step_2", "step_4"]  # step 6 was cut short
    assert not (killed / "final_model").exists()

    run_training(parse_args([*common, "--output_dir", str(killed), "--resume_from_checkpoint", "latest"]))
    full = tmp_path / "full"
    run_training(parse_args([*common, "--output_dir", str(full)]))
    # Bit-identical in practice; the tolerance covers kernel differences between the killed process and this one.
    assert [s for s, _ in losses(killed)] == [s for s, _ in losses(full)] == list(range(1, 21))
    assert [v for _, v in losses(killed)] == pytest.approx([v for _, v in losses(full)], rel=1e-6)
    reference = load_file(full / "final_model" / "model.safetensors")
    resumed = load_file(killed / "final_model" / "model.safetensors")
    for name in reference:
        torch.testing.assert_close(resumed[name], reference[name], rtol=0, atol=1e-5, msg=name)


# ------------------------------------------------------------------------------------------------ short barcodes
def test_barcodes_too_short_for_every_reading_frame_are_rejected_up_front(fixture_csv, tmp_path, caplog):
    """5 bp passes a 4-mer in frame 0 but not in frames 2-3: it must be rejected on load, not crash step N."""
    import pandas as pd

    table = pd.read_csv(fixture_csv)
    short = table.index[table["split"] == "pretrain"][0]
    table.loc[short, "dna_barcode"] = "ACGTA"
    csv = tmp_path / "short.csv"
    table.to_csv(csv, index=False)
    with caplog.at_level("INFO"):
        # Without the length check, frame offsets of 2-3 on this record crash within three steps of 46.
        summary = train(
            data=csv,
            output_dir=tmp_path / "run",
            max_steps=3,
            per_device_batch_size=46,
            split="pretrain",
            eval_steps=10,
            save_steps=10,
            evaluate=False,
        )
    assert summary["global_step"] == 3
    record_id = table.loc[short, "processid"]
    assert f"{record_id}: too short: 5 bp < minimum 7 bp" in caplog.text  # the cleaning report names it
    assert "rejected 1 record(s) shorter than 7 bp" in caplog.text


def test_max_train_samples_pretrains_on_a_seeded_random_subset_in_file_order(fixture_csv, tmp_path, caplog):
    """Data-size studies (issue #12): a random subset of the split, not its first rows (files sort by taxon)."""
    data = load_training_data(fixture_csv, cache_dir=tmp_path / "cache")
    everything = data.rows("pretrain")
    source, _ = data.source("pretrain", sample_size=10, seed=1)
    again, _ = data.source("pretrain", sample_size=10, seed=1)
    other, _ = data.source("pretrain", sample_size=10, seed=2)

    def barcodes(source) -> list[str]:
        return source.take(np.arange(len(source)))

    subset, pretrain = barcodes(source), barcodes(data.source("pretrain")[0])
    assert len(subset) == 10 and subset == barcodes(again) and subset != barcodes(other)
    assert subset != pretrain[:10]  # random rows, not the first ones
    remaining = iter(pretrain)
    assert all(barcode in remaining for barcode in subset)  # a subsequence: file order kept
    with pytest.raises(ValueError, match=f"cannot sample {len(everything) + 1} barcodes from split 'pretrain'"):
        data.source("pretrain", sample_size=len(everything) + 1)
    with pytest.raises(ValueError, match="--max_train_samples must be >= 1"):
        parse_args(["--max_train_samples", "0"])
    with caplog.at_level("INFO"):
        train(
            data=fixture_csv,
            output_dir=tmp_path / "run",
            max_steps=1,
            per_device_batch_size=4,
            split="pretrain",
            max_train_samples=12,
            eval_steps=10,
            save_steps=10,
            evaluate=False,
        )
    assert "12 pretraining barcodes" in caplog.text


def test_checkpoint_files_that_fail_to_load_raise_checkpoint_error(sim_csv, tmp_path):
    """Files of the right size with the wrong bytes fail inside torch: the error still names folder and file."""
    run = {"data": sim_csv, "output_dir": tmp_path / "run", "max_steps": 2, "per_device_batch_size": 8}
    train(**run, save_steps=1, evaluate=False)
    step1, step2 = list_checkpoints(tmp_path / "run")

    (step2 / "optimizer.bin").write_bytes(b"not a torch pickle" * 64)
    with pytest.raises(CheckpointError, match=r"step_2/optimizer\.bin: content differs from checksums\.json"):
        train(**run, resume_from_checkpoint=step2)
    # With checksums that vouch for the bad bytes, the failure inside torch still names folder and file.
    for step in (step1, step2):
        write_checksums(step)
    with pytest.raises(CheckpointError, match=r"step_2/optimizer\.bin: cannot load the checkpoint") as refused:
        train(**run, resume_from_checkpoint=step2)
    assert refused.value.__cause__ is not None  # the torch error, chained
    # accelerate skips an unreadable RNG file with an INFO line: the resumed run would silently differ.
    (step1 / "random_states_0.pkl").write_bytes(b"corrupt" * 64)
    write_checksums(step1)
    with pytest.raises(CheckpointError, match=r"step_1/random_states_0\.pkl: cannot load the checkpoint"):
        train(**run, resume_from_checkpoint=step1)


# ------------------------------------------------------------------------------------------------ the main job
def test_main_job_simulates_trains_exports_and_evaluates(tmp_path, capsys):
    """``python train.py`` with no --data: simulated data, a few steps, the export and its evaluation; stdout is a
    short JSON object for scripts, stderr ends with what was written, that the data were simulated, and what next."""
    import math

    from barcodemae.training.command import main

    out = tmp_path / "demo"
    assert main([*TINY, *flags(output_dir=out, simulate_genera=4, max_steps=2, per_device_batch_size=16,
                               eval_steps=2, save_steps=2, eval_reducer="pca", eval_plots=False)]) == 0
    captured = capsys.readouterr()
    summary = json.loads(captured.out)
    assert summary["global_step"] == 2 and summary["final_model"] == str(out / "final_model")
    assert summary["results"] == str(out / "eval" / "results.json") and "harmonic_mean" in summary["headline"]
    assert re.search(r"loss=[\d.]+, lr=[\d.e+-]+, tok/s=[\d,]+", captured.err)  # the progress bar
    ending = captured.err[captured.err.rindex("train.py finished"):]
    for written in (out / "final_model", out / "eval" / "report.md", out / "eval" / "results.json"):
        assert str(written) in ending
    assert "simulated barcodes" in ending and "docs/training.md#real-data" in ending
    assert "next: python train.py --preset small" in ending
    assert (out / "data" / "simulated_bioscan5m.csv").is_file()
    for name in ("config.json", "model.safetensors", "tokenizer.json", "label_vocab.json"):
        assert (out / "final_model" / name).is_file(), name
    headline = json.loads((out / "eval" / "results.json").read_text())["metrics"]["headline"]
    assert set(headline) == {
        "closed_world_species_accuracy",
        "open_world_genus_accuracy",
        "bin_reconstruction_ami",
        "harmonic_mean",
    }
    assert all(math.isfinite(value) for value in headline.values()), headline


# ------------------------------------------------------------------------------------------------ NPMI table
def test_npmi_table_is_exported_and_reloaded_on_resume(sim_csv, tmp_path, monkeypatch):
    from barcodemae.masking.npmi import NPMITable

    run = {"data": sim_csv, "output_dir": tmp_path / "run", "max_steps": 2, "per_device_batch_size": 8}
    run.update(masking="genemask", save_steps=1, eval_steps=10, evaluate=False)
    train(**run, stop_after_steps=1)
    saved = NPMITable.load(tmp_path / "run" / "npmi")

    def recount(*args, **kwargs):
        raise AssertionError("the NPMI table was counted again instead of reloaded")

    monkeypatch.setattr(NPMITable, "build", recount)
    assert train(**run, resume_from_checkpoint="latest")["global_step"] == 2
    exported = NPMITable.load(tmp_path / "run" / "final_model")
    assert exported.npmi.keys() == saved.npmi.keys()
    for n in saved.npmi:
        np.testing.assert_array_equal(exported.npmi[n], saved.npmi[n])
        np.testing.assert_array_equal(exported.ngram_ids[n], saved.ngram_ids[n])


# ------------------------------------------------------------------------------------------------ genus probe
def test_genus_probe_scores_eval_suite_vectors_and_leaves_the_encoder_training(kmer4_model_folder):
    from barcodemae.eval.metrics import one_nn_accuracy
    from barcodemae.eval.postprocess import top_pc_variance_share
    from barcodemae.inference import embed_barcodes, load_encoder
    from barcodemae.training.batches import BarcodeSource
    from barcodemae.training.validation import GenusProbe

    encoder, tokenizer = load_encoder(kmer4_model_folder)
    rng = np.random.default_rng(0)
    keys = ["".join(rng.choice(list("ACGT"), 120)) for _ in range(40)]
    key_genus = np.array([f"g{i % 5}" for i in range(40)], dtype=object)
    queries = [k[:100] for k in keys[::2]] + ["".join(rng.choice(list("ACGT"), 110)) for _ in range(10)]
    query_genus = np.array([f"g{i % 3}" for i in range(30)], dtype=object)
    probe = GenusProbe(BarcodeSource(keys), key_genus, BarcodeSource(queries), query_genus, limit=25, seed=1)
    assert len(probe.keys) == len(probe.query_genus) == 25  # subsampled to the limit

    encoder.train()
    result = probe(encoder, tokenizer, torch.device("cpu"), batch_size=7)
    assert encoder.training  # the training loop's model comes back in training mode
    def accuracy(layer):
        return one_nn_accuracy(
            embed_barcodes(encoder, tokenizer, probe.keys, layer=layer, progress=False), probe.key_genus,
            embed_barcodes(encoder, tokenizer, probe.queries, layer=layer, progress=False), probe.query_genus,
        )["accuracy"]

    layers = encoder.config.num_hidden_layers
    assert result["genus_1nn_accuracy"] == pytest.approx(accuracy(-1))  # the headline: last layer, as final_model
    assert result["genus_1nn_accuracy"] == result[f"genus_1nn_accuracy_layer_{layers}"]
    for layer in [*range(layers), "mean"]:
        assert result[f"genus_1nn_accuracy_layer_{layer}"] == pytest.approx(accuracy(layer)), layer
    keys_last = embed_barcodes(encoder, tokenizer, probe.keys, progress=False)
    assert result["top_pc_variance_share"] == pytest.approx(top_pc_variance_share(keys_last), rel=1e-5)
    assert len(result) == 1 + (layers + 2) + 1
    encoder.config.pooled_layers = "mean"  # the headline follows the model's own embedding
    averaged = probe(encoder, tokenizer, torch.device("cpu"), batch_size=7)
    assert averaged["genus_1nn_accuracy"] == averaged["genus_1nn_accuracy_layer_mean"]
    keys_mean = embed_barcodes(encoder, tokenizer, probe.keys, progress=False)
    assert averaged["top_pc_variance_share"] == pytest.approx(top_pc_variance_share(keys_mean), rel=1e-5)


def test_validation_reports_unseen_species_perplexity(sim_csv, tmp_path):
    out = tmp_path / "run"
    train(data=sim_csv, output_dir=out, max_steps=2, per_device_batch_size=8, eval_steps=2, evaluate=False)
    validations = [r for r in read_metrics(out) if "val_loss" in r]
    assert [r["step"] for r in validations] == [0, 2]
    for record in validations:
        assert record["unseen_val_perplexity"] > 1 and record["val_perplexity"] > 1
        assert record["unseen_val_loss"] != record["val_loss"]  # other barcodes (val_unseen), other masks
        assert 0 < record["top_pc_variance_share"] <= 1


# ------------------------------------------------------------------------------------------------ best model
def test_load_best_model_at_end_exports_the_best_step(sim_csv, tmp_path, monkeypatch):
    """The probe's values are scripted (5 validations: steps 0, 2, 4, 6, 8) so the best step is known: 4."""
    from barcodemae.training import validation

    scripted = iter([0.2, 0.5, 0.9, 0.4, 0.9])  # a later tie does not replace the earlier best
    monkeypatch.setattr(validation.GenusProbe, "__call__", lambda self, *a, **k: {"genus_1nn_accuracy": next(scripted)})
    out = tmp_path / "run"
    summary = train(data=sim_csv, output_dir=out, max_steps=8, per_device_batch_size=8, eval_steps=2, save_steps=4,
                    save_total_limit=5, evaluate=False, load_best_model_at_end=True)
    assert summary["final_model_step"] == 4 and summary["global_step"] == 8
    assert summary["best_model"] == {"metric": "genus_1nn_accuracy", "step": 4, "value": 0.9}
    final = load_file(out / "final_model" / "model.safetensors")
    at_step_4 = load_file(out / "checkpoints" / "step_4" / "model.safetensors")
    at_step_8 = load_file(out / "checkpoints" / "step_8" / "model.safetensors")
    assert final.keys() == at_step_4.keys()
    for name in final:
        torch.testing.assert_close(final[name], at_step_4[name], rtol=0, atol=0, msg=name)
    assert any(not torch.equal(final[name], at_step_8[name]) for name in final)  # not the last step
    assert [r["best_model_step"] for r in read_metrics(out) if "best_model_step" in r] == [0, 2, 4, 4, 4]
    assert read_metrics(out)[-1] == {"step": 8, "final_model_step": 4, "best_genus_1nn_accuracy": 0.9}
    state = json.loads((out / "checkpoints" / "step_8" / "trainer_state.json").read_text())
    assert state["best_model"] == {"metric": "genus_1nn_accuracy", "step": 4, "value": 0.9}


def test_best_model_choice_survives_a_kill_and_resume(sim_csv, tmp_path, monkeypatch):
    from barcodemae.training import validation

    values = {0: 0.1, 2: 0.7, 4: 0.3, 6: 0.2}  # the best (step 2) is before the checkpoint the run resumes from
    common = {"data": sim_csv, "max_steps": 6, "per_device_batch_size": 8, "eval_steps": 2, "save_steps": 4,
              "evaluate": False, "load_best_model_at_end": True}
    steps = iter([0, 2, 4, 6])  # the steps of the probe calls, one per validation
    monkeypatch.setattr(
        validation.GenusProbe, "__call__", lambda self, *a, **k: {"genus_1nn_accuracy": values[next(steps)]}
    )
    full = train(**common, output_dir=tmp_path / "full")
    steps = iter([0, 2, 4, 6])
    train(**common, output_dir=tmp_path / "parted", stop_after_steps=5)  # killed after step 5: checkpoint step 4
    steps = iter([6])
    resumed = train(**common, output_dir=tmp_path / "parted", resume_from_checkpoint="latest")
    assert full["final_model_step"] == resumed["final_model_step"] == 2
    reference = load_file(tmp_path / "full" / "final_model" / "model.safetensors")
    again = load_file(tmp_path / "parted" / "final_model" / "model.safetensors")
    for name in reference:
        torch.testing.assert_close(again[name], reference[name], rtol=0, atol=1e-6, msg=name)


def test_best_model_is_never_chosen_on_a_test_split(sim_csv, tmp_path):
    from barcodemae.training.best_model import greater_is_better

    with pytest.raises(ValueError, match="test splits must not choose the model"):
        train(data=sim_csv, output_dir=tmp_path / "a", max_steps=2, load_best_model_at_end=True,
              query_split="test_unseen")
    with pytest.raises(ValueError, match="test splits must not choose the model"):
        train(data=sim_csv, output_dir=tmp_path / "b", max_steps=2, load_best_model_at_end=True,
              metric_for_best_model="val_loss", val_split="test")
    assert not greater_is_better("unseen_val_perplexity") and not greater_is_better("val_loss")
    assert greater_is_better("genus_1nn_accuracy_layer_1")


@pytest.mark.parametrize(
    ("distributed_type", "zero_stage", "sharded"),
    [
        ("NO", None, False), ("MULTI_GPU", None, False), ("FSDP", None, True), ("DEEPSPEED", 2, False),
        ("DEEPSPEED", 3, True),
    ],
)
def test_periodic_probe_is_off_only_when_parameters_are_sharded(distributed_type, zero_stage, sharded):
    from types import SimpleNamespace

    from accelerate.utils import DistributedType

    from barcodemae.training.accelerator_setup import parameters_are_sharded

    plugin = SimpleNamespace(zero_stage=zero_stage) if zero_stage is not None else None
    accelerator = SimpleNamespace(
        distributed_type=DistributedType[distributed_type], state=SimpleNamespace(deepspeed_plugin=plugin)
    )
    assert parameters_are_sharded(accelerator) is sharded


# ------------------------------------------------------------------------------------------------ --init_from
def test_init_from_continues_from_the_final_model_with_its_architecture(sim_csv, tmp_path):
    first = tmp_path / "first"
    train(data=sim_csv, output_dir=first, max_steps=4, eval_steps=4, per_device_batch_size=8, evaluate=False)
    second = tmp_path / "second"
    # Other size flags are overridden by the folder (and said so); the objective must match it.
    train(data=sim_csv, output_dir=second, max_steps=2, eval_steps=2, per_device_batch_size=8, evaluate=False,
          init_from=first / "final_model", hidden_size=48, num_hidden_layers=3)
    saved = json.loads((second / "training_args.json").read_text())
    assert (saved["hidden_size"], saved["num_hidden_layers"], saved["tokenizer"]) == (32, 1, str(first / "final_model"))
    # Step 0 of the continued run scores exactly the first run's final weights on the same fixed masks.
    end_of_first = [r for r in read_metrics(first) if "val_loss" in r][-1]
    start_of_second = next(r for r in read_metrics(second) if "val_loss" in r)
    assert (
        start_of_second["step"] == 0
        and start_of_second["val_loss"] == pytest.approx(end_of_first["val_loss"], rel=1e-6)
    )
    assert start_of_second["genus_1nn_accuracy"] == pytest.approx(end_of_first["genus_1nn_accuracy"])
    assert next(r for r in read_metrics(second) if "learning_rate" in r)["learning_rate"] > 0  # a fresh schedule

    with pytest.raises(ValueError, match="pretrained with objective 'mae'.*pass --objective mae"):
        train(data=sim_csv, output_dir=tmp_path / "x", max_steps=1, init_from=first / "final_model", objective="mlm")
    with pytest.raises(FileNotFoundError, match="not a model folder"):
        train(data=sim_csv, output_dir=tmp_path / "x", max_steps=1, init_from=tmp_path / "nowhere")
    from barcodemae.export import export_encoder

    encoder_only = export_encoder(first / "final_model", tmp_path / "export")
    with pytest.raises(ValueError, match=r"lacks pretraining weights \(decoder\..*encoder-only export"):
        train(data=sim_csv, output_dir=tmp_path / "x", max_steps=1, per_device_batch_size=8, init_from=encoder_only)


# ------------------------------------------------------------------------------------------------ output folder
def test_a_new_run_never_reuses_another_runs_folder(sim_csv, tmp_path):
    """The issue's case: a second run without resume into a used folder used to destroy the first and then resume it."""
    from barcodemae.training.run_folder import OutputDirInUseError, read_run_id

    out = tmp_path / "run"
    first = {"data": sim_csv, "output_dir": out, "max_steps": 4, "per_device_batch_size": 8, "save_steps": 1,
             "save_total_limit": 5, "eval_steps": 2, "evaluate": False}
    train(**first)
    run_id = read_run_id(out)
    state = json.loads((list_checkpoints(out)[-1] / "trainer_state.json").read_text())
    assert state["run_id"] == run_id and len(run_id) == 32
    before = (out / "metrics.jsonl").read_text(), (out / "training_args.json").read_text()

    with pytest.raises(OutputDirInUseError) as refused:
        train(**first, learning_rate=1e-3, stop_after_steps=1)
    message = str(refused.value)
    assert "--resume_from_checkpoint latest" in message and "--overwrite_output_dir" in message
    assert "checkpoints" in message and "training_args.json" in message
    assert ((out / "metrics.jsonl").read_text(), (out / "training_args.json").read_text()) == before  # untouched
    assert [p.name for p in list_checkpoints(out)] == ["step_1", "step_2", "step_3", "step_4"]

    # --overwrite_output_dir starts afresh: the old run's files are gone, a new id is recorded everywhere
    train(**first, learning_rate=1e-3, stop_after_steps=1, overwrite_output_dir=True)
    assert read_run_id(out) != run_id
    assert [p.name for p in list_checkpoints(out)] == ["step_1"]
    assert max(r["step"] for r in read_metrics(out)) == 1
    assert json.loads((out / "training_args.json").read_text())["learning_rate"] == 1e-3
    assert not (out / "final_model").exists()


def test_resume_refuses_a_checkpoint_of_another_run(sim_csv, tmp_path):
    from barcodemae.training.run_folder import OutputDirInUseError, read_run_id

    common = {"data": sim_csv, "max_steps": 3, "per_device_batch_size": 8, "save_steps": 1, "evaluate": False}
    train(**common, output_dir=tmp_path / "a", stop_after_steps=2)
    train(**common, output_dir=tmp_path / "b", stop_after_steps=1)
    foreign = list_checkpoints(tmp_path / "a")[-1]
    with pytest.raises(OutputDirInUseError, match=f"belongs to run {read_run_id(tmp_path / 'a')}"):
        train(**common, output_dir=tmp_path / "b", resume_from_checkpoint=str(foreign))
    # the same checkpoint resumes in its own folder, and into a new folder, which becomes that run's
    resumed = train(**common, output_dir=tmp_path / "c", resume_from_checkpoint=str(foreign))
    assert resumed["global_step"] == 3 and read_run_id(tmp_path / "c") == read_run_id(tmp_path / "a")


# ------------------------------------------------------------------------------------------------ augmentation
def test_start_shift_drops_leading_bases_deterministically():
    from barcodemae.tokenization import BarcodeTokenizer
    from barcodemae.training.batches import BarcodeSource, GlobalBatchStream

    rng = np.random.default_rng(0)
    barcodes = ["".join(rng.choice(list("ACGT"), 120)) for _ in range(63)] + ["ACGTACGTACG"]  # one of 11 bp

    def mask_fn(ids, attention, rng):
        return np.zeros_like(ids, dtype=bool)

    def stream(shift, frames=True):
        return GlobalBatchStream(BarcodeSource(barcodes), BarcodeTokenizer.kmer(6), mask_fn, per_device_batch_size=64,
                                 seed=3, shuffle=False, frame_offsets=frames, max_start_shift=shift)

    plain, shifted = stream(0).global_batch(0, 0), stream(60).global_batch(0, 0)
    tokens = shifted["attention_mask"].sum(axis=1) - 2  # k-mers between [CLS] and [SEP]
    assert (tokens <= plain["attention_mask"].sum(axis=1) - 2).all()
    assert 120 // 6 - tokens[:63].min() >= 8  # up to 60 bases (10 k-mers) dropped; uniform draws reach near that
    assert tokens.min() >= 1  # the 11-bp barcode keeps a k-mer in every reading frame (shift capped at 0)
    for key in plain:  # a pure function of (seed, epoch, batch)
        np.testing.assert_array_equal(shifted[key], stream(60).global_batch(0, 0)[key])
    # Without frame draws, the shifts are the batch generator's first draw: rebuild the rows by hand.
    batch = stream(60, frames=False).global_batch(0, 0)
    draws = np.random.default_rng([3, 0, 0, 1]).integers(0, 61, size=64)
    shifts = np.minimum(draws, [len(b) - 6 for b in barcodes])
    expected = BarcodeTokenizer.kmer(6)([b[s:] for b, s in zip(barcodes, shifts)], padding=True, return_tensors="np")
    np.testing.assert_array_equal(batch["input_ids"], expected["input_ids"])
    assert shifts[-1] == 5 and shifts[:63].max() > 50
    with pytest.raises(ValueError, match="max_start_shift"):
        stream(-1)
    with pytest.raises(ValueError, match="max_start_shift"):
        parse_args(["--max_start_shift", "-5"])


def test_substitutions_change_only_nucleotides_at_the_rate_and_keep_lengths():
    from barcodemae.training.batches import substitute_bases

    rng = np.random.default_rng(5)
    barcodes = ["".join(rng.choice(list("ACGTN"), n)) for n in (0, 1, 500, 4000)] + ["RYKM" * 10]
    changed = substitute_bases(barcodes, 0.1, np.random.default_rng(0))
    assert [len(b) for b in changed] == [len(b) for b in barcodes]
    pairs = [(a, b) for before, after in zip(barcodes, changed) for a, b in zip(before, after)]
    assert all(b == a for a, b in pairs if a not in "ACGT")  # N and IUPAC codes untouched
    assert all(b in "ACGT" for a, b in pairs if a in "ACGT")
    nucleotides = [a != b for a, b in pairs if a in "ACGT"]
    assert abs(np.mean(nucleotides) - 0.1) < 0.02  # ~3,600 draws: sd 0.005
    assert changed == substitute_bases(barcodes, 0.1, np.random.default_rng(0))
    assert substitute_bases(barcodes, 0.0, np.random.default_rng(0)) == barcodes


def test_substitution_rate_makes_views_differ_and_is_validated():
    from barcodemae.tokenization import BarcodeTokenizer
    from barcodemae.training.batches import BarcodeSource, GlobalBatchStream

    rng = np.random.default_rng(2)
    barcodes = ["".join(rng.choice(list("ACGT"), 120)) for _ in range(8)]

    def stream(rate):
        return GlobalBatchStream(BarcodeSource(barcodes), BarcodeTokenizer.kmer(6),
                                 lambda ids, attention, rng: np.zeros_like(ids, dtype=bool), per_device_batch_size=8,
                                 seed=0, shuffle=False, frame_offsets=False, substitution_rate=rate, views=2)

    plain, substituted = stream(0.0).global_batch(0, 0), stream(0.05).global_batch(0, 0)
    assert (plain["input_ids"][0::2] == plain["input_ids"][1::2]).all()  # no augmentation left: equal views
    assert (substituted["input_ids"][0::2] != substituted["input_ids"][1::2]).any(axis=1).all()
    assert (substituted["attention_mask"] == plain["attention_mask"]).all()  # lengths kept
    different = (substituted["input_ids"] != plain["input_ids"]).mean()
    assert 0.05 < different < 0.5  # a 6-mer changes when any of its bases does: 1 - 0.95**6 = 0.26
    for bad in (-0.1, 1.0):
        with pytest.raises(ValueError, match="substitution_rate"):
            stream(bad)
        with pytest.raises(ValueError, match="substitution_rate"):
            parse_args(["--substitution_rate", str(bad)])


def test_views_repeat_each_barcode_with_its_own_augmentation_and_stay_on_one_process():
    from barcodemae.tokenization import BarcodeTokenizer
    from barcodemae.training.batches import BarcodeSource, GlobalBatchStream

    rng = np.random.default_rng(1)
    barcodes = ["".join(rng.choice(list("ACGT"), 200)) for _ in range(16)]

    def mask_fn(ids, attention, rng):
        return (rng.random(ids.shape) < 0.5) & (attention == 1)

    def stream(process_index=0, num_processes=1, views=2):
        return GlobalBatchStream(BarcodeSource(barcodes), BarcodeTokenizer.kmer(6), mask_fn, per_device_batch_size=4,
                                 process_index=process_index, num_processes=num_processes, seed=0,
                                 max_start_shift=60, views=views)

    batch = stream(num_processes=2).global_batch(0, 0)
    ids = batch["barcode_ids"]
    assert len(ids) == 16 and (ids[0::2] == ids[1::2]).all() and len(set(ids.tolist())) == 8
    first, second = batch["input_ids"][0::2], batch["input_ids"][1::2]
    assert (first != second).any(axis=1).all()  # own start shift and frame: other tokens for every pair
    assert (batch["masked_positions"][0::2] != batch["masked_positions"][1::2]).any()
    halves = [stream(p, 2).local_slice(batch) for p in (0, 1)]
    assert [len(h["barcode_ids"]) for h in halves] == [8, 8]  # 4 barcodes x 2 views per process
    assert set(halves[0]["barcode_ids"].tolist()).isdisjoint(halves[1]["barcode_ids"].tolist())
    assert "barcode_ids" not in stream(views=1).global_batch(0, 0)
    with pytest.raises(ValueError, match="views"):
        stream(views=0)


def test_balanced_batch_slices_of_two_processes_concatenate_to_the_one_process_batch():
    """Class-balanced batches (taxonomy-aware pretraining) keep the stream's promise: the global batch depends on
    (seed, epoch, batch) only, and with 2 processes dividing the 4 taxa each process holds 2 whole taxa."""
    from barcodemae.tokenization import BarcodeTokenizer
    from barcodemae.training.batches import BarcodeSource, GlobalBatchStream, balanced_block_positions

    rng = np.random.default_rng(4)
    labels = np.concatenate([np.repeat(np.arange(10), 5), np.full(14, -1)])
    rng.shuffle(labels)
    barcodes = ["".join(rng.choice(list("ACGT"), int(n))) for n in rng.integers(40, 200, len(labels))]

    def mask_fn(ids, attention, rng):
        return (rng.random(ids.shape) < 0.5) & (attention == 1)

    def stream(process_index=0, num_processes=1):
        return GlobalBatchStream(BarcodeSource(barcodes), BarcodeTokenizer.kmer(6), mask_fn,
                                 per_device_batch_size=16 // num_processes, process_index=process_index,
                                 num_processes=num_processes, seed=5, max_start_shift=30, views=2,
                                 composition_kmer_size=2, taxon_labels=labels, classes_per_batch=4, per_class=3)

    one = stream()
    halves = [stream(p, 2) for p in (0, 1)]
    for _ in range(one.batches_per_epoch + 1):  # into the second epoch
        whole, whole_counts = one.next()
        parts = [half.next() for half in halves]
        assert [counts for _, counts in parts] == [whole_counts, whole_counts]  # global counts everywhere
        for key, value in whole.items():
            if value.ndim == 2 and key != "composition_targets":  # each process trims to its own longest row
                joined = torch.zeros_like(value)
                for start, (part, _) in zip((0, 16), parts):
                    joined[start : start + 16, : part[key].shape[1]] = part[key]
            else:
                joined = torch.cat([part[key] for part, _ in parts])
            torch.testing.assert_close(joined, value, rtol=0, atol=0, msg=key)
        block = balanced_block_positions(16, 4, 3)[:, 0]  # each taxon's first barcode; views double the rows
        taxa_per_process = [set(part["taxon_labels"][2 * (block[block // 8 == p] % 8)].tolist())
                            for p, (part, _) in enumerate(parts)]
        assert [len(taxa) for taxa in taxa_per_process] == [2, 2]


def test_kmer_composition_counts_overlapping_kmers_within_each_sequence():
    from barcodemae.training.batches import kmer_composition

    profiles = kmer_composition(["ACGTA", "AANAA", "CC", "GGGG"], 2)
    assert profiles.shape == (4, 16) and profiles.dtype == np.float32
    index = {a + b: 4 * "ACGT".index(a) + "ACGT".index(b) for a in "ACGT" for b in "ACGT"}
    expected = np.zeros((4, 16), np.float32)
    for kmer in ("AC", "CG", "GT", "TA"):
        expected[0, index[kmer]] = 0.25
    expected[1, index["AA"]] = 1.0  # AN / NA are skipped
    expected[2, index["CC"]] = 1.0  # never across the boundary to the next sequence (no "CG" from "CC" + "GGGG")
    expected[3, index["GG"]] = 1.0
    np.testing.assert_allclose(profiles, expected)
    assert not kmer_composition(["NNN", "A"], 2).any()  # no complete k-mer: a row of zeros, not NaN
    assert kmer_composition([], 4).shape == (0, 256)


def test_composition_targets_travel_whole_with_each_row():
    from barcodemae.tokenization import BarcodeTokenizer
    from barcodemae.training.batches import BarcodeSource, GlobalBatchStream, kmer_composition

    rng = np.random.default_rng(2)
    barcodes = ["".join(rng.choice(list("ACGT"), n)) for n in rng.integers(30, 200, 12)]

    def mask_fn(ids, attention, rng):
        return (rng.random(ids.shape) < 0.5) & (attention == 1)

    stream = GlobalBatchStream(BarcodeSource(barcodes), BarcodeTokenizer.kmer(6), mask_fn, per_device_batch_size=2,
                               num_processes=2, process_index=1, seed=0, frame_offsets=False,
                               composition_kmer_size=4)
    batch = stream.global_batch(0, 0)
    order = stream._epoch_order(0)[:4]
    np.testing.assert_allclose(batch["composition_targets"], kmer_composition([barcodes[i] for i in order], 4))
    local = stream.local_slice(batch)
    assert local["composition_targets"].shape == (2, 256)  # one whole profile per row, never cut to the tokens
    torch.testing.assert_close(local["composition_targets"], torch.from_numpy(batch["composition_targets"][2:]))


def test_composition_pretraining_logs_its_loss_and_saves_its_weight(sim_csv, tmp_path):
    out = tmp_path / "run"
    train(data=sim_csv, output_dir=out, max_steps=3, per_device_batch_size=8, eval_steps=3, evaluate=False,
          objective="mlm", composition_weight=0.5, composition_kmer_size=3)
    steps = [r for r in read_metrics(out) if "loss" in r]
    assert len(steps) == 3 and all(0 < r["composition_loss"] < 10 for r in steps)
    config = json.loads((out / "final_model" / "config.json").read_text())
    assert config["composition_weight"] == 0.5 and config["composition_kmer_size"] == 3
    with pytest.raises(ValueError, match="composition_weight"):
        parse_args(["--composition_weight", "-1"])
    with pytest.raises(ValueError, match="composition_weight"):
        parse_args(["--preset", "enbed-tiny", "--composition_weight", "1"])


def test_contrastive_pretraining_logs_both_losses_and_validates_on_reconstruction(sim_csv, tmp_path):
    out = tmp_path / "run"
    train(data=sim_csv, output_dir=out, max_steps=3, per_device_batch_size=8, eval_steps=3, evaluate=False,
          max_start_shift=30, contrastive_weight=0.5)
    records = read_metrics(out)
    steps = [r for r in records if "loss" in r]
    assert len(steps) == 3 and all(0 < r["contrastive_loss"] < np.log(16) + 1 for r in steps)
    assert all(np.isfinite(r["val_loss"]) for r in records if "val_loss" in r)
    config = json.loads((out / "final_model" / "config.json").read_text())
    assert config["contrastive_weight"] == 0.5 and config["contrastive_temperature"] == 0.1
    with pytest.raises(ValueError, match="contrastive_weight"):
        parse_args(["--contrastive_weight", "-1"])

