"""Hugging Face integration: Auto* registration, save/load round trips, and trust_remote_code loads in a fresh
process that never imports barcodemae (model, tokenizer, feature-extraction pipeline), offline."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import torch
from transformers import (
    AutoConfig,
    AutoModel,
    AutoModelForPreTraining,
    AutoModelForSequenceClassification,
    AutoTokenizer,
)

import barcodemae.auto_classes  # noqa: F401  (registers the Auto classes)
from barcodemae.tokenization import BarcodeTokenizer
from conftest import tiny_config_kwargs
from modeling_barcodemae import (
    BarcodeMAEConfig,
    BarcodeMAEForPreTraining,
    BarcodeMAEForSequenceClassification,
    BarcodeMAEModel,
)


@pytest.fixture(scope="module")
def barcodes(fixture_csv) -> list[str]:
    return pd.read_csv(fixture_csv, usecols=["dna_barcode"])["dna_barcode"].tolist()[:4]


@pytest.fixture(scope="module")
def saved(tmp_path_factory, barcodes) -> tuple[Path, BarcodeMAEForPreTraining, BarcodeTokenizer]:
    """A tiny pretraining model + its tokenizer saved as a model folder."""
    folder = tmp_path_factory.mktemp("model")
    tokenizer = BarcodeTokenizer.kmer(6)
    torch.manual_seed(0)
    model = BarcodeMAEForPreTraining(BarcodeMAEConfig.from_tokenizer(tokenizer, **tiny_config_kwargs())).eval()
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder, model, tokenizer


def test_folder_layout_is_safetensors_with_auto_map_and_code(saved):
    folder, _, _ = saved
    assert (folder / "model.safetensors").is_file()
    assert not list(folder.glob("*.bin")) and not list(folder.glob("*.pt"))
    config = json.loads((folder / "config.json").read_text())
    assert config["model_type"] == "barcodemae"
    assert set(config["auto_map"]) == {
        "AutoConfig",
        "AutoModel",
        "AutoModelForPreTraining",
        "AutoModelForSequenceClassification",
    }
    assert "AutoTokenizer" in json.loads((folder / "tokenizer_config.json").read_text())["auto_map"]
    for name in ("configuration_barcodemae.py", "modeling_barcodemae.py", "tokenization_barcodemae.py"):
        assert (folder / name).is_file(), name


def test_auto_classes_are_registered_in_process(saved):
    folder, model, _ = saved
    assert isinstance(AutoConfig.from_pretrained(folder), BarcodeMAEConfig)
    assert isinstance(AutoModel.from_pretrained(folder), BarcodeMAEModel)
    assert isinstance(AutoModelForPreTraining.from_pretrained(folder), BarcodeMAEForPreTraining)
    assert isinstance(AutoTokenizer.from_pretrained(folder), BarcodeTokenizer)
    classifier = AutoModelForSequenceClassification.from_pretrained(folder, num_labels=3)
    assert isinstance(classifier, BarcodeMAEForSequenceClassification)
    torch.testing.assert_close(
        classifier.barcodemae.embeddings.word_embeddings.weight, model.barcodemae.embeddings.word_embeddings.weight
    )


def test_save_load_round_trip_reproduces_outputs(saved, barcodes):
    folder, model, tokenizer = saved
    inputs = tokenizer(barcodes, padding=True, return_tensors="pt")
    masked = torch.zeros_like(inputs["input_ids"], dtype=torch.bool)
    masked[:, 3:40:3] = True
    loaded = BarcodeMAEForPreTraining.from_pretrained(folder).eval()
    encoder = BarcodeMAEModel.from_pretrained(folder).eval()
    with torch.no_grad():
        before = model(**inputs, masked_positions=masked)
        after = loaded(**inputs, masked_positions=masked)
        embedding = encoder(**inputs).pooler_output
        expected = model.barcodemae(**inputs).pooler_output
    torch.testing.assert_close(after.logits, before.logits)
    torch.testing.assert_close(after.loss, before.loss)
    torch.testing.assert_close(embedding, expected)


def test_classifier_round_trip(tmp_path, barcodes):
    tokenizer = BarcodeTokenizer.kmer(6)
    config = BarcodeMAEConfig.from_tokenizer(tokenizer, **tiny_config_kwargs(), num_labels=5)
    model = BarcodeMAEForSequenceClassification(config).eval()
    model.save_pretrained(tmp_path)
    loaded = AutoModelForSequenceClassification.from_pretrained(tmp_path).eval()
    inputs = tokenizer(barcodes, padding=True, return_tensors="pt")
    with torch.no_grad():
        torch.testing.assert_close(loaded(**inputs).logits, model(**inputs).logits)


FRESH_PROCESS = """
import sys, json, torch
from transformers import AutoConfig, AutoModel, AutoModelForPreTraining, AutoTokenizer, pipeline

folder, reference = sys.argv[1], sys.argv[2]
ref = torch.load(reference, weights_only=True)
tokenizer = AutoTokenizer.from_pretrained(folder, trust_remote_code=True)
encoder = AutoModel.from_pretrained(folder, trust_remote_code=True).eval()
pretraining = AutoModelForPreTraining.from_pretrained(folder, trust_remote_code=True).eval()
extractor = pipeline("feature-extraction", model=folder, trust_remote_code=True, device="cpu")
assert "barcodemae" not in sys.modules and "modeling_barcodemae" not in sys.modules, sorted(
    m for m in sys.modules if "barcodemae" in m and not m.startswith("transformers_modules")
)
inputs = tokenizer(ref["barcodes"], padding=True, return_tensors="pt")
assert torch.equal(inputs["input_ids"], ref["input_ids"])
with torch.no_grad():
    embedding = encoder(**inputs).pooler_output
    logits = pretraining(input_ids=inputs["input_ids"], attention_mask=inputs["attention_mask"],
                         masked_positions=ref["masked"]).logits
torch.testing.assert_close(embedding, ref["embedding"], atol=1e-5, rtol=1e-5)
torch.testing.assert_close(logits, ref["logits"], atol=1e-5, rtol=1e-5)
features = torch.tensor(extractor(ref["barcodes"][0])[0])
n = int(ref["input_ids"][0].ne(0).sum())
torch.testing.assert_close(features, ref["hidden"][0, :n], atol=1e-5, rtol=1e-5)
print(json.dumps({"tokenizer": type(tokenizer).__name__, "encoder": type(encoder).__name__,
                  "pretraining": type(pretraining).__name__, "features": list(features.shape)}))
"""


def test_fresh_process_trust_remote_code_model_tokenizer_and_pipeline(saved, barcodes, tmp_path):
    folder, model, tokenizer = saved
    inputs = tokenizer(barcodes, padding=True, return_tensors="pt")
    masked = torch.zeros_like(inputs["input_ids"], dtype=torch.bool)
    masked[:, 2:30:4] = True
    with torch.no_grad():
        encoded = model.barcodemae(**inputs)
        logits = model(**inputs, masked_positions=masked).logits
    reference = tmp_path / "reference.pt"
    torch.save(
        {
            "barcodes": barcodes,
            "input_ids": inputs["input_ids"],
            "masked": masked,
            "embedding": encoded.pooler_output,
            "hidden": encoded.last_hidden_state,
            "logits": logits,
        },
        reference,
    )
    env = {
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "HF_MODULES_CACHE": str(tmp_path / "modules"),
    }
    result = subprocess.run(
        [sys.executable, "-c", FRESH_PROCESS, str(folder), str(reference)],
        check=False,
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert result.returncode == 0, result.stderr[-4000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report == {
        "tokenizer": "BarcodeTokenizer",
        "encoder": "BarcodeMAEModel",
        "pretraining": "BarcodeMAEForPreTraining",
        "features": [int(inputs["attention_mask"][0].sum()), 32],
    }
