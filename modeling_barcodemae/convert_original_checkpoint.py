"""Convert checkpoints of the original BarcodeMAE and BarcodeBERT code into a BarcodeMAE model folder.

The authors' BarcodeMAE (``MAELMModel``) is a transformers ``BertModel`` encoder, a ``BertForTokenClassification``
decoder (``num_labels`` = vocabulary) and ``projection_layer`` (used only when the widths differ); BarcodeBERT is a
``BertForMaskedLM``. Both ship as ``.pt`` state dicts. Our layout differs in three exact, lossless ways:

* we have no token-type embedding: BERT always adds ``token_type_embeddings[0]``, so it is folded into every
  position-embedding row;
* attention uses one fused ``qkv`` projection: query, key and value weights are concatenated;
* the MAE decoder's mask token is the authors' ``decoder.bert.embeddings.word_embeddings.weight[0]`` (what
  ``forward_v2`` puts at masked positions), and its classifier becomes ``lm_head`` without the BERT transform.

Usage::

    python -m modeling_barcodemae.convert_original_checkpoint --checkpoint model.pt --output converted/ \
        [--tokenizer kmer:6 | path/to/tokenizer.json | tokenizer_folder] [--bert-config config.json]

The vocabulary ids of the checkpoint are kept as they are: pass the tokenizer the original model was trained
with (same vocabulary order), or the converted model reads different tokens than the original did.
"""

from __future__ import annotations

import argparse
import json
import logging
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from .configuration_barcodemae import BarcodeMAEConfig
from .modeling_barcodemae import BarcodeMAEForPreTraining

logger = logging.getLogger(__name__)

WRAPPER_KEYS = ("model", "state_dict", "model_state_dict", "module")
STRIPPED_PREFIXES = ("module.", "_orig_mod.")


@dataclass
class ConversionReport:
    """What a conversion read and what it dropped, so nothing is lost silently."""

    source_format: str
    config: BarcodeMAEConfig
    ignored_keys: list[str] = field(default_factory=list)


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
        raise TypeError(f"{path}: expected a state dict, got {type(state).__name__}")
    tensors = {}
    for key, value in state.items():
        if not isinstance(value, torch.Tensor):
            continue
        for prefix in STRIPPED_PREFIXES:
            while key.startswith(prefix):
                key = key[len(prefix) :]
        tensors[key] = value
    return tensors


def detect_format(state_dict: dict[str, torch.Tensor]) -> str:
    """``"barcodemae"`` for the authors' MAELMModel, ``"barcodebert"`` for a BertForMaskedLM."""
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


# ---------------------------------------------------------------------------------------- config inference
def _layer_count(state_dict: dict[str, torch.Tensor], prefix: str) -> int:
    pattern = re.compile(rf"^{re.escape(prefix)}encoder\.layer\.(\d+)\.")
    indices = {int(m.group(1)) for k in state_dict if (m := pattern.match(k))}
    if not indices:
        raise ValueError(f"no transformer layers under {prefix}encoder.layer.*")
    return max(indices) + 1


def bert_shape(state_dict: dict[str, torch.Tensor], prefix: str) -> dict[str, int]:
    """Shape fields of a BERT stack read from its tensors (the head count is not in any shape)."""
    vocab, hidden = state_dict[f"{prefix}embeddings.word_embeddings.weight"].shape
    return {
        "vocab_size": vocab,
        "hidden_size": hidden,
        "num_hidden_layers": _layer_count(state_dict, prefix),
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
    encoder_prefix = "encoder." if source_format == "barcodemae" else "bert."
    shape = bert_shape(state_dict, encoder_prefix)
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
        kwargs.update(pretraining_objective="mlm", prediction_head_transform=True)
    kwargs.update(overrides)
    return BarcodeMAEConfig(**kwargs)


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
    for i in range(_layer_count(s, source)):
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


def _rename_legacy_layernorm(state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Old BERT checkpoints name LayerNorm parameters gamma/beta."""
    return {
        k.replace("LayerNorm.gamma", "LayerNorm.weight").replace("LayerNorm.beta", "LayerNorm.bias"): v
        for k, v in state_dict.items()
    }


def convert_state_dict(
    state_dict: dict[str, torch.Tensor], source_format: str, config: BarcodeMAEConfig
) -> tuple[dict[str, torch.Tensor], list[str]]:
    """Our ``BarcodeMAEForPreTraining`` state dict, and the source keys that were deliberately not used."""
    s = _TrackedStateDict(_rename_legacy_layernorm(state_dict))
    encoder_prefix = "encoder." if source_format == "barcodemae" else "bert."
    out = _bert_stack(s, encoder_prefix, "barcodemae.")
    out["barcodemae.embeddings.word_embeddings.weight"] = s[f"{encoder_prefix}embeddings.word_embeddings.weight"]
    if source_format == "barcodemae":
        out.update(_bert_stack(s, "decoder.bert.", "decoder.", positions=config.max_position_embeddings))
        out["decoder.mask_embedding"] = s["decoder.bert.embeddings.word_embeddings.weight"][0]
        out["lm_head.decoder.weight"] = s["decoder.classifier.weight"]
        out["lm_head.decoder.bias"] = s["decoder.classifier.bias"]
        if config.hidden_size != config.decoder_hidden_size:
            out["decoder.projection.weight"] = s["projection_layer.weight"]
            out["decoder.projection.bias"] = s["projection_layer.bias"]
    else:
        out["lm_head.transform.0.weight"] = s["cls.predictions.transform.dense.weight"]
        out["lm_head.transform.0.bias"] = s["cls.predictions.transform.dense.bias"]
        out["lm_head.transform.2.weight"] = s["cls.predictions.transform.LayerNorm.weight"]
        out["lm_head.transform.2.bias"] = s["cls.predictions.transform.LayerNorm.bias"]
        # Tied checkpoints may omit the decoder weight: it is the word embedding matrix.
        out["lm_head.decoder.weight"] = s.get(
            "cls.predictions.decoder.weight", s["bert.embeddings.word_embeddings.weight"]
        )
        out["lm_head.decoder.bias"] = s.get("cls.predictions.decoder.bias", s.get("cls.predictions.bias"))
    ignored = sorted(set(s) - s.used)
    return {k: v.detach().clone().contiguous() for k, v in out.items()}, ignored


def convert_checkpoint(
    checkpoint: str | Path | dict[str, torch.Tensor],
    *,
    encoder_config: dict[str, Any] | None = None,
    decoder_config: dict[str, Any] | None = None,
    num_attention_heads: int | None = None,
    decoder_num_attention_heads: int | None = None,
    tokenizer_kwargs: dict[str, Any] | None = None,
    **config_overrides: Any,
) -> tuple[BarcodeMAEForPreTraining, ConversionReport]:
    """Load an original BarcodeMAE/BarcodeBERT checkpoint (path or state dict) as a ``BarcodeMAEForPreTraining``.

    Loading is strict: every parameter of our model must come from the checkpoint.
    """
    if isinstance(checkpoint, (str, Path)):
        if encoder_config is None:
            encoder_config, decoder_config = _configs_beside(Path(checkpoint), decoder_config)
        state_dict = load_original_state_dict(checkpoint)
    else:
        state_dict = {k: v for k, v in checkpoint.items() if isinstance(v, torch.Tensor)}
    state_dict = _rename_legacy_layernorm(state_dict)
    source_format = detect_format(state_dict)
    config = build_config(
        state_dict,
        source_format,
        encoder_config=encoder_config,
        decoder_config=decoder_config,
        num_attention_heads=num_attention_heads,
        decoder_num_attention_heads=decoder_num_attention_heads,
        tokenizer_kwargs=tokenizer_kwargs,
        **config_overrides,
    )
    converted, ignored = convert_state_dict(state_dict, source_format, config)
    model = BarcodeMAEForPreTraining(config)
    expected = set(model.state_dict())
    missing, unexpected = sorted(expected - set(converted)), sorted(set(converted) - expected)
    if missing or unexpected:
        raise ValueError(f"conversion produced a mismatched state dict: missing {missing}, unexpected {unexpected}")
    model.load_state_dict(converted, strict=True)
    model.eval()
    if ignored:
        logger.info("not converted (no counterpart in BarcodeMAE): %s", ignored)
    return model, ConversionReport(source_format=source_format, config=config, ignored_keys=ignored)


def _configs_beside(checkpoint: Path, decoder_config: dict[str, Any] | None) -> tuple[dict | None, dict | None]:
    """A ``config.json`` next to the checkpoint: a BERT config, or ``{"encoder": {...}, "decoder": {...}}``."""
    path = checkpoint.with_name("config.json")
    if not path.is_file():
        return None, decoder_config
    data = json.loads(path.read_text())
    if "encoder" in data and isinstance(data["encoder"], dict):
        return data["encoder"], data.get("decoder", decoder_config)
    return data, decoder_config


# ------------------------------------------------------------------------------------------------ CLI
def load_tokenizer(spec: str):
    """``kmer:K`` / ``kmer:K:STRIDE`` / ``char``, a ``tokenizer.json`` (BPE), or a saved tokenizer folder."""
    from barcodemae.tokenization import BarcodeTokenizer

    if spec == "char":
        return BarcodeTokenizer.char()
    if spec.startswith("kmer"):
        parts = spec.split(":")
        k = int(parts[1]) if len(parts) > 1 else 6
        stride = int(parts[2]) if len(parts) > 2 else None
        return BarcodeTokenizer.kmer(k=k, stride=stride)
    path = Path(spec)
    if path.is_file():
        return BarcodeTokenizer.from_tokenizer_file(str(path), scheme="bpe")
    if path.is_dir():
        return BarcodeTokenizer.from_pretrained(str(path))
    raise ValueError(f"--tokenizer {spec!r}: expected kmer:K[:STRIDE], char, a tokenizer.json or a tokenizer folder")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkpoint", required=True, help="original .pt/.bin/.safetensors state dict")
    parser.add_argument("--output", required=True, help="folder to write (model.safetensors, config.json, code)")
    parser.add_argument("--tokenizer", help="kmer:K[:STRIDE], char, tokenizer.json or tokenizer folder to save with it")
    parser.add_argument("--bert-config", help="original BERT config.json (default: config.json beside the checkpoint)")
    parser.add_argument("--decoder-bert-config", help="original decoder BERT config.json (BarcodeMAE)")
    parser.add_argument("--num-attention-heads", type=int)
    parser.add_argument("--decoder-num-attention-heads", type=int)
    parser.add_argument("--mask-ratio", type=float, help="mask ratio the model was pretrained with")
    args = parser.parse_args(argv)

    encoder_config = json.loads(Path(args.bert_config).read_text()) if args.bert_config else None
    decoder_config = json.loads(Path(args.decoder_bert_config).read_text()) if args.decoder_bert_config else None
    tokenizer = load_tokenizer(args.tokenizer) if args.tokenizer else None
    tokenizer_kwargs = tokenizer.model_config_kwargs() if tokenizer is not None else None
    if tokenizer_kwargs:
        tokenizer_kwargs.pop("max_position_embeddings", None)  # the checkpoint's position table decides
    overrides = {"mask_ratio": args.mask_ratio} if args.mask_ratio is not None else {}
    if encoder_config is None:
        encoder_config, decoder_config = _configs_beside(Path(args.checkpoint), decoder_config)
    model, report = convert_checkpoint(
        args.checkpoint,
        encoder_config=encoder_config or {},
        decoder_config=decoder_config,
        num_attention_heads=args.num_attention_heads,
        decoder_num_attention_heads=args.decoder_num_attention_heads,
        tokenizer_kwargs=tokenizer_kwargs,
        **overrides,
    )
    model.save_pretrained(args.output)
    if tokenizer is not None:
        tokenizer.save_pretrained(args.output)
    print(
        json.dumps(
            {
                "source_format": report.source_format,
                "output": str(args.output),
                "parameters": sum(p.numel() for p in model.parameters()),
                "ignored_keys": report.ignored_keys,
                "tokenizer_saved": tokenizer is not None,
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
