"""The authors' BarcodeMAE and BarcodeBERT checkpoints, read and renamed into our model's state dict.

The authors' BarcodeMAE (``MAELMModel``) is a transformers ``BertModel`` encoder, a ``BertForTokenClassification``
decoder and ``projection_layer`` (see :func:`barcodemae.conversion.checkpoint_config.projection_applies` for when
their forward pass applies it). BarcodeBERT is a ``BertForMaskedLM`` (the paper's checkpoints) or a
``BertForTokenClassification`` (``bert.*`` + ``classifier.*``, the current code). Both ship as ``.pt`` state dicts.
Our layout differs in three exact, lossless ways:

* we have no token-type embedding: BERT always adds ``token_type_embeddings[0]``, so it is folded into every
  position-embedding row;
* attention uses one fused ``qkv`` projection: query, key and value weights are concatenated;
* the MAE decoder's mask token is the authors' ``decoder.bert.embeddings.word_embeddings.weight[0]`` (what
  ``forward_v2`` puts at masked positions), and its classifier becomes ``lm_head`` without the BERT transform.

Every key of the checkpoint is either used or dropped with a proven reason (:data:`ALIASES`, :data:`UNUSED_KEYS`):
nothing is lost silently. Token ids stay as they are here; :mod:`barcodemae.conversion.kmer_vocabulary` re-indexes
the authors' k-mer vocabulary before the renaming.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import torch

from barcodemae.errors import CheckpointError
from barcodemae.state_dicts import strip_wrapper_prefixes
from modeling_barcodemae.configuration_barcodemae import BarcodeMAEConfig

WRAPPER_KEYS = ("model", "state_dict", "model_state_dict", "module")


# ------------------------------------------------------------------------------------------------ loading
def load_original_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """Read a ``.pt``/``.bin`` (``torch.load(weights_only=True)``: no arbitrary unpickling) or ``.safetensors``.

    Unwraps ``{"model": ...}``/``{"state_dict": ...}`` training checkpoints and strips DDP ``module.`` and
    ``torch.compile`` ``_orig_mod.`` prefixes.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        state: Any = load_file(str(path))
    else:
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as error:  # the weights-only unpickler names the offending global
            raise ValueError(f"{path}: cannot be read as a weights-only torch checkpoint: {error}") from error
    while isinstance(state, dict) and not any(isinstance(v, torch.Tensor) for v in state.values()):
        wrapper = next((k for k in WRAPPER_KEYS if isinstance(state.get(k), dict)), None)
        if wrapper is None:
            raise ValueError(f"{path}: no state dict found (top-level keys: {sorted(state)[:10]})")
        state = state[wrapper]
    if not isinstance(state, dict):
        raise CheckpointError(f"{path}: expected a state dict, got {type(state).__name__}")
    tensors = {}
    for key, value in state.items():
        if not isinstance(value, torch.Tensor):
            continue
        tensors[strip_wrapper_prefixes(key)] = value
    return tensors


def detect_format(state_dict: dict[str, torch.Tensor]) -> str:
    """``"barcodemae"`` for the authors' MAELMModel, ``"barcodebert"`` for a BertForMaskedLM/TokenClassification."""
    if "encoder.embeddings.word_embeddings.weight" in state_dict and any(
        k.startswith("decoder.bert.") for k in state_dict
    ):
        return "barcodemae"
    if "bert.embeddings.word_embeddings.weight" in state_dict:
        return "barcodebert"
    raise ValueError(
        "unrecognised checkpoint: expected the authors' MAELMModel (encoder.* + decoder.bert.*) or a "
        f"BertForMaskedLM (bert.* + cls.*); first keys: {sorted(state_dict)[:8]}"
    )


def encoder_prefix(source_format: str) -> str:
    """The key prefix of the encoder stack: the MAE's ``encoder.``, BarcodeBERT's ``bert.``."""
    return "encoder." if source_format == "barcodemae" else "bert."


def has_mlm_transform(state_dict: dict[str, torch.Tensor]) -> bool:
    """A BertForMaskedLM head (dense + LayerNorm before the vocabulary); a token-classification head has none."""
    return "cls.predictions.transform.dense.weight" in state_dict


def head_keys(state_dict: dict[str, torch.Tensor], source_format: str) -> tuple[str, list[str]]:
    """The output head's weight key and bias key(s) (a tied BertForMaskedLM may lack the weight, never a bias)."""
    if source_format == "barcodemae":
        return "decoder.classifier.weight", ["decoder.classifier.bias"]
    if has_mlm_transform(state_dict):
        biases = [k for k in ("cls.predictions.decoder.bias", "cls.predictions.bias") if k in state_dict]
        return "cls.predictions.decoder.weight", biases
    if "classifier.weight" in state_dict:
        return "classifier.weight", ["classifier.bias"]
    raise ValueError("BarcodeBERT checkpoint without an output head: expected cls.predictions.* or classifier.*")


def layer_count(state_dict: dict[str, torch.Tensor], prefix: str) -> int:
    """Transformer blocks of the BERT stack under ``prefix`` (counted from its keys)."""
    pattern = re.compile(rf"^{re.escape(prefix)}encoder\.layer\.(\d+)\.")
    indices = {int(m.group(1)) for k in state_dict if (m := pattern.match(k))}
    if not indices:
        raise ValueError(f"no transformer layers under {prefix}encoder.layer.*")
    return max(indices) + 1


def rename_legacy_layernorm(state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Old BERT checkpoints name LayerNorm parameters gamma/beta."""
    return {
        k.replace("LayerNorm.gamma", "LayerNorm.weight").replace("LayerNorm.beta", "LayerNorm.bias"): v
        for k, v in state_dict.items()
    }


# ----------------------------------------------------------------------------------------- unused keys
ALIASES = {
    "encoder_embedding.weight": "encoder.embeddings.word_embeddings.weight",
    "encoder_position_embeddings.weight": "encoder.embeddings.position_embeddings.weight",
    "decoder_embedding.weight": "decoder.bert.embeddings.word_embeddings.weight",
    "cls.predictions.bias": "cls.predictions.decoder.bias",
}
"""Second names of one tensor: ``MAELMModel`` registers its embedding modules again as attributes, so its state dict
holds each twice; ``BertForMaskedLM`` ties ``cls.predictions.bias`` to the decoder's bias. Checked equal."""
UNUSED_KEYS = (
    (
        re.compile(r"^(encoder|bert)\.pooler\."),
        (
            "BertModel's pooler: the authors' forward passes read last_hidden_state only (MAELMModel.forward_v2, "
            "and BarcodeBERT's heads)"
        ),
    ),
    (re.compile(r"\.(position_ids|token_type_ids)$"), "a constant buffer (arange / zeros), not a learned weight"),
)
"""Keys of the authors' checkpoints that their forward passes provably never read, with the reason."""


def drop_aliases(state_dict: dict[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """The state dict without second names of a tensor (:data:`ALIASES`, checked equal), and why each went."""
    reasons: dict[str, str] = {}
    for alias, name in ALIASES.items():
        if alias in state_dict and name in state_dict:
            if not torch.equal(state_dict[alias], state_dict[name]):
                raise ValueError(
                    f"{alias} should be the same tensor as {name} but differs: not a checkpoint of the authors' classes"
                )
            reasons[alias] = f"the same tensor as {name} (a second name in the module tree)"
    return {k: v for k, v in state_dict.items() if k not in reasons}, reasons


def unused_key_reasons(unused: list[str], projection_used: bool) -> dict[str, str]:
    """Why each unused key can be dropped; a key with no proven reason is an error (nothing is lost silently)."""
    reasons: dict[str, str] = {}
    unexplained = []
    for key in unused:
        if key.startswith("projection_layer.") and not projection_used:
            reasons[key] = ("forward_v2 applies projection_layer only when the encoder and decoder configs differ in "
                            "output_hidden_states; the original configs have them equal")
        elif (rule := next((reason for pattern, reason in UNUSED_KEYS if pattern.search(key)), None)) is not None:
            reasons[key] = rule
        else:
            unexplained.append(key)
    if unexplained:
        raise ValueError(
            f"the checkpoint has weights the conversion does not use and the authors' forward passes may read: "
            f"{unexplained}; refusing to drop them silently"
        )
    return reasons


# ----------------------------------------------------------------------------------------- key mapping
def _bert_stack(state_dict: dict[str, torch.Tensor], source: str, target: str, positions: int | None = None) -> dict:
    """Map one BERT stack (``source`` = its prefix, e.g. ``bert.``) onto our layout under ``target``."""
    s = state_dict
    out: dict[str, torch.Tensor] = {}
    token_type = s.get(f"{source}embeddings.token_type_embeddings.weight")
    position = s[f"{source}embeddings.position_embeddings.weight"]
    if positions is not None:
        position = position[:positions]
    if token_type is not None:
        position = position + token_type[0]
    embeddings = "embeddings." if target.endswith("barcodemae.") else ""
    out[f"{target}{embeddings}position_embeddings.weight"] = position
    out[f"{target}{embeddings}LayerNorm.weight"] = s[f"{source}embeddings.LayerNorm.weight"]
    out[f"{target}{embeddings}LayerNorm.bias"] = s[f"{source}embeddings.LayerNorm.bias"]
    stack = "encoder" if target.endswith("barcodemae.") else "layers"
    for i in range(layer_count(s, source)):
        src = f"{source}encoder.layer.{i}."
        dst = f"{target}{stack}.layer.{i}."
        for kind in ("weight", "bias"):
            out[f"{dst}attention.qkv.{kind}"] = torch.cat(
                [s[f"{src}attention.self.{name}.{kind}"] for name in ("query", "key", "value")], dim=0
            )
            out[f"{dst}attention.output.{kind}"] = s[f"{src}attention.output.dense.{kind}"]
            out[f"{dst}attention.LayerNorm.{kind}"] = s[f"{src}attention.output.LayerNorm.{kind}"]
            out[f"{dst}intermediate.{kind}"] = s[f"{src}intermediate.dense.{kind}"]
            out[f"{dst}output.{kind}"] = s[f"{src}output.dense.{kind}"]
            out[f"{dst}LayerNorm.{kind}"] = s[f"{src}output.LayerNorm.{kind}"]
    return out


class _TrackedStateDict(dict):
    """A state dict that records which keys were read, to report the unused ones."""

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self.used: set[str] = set()

    def __getitem__(self, key: str) -> torch.Tensor:
        value = super().__getitem__(key)
        self.used.add(key)
        return value

    def get(self, key: str, default: Any = None) -> Any:
        if key in self:
            return self[key]
        return default




def convert_state_dict(
    state_dict: dict[str, torch.Tensor], source_format: str, config: BarcodeMAEConfig
) -> tuple[dict[str, torch.Tensor], list[str]]:
    """Our ``BarcodeMAEForPreTraining`` state dict, and the source keys that were deliberately not used."""
    s = _TrackedStateDict(rename_legacy_layernorm(state_dict))
    prefix = encoder_prefix(source_format)
    out = _bert_stack(s, prefix, "barcodemae.")
    out["barcodemae.embeddings.word_embeddings.weight"] = s[f"{prefix}embeddings.word_embeddings.weight"]
    if source_format == "barcodemae":
        out.update(_bert_stack(s, "decoder.bert.", "decoder.", positions=config.max_position_embeddings))
        out["decoder.mask_embedding"] = s["decoder.bert.embeddings.word_embeddings.weight"][0]
        out["lm_head.vocab_projection.weight"] = s["decoder.classifier.weight"]
        out["lm_head.vocab_projection.bias"] = s["decoder.classifier.bias"]
        if config.hidden_size != config.decoder_hidden_size or config.decoder_projection:
            out["decoder.projection.weight"] = s["projection_layer.weight"]
            out["decoder.projection.bias"] = s["projection_layer.bias"]
    elif config.prediction_head_transform:
        out["lm_head.dense.weight"] = s["cls.predictions.transform.dense.weight"]
        out["lm_head.dense.bias"] = s["cls.predictions.transform.dense.bias"]
        out["lm_head.layer_norm.weight"] = s["cls.predictions.transform.LayerNorm.weight"]
        out["lm_head.layer_norm.bias"] = s["cls.predictions.transform.LayerNorm.bias"]
        # Tied checkpoints may omit the decoder weight: it is the word embedding matrix.
        out["lm_head.vocab_projection.weight"] = s.get(
            "cls.predictions.decoder.weight", s["bert.embeddings.word_embeddings.weight"]
        )
        out["lm_head.vocab_projection.bias"] = s.get("cls.predictions.decoder.bias", s.get("cls.predictions.bias"))
    else:
        out["lm_head.vocab_projection.weight"] = s["classifier.weight"]
        out["lm_head.vocab_projection.bias"] = s["classifier.bias"]
    _check_head_rows(out["lm_head.vocab_projection.weight"].shape[0], config.vocab_size)
    ignored = sorted(set(s) - s.used)
    return {k: v.detach().clone().contiguous() for k, v in out.items()}, ignored


def _check_head_rows(rows: int, vocab_size: int) -> None:
    """An output head that does not cover the vocabulary is the authors' k-mer-only head: say how to convert it."""
    if rows != vocab_size:
        raise ValueError(
            f"the output head predicts {rows} classes but the vocabulary has {vocab_size} tokens; the authors' "
            "k-mer heads (num_labels=4**k) need vocab_layout='barcodebert_kmer' (--vocab-layout barcodebert_kmer)"
        )


__all__ = [
    "ALIASES",
    "UNUSED_KEYS",
    "WRAPPER_KEYS",
    "convert_state_dict",
    "detect_format",
    "drop_aliases",
    "encoder_prefix",
    "has_mlm_transform",
    "head_keys",
    "layer_count",
    "load_original_state_dict",
    "rename_legacy_layernorm",
    "unused_key_reasons",
]
