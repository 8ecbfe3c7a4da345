"""BarcodeMAEConfig: paper defaults, tokenizer-derived fields, round trips, clear errors on bad values."""

from __future__ import annotations

import pytest
from transformers import AutoConfig

import barcodemae.auto_classes  # noqa: F401  (registers the Auto classes)
from barcodemae.tokenization import BarcodeTokenizer
from conftest import tiny_config_kwargs
from modeling_barcodemae import BarcodeMAEConfig


def test_paper_defaults():
    config = BarcodeMAEConfig()
    assert config.model_type == "barcodemae"
    assert (config.kmer_size, config.kmer_stride, config.max_bp, config.tokenizer_scheme) == (6, 6, 660, "kmer")
    assert (config.num_hidden_layers, config.num_attention_heads, config.hidden_size) == (6, 6, 768)
    assert config.decoder_num_hidden_layers == 6 and config.mask_ratio == 0.5
    assert config.pretraining_objective == "mae"
    assert config.vocab_size == 4**6 + 5 == len(BarcodeTokenizer.kmer(6))


def test_special_token_ids_exclude_unk():
    config = BarcodeMAEConfig()
    assert sorted(config.special_token_ids) == [0, 2, 3, 4]


@pytest.mark.parametrize(
    "tokenizer", [BarcodeTokenizer.kmer(4), BarcodeTokenizer.kmer(6, stride=1), BarcodeTokenizer.char()]
)
def test_from_tokenizer_copies_vocabulary_and_special_ids(tokenizer):
    config = BarcodeMAEConfig.from_tokenizer(tokenizer, **tiny_config_kwargs(max_position_embeddings=1024))
    assert config.vocab_size == len(tokenizer)
    assert config.tokenizer_scheme == tokenizer.scheme
    assert config.mask_token_id == tokenizer.mask_token_id and config.pad_token_id == tokenizer.pad_token_id
    assert config.max_position_embeddings == 1024 and config.hidden_size == 32


def test_save_load_round_trip(tmp_path):
    config = BarcodeMAEConfig(**tiny_config_kwargs(pretraining_objective="mlm", mask_ratio=0.3))
    config.save_pretrained(tmp_path)
    loaded = AutoConfig.from_pretrained(tmp_path)
    assert isinstance(loaded, BarcodeMAEConfig)
    expected, got = config.to_dict(), loaded.to_dict()
    expected.pop("_name_or_path"), got.pop("_name_or_path")
    assert got == expected


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"mask_ratio": 0.0}, "mask_ratio must be in"),
        ({"mask_ratio": 1.0}, "mask_ratio must be in"),
        ({"pretraining_objective": "clm"}, "pretraining_objective must be one of"),
        ({"hidden_size": 32, "num_attention_heads": 6}, r"hidden_size \(32\) must be divisible by num_attention_heads"),
        ({"decoder_hidden_size": 30, "decoder_num_attention_heads": 4}, "decoder_hidden_size"),
        ({"num_hidden_layers": 0}, "num_hidden_layers must be a positive integer"),
        ({"vocab_size": 4}, "outside the vocabulary"),
        ({"hidden_act": "swish2"}, "hidden_act must be one of"),
        ({"hidden_dropout_prob": 1.5}, "hidden_dropout_prob must be in"),
        ({"mlm_mask_token_prob": 0.8, "mlm_random_token_prob": 0.3}, "must not exceed 1"),
        ({"tokenizer_scheme": "wordpiece"}, "tokenizer_scheme must be"),
        ({"kmer_size": 4, "kmer_stride": 5}, "cannot exceed kmer_size"),
        ({"mask_token_id": None}, "mask_token_id is required"),
        ({"pooled_layers": "first"}, "pooled_layers must be one of"),
    ],
)
def test_bad_values_get_clear_errors(overrides, message):
    with pytest.raises(Exception, match=message):
        BarcodeMAEConfig(**{**tiny_config_kwargs(), **overrides})


def test_wrong_type_is_rejected():
    with pytest.raises(Exception, match="vocab_size"):
        BarcodeMAEConfig(vocab_size="4101")
