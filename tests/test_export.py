"""Export of training checkpoints to a Hub-ready feature-extraction folder, loaded in a package-free process."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

from barcodemae import BarcodeMAEConfig, BarcodeMAEForPreTraining, BarcodeMAEModel, BarcodeTokenizer
from barcodemae.errors import CheckpointError
from barcodemae.export import (
    encoder_state_dict,
    export_encoder,
    locate_checkpoint,
    render_model_card,
    results_markdown,
)
from conftest import tiny_config_kwargs

BARCODES = [
    "AACATTATATTTTATTTTTGGAATTTGAGCAGGAATAGTAGGAACTTCTTTAAGAATTCTAATTCGAGCTGAATTAGGACATCCAGGTGCA",
    "aactttatattttatttttggagcttgagcaggaatagtgggaacatctttaagaattttaattcgagctgaactaggacaccctgg",
    "ACTTTATATTTTATTTTTGGTATTTGAGCTGGAATAGTAGGAACTTCCTTAAGAATTTTAATTCGAGCTGAATTAGGACAT",
]
RESULTS = {"open_world": {"genus_1nn_accuracy": 0.7123}, "closed_world": {"species_accuracy": 0.9876}, "n_keys": 1200}


@pytest.fixture(scope="module")
def pretraining_folder(tmp_path_factory) -> Path:
    """A save_pretrained folder of a tiny BarcodeMAEForPreTraining with its tokenizer and results.json."""
    folder = tmp_path_factory.mktemp("run")
    tokenizer = BarcodeTokenizer.kmer()
    torch.manual_seed(0)
    model = BarcodeMAEForPreTraining(BarcodeMAEConfig(**tiny_config_kwargs(), vocab_size=len(tokenizer)))
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    (folder / "results.json").write_text(json.dumps(RESULTS))
    return folder


@pytest.fixture(scope="module")
def exported(pretraining_folder: Path, tmp_path_factory) -> Path:
    output = tmp_path_factory.mktemp("export") / "barcodemae-tiny"
    return export_encoder(pretraining_folder, output, repo_id="someone/barcodemae-tiny", training_data="fixture.csv")


def reference_embeddings(folder: Path) -> np.ndarray:
    """Pooled embeddings of BARCODES computed with the *training* model's encoder, in this process."""
    model = BarcodeMAEForPreTraining.from_pretrained(folder).eval()
    tokenizer = BarcodeTokenizer.from_pretrained(folder)
    with torch.no_grad():
        return model.barcodemae(**tokenizer(BARCODES, padding=True, return_tensors="pt")).pooler_output.numpy()


def test_export_writes_encoder_only_folder(exported: Path) -> None:
    names = {p.name for p in exported.iterdir()}
    assert {"config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json", "README.md",
            "results.json", "modeling_barcodemae.py", "configuration_barcodemae.py",
            "tokenization_barcodemae.py", "sequence_cleaning.py"} <= names
    config = json.loads((exported / "config.json").read_text())
    assert config["architectures"] == ["BarcodeMAEModel"]
    assert config["auto_map"] == {
        "AutoConfig": "configuration_barcodemae.BarcodeMAEConfig",
        "AutoModel": "modeling_barcodemae.BarcodeMAEModel",
    }
    keys = set(load_file(str(exported / "model.safetensors")))
    assert keys == set(BarcodeMAEModel(BarcodeMAEConfig.from_pretrained(exported)).state_dict())
    assert not any(k.startswith(("decoder", "lm_head", "barcodemae.")) for k in keys)


def test_model_card_has_results_usage_and_citation(exported: Path) -> None:
    card = (exported / "README.md").read_text()
    assert card.startswith("---\nlibrary_name: transformers\npipeline_tag: feature-extraction\nlicense: mit\n")
    assert re.search(r"\$\w", card) is None  # every template field substituted
    assert 'AutoModel.from_pretrained("someone/barcodemae-tiny", trust_remote_code=True)' in card
    assert 'pipeline("feature-extraction", model="someone/barcodemae-tiny", trust_remote_code=True)' in card
    assert "| open_world / genus_1nn_accuracy | 0.7123 |" in card
    assert "| closed_world / species_accuracy | 0.9876 |" in card
    assert "| n_keys | 1,200 |" in card
    assert "fixture.csv" in card
    assert BarcodeTokenizer.kmer().summary() in card  # the tokenizer in words, from its one description
    assert "safari2025barcodemae" in card and "arXiv:2502.18405" in card
    assert "## Limitations" in card and "## Licence" in card


@pytest.mark.parametrize(("choices", "says", "usage"), [
    ({}, "the last block's token states, averaged over the non-padding tokens (`pooler_output`)", False),
    ({"pooled_layers": "mean", "representation": "cls", "pooled_frames": "all"},
     ("the average of every hidden state (embeddings and each block), at the [CLS] position (`pooler_output`), "
     "averaged over the barcode's 6 reading frames (see How to use)"), True),
])
def test_model_card_says_what_the_embedding_is(choices, says, usage) -> None:
    """The card's Embedding row follows the model's own choices, and a reading-frame model shows how to average."""
    tokenizer = BarcodeTokenizer.kmer()
    model = BarcodeMAEModel(BarcodeMAEConfig(**tiny_config_kwargs(), vocab_size=len(tokenizer), **choices))
    card = render_model_card(model, tokenizer, results=None, repo_id="lab/model", source="run/")
    assert f"| Embedding | {says}, width {model.config.hidden_size} |" in card
    assert ("frame_offset=i" in card) is usage


def test_results_markdown_without_results() -> None:
    assert "results.json` missing" in results_markdown(None)


def test_exported_folder_loads_without_package_or_network(exported: Path, pretraining_folder: Path, tmp_path) -> None:
    """A fresh interpreter where `barcodemae`/`modeling_barcodemae` cannot be imported and the Hub is offline."""
    blocker = tmp_path / "blocker"
    blocker.mkdir()
    for name in ("barcodemae", "modeling_barcodemae"):
        (blocker / f"{name}.py").write_text(f"raise ImportError('{name} is blocked in this test')\n")
    script = tmp_path / "load.py"
    script.write_text(textwrap.dedent(f"""
        import sys
        import numpy as np, torch
        for name in ("barcodemae", "modeling_barcodemae"):
            try:
                __import__(name)
            except ImportError:
                pass
            else:
                sys.exit(f"{{name}} is importable")
        from transformers import AutoModel, AutoTokenizer, pipeline
        folder = {str(exported)!r}
        barcodes = {BARCODES!r}
        model = AutoModel.from_pretrained(folder, trust_remote_code=True).eval()
        tokenizer = AutoTokenizer.from_pretrained(folder, trust_remote_code=True)
        with torch.no_grad():
            pooled = model(**tokenizer(barcodes, padding=True, return_tensors="pt")).pooler_output.numpy()
        extractor = pipeline("feature-extraction", model=folder, trust_remote_code=True)
        features = extractor(barcodes)
        n_tokens = [np.asarray(f[0]).shape[0] for f in features]
        one_liner = np.stack([np.asarray(f[0]).mean(axis=0) for f in extractor(barcodes)])
        assert type(model).__module__.startswith("transformers_modules"), type(model).__module__
        np.savez({str(tmp_path / "out.npz")!r}, pooled=pooled, one_liner=one_liner, n_tokens=np.array(n_tokens))
    """))
    env = {**os.environ, "PYTHONPATH": str(blocker), "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
           "HF_MODULES_CACHE": str(tmp_path / "modules")}
    done = subprocess.run([sys.executable, str(script)], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=120, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    out = np.load(tmp_path / "out.npz")
    expected = reference_embeddings(pretraining_folder)
    np.testing.assert_allclose(out["pooled"], expected, atol=1e-5)
    np.testing.assert_allclose(out["one_liner"], expected, atol=1e-5)
    tokenizer = BarcodeTokenizer.from_pretrained(pretraining_folder)
    assert out["n_tokens"].tolist() == [len(tokenizer(b)["input_ids"]) for b in BARCODES]


def test_export_from_accelerate_checkpoint(pretraining_folder: Path, tmp_path) -> None:
    """train.py layout: <run>/checkpoints/step_N (accelerate save_state, possibly wrapped keys),
    <run>/final_model (config, tokenizer), <run>/eval/results.json, <run>/training_args.json."""
    run = tmp_path / "run"
    checkpoint = run / "checkpoints" / "step_3"
    checkpoint.mkdir(parents=True)
    (run / "final_model").mkdir()
    (run / "eval").mkdir()
    for name in ("config.json", "tokenizer.json", "tokenizer_config.json", "model.safetensors"):
        (run / "final_model" / name).write_bytes((pretraining_folder / name).read_bytes())
    (run / "eval" / "results.json").write_bytes((pretraining_folder / "results.json").read_bytes())
    (run / "training_args.json").write_text(json.dumps(
        {"data": "../shared/data/bold_coi/dev.csv.gz", "split": "pretrain+other_heldout", "objective": "mae",
         "max_steps": 3, "seed": 42}))
    state = load_file(str(pretraining_folder / "model.safetensors"))
    save_file({f"_orig_mod.{k}": v for k, v in state.items()}, str(checkpoint / "model.safetensors"))
    (checkpoint / "optimizer.bin").write_bytes(b"not read")
    files = locate_checkpoint(checkpoint)
    assert files.config_dir == files.tokenizer_dir == run / "final_model"
    assert files.results is None  # the run's eval/results.json measured final_model/, not step_3
    assert locate_checkpoint(run / "final_model").results == run / "eval" / "results.json"
    output = export_encoder(checkpoint, tmp_path / "out", results=run / "eval" / "results.json")
    card = (output / "README.md").read_text()
    assert "- Data: `../shared/data/bold_coi/dev.csv.gz`, pretraining split(s) `pretrain+other_heldout`" in card
    assert "- Optimiser steps: `3`" in card and "| open_world / genus_1nn_accuracy | 0.7123 |" in card
    exported = BarcodeMAEModel.from_pretrained(output)
    original = BarcodeMAEForPreTraining.from_pretrained(pretraining_folder).barcodemae
    for key, value in original.state_dict().items():
        torch.testing.assert_close(exported.state_dict()[key], value)


def test_encoder_state_dict_strips_heads() -> None:
    state = {"module.barcodemae.embeddings.x": torch.zeros(1), "module.decoder.y": torch.zeros(1),
             "lm_head.vocab_projection.weight": torch.zeros(1)}
    assert list(encoder_state_dict(state)) == ["embeddings.x"]


def test_export_errors_name_the_problem(pretraining_folder: Path, tmp_path) -> None:
    with pytest.raises(CheckpointError, match="no model.safetensors"):
        export_encoder(tmp_path, tmp_path / "out")
    broken = tmp_path / "broken"
    broken.mkdir()
    for name in ("config.json", "tokenizer.json", "tokenizer_config.json"):
        (broken / name).write_bytes((pretraining_folder / name).read_bytes())
    state = load_file(str(pretraining_folder / "model.safetensors"))
    del state["barcodemae.encoder.layer.1.output.weight"]
    save_file(state, str(broken / "model.safetensors"))
    with pytest.raises(CheckpointError, match=r"missing \['encoder.layer.1.output.weight'\]"):
        export_encoder(broken, tmp_path / "out2")
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("")
    with pytest.raises(FileExistsError):
        export_encoder(pretraining_folder, tmp_path / "full")


def test_push_to_hub_uploads_the_folder(pretraining_folder: Path, tmp_path, monkeypatch) -> None:
    """The Hub call itself is replaced: check the repo is created and the exported folder is what is uploaded."""
    import huggingface_hub

    calls = []

    class FakeApi:
        def __init__(self, token=None):
            calls.append(("init", token))

        def create_repo(self, repo_id, **kwargs):
            calls.append(("create_repo", repo_id, kwargs["private"]))

        def upload_folder(self, folder_path, repo_id, **kwargs):
            calls.append(("upload_folder", repo_id, sorted(p.name for p in Path(folder_path).iterdir())))
            return type("Commit", (), {"commit_url": f"https://huggingface.co/{repo_id}/commit/abc"})()

    monkeypatch.setattr(huggingface_hub, "HfApi", FakeApi)
    output = export_encoder(pretraining_folder, tmp_path / "hub", push_to_hub="lab/barcodemae", private=True,
                            token="t0k")
    assert calls[0] == ("init", "t0k")
    assert calls[1] == ("create_repo", "lab/barcodemae", True)
    assert calls[2][:2] == ("upload_folder", "lab/barcodemae")
    assert calls[2][2] == sorted(p.name for p in output.iterdir())
    assert 'AutoModel.from_pretrained("lab/barcodemae"' in (output / "README.md").read_text()


def test_cli_export(pretraining_folder: Path, tmp_path, capsys) -> None:
    from barcodemae.cli import main

    output = tmp_path / "cli-export"
    assert main(["export", "--checkpoint", str(pretraining_folder), "--output", str(output),
                 "--model-name", "BarcodeMAE tiny test", "--license", "cc-by-4.0"]) == 0
    captured = capsys.readouterr()
    summary = json.loads(captured.out)
    assert {"model.safetensors", "README.md", "config.json"} <= set(summary["files"])
    assert f"{output}/" in captured.err and f"next: barcodemae embed --model {output}" in captured.err
    card = (output / "README.md").read_text()
    assert "# BarcodeMAE tiny test" in card and "license: cc-by-4.0" in card
    assert main(["export", "--checkpoint", str(tmp_path / "nope"), "--output", str(tmp_path / "o")]) == 2
    assert "checkpoint folder not found" in capsys.readouterr().err


def test_cli_train_forwards_to_train_py(capsys) -> None:
    from barcodemae.cli import main

    with pytest.raises(SystemExit) as stopped:
        main(["train", "--help"])
    assert stopped.value.code == 0
    assert "--resume_from_checkpoint" in capsys.readouterr().out
