"""Converters from the authors' BarcodeMAE (MAELMModel) and BarcodeBERT (BertForMaskedLM) checkpoints.

The real checkpoints are not reachable offline, so state dicts with the same structure are built from transformers'
BERT classes; the converted model must reproduce the original's outputs to float tolerance.
"""

from __future__ import annotations

import itertools
import json
import logging
import os
import random
import subprocess
import sys

import pytest
import torch
from torch import nn
from transformers import AutoTokenizer, BertConfig, BertForMaskedLM, BertForTokenClassification, BertModel

from barcodemae.conversion.checkpoint_keys import detect_format, load_original_state_dict
from barcodemae.conversion.convert import convert_checkpoint, main
from barcodemae.conversion.kmer_vocabulary import UNPREDICTABLE_BIAS, converted_tokenizer
from barcodemae.masking import BarcodeMaskingCollator
from barcodemae.tokenization import BarcodeTokenizer
from modeling_barcodemae import BarcodeMAEModel

VOCAB = 4101


def bert_config(hidden: int = 32, layers: int = 2, heads: int = 4, vocab_size: int = VOCAB, **kwargs) -> BertConfig:
    return BertConfig(
        vocab_size=vocab_size,
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
    """The authors' BarcodeMAE module (bioscan-ml/BarcodeMAE ``barcodebert/maelm_model.py``), rewritten for the test.

    The same module tree (including the embedding modules registered a second time as attributes, so the state dict
    holds them twice) and the same ``forward_v2``: visible tokens packed left and padded with id 1 under a zero
    attention mask and position 0; ``projection_layer`` applied whenever the encoder and decoder configs differ in
    ``output_hidden_states`` (their ``pretraining.py`` sets it on the encoder only); the decoder's word embedding 0 at
    masked positions; the input attention mask and positions for the decoder.
    """

    def __init__(self, encoder_config: BertConfig, decoder_config: BertConfig, num_labels: int | None = None):
        super().__init__()
        self.encoder = BertModel(encoder_config)
        # The authors' code sets num_labels = 4**k (k-mers only); the vocabulary size is the layout we kept as_is.
        decoder_config.num_labels = num_labels or encoder_config.vocab_size
        self.decoder = BertForTokenClassification(decoder_config)
        self.encoder_embedding = self.encoder.embeddings.word_embeddings
        self.encoder_position_embeddings = self.encoder.embeddings.position_embeddings
        self.projection_layer = nn.Linear(encoder_config.hidden_size, decoder_config.hidden_size)
        self.decoder_embedding = self.decoder.bert.embeddings.word_embeddings

    def forward_v2(self, input_ids: torch.Tensor, masked: torch.Tensor, attention_mask: torch.Tensor | None = None):
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        batch, length = input_ids.shape
        seen = ~masked
        seen_count = seen.sum(dim=1)
        width = int(seen_count.max())
        positions = torch.arange(length).unsqueeze(0).expand(batch, length)
        packed = torch.arange(width).unsqueeze(0).expand(batch, width) < seen_count.unsqueeze(1)
        encoder_ids = torch.ones(batch, width, dtype=torch.long)
        encoder_positions = torch.zeros(batch, width, dtype=torch.long)
        encoder_attention = torch.zeros(batch, width, dtype=torch.long)
        encoder_ids[packed] = input_ids[seen]
        encoder_positions[packed] = positions[seen]
        encoder_attention[packed] = attention_mask[seen].long()
        encoded = self.encoder(
            input_ids=encoder_ids, attention_mask=encoder_attention, position_ids=encoder_positions
        ).last_hidden_state
        decoder_inputs = torch.zeros(batch, length, encoded.shape[-1])
        if self.encoder.config.output_hidden_states != self.decoder.config.output_hidden_states:
            encoded = self.projection_layer(encoded)
        decoder_inputs[seen] = encoded[packed]
        decoder_inputs[masked] = self.decoder_embedding.weight[0]
        return self.decoder(inputs_embeds=decoder_inputs, attention_mask=attention_mask, position_ids=positions).logits


def authors_mae(hidden: int = 32, decoder_hidden: int = 32, vocab_size: int = VOCAB, num_labels: int | None = None,
                decoder_layers: int = 1) -> MAELMModel:
    """A randomised MAELMModel with configs as the authors' ``pretraining.py`` builds them."""
    encoder = bert_config(hidden=hidden, vocab_size=vocab_size, output_hidden_states=True)
    decoder = bert_config(hidden=decoder_hidden, layers=decoder_layers, vocab_size=vocab_size)
    return randomise(MAELMModel(encoder, decoder, num_labels))


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


def test_barcodemae_checkpoint_reproduces_encoder_and_decoder(tmp_path):
    """Equal widths, configs as the authors' pretraining builds them: forward_v2 applies the trained projection."""
    original = authors_mae()
    assert original.encoder.config.output_hidden_states and not original.decoder.config.output_hidden_states
    path = tmp_path / "mae.pt"
    torch.save({"model": {f"module.{k}": v for k, v in original.state_dict().items()}, "epoch": 3}, path)
    model, report = convert_checkpoint(path, num_attention_heads=4, decoder_num_attention_heads=4)
    assert report.source_format == "barcodemae"
    assert model.config.pretraining_objective == "mae" and model.config.decoder_projection
    torch.testing.assert_close(model.decoder.projection.weight, original.projection_layer.weight)
    # every key left out is explained: the encoder's pooler and the second names of the embedding tensors
    assert report.ignored_keys == sorted(report.ignored_reasons) == [
        "decoder_embedding.weight", "encoder.pooler.dense.bias", "encoder.pooler.dense.weight",
        "encoder_embedding.weight", "encoder_position_embeddings.weight",
    ]
    assert "pooler" in report.ignored_reasons["encoder.pooler.dense.weight"]

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
    torch.testing.assert_close(output.full_logits, expected_logits, atol=1e-4, rtol=1e-4)


def test_projection_follows_the_original_configs_and_unequal_widths(tmp_path):
    original = authors_mae()
    state = original.state_dict()
    # Configs saying both sides had the same output_hidden_states: forward_v2 skipped the projection.
    same = {"output_hidden_states": False}
    model, report = convert_checkpoint(state, encoder_config=same, decoder_config=same, num_attention_heads=4,
                                       decoder_num_attention_heads=4)
    assert not model.config.decoder_projection and isinstance(model.decoder.projection, nn.Identity)
    assert "output_hidden_states" in report.ignored_reasons["projection_layer.weight"]
    original.encoder.config.output_hidden_states = False
    ids, _ = token_batch(2, 16, seed=5)
    masked = equal_count_mask(ids.shape, skip=0)
    with torch.no_grad():
        torch.testing.assert_close(model(input_ids=ids, masked_positions=masked, full_logits=True).full_logits,
                                   original.forward_v2(ids, masked), atol=1e-4, rtol=1e-4)
    # Unequal widths always project. (The authors' forward_v2 cannot run them at all: it allocates the decoder input
    # at the encoder's width before projecting, so only the carried weights are compared.)
    wide = authors_mae(decoder_hidden=48)
    model, report = convert_checkpoint(wide.state_dict(), encoder_config=same, decoder_config=same,
                                       num_attention_heads=4, decoder_num_attention_heads=4)
    assert model.config.decoder_projection and "projection_layer.weight" not in report.ignored_keys
    torch.testing.assert_close(model.decoder.projection.weight, wide.projection_layer.weight)


def test_unexplained_or_inconsistent_keys_are_refused():
    state = authors_mae().state_dict()
    with pytest.raises(ValueError, match=r"may read: \['decoder.extra_gate'\]"):
        convert_checkpoint({**state, "decoder.extra_gate": torch.ones(3)}, num_attention_heads=4,
                           decoder_num_attention_heads=4)
    with pytest.raises(ValueError, match="should be the same tensor as encoder.embeddings.word_embeddings.weight"):
        convert_checkpoint({**state, "encoder_embedding.weight": state["encoder_embedding.weight"] + 1},
                           num_attention_heads=4, decoder_num_attention_heads=4)


def test_init_from_a_converted_authors_checkpoint_reproduces_their_masked_token_loss(tmp_path):
    """Continued pretraining (train.py --init_from loads with load_initial_model) starts from the original's decoder,
    trained projection included: the masked-token loss of a fixed padded batch is the original's."""
    from barcodemae.training.initial_model import load_initial_model

    tokenizer = BarcodeTokenizer.kmer(4)
    original = authors_mae(vocab_size=len(tokenizer), decoder_layers=2)
    model, _ = convert_checkpoint(original.state_dict(), num_attention_heads=4, decoder_num_attention_heads=4,
                                  tokenizer_kwargs={**tokenizer.model_config_kwargs(), "max_position_embeddings": 64})
    folder = tmp_path / "converted"
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    continued = load_initial_model(str(folder), mask_ratio=0.5).eval()
    assert continued.config.decoder_projection
    batch = tokenizer(BARCODES, padding=True, return_tensors="pt")
    ids, attention = batch["input_ids"], batch["attention_mask"]
    maskable = attention.bool() & (ids > 4)  # real k-mers: not [PAD] [UNK] [CLS] [SEP] [MASK]
    scores = torch.rand(ids.shape, generator=torch.Generator().manual_seed(3)).masked_fill(~maskable, 2.0)
    masked = scores.argsort(dim=1).argsort(dim=1) < 5
    with torch.no_grad():
        theirs = original.forward_v2(ids, masked, attention)
        expected = nn.functional.cross_entropy(theirs[masked], ids[masked])
        ours = continued(input_ids=ids, attention_mask=attention, masked_positions=masked).loss
    torch.testing.assert_close(ours, expected, atol=1e-5, rtol=1e-5)


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
    torch.testing.assert_close(model.lm_head.vocab_projection.weight, original.bert.embeddings.word_embeddings.weight)

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
    original = authors_mae()
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


# ------------------------------------------------------------------------------- the authors' k-mer vocabulary
K = 3
KMERS = 4**K
AUTHORS = ("[MASK]", "[UNK]")
AUTHORS_WITH_CLS = ("[MASK]", "[UNK]", "[CLS]")
PAPER = ("<MASK>", "<CLS>", "<UNK>")  # BarcodeBERT paper scripts; they wrote id 1 at masked positions
# Upper-case barcodes without flanking N (our cleaning would trim it); an internal N and R become [UNK] in both.
BARCODES = ["".join(random.Random(seed).choices("ACGT", k=length)) for seed, length in enumerate([61, 45, 52, 57])]
BARCODES[1] = BARCODES[1][:10] + "N" + BARCODES[1][11:30] + "R" + BARCODES[1][31:]


def authors_vocab(specials: tuple[str, ...]) -> dict[str, int]:
    """The authors' DNADataset(tokenizer="kmer") vocabulary: their specials, then ``product("ACGT")`` k-mers."""
    kmers = ["".join(kmer) for kmer in itertools.product("ACGT", repeat=K)]
    return {token: index for index, token in enumerate([*specials, *kmers])}


def authors_tokenize(barcodes: list[str], vocab: dict[str, int]) -> tuple[torch.Tensor, torch.Tensor]:
    """Their KmerTokenizer + DNADataset in frame 0: pad with N to a common length, non-overlapping k-mers (any
    other k-mer is [UNK]), attention on the complete k-mers only, a leading [CLS] with use_cls_token."""
    unk = vocab.get("[UNK]", vocab.get("<UNK>"))
    length = -(-max(map(len, barcodes)) // K) * K
    ids, masks = [], []
    for barcode in barcodes:
        padded = barcode + "N" * (length - len(barcode))
        tokens = [vocab.get(padded[i : i + K], unk) for i in range(0, length - K + 1, K)]
        mask = [1] * (len(barcode) // K) + [0] * (length // K - len(barcode) // K)
        if "[CLS]" in vocab:
            tokens, mask = [vocab["[CLS]"], *tokens], [1, *mask]
        ids.append(tokens)
        masks.append(mask)
    return torch.tensor(ids), torch.tensor(masks)


def as_our_ids(their_ids: torch.Tensor, specials: tuple[str, ...]) -> torch.Tensor:
    """Their real token ids in our vocabulary: k-mer ``n + i`` -> ``5 + i``; [UNK] -> 1; [CLS] -> 2."""
    ours = their_ids - len(specials) + 5
    unk = specials.index("[UNK]" if "[UNK]" in specials else "<UNK>")
    ours[their_ids == unk] = 1
    if "[CLS]" in specials:
        ours[their_ids == specials.index("[CLS]")] = 2
    return ours


def our_batch(tokenizer: BarcodeTokenizer, barcodes: list[str]) -> dict[str, torch.Tensor]:
    return dict(tokenizer(barcodes, padding=True, return_tensors="pt"))


def equal_count_mask(shape: torch.Size, skip: int, count: int = 6) -> torch.Tensor:
    """``count`` random masked positions per row, none among the first ``skip`` (forward_v2 needs equal counts)."""
    scores = torch.rand(shape, generator=torch.Generator().manual_seed(0))
    scores[:, :skip] = 2.0
    return scores.argsort(dim=1).argsort(dim=1) < count


# (original class, its specials, their [UNK] id, the id their training put at masked positions)
BARCODEBERT_CASES = {
    "mlm": (BertForMaskedLM, AUTHORS, 1, 0),
    "paper_mlm": (BertForMaskedLM, PAPER, 2, 1),
    "token_classification": (BertForTokenClassification, AUTHORS, 1, 0),
}


@pytest.mark.parametrize("case", BARCODEBERT_CASES)
def test_authors_kmer_barcodebert_reproduces_hidden_states_and_kmer_logits(case):
    head, specials, their_unk, their_mask = BARCODEBERT_CASES[case]
    vocab = authors_vocab(specials)
    original = randomise(head(bert_config(vocab_size=len(vocab), num_labels=KMERS)))
    tokenizer = BarcodeTokenizer.kmer(K, framing="none")
    model, report = convert_checkpoint(
        original.state_dict(), num_attention_heads=4, tokenizer_kwargs=tokenizer.model_config_kwargs()
    )
    assert report.vocab_layout == "barcodebert_kmer" and report.original_vocabulary.framing == "none"
    assert model.config.vocab_size == KMERS + 5 and model.config.prediction_head_transform == (head is BertForMaskedLM)

    theirs = original.get_input_embeddings().weight
    ours = model.barcodemae.get_input_embeddings().weight
    assert torch.equal(ours[5:], theirs[len(specials) :])
    assert torch.equal(ours[[1, 4]], theirs[[their_unk, their_mask]])
    assert torch.equal(ours[[0, 2, 3]], theirs[their_unk].expand(3, -1))

    their_ids, their_attention = authors_tokenize(BARCODES, vocab)
    batch = our_batch(tokenizer, BARCODES)
    their_real, our_real = their_attention.bool(), batch["attention_mask"].bool()
    assert torch.equal(batch["input_ids"][our_real], as_our_ids(their_ids[their_real], specials))
    with torch.no_grad():
        expected = original(input_ids=their_ids, attention_mask=their_attention, output_hidden_states=True)
        hidden = model.barcodemae(**batch).last_hidden_state
        logits = model.lm_head(hidden)[our_real]
    torch.testing.assert_close(hidden[our_real], expected.hidden_states[-1][their_real], atol=1e-5, rtol=1e-5)
    their_logits = expected.logits[their_real]
    torch.testing.assert_close(logits[:, 5:], their_logits[:, -KMERS:], atol=1e-4, rtol=1e-4)
    if head is BertForMaskedLM:  # one output per vocabulary entry: [UNK] and [MASK] keep theirs
        torch.testing.assert_close(logits[:, [1, 4]], their_logits[:, [their_unk, their_mask]], atol=1e-4, rtol=1e-4)
        assert (logits[:, [0, 2, 3]] == UNPREDICTABLE_BIAS).all()
    else:  # the authors' num_labels = 4**k head predicts k-mers only
        assert (logits[:, :5] == UNPREDICTABLE_BIAS).all()


@pytest.mark.parametrize("specials", [AUTHORS, AUTHORS_WITH_CLS], ids=["plain", "use_cls_token"])
def test_authors_kmer_barcodemae_reproduces_encoder_and_decoder(specials):
    vocab = authors_vocab(specials)
    original = authors_mae(vocab_size=len(vocab), num_labels=KMERS)
    # No tokenizer given: the vocabulary size alone selects the layout, and the framing follows use_cls_token.
    model, report = convert_checkpoint(original.state_dict(), num_attention_heads=4, decoder_num_attention_heads=4)
    tokenizer = converted_tokenizer(report.original_vocabulary)
    assert tokenizer.framing == ("cls" if "[CLS]" in specials else "none")
    assert tokenizer.model_config_kwargs()["vocab_size"] == model.config.vocab_size
    torch.testing.assert_close(model.decoder.mask_embedding, original.decoder.bert.embeddings.word_embeddings.weight[0])

    their_ids, their_attention = authors_tokenize(BARCODES, vocab)
    batch = our_batch(tokenizer, BARCODES)
    their_real, our_real = their_attention.bool(), batch["attention_mask"].bool()
    assert torch.equal(batch["input_ids"][our_real], as_our_ids(their_ids[their_real], specials))
    with torch.no_grad():
        expected = original.encoder(input_ids=their_ids, attention_mask=their_attention).last_hidden_state
        hidden = model.barcodemae(**batch).last_hidden_state
    torch.testing.assert_close(hidden[our_real], expected[their_real], atol=1e-5, rtol=1e-5)

    same_length = [barcode[:45] for barcode in BARCODES]  # forward_v2 takes no padding
    their_ids, _ = authors_tokenize(same_length, vocab)
    our_ids = our_batch(tokenizer, same_length)["input_ids"]
    masked = equal_count_mask(our_ids.shape, skip=int("[CLS]" in specials))  # [CLS] is never masked
    with torch.no_grad():
        expected_logits = original.forward_v2(their_ids, masked)
        output = model(input_ids=our_ids, masked_positions=masked, full_logits=True)
    assert torch.equal(output.masked_positions, masked)
    torch.testing.assert_close(output.full_logits[..., 5:], expected_logits, atol=1e-4, rtol=1e-4)
    assert (output.full_logits[..., :5] == UNPREDICTABLE_BIAS).all()


def test_vocab_layout_detection_and_clear_errors(caplog):
    state = randomise(BertForMaskedLM(bert_config(vocab_size=KMERS + 2))).state_dict()
    kmer = BarcodeTokenizer.kmer(K).model_config_kwargs()
    with caplog.at_level(logging.INFO, logger="barcodemae.conversion"):
        _, report = convert_checkpoint(state, num_attention_heads=4, tokenizer_kwargs=kmer)
    assert report.vocab_layout == "barcodebert_kmer"
    assert "vocabulary layout barcodebert_kmer (auto)" in caplog.text and "framing='none'" in caplog.text
    tied = {key: value for key, value in state.items() if key != "cls.predictions.decoder.weight"}
    model, report = convert_checkpoint(tied, num_attention_heads=4, vocab_layout="barcodebert_kmer")
    assert report.original_vocabulary.k == K and report.config.vocab_size == KMERS + 5
    assert torch.equal(model.lm_head.vocab_projection.weight[5:], state["bert.embeddings.word_embeddings.weight"][2:])

    with pytest.raises(ValueError, match=f"tokenizer has {KMERS + 5} tokens"):  # as_is keeps their 66 ids
        convert_checkpoint(state, num_attention_heads=4, tokenizer_kwargs=kmer, vocab_layout="as_is")
    with pytest.raises(ValueError, match="tokenizer has 261 tokens"):  # a 4-mer tokenizer: not this layout
        convert_checkpoint(
            state, num_attention_heads=4, tokenizer_kwargs=BarcodeTokenizer.kmer(4).model_config_kwargs()
        )
    with pytest.raises(ValueError, match="converts to our k-mer tokenizer"):
        char = BarcodeTokenizer.char().model_config_kwargs()
        convert_checkpoint(state, num_attention_heads=4, tokenizer_kwargs=char, vocab_layout="barcodebert_kmer")
    with pytest.raises(ValueError, match="vocab_layout must be one of"):
        convert_checkpoint(state, num_attention_heads=4, vocab_layout="kmer")

    wrong = randomise(BertForMaskedLM(bert_config(vocab_size=KMERS + 4))).state_dict()
    with pytest.raises(ValueError, match=f"tokenizer has {KMERS + 5} tokens but the checkpoint's vocabulary has 68"):
        convert_checkpoint(wrong, num_attention_heads=4, tokenizer_kwargs=kmer)
    with pytest.raises(ValueError, match="68 tokens: not the authors' k-mer layout"):
        convert_checkpoint(wrong, num_attention_heads=4, vocab_layout="barcodebert_kmer")
    n_kmers = randomise(BertForMaskedLM(bert_config(vocab_size=5**K + 2))).state_dict()
    with pytest.raises(ValueError, match="tokenize_n_nucleotide=True layout"):
        convert_checkpoint(n_kmers, num_attention_heads=4, tokenizer_kwargs=kmer)

    mae = MAELMModel(bert_config(vocab_size=KMERS + 2), bert_config(layers=1, vocab_size=KMERS + 2), KMERS)
    with pytest.raises(ValueError, match="need vocab_layout='barcodebert_kmer'"):
        convert_checkpoint(mae.state_dict(), num_attention_heads=4, decoder_num_attention_heads=4, vocab_layout="as_is")


@pytest.mark.parametrize("framing", ["none", "cls"])
def test_framing_round_trips_and_the_vectorised_path_matches_the_backend(framing, tmp_path):
    tokenizer = BarcodeTokenizer.kmer(K, framing=framing)
    tokenizer.save_pretrained(tmp_path)
    assert json.loads((tmp_path / "tokenizer_config.json").read_text())["framing"] == framing
    loaded = AutoTokenizer.from_pretrained(tmp_path, trust_remote_code=True)
    assert loaded.framing == framing and loaded.describe() == tokenizer.describe()
    assert loaded.model_max_length == (660 - K) // K + 1 + (framing == "cls")
    assert loaded(BARCODES)["input_ids"] == tokenizer(BARCODES)["input_ids"]
    lead = ["[CLS]"] if framing == "cls" else []
    assert tokenizer.convert_ids_to_tokens(tokenizer("ACGTTTGGGA")["input_ids"]) == [*lead, "ACG", "TTT", "GGG"]
    offsets = tokenizer("ACGTTTGGGA", return_offsets_mapping=True)["offset_mapping"]
    assert offsets == [(0, 0)] * len(lead) + [(0, 3), (3, 6), (6, 9)]

    backend = BarcodeTokenizer.kmer(K, framing=framing)
    backend.use_fast_path = False
    assert tokenizer._fast_encoder() is not None
    for call in (
        {"padding": True, "return_tensors": "pt"},
        {"truncation": True, "max_length": 5, "padding": "max_length"},
        {"add_special_tokens": False, "padding": True, "pad_to_multiple_of": 8},
        {"padding": True, "padding_side": "left", "frame_offset": 1},
    ):
        fast, slow = tokenizer(BARCODES, **call), backend(BARCODES, **call)
        assert {key: torch.as_tensor(value).tolist() for key, value in fast.items()} == {
            key: torch.as_tensor(value).tolist() for key, value in slow.items()
        }, call


def test_masking_collator_needs_no_framing_tokens():
    tokenizer = BarcodeTokenizer.kmer(K, framing="none")
    collator = BarcodeMaskingCollator(tokenizer, "span", mask_ratio=0.5, seed=0)
    batch = collator([{"input_ids": ids} for ids in tokenizer(BARCODES)["input_ids"]])
    masked, real = batch["masked_positions"], batch["attention_mask"].bool()
    assert not (masked & ~real).any()
    assert (masked.sum(dim=1) == torch.round(real.sum(dim=1) * 0.5)).all()


def test_cli_converts_the_authors_kmer_layout_for_a_fresh_process(tmp_path):
    vocab = authors_vocab(AUTHORS_WITH_CLS)
    original = randomise(
        MAELMModel(bert_config(vocab_size=len(vocab)), bert_config(layers=1, vocab_size=len(vocab)), KMERS)
    )
    checkpoint = tmp_path / "mae.pt"
    torch.save(original.state_dict(), checkpoint)
    output = tmp_path / "converted"
    flags = ["--num-attention-heads", "4", "--decoder-num-attention-heads", "4", "--tokenizer", f"kmer:{K}"]
    main(["--checkpoint", str(checkpoint), "--output", str(output), *flags])
    assert json.loads((output / "tokenizer_config.json").read_text())["framing"] == "cls"

    their_ids, their_attention = authors_tokenize(BARCODES, vocab)
    with torch.no_grad():
        expected = original.encoder(input_ids=their_ids, attention_mask=their_attention).last_hidden_state
    torch.save({"expected": expected[their_attention.bool()]}, tmp_path / "reference.pt")
    script = f"""
import torch
from transformers import AutoModel, AutoTokenizer
tokenizer = AutoTokenizer.from_pretrained({str(output)!r}, trust_remote_code=True)
model = AutoModel.from_pretrained({str(output)!r}, trust_remote_code=True).eval()
batch = tokenizer({BARCODES!r}, padding=True, return_tensors="pt")
with torch.no_grad():
    hidden = model(**batch).last_hidden_state[batch["attention_mask"].bool()]
expected = torch.load({str(tmp_path / "reference.pt")!r}, weights_only=True)["expected"]
torch.testing.assert_close(hidden, expected, atol=1e-5, rtol=1e-5)
print("OK", tokenizer.framing)
"""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "HF_MODULES_CACHE": str(tmp_path / "m")}
    result = subprocess.run(
        [sys.executable, "-c", script], check=False, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "OK cls" in result.stdout


def test_convert_refuses_a_used_output_folder_and_a_bad_checkpoint(tmp_path, capsys):
    """``barcodemae convert`` (the same command as barcodemae-convert) writes a new folder only: a folder holding a
    user's files is refused before any work, a checkpoint that is no state dict is one line naming it; exit 2."""
    from barcodemae.cli import main as barcodemae_main

    checkpoint = tmp_path / "mae.pt"
    torch.save(authors_mae().state_dict(), checkpoint)
    used = tmp_path / "used"
    used.mkdir()
    (used / "notes.txt").write_text("keep me")
    assert barcodemae_main(["convert", "--checkpoint", str(checkpoint), "--output", str(used)]) == 2
    assert capsys.readouterr().err.strip() == (
        f"barcodemae convert: error: {used}: output folder exists and is not empty; choose a new folder"
    )
    assert sorted(path.name for path in used.iterdir()) == ["notes.txt"]
    assert (used / "notes.txt").read_text() == "keep me"

    not_a_state_dict = tmp_path / "list.pt"
    torch.save([torch.zeros(2)], not_a_state_dict)
    assert main(["--checkpoint", str(not_a_state_dict), "--output", str(tmp_path / "new")]) == 2
    assert capsys.readouterr().err.strip() == (
        f"barcodemae-convert: error: {not_a_state_dict}: expected a state dict, got list"
    )
