"""A model folder is checked before anything is loaded or allocated: pickled weights are never unpickled, config.json
sizes must be sane integers, and every tensor the config implies must have the shape its safetensors header stores
(read from the header alone, with the model built on the meta device)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from barcodemae import BarcodeMAEConfig, BarcodeMAEForSequenceClassification, BarcodeMAEModel, BarcodeTokenizer
from barcodemae.cli import main
from barcodemae.eval.finetune import load_classifier
from barcodemae.inference import load_encoder
from barcodemae.model_folders import MAX_LAYERS, check_config_sizes, stored_tensor_shapes
from conftest import tiny_config_kwargs


def copy_of(folder: Path, tmp_path: Path, **config_changes) -> Path:
    """A copy of a model folder with ``config.json`` fields replaced."""
    copy = tmp_path / "model"
    shutil.copytree(folder, copy)
    config = json.loads((copy / "config.json").read_text())
    (copy / "config.json").write_text(json.dumps({**config, **config_changes}))
    return copy


def pickle_only(folder: Path, tmp_path: Path) -> Path:
    """The folder with its weights as ``pytorch_model.bin`` (a pickle) instead of ``model.safetensors``."""
    copy = copy_of(folder, tmp_path)
    torch.save(load_file(copy / "model.safetensors"), copy / "pytorch_model.bin")
    (copy / "model.safetensors").unlink()
    return copy


@pytest.fixture
def never_loaded(monkeypatch):
    """Fail the test if weights are unpickled or a model is built for real: every refusal must come first."""

    def refuse(*args, **kwargs):
        raise AssertionError("weights were loaded before the folder was refused")

    monkeypatch.setattr(torch, "load", refuse)
    monkeypatch.setattr(BarcodeMAEModel, "from_pretrained", classmethod(refuse))


# ------------------------------------------------------------------------------------------ the command line
@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"hidden_size": 10**30}, "config.json: hidden_size must be an integer in 1..2147483647, got 1000000000000"),
        ({"hidden_size": -32}, "config.json: hidden_size must be an integer in 1..2147483647, got -32"),
        ({"hidden_size": 32.5}, "config.json: hidden_size must be an integer in 1..2147483647, got 32.5"),
        ({"hidden_size": "32"}, "config.json: hidden_size must be an integer in 1..2147483647, got '32'"),
        ({"num_hidden_layers": 10**7}, f"config.json: num_hidden_layers must be an integer in 0..{MAX_LAYERS}"),
        ({"vocab_size": 10**9}, (
            "config.json: does not fit the weights: it implies embeddings.word_embeddings.weight of shape "
            "[1000000000, 32], model.safetensors holds barcodemae.embeddings.word_embeddings.weight of shape [261, 32]"
        )),
        ({"num_attention_heads": 5}, "config.json: Class validation error"),
        ({"pickled": True}, "holds only pickled weights (pytorch_model.bin), which are not loaded"),
    ],
    ids=["overflowing", "negative", "fractional", "string", "layers", "huge-vocab", "heads", "pickle-only"],
)
def test_embed_refuses_a_bad_model_folder_in_one_line_before_loading(
    change, message, kmer4_model_folder, fixture_csv, tmp_path, capsys, never_loaded
):
    if change.pop("pickled", False):
        folder = pickle_only(kmer4_model_folder, tmp_path)
    else:
        folder = copy_of(kmer4_model_folder, tmp_path, **change)
    output = tmp_path / "vectors.npy"
    code = main(["embed", "--model", str(folder), "--input", str(fixture_csv), "--output", str(output),
                 "--no-progress"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1, err
    assert err[0].startswith("barcodemae embed: error: ") and message in err[0] and str(folder) in err[0]
    assert not output.exists()


# ---------------------------------------------------------------------------------------------- the loader
def test_pickled_weights_beside_safetensors_are_ignored(kmer4_model_folder, tmp_path, monkeypatch):
    folder = copy_of(kmer4_model_folder, tmp_path)
    (folder / "pytorch_model.bin").write_bytes(b"not even a pickle")
    monkeypatch.setattr(torch, "load", lambda *a, **k: pytest.fail("a pickle was loaded"))
    model, _ = load_encoder(folder)
    expected = load_file(folder / "model.safetensors")["barcodemae.embeddings.word_embeddings.weight"]
    assert torch.equal(model.embeddings.word_embeddings.weight, expected)


def test_sharded_weights_are_checked_shard_by_shard(tmp_path):
    tokenizer = BarcodeTokenizer.kmer(k=4)
    config = BarcodeMAEConfig.from_tokenizer(tokenizer, **tiny_config_kwargs())
    torch.manual_seed(0)
    folder = tmp_path / "sharded"
    BarcodeMAEModel(config).save_pretrained(folder, max_shard_size="20KB")
    tokenizer.save_pretrained(folder)
    assert (folder / "model.safetensors.index.json").is_file() and not (folder / "model.safetensors").exists()
    shapes = stored_tensor_shapes(folder)
    assert shapes["embeddings.word_embeddings.weight"][0] == (len(tokenizer), 32)
    assert len({file for _, file in shapes.values()}) > 1
    model, _ = load_encoder(folder)
    assert torch.equal(model.embeddings.word_embeddings.weight,
                       BarcodeMAEModel.from_pretrained(folder).embeddings.word_embeddings.weight)

    wrong = copy_of(folder, tmp_path / "wrong", max_position_embeddings=129)
    shard = shapes["embeddings.position_embeddings.weight"][1].name
    with pytest.raises(ValueError, match=r"position_embeddings.weight of shape \[128, 32\]") as refused:
        load_encoder(wrong)
    assert str(wrong / "config.json") in str(refused.value) and shard in str(refused.value)

    index = wrong / "model.safetensors.index.json"
    (wrong / "config.json").write_text((folder / "config.json").read_text())
    escaping = json.loads(index.read_text())
    escaping["weight_map"]["embeddings.word_embeddings.weight"] = "../model.safetensors"
    index.write_text(json.dumps(escaping))
    with pytest.raises(ValueError, match="shard '../model.safetensors' is not a file name in the model folder"):
        load_encoder(wrong)


def test_a_new_classification_head_may_differ_only_when_asked(tmp_path):
    tokenizer = BarcodeTokenizer.kmer(k=4)
    config = BarcodeMAEConfig.from_tokenizer(tokenizer, num_labels=5, **tiny_config_kwargs())
    folder = tmp_path / "classifier"
    BarcodeMAEForSequenceClassification(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    model, _ = load_classifier(folder, num_labels=3)  # ignore_mismatched_sizes: a fresh 3-way head
    assert model.classifier.out_features == 3
    wrong = copy_of(folder, tmp_path / "wrong", hidden_size=64, intermediate_size=128)
    with pytest.raises(ValueError, match="does not fit the weights"):  # the encoder never may
        load_classifier(wrong, num_labels=3)


def test_a_huge_config_for_other_weights_is_refused(kmer4_model_folder, tmp_path, never_loaded):
    """Tensors named differently from every stored one are all built fresh: a config implying more values than the
    weights hold would allocate them, so it is refused even when no shape can be compared."""
    folder = copy_of(kmer4_model_folder, tmp_path, vocab_size=10**9)
    weights = load_file(folder / "model.safetensors")
    save_file({f"other.{name}": tensor for name, tensor in weights.items()}, folder / "model.safetensors")
    with pytest.raises(ValueError, match=r"the tensors it implies that the weights lack \(e.g. embeddings.word_embed"):
        load_encoder(folder)


def test_a_config_that_is_not_json_is_named(kmer4_model_folder, tmp_path):
    folder = copy_of(kmer4_model_folder, tmp_path)
    (folder / "config.json").write_text('{"model_type": "barcodemae",')
    with pytest.raises(ValueError, match=rf"{folder / 'config.json'}: not valid JSON"):
        load_encoder(folder)
    (folder / "config.json").write_text("[]")
    with pytest.raises(ValueError, match=rf"{folder / 'config.json'}: not a JSON object"):
        load_encoder(folder)


def test_a_folder_without_weights_is_named(kmer4_model_folder, tmp_path):
    folder = copy_of(kmer4_model_folder, tmp_path)
    (folder / "model.safetensors").unlink()
    with pytest.raises(FileNotFoundError, match=r"no model.safetensors \(or model.safetensors.index.json\)"):
        load_encoder(folder)


@pytest.mark.parametrize(
    "config",
    [{"hidden_size": True}, {"vocab_size": 0}, {"n_embd": 2**31}, {"num_layers": -1}, {"decoder_layers": 1025}],
)
def test_config_sizes_must_be_sane_integers(config):
    with pytest.raises(ValueError, match=rf"config.json: {next(iter(config))} must be an integer in"):
        check_config_sizes(config, Path("config.json"))


def test_null_and_zero_layer_sizes_are_left_to_the_config_class():
    check_config_sizes({"num_decoder_layers": None, "num_hidden_layers": 0, "hidden_size": 2**31 - 1},
                       Path("config.json"))
