"""Converters from the authors' BarcodeMAE (MAELMModel) and BarcodeBERT (BertForMaskedLM) checkpoints.

The real checkpoints are not reachable offline, so state dicts with the same structure are built from transformers'
BERT classes; the converted model must reproduce the original's outputs to float tolerance.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import torch
from torch import nn
from transformers import BertConfig, BertForMaskedLM, BertForTokenClassification, BertModel

from modeling_barcodemae import BarcodeMAEModel
from modeling_barcodemae.convert_original_checkpoint import (
    convert_checkpoint,
    detect_format,
    load_original_state_dict,
    main,
)
from modeling_barcodemae.modeling_barcodemae import gather_visible

VOCAB = 4101


def bert_config(hidden: int = 32, layers: int = 2, heads: int = 4, **kwargs) -> BertConfig:
    return BertConfig(
        vocab_size=VOCAB,
        hidden_size=hidden,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        intermediate_size=2 * hidden,
        max_position_embeddings=64,
        hidden_dropout_prob=0.0,
        attention_probs_dropout_prob=0.0,
        attn_implementation="eager",
        **kwargs,
    )


def randomise(module: nn.Module) -> nn.Module:
    """Non-trivial values everywhere (BERT inits LayerNorm to 1/0 and token types small), so mapping errors show."""
    torch.manual_seed(0)
    with torch.no_grad():
        for parameter in module.parameters():
            parameter.normal_(0.0, 0.2)
    return module.eval()


class MAELMModel(nn.Module):
    """The authors' BarcodeMAE module structure and ``forward_v2`` (encoder on visible tokens, BERT decoder)."""

    def __init__(self, encoder_config: BertConfig, decoder_config: BertConfig):
        super().__init__()
        self.encoder = BertModel(encoder_config, add_pooling_layer=True)
        decoder_config.num_labels = encoder_config.vocab_size
        self.decoder = BertForTokenClassification(decoder_config)
        self.projection_layer = nn.Linear(encoder_config.hidden_size, decoder_config.hidden_size)
        self.project = encoder_config.hidden_size != decoder_config.hidden_size

    def forward_v2(self, input_ids: torch.Tensor, masked: torch.Tensor) -> torch.Tensor:
        index, _ = gather_visible(~masked)
        encoded = self.encoder(input_ids=input_ids.gather(1, index), position_ids=index).last_hidden_state
        if self.project:
            encoded = self.projection_layer(encoded)
        batch, length = input_ids.shape
        mask_token = self.decoder.bert.embeddings.word_embeddings.weight[0]
        full = mask_token.expand(batch, length, encoded.shape[-1]).clone()
        full.scatter_(1, index.unsqueeze(-1).expand_as(encoded), encoded)
        positions = torch.arange(length).expand(batch, length)
        return self.decoder(inputs_embeds=full, position_ids=positions).logits


def token_batch(batch: int = 3, length: int = 20, seed: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    ids = torch.randint(5, VOCAB, (batch, length), generator=generator)
    ids[:, 0] = 2
    ids[:, -1] = 3
    mask = torch.ones_like(ids)
    return ids, mask


def padded_batch() -> tuple[torch.Tensor, torch.Tensor]:
    ids, mask = token_batch(3, 20)
    ids[1, 12:] = 0
    ids[1, 11] = 3
    mask[1, 12:] = 0
    ids[2, 6:] = 0
    ids[2, 5] = 3
    mask[2, 6:] = 0
    return ids, mask


@pytest.mark.parametrize("decoder_hidden", [32, 48])
def test_barcodemae_checkpoint_reproduces_encoder_and_decoder(tmp_path, decoder_hidden):
    original = randomise(MAELMModel(bert_config(), bert_config(hidden=decoder_hidden, layers=1, heads=4)))
    path = tmp_path / "mae.pt"
    torch.save({"model": {f"module.{k}": v for k, v in original.state_dict().items()}, "epoch": 3}, path)
    model, report = convert_checkpoint(path, num_attention_heads=4, decoder_num_attention_heads=4)
    assert report.source_format == "barcodemae"
    assert model.config.pretraining_objective == "mae" and model.config.decoder_hidden_size == decoder_hidden
    assert "encoder.pooler.dense.weight" in report.ignored_keys
    assert ("projection_layer.weight" in report.ignored_keys) == (decoder_hidden == 32)

    ids, mask = padded_batch()
    with torch.no_grad():
        expected = original.encoder(input_ids=ids, attention_mask=mask).last_hidden_state
        ours = model.barcodemae(input_ids=ids, attention_mask=mask).last_hidden_state
    real = mask.bool()
    torch.testing.assert_close(ours[real], expected[real], atol=1e-5, rtol=1e-5)

    ids, _ = token_batch(2, 16, seed=4)
    masked = torch.zeros_like(ids, dtype=torch.bool)
    masked[0, [2, 5, 6, 9, 13]] = True
    masked[1, [1, 3, 4, 10, 14]] = True
    with torch.no_grad():
        expected_logits = original.forward_v2(ids, masked)
        output = model(input_ids=ids, masked_positions=masked, full_logits=True)
    assert torch.equal(output.masked_positions, masked)
    torch.testing.assert_close(output.logits, expected_logits, atol=1e-4, rtol=1e-4)


def test_barcodebert_checkpoint_reproduces_encoder_and_mlm_logits(tmp_path):
    original = randomise(BertForMaskedLM(bert_config()))
    path = tmp_path / "barcodebert.pt"
    torch.save(original.state_dict(), path)
    (tmp_path / "config.json").write_text(json.dumps(original.config.to_dict()))
    model, report = convert_checkpoint(path)  # head count from the config.json beside the checkpoint
    assert report.source_format == "barcodebert"
    assert model.config.pretraining_objective == "mlm" and model.config.num_attention_heads == 4

    ids, mask = padded_batch()
    with torch.no_grad():
        expected = original(input_ids=ids, attention_mask=mask, output_hidden_states=True)
        encoded = model.barcodemae(input_ids=ids, attention_mask=mask)
        logits = model.lm_head(encoded.last_hidden_state)
    real = mask.bool()
    torch.testing.assert_close(encoded.last_hidden_state[real], expected.hidden_states[-1][real], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(logits[real], expected.logits[real], atol=1e-4, rtol=1e-4)


def test_padded_batch_matches_each_sequence_alone_after_conversion():
    original = randomise(BertForMaskedLM(bert_config()))
    model, _ = convert_checkpoint(original.state_dict(), num_attention_heads=4)
    ids, mask = padded_batch()
    with torch.no_grad():
        batch = model.barcodemae(input_ids=ids, attention_mask=mask).pooler_output
        alone = model.barcodemae(input_ids=ids[2:, :6]).pooler_output
    torch.testing.assert_close(batch[2:], alone, atol=1e-5, rtol=1e-5)


def test_safetensors_checkpoint_and_bad_inputs(tmp_path):
    from safetensors.torch import save_file

    original = randomise(BertForMaskedLM(bert_config()))
    tied = ("cls.predictions.decoder.weight", "cls.predictions.decoder.bias")
    state = {k: v.clone() for k, v in original.state_dict().items() if k not in tied}
    path = tmp_path / "bert.safetensors"
    save_file(state, str(path))
    assert detect_format(load_original_state_dict(path)) == "barcodebert"
    model, _ = convert_checkpoint(path, num_attention_heads=4)
    torch.testing.assert_close(model.lm_head.decoder.weight, original.bert.embeddings.word_embeddings.weight)

    with pytest.raises(ValueError, match="unrecognised checkpoint"):
        convert_checkpoint({"foo.weight": torch.zeros(2)})
    with pytest.raises(FileNotFoundError):
        load_original_state_dict(tmp_path / "missing.pt")
    with pytest.raises(ValueError, match="tokenizer has 10 tokens"):
        convert_checkpoint(original.state_dict(), num_attention_heads=4, tokenizer_kwargs={"vocab_size": 10})
    pickled = tmp_path / "pickled.pt"
    torch.save({"model": original.state_dict(), "args": argparse_namespace()}, pickled)
    with pytest.raises(ValueError, match="weights-only"):
        load_original_state_dict(pickled)


def argparse_namespace():
    import argparse

    return argparse.Namespace(lr=1e-4)


def test_cli_writes_folder_loadable_in_fresh_process(tmp_path):
    original = randomise(MAELMModel(bert_config(), bert_config(layers=1)))
    checkpoint = tmp_path / "mae.pt"
    torch.save(original.state_dict(), checkpoint)
    output = tmp_path / "converted"
    main(
        [
            "--checkpoint",
            str(checkpoint),
            "--output",
            str(output),
            "--tokenizer",
            "kmer:6",
            "--num-attention-heads",
            "4",
            "--decoder-num-attention-heads",
            "4",
        ]
    )
    assert (output / "model.safetensors").is_file() and (output / "tokenizer.json").is_file()
    assert not list(output.glob("*.bin")) and not list(output.glob("*.pt"))
    config = json.loads((output / "config.json").read_text())
    assert config["auto_map"]["AutoModel"].endswith("BarcodeMAEModel")

    ids, mask = padded_batch()
    with torch.no_grad():
        expected = original.encoder(input_ids=ids, attention_mask=mask).last_hidden_state
    torch.save({"ids": ids, "mask": mask, "expected": expected}, tmp_path / "reference.pt")
    script = f"""
import sys, torch
from transformers import AutoModel
model = AutoModel.from_pretrained({str(output)!r}, trust_remote_code=True).eval()
assert "barcodemae" not in sys.modules and "modeling_barcodemae" not in sys.modules
ref = torch.load({str(tmp_path / "reference.pt")!r}, weights_only=True)
with torch.no_grad():
    out = model(input_ids=ref["ids"], attention_mask=ref["mask"]).last_hidden_state
real = ref["mask"].bool()
torch.testing.assert_close(out[real], ref["expected"][real], atol=1e-5, rtol=1e-5)
print("OK", type(model).__name__)
"""
    env = {
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "HF_MODULES_CACHE": str(tmp_path / "modules"),
    }
    result = subprocess.run(
        [sys.executable, "-c", script], check=False, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "OK BarcodeMAEModel" in result.stdout


def test_converted_encoder_loads_as_base_model(tmp_path):
    original = randomise(BertForMaskedLM(bert_config()))
    model, _ = convert_checkpoint(original.state_dict(), num_attention_heads=4)
    model.save_pretrained(tmp_path)
    encoder = BarcodeMAEModel.from_pretrained(tmp_path).eval()
    ids, mask = padded_batch()
    with torch.no_grad():
        torch.testing.assert_close(
            encoder(input_ids=ids, attention_mask=mask).last_hidden_state,
            model.barcodemae(input_ids=ids, attention_mask=mask).last_hidden_state,
        )
