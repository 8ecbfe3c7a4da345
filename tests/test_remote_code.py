"""Whose code runs when a model folder is loaded: BarcodeMAE folders never run their copied code; any other model
runs its own only with trust_remote_code / --trust-remote-code (default: never, for local folders as for hub names,
as in transformers); every entry point has the flag."""

from __future__ import annotations

import json
import shutil
import uuid
from pathlib import Path

import pytest
import torch
import transformers
from safetensors.torch import save_file

from barcodemae import BarcodeTokenizer
from barcodemae.cli import build_parser, main
from barcodemae.eval.run import build_parser as eval_parser
from barcodemae.inference import is_local_name, load_encoder, load_pretrained

SABOTAGE = '\nraise RuntimeError("the folder\'s own code ran")\n'

PLANTED_MODULE = '''
from pathlib import Path

Path({marker!r}).write_text("the folder's own code ran")

import torch
from transformers import PretrainedConfig, PreTrainedModel
from transformers.modeling_outputs import BaseModelOutput


class PlantedConfig(PretrainedConfig):
    model_type = {model_type!r}

    def __init__(self, vocab_size=16, hidden_size=8, **kwargs):
        self.vocab_size = vocab_size
        self.hidden_size = hidden_size
        super().__init__(**kwargs)


class PlantedModel(PreTrainedModel):
    config_class = PlantedConfig

    def __init__(self, config):
        super().__init__(config)
        self.embeddings = torch.nn.Embedding(config.vocab_size, config.hidden_size)
        self.post_init()

    def forward(self, input_ids, attention_mask=None, **kwargs):
        return BaseModelOutput(last_hidden_state=self.embeddings(input_ids))
'''


def planted_folder(folder: Path) -> Path:
    """A model folder whose config.json ``auto_map`` points at its own module, which writes ``<folder>.ran`` when
    imported (a model type of its own, so no class registered by another test stands in for it); our tokenizer."""
    folder.mkdir()
    marker = folder.with_suffix(".ran")
    model_type = f"planted-{uuid.uuid4().hex[:8]}"
    (folder / "planted_dna.py").write_text(PLANTED_MODULE.format(marker=str(marker), model_type=model_type))
    tokenizer = BarcodeTokenizer.char()
    tokenizer.save_pretrained(folder)
    config = {"model_type": model_type, "vocab_size": len(tokenizer), "hidden_size": 8,
              "auto_map": {"AutoConfig": "planted_dna.PlantedConfig", "AutoModel": "planted_dna.PlantedModel"}}
    (folder / "config.json").write_text(json.dumps(config))
    save_file({"embeddings.weight": torch.randn(len(tokenizer), 8)}, str(folder / "model.safetensors"))
    return marker


def test_a_folder_s_own_code_runs_only_when_trusted(tmp_path: Path):
    folder = tmp_path / "planted"
    marker = planted_folder(folder)
    with pytest.raises(ValueError, match="pass --trust-remote-code") as refused:
        load_encoder(folder)
    assert "\n" not in str(refused.value)
    assert not marker.exists()  # refused without importing the folder's module
    model, _ = load_encoder(folder, trust_remote_code=True)
    assert type(model).__name__ == "PlantedModel" and marker.exists()


def test_embed_refuses_a_folder_s_own_code_without_the_flag(tmp_path: Path, fixture_csv: Path, capsys):
    folder = tmp_path / "planted"
    marker = planted_folder(folder)
    output = tmp_path / "vectors.npy"
    argv = ["embed", "--model", str(folder), "--input", str(fixture_csv), "--output", str(output), "--no-progress"]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "pass --trust-remote-code" in err[0] and str(folder) in err[0]
    assert not marker.exists() and not output.exists()
    assert main([*argv, "--trust-remote-code"]) == 0
    assert marker.exists() and output.exists()


def test_barcodemae_folders_load_through_the_installed_classes(kmer4_model_folder: Path, tmp_path: Path):
    folder = tmp_path / "model"
    shutil.copytree(kmer4_model_folder, folder)
    copied = sorted(folder.glob("*.py"))
    assert {p.name for p in copied} >= {"modeling_barcodemae.py", "tokenization_barcodemae.py"}
    for code in copied:  # any execution of the folder's files would now fail loudly
        code.write_text(code.read_text() + SABOTAGE)
    for trust in (False, True):
        model, tokenizer = load_encoder(folder, trust_remote_code=trust)
        assert type(model).__module__ == "modeling_barcodemae.modeling_barcodemae"
        assert type(tokenizer).__module__.startswith("tokenization.") or "barcodemae" in type(tokenizer).__module__
    classifier, _ = load_pretrained(folder, "AutoModelForSequenceClassification", num_labels=3)
    assert type(classifier).__name__ == "BarcodeMAEForSequenceClassification" and classifier.num_labels == 3


def test_hub_models_are_not_trusted_by_default_and_the_refusal_names_the_flag(monkeypatch):
    """No network: the hub's answers are stood in for; what is recorded is the trust asked of transformers."""
    seen = []

    def config_needing_code(name, trust_remote_code=None, **kwargs):
        seen.append(trust_remote_code)
        if not trust_remote_code:
            raise ValueError(f"The repository {name} contains custom code which must be executed to correctly load "
                             "the model.\nPlease pass the argument `trust_remote_code=True` to allow custom code.")
        raise ValueError("loading stops here; the trust was recorded")

    monkeypatch.setattr(transformers.AutoConfig, "from_pretrained", config_needing_code)
    monkeypatch.setattr("barcodemae.inference._hub_model_type", lambda name: "custom")
    with pytest.raises(ValueError, match="pass --trust-remote-code") as refused:
        load_encoder("someone/custom-dna-model")
    assert "\n" not in str(refused.value)
    with pytest.raises(ValueError, match="recorded"):
        load_encoder("someone/custom-dna-model", trust_remote_code=True)
    assert seen == [False, True]
    assert is_local_name("./x") and not is_local_name("lab/barcodemae")


@pytest.mark.parametrize(
    "argv",
    [
        ["embed", "--model", "m", "--input", "i.fasta", "--output", "o.npy"],
        ["identify", "build", "--model", "m", "--reference", "r.csv", "--output", "idx"],
        ["identify", "query", "--index", "idx", "--input", "q.fasta", "--output", "o.csv"],
    ],
)
def test_every_command_takes_the_flag_and_it_is_off_by_default(argv):
    assert build_parser().parse_args(argv).trust_remote_code is False
    assert build_parser().parse_args([*argv, "--no-trust-remote-code"]).trust_remote_code is False
    assert build_parser().parse_args([*argv, "--trust-remote-code"]).trust_remote_code is True
    evaluation = ["--model", "m", "--data", "d.csv", "--output", "o"]
    assert eval_parser().parse_args(evaluation).trust_remote_code is False
    assert eval_parser().parse_args([*evaluation, "--trust-remote-code"]).trust_remote_code is True
