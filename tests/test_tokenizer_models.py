"""Every tokenizer drives a BarcodeMAE/BarcodeBERT model, and saved folders load in a process without barcodemae."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
import textwrap

import pytest
import torch

from barcodemae import BarcodeMAEConfig, BarcodeMAEForPreTraining, BarcodeMAEModel
from barcodemae.tokenization import BarcodeTokenizer
from barcodemae.tokenization.bpe import train_bpe_tokenizer
from conftest import tiny_config_kwargs

TOKENIZERS = ("kmer6", "kmer6_overlapping", "char", "reference_bpe", "trained_bpe")


@pytest.fixture(scope="module")
def barcodes(fixture_csv) -> list[str]:
    with open(fixture_csv, newline="") as handle:
        return [row["dna_barcode"] for row in csv.DictReader(handle)]


@pytest.fixture(scope="module")
def tokenizers(shared_data, barcodes) -> dict[str, BarcodeTokenizer]:
    reference = shared_data / "reference_tokenizers" / "bpe_barcode_256" / "tokenizer.json"
    return {
        "kmer6": BarcodeTokenizer.kmer(6),
        "kmer6_overlapping": BarcodeTokenizer.kmer(6, 1),
        "char": BarcodeTokenizer.char(),
        "reference_bpe": BarcodeTokenizer.from_tokenizer_file(reference),
        "trained_bpe": train_bpe_tokenizer(barcodes, vocab_size=128, show_progress=False),
    }


def tiny_model(tokenizer: BarcodeTokenizer, objective: str) -> BarcodeMAEForPreTraining:
    config = BarcodeMAEConfig(
        **{**tiny_config_kwargs(), **tokenizer.model_config_kwargs(), "pretraining_objective": objective}
    )
    torch.manual_seed(0)
    return BarcodeMAEForPreTraining(config)


@pytest.mark.parametrize("objective", ["mae", "mlm"])
@pytest.mark.parametrize("name", TOKENIZERS)
def test_pretraining_step_with_every_tokenizer(tokenizers, barcodes, name, objective):
    tokenizer = tokenizers[name]
    model = tiny_model(tokenizer, objective)
    assert model.config.tokenizer_scheme == tokenizer.scheme and model.config.vocab_size == len(tokenizer)
    # Two lengths (one > 660 bp, truncated) plus a barcode with an ambiguity code, so padding and [UNK] occur.
    batch = tokenizer(
        [barcodes[0][:200], max(barcodes, key=len), "ACGTACGTNACGTAC" * 20], padding=True, return_tensors="pt"
    )
    output = model(**batch)
    assert torch.isfinite(output.loss) and output.loss.item() > 0
    assert output.logits.shape == (int(output.masked_positions.sum()), len(tokenizer))
    never_masked = torch.isin(
        batch["input_ids"], torch.tensor([tokenizer.pad_token_id, tokenizer.cls_token_id, tokenizer.sep_token_id])
    )
    assert not (output.masked_positions & never_masked).any()
    assert output.masked_positions.any(dim=1).all()
    output.loss.backward()
    embedding_grad = model.barcodemae.get_input_embeddings().weight.grad
    assert embedding_grad is not None and embedding_grad.abs().sum() > 0


SUBPROCESS_CHECK = textwrap.dedent(
    """
    import json, sys
    import torch
    from transformers import AutoModel, AutoTokenizer
    folders, barcodes = json.loads(sys.argv[1]), json.loads(sys.argv[2])
    result = {}
    for name, folder in folders.items():
        tokenizer = AutoTokenizer.from_pretrained(folder, trust_remote_code=True)
        entry = {"class": type(tokenizer).__name__, "describe": tokenizer.describe(),
                 "ids": tokenizer(barcodes)["input_ids"]}
        if name == "model":
            model = AutoModel.from_pretrained(folder, trust_remote_code=True).eval()
            with torch.no_grad():
                entry["pooled"] = model(**tokenizer(barcodes, padding=True, return_tensors="pt")).pooler_output.tolist()
        try:
            tokenizer(["ACGTACGTAC", "ACGTQQ"])
        except ValueError as error:
            entry["error"] = str(error)
        result[name] = entry
    result["barcodemae_imported"] = any(m.split(".")[0] in ("barcodemae", "modeling_barcodemae") for m in sys.modules)
    print(json.dumps(result))
    """
)


def test_saved_folders_load_in_a_fresh_process_without_barcodemae(tokenizers, barcodes, tmp_path):
    folders = {}
    for name, tokenizer in tokenizers.items():
        tokenizer.save_pretrained(tmp_path / name)
        folders[name] = str(tmp_path / name)
    # A model folder whose tokenizer has non-default special ids (reference BPE: PAD=3, CLS=1, SEP=2).
    tokenizer = tokenizers["reference_bpe"]
    config = BarcodeMAEConfig(**{**tiny_config_kwargs(), **tokenizer.model_config_kwargs()})
    torch.manual_seed(0)
    model = BarcodeMAEModel(config).eval()
    model.save_pretrained(tmp_path / "model")
    tokenizer.save_pretrained(tmp_path / "model")
    folders["model"] = str(tmp_path / "model")
    sample = [barcodes[0][:300], barcodes[5], barcodes[9][:120]]

    run = subprocess.run(
        [sys.executable, "-c", SUBPROCESS_CHECK, json.dumps(folders), json.dumps(sample)],
        capture_output=True, text=True, cwd=tmp_path, timeout=180, check=False,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    result = json.loads(run.stdout.strip().splitlines()[-1])
    assert result.pop("barcodemae_imported") is False
    for name, entry in result.items():
        local = tokenizers.get(name, tokenizer)
        assert entry["class"] == "BarcodeTokenizer"
        assert entry["describe"] == local.describe()
        assert entry["ids"] == local(sample)["input_ids"]
        assert "record 'input 1': non-IUPAC character(s) 'Q'" in entry["error"]
    with torch.no_grad():
        expected = model(**tokenizer(sample, padding=True, return_tensors="pt")).pooler_output
    assert torch.allclose(torch.tensor(result["model"]["pooled"]), expected, atol=1e-5)
