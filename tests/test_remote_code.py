"""Whose code runs when a model folder is loaded: BarcodeMAE folders never run their copied code; other models run
theirs only with trust_remote_code (default: local folders yes, hub names no); every entry point has the flag."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import transformers

from barcodemae.cli import build_parser
from barcodemae.eval.run import build_parser as eval_parser
from barcodemae.inference import is_local_name, load_encoder, load_pretrained

SABOTAGE = '\nraise RuntimeError("the folder\'s own code ran")\n'


def test_barcodemae_folders_load_through_the_installed_classes(kmer4_model_folder: Path, tmp_path: Path):
    folder = tmp_path / "model"
    shutil.copytree(kmer4_model_folder, folder)
    copied = sorted(folder.glob("*.py"))
    assert {p.name for p in copied} >= {"modeling_barcodemae.py", "tokenization_barcodemae.py"}
    for code in copied:  # any execution of the folder's files would now fail loudly
        code.write_text(code.read_text() + SABOTAGE)
    for trust in (None, False, True):
        model, tokenizer = load_encoder(folder, trust_remote_code=trust)
        assert type(model).__module__ == "modeling_barcodemae.modeling_barcodemae"
        assert type(tokenizer).__module__.startswith("tokenization.") or "barcodemae" in type(tokenizer).__module__
    classifier, _ = load_pretrained(folder, "AutoModelForSequenceClassification", num_labels=3)
    assert type(classifier).__name__ == "BarcodeMAEForSequenceClassification" and classifier.num_labels == 3


def test_other_models_run_their_code_only_when_trusted(monkeypatch, tmp_path: Path):
    """Local folders are trusted by default, hub names are not; an explicit flag wins either way."""
    seen = []

    def fake_from_pretrained(name, trust_remote_code=None, **kwargs):
        seen.append((name, trust_remote_code))
        raise ValueError("loading stops here; trust_remote_code was recorded")

    monkeypatch.setattr(transformers.AutoModel, "from_pretrained", fake_from_pretrained)
    monkeypatch.setattr("barcodemae.inference._model_type", lambda name, local: "bert")
    folder = tmp_path / "dnabert"
    folder.mkdir()
    (folder / "config.json").write_text('{"model_type": "bert"}')
    for name, flag, expected in [(str(folder), None, True), (str(folder), False, False),
                                 ("someone/dnabert", None, False), ("someone/dnabert", True, True)]:
        with pytest.raises(ValueError, match="recorded"):
            load_encoder(name, trust_remote_code=flag)
        assert seen[-1] == (name, expected)
    assert is_local_name(str(folder)) and is_local_name("./x") and not is_local_name("lab/barcodemae")


def test_untrusted_model_that_needs_its_code_names_the_flag(monkeypatch, tmp_path: Path):
    def needs_code(name, trust_remote_code=None, **kwargs):
        raise ValueError(f"The repository {name} contains custom code which must be executed; set trust_remote_code")

    monkeypatch.setattr(transformers.AutoModel, "from_pretrained", needs_code)
    monkeypatch.setattr("barcodemae.inference._model_type", lambda name, local: "custom")
    with pytest.raises(ValueError, match="pass --trust-remote-code"):
        load_encoder("someone/custom-dna-model")


@pytest.mark.parametrize(
    "argv",
    [
        ["embed", "--model", "m", "--input", "i.fasta", "--output", "o.npy"],
        ["identify", "build", "--model", "m", "--reference", "r.csv", "--output", "idx"],
        ["identify", "query", "--index", "idx", "--input", "q.fasta", "--output", "o.csv"],
    ],
)
def test_every_command_takes_the_flag(argv):
    assert build_parser().parse_args(argv).trust_remote_code is None
    assert build_parser().parse_args([*argv, "--no-trust-remote-code"]).trust_remote_code is False
    assert build_parser().parse_args([*argv, "--trust-remote-code"]).trust_remote_code is True
    evaluation = eval_parser().parse_args(
        ["--model", "m", "--data", "d.csv", "--output", "o", "--no-trust-remote-code"]
    )
    assert evaluation.trust_remote_code is False
