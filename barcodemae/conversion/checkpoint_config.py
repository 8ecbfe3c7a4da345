"""Our :class:`BarcodeMAEConfig` for an authors' checkpoint: its tensors' shapes, the original BERT configs where
given (head counts and flags are in no tensor), and the target tokenizer's fields.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import torch

from modeling_barcodemae.configuration_barcodemae import BarcodeMAEConfig

from .checkpoint_keys import encoder_prefix, has_mlm_transform, layer_count

logger = logging.getLogger(__name__)


def bert_shape(state_dict: dict[str, torch.Tensor], prefix: str) -> dict[str, int]:
    """Shape fields of a BERT stack read from its tensors (the head count is not in any shape)."""
    vocab, hidden = state_dict[f"{prefix}embeddings.word_embeddings.weight"].shape
    return {
        "vocab_size": vocab,
        "hidden_size": hidden,
        "num_hidden_layers": layer_count(state_dict, prefix),
        "intermediate_size": state_dict[f"{prefix}encoder.layer.0.intermediate.dense.weight"].shape[0],
        "max_position_embeddings": state_dict[f"{prefix}embeddings.position_embeddings.weight"].shape[0],
    }


def _heads(bert_config: dict[str, Any] | None, given: int | None, hidden: int, what: str) -> int:
    """Head count: given explicitly, else from the BERT config, else the paper's 6 (warned: shapes cannot tell)."""
    if given is not None:
        return given
    if bert_config and "num_attention_heads" in bert_config:
        return int(bert_config["num_attention_heads"])
    default = BarcodeMAEConfig.num_attention_heads
    logger.warning(
        "%s head count is not recorded in the checkpoint; assuming %d (paper default). Pass it explicitly or give "
        "the original config.json: a wrong head count gives wrong outputs with correct shapes.",
        what,
        default,
    )
    if hidden % default:
        raise ValueError(f"{what} hidden size {hidden} is not divisible by {default} heads; pass the head count")
    return default


def _bert_extras(bert_config: dict[str, Any] | None) -> dict[str, Any]:
    """Non-shape fields that change outputs (activation, LayerNorm eps), taken from a BERT config when given."""
    extras: dict[str, Any] = {}
    if bert_config:
        for name in ("hidden_act", "layer_norm_eps", "initializer_range"):
            if name in bert_config:
                extras[name] = bert_config[name]
        if "hidden_dropout_prob" in bert_config:
            extras["hidden_dropout_prob"] = bert_config["hidden_dropout_prob"]
        if "attention_probs_dropout_prob" in bert_config:
            extras["attention_probs_dropout_prob"] = bert_config["attention_probs_dropout_prob"]
    return extras


def build_config(
    state_dict: dict[str, torch.Tensor],
    source_format: str,
    *,
    encoder_config: dict[str, Any] | None = None,
    decoder_config: dict[str, Any] | None = None,
    num_attention_heads: int | None = None,
    decoder_num_attention_heads: int | None = None,
    tokenizer_kwargs: dict[str, Any] | None = None,
    **overrides: Any,
) -> BarcodeMAEConfig:
    """Our config from tensor shapes, the original BERT config(s) where given, and the tokenizer's fields."""
    shape = bert_shape(state_dict, encoder_prefix(source_format))
    kwargs: dict[str, Any] = {**(tokenizer_kwargs or {}), **_bert_extras(encoder_config), **shape}
    kwargs["num_attention_heads"] = _heads(encoder_config, num_attention_heads, shape["hidden_size"], "encoder")
    if tokenizer_kwargs and tokenizer_kwargs.get("vocab_size", shape["vocab_size"]) != shape["vocab_size"]:
        raise ValueError(
            f"tokenizer has {tokenizer_kwargs['vocab_size']} tokens but the checkpoint's vocabulary has "
            f"{shape['vocab_size']}: it is not the tokenizer this model was trained with"
        )
    if source_format == "barcodemae":
        decoder = bert_shape(state_dict, "decoder.bert.")
        kwargs.update(
            pretraining_objective="mae",
            prediction_head_transform=False,
            decoder_projection=projection_applies(state_dict, encoder_config, decoder_config),
            decoder_hidden_size=decoder["hidden_size"],
            decoder_num_hidden_layers=decoder["num_hidden_layers"],
            decoder_intermediate_size=decoder["intermediate_size"],
            decoder_num_attention_heads=_heads(
                decoder_config, decoder_num_attention_heads, decoder["hidden_size"], "decoder"
            ),
        )
        if decoder["max_position_embeddings"] < shape["max_position_embeddings"]:
            raise ValueError("decoder has fewer position embeddings than the encoder; cannot convert")
    else:
        kwargs.update(pretraining_objective="mlm", prediction_head_transform=has_mlm_transform(state_dict))
    kwargs.update(overrides)
    return BarcodeMAEConfig(**kwargs)


def projection_applies(
    state_dict: dict[str, torch.Tensor], encoder_config: dict[str, Any] | None, decoder_config: dict[str, Any] | None
) -> bool:
    """Whether the authors' ``forward_v2`` applies ``projection_layer`` to the encoder outputs.

    It does when ``encoder.config.output_hidden_states != decoder.config.output_hidden_states``. The flag is not in
    a state dict: it is read from the original configs when both state it, else taken as ``pretraining.py`` sets it
    (encoder ``True``, decoder ``False``: applied, also at equal widths). Unequal widths need the projection whatever
    the flags say. The converted decoder keeps it (``decoder_projection``) exactly when this is true.
    """
    if "projection_layer.weight" not in state_dict:
        return False
    encoder_width = state_dict["encoder.embeddings.word_embeddings.weight"].shape[1]
    if state_dict["projection_layer.weight"].shape[0] != encoder_width:
        return True
    flags = [(config or {}).get("output_hidden_states") for config in (encoder_config, decoder_config)]
    if None in flags:
        logger.info(
            "projection_layer: output_hidden_states not stated by both original configs; applied, as the authors' "
            "pretraining.py builds them (encoder True, decoder False)"
        )
        return True
    return bool(flags[0]) != bool(flags[1])


def configs_beside(checkpoint: Path, decoder_config: dict[str, Any] | None) -> tuple[dict | None, dict | None]:
    """A ``config.json`` next to the checkpoint: a BERT config, or ``{"encoder": {...}, "decoder": {...}}``."""
    path = checkpoint.with_name("config.json")
    if not path.is_file():
        return None, decoder_config
    data = json.loads(path.read_text())
    if "encoder" in data and isinstance(data["encoder"], dict):
        return data["encoder"], data.get("decoder", decoder_config)
    return data, decoder_config


__all__ = ["bert_shape", "build_config", "configs_beside", "projection_applies"]
