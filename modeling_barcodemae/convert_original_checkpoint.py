"""Convert checkpoints of the original BarcodeMAE and BarcodeBERT code into a BarcodeMAE model folder.

The authors' BarcodeMAE (``MAELMModel``) is a transformers ``BertModel`` encoder, a ``BertForTokenClassification``
decoder and ``projection_layer``, which ``forward_v2`` applies whenever the encoder and decoder configs differ in
``output_hidden_states`` -- as their ``pretraining.py`` always builds them (encoder ``True``, decoder ``False``), also
at equal widths; the converted decoder keeps it (``decoder_projection``) unless the original configs, given or
beside the checkpoint, say the forward pass skipped it. BarcodeBERT is a ``BertForMaskedLM`` (the
paper's checkpoints) or a ``BertForTokenClassification`` (``bert.*`` + ``classifier.*``, the current code). Both
ship as ``.pt`` state dicts. Our layout differs in three exact, lossless ways:

* we have no token-type embedding: BERT always adds ``token_type_embeddings[0]``, so it is folded into every
  position-embedding row;
* attention uses one fused ``qkv`` projection: query, key and value weights are concatenated;
* the MAE decoder's mask token is the authors' ``decoder.bert.embeddings.word_embeddings.weight[0]`` (what
  ``forward_v2`` puts at masked positions), and its classifier becomes ``lm_head`` without the BERT transform.

Usage::

    python -m modeling_barcodemae.convert_original_checkpoint --checkpoint model.pt --output converted/ \
        [--tokenizer kmer:6 | path/to/tokenizer.json | tokenizer_folder] [--bert-config config.json] \
        [--vocab-layout auto | as_is | barcodebert_kmer]

Vocabulary layout (``--vocab-layout``)
--------------------------------------
``as_is`` keeps the checkpoint's token ids: the tokenizer must have the original's exact vocabulary.

``barcodebert_kmer`` moves the authors' k-mer vocabulary onto our k-mer tokenizer. Theirs (``DNADataset`` with
``tokenizer="kmer"``) is ``[MASK] [UNK]`` (ids 0, 1; ``[MASK] [UNK] [CLS]`` with ``use_cls_token``) followed by the
4**k ACGT k-mers in ``itertools.product("ACGT")`` order; ours is ``[PAD] [UNK] [CLS] [SEP] [MASK]`` then the same
k-mers. The BarcodeBERT paper's ``BertForMaskedLM`` checkpoints (4**k + 3 tokens) use ``<MASK> <CLS> <UNK>``, and
their training wrote id 1 (``<CLS>``) at masked positions, so that row becomes our ``[MASK]`` and the never-input
``<MASK>`` row is dropped. Every vocabulary-indexed tensor is re-indexed row by row (a pure gather, so every k-mer
row is bit-identical):

* input embeddings: k-mer ``i`` is our id ``5 + i``; ``[UNK]``, ``[MASK]`` and ``[CLS]`` keep their role; the
  rows of our tokens the original never saw (``[PAD]``, ``[SEP]``, ``[CLS]`` without ``use_cls_token``) copy the
  ``[UNK]`` row (padding is masked out, the others are not produced with the original's framing);
* output heads (BarcodeBERT's MLM head or classifier, the MAE decoder's classifier): with one row per vocabulary
  entry the rows move the same way; the authors' ``num_labels = 4**k`` heads hold the k-mers only. Rows of tokens
  the original could not predict get weight 0 and bias ``UNPREDICTABLE_BIAS`` (-1e4): never predicted, yet finite
  (``-inf`` would turn a cross-entropy on such a target into NaN) and representable in float16;
* the MAE decoder's word embeddings are not re-indexed: only their row 0 (the mask embedding) is used.

The converted model then reproduces the original exactly when fed our tokenizer with the original's framing
(``BarcodeTokenizer.kmer(k, framing="none")``, or ``framing="cls"`` with ``use_cls_token``), which the CLI saves
with the model. Exact means: encoder hidden states of the real tokens and every k-mer logit, for cleaned
upper-case barcodes without flanking ``N`` (we trim it, they did not), read in frame 0. The authors padded with
``N`` k-mers under a zero attention mask, which our padding matches; the paper's BarcodeBERT scripts attended to
that padding, which no converted model reproduces. ``tokenize_n_nucleotide=True`` checkpoints (one id per
N-containing k-mer, 5**k + 2 tokens) are refused: our tokenizer maps every such k-mer to ``[UNK]``.

``auto`` (default) picks ``barcodebert_kmer`` when the checkpoint has 4**k + 2 or 4**k + 3 tokens and the target
tokenizer is our k-mer tokenizer for that k (4**k + 5 tokens) or none is given, and logs it; otherwise ``as_is``.
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

from barcodemae.file_modes import apply_umask
from barcodemae.state_dicts import strip_wrapper_prefixes
from barcodemae.tokenization import BarcodeTokenizer
from barcodemae.tokenization.tokenization_barcodemae import SPECIAL_TOKENS

from .configuration_barcodemae import BarcodeMAEConfig
from .modeling_barcodemae import BarcodeMAEForPreTraining

logger = logging.getLogger(__name__)

WRAPPER_KEYS = ("model", "state_dict", "model_state_dict", "module")
VOCAB_LAYOUTS = ("auto", "as_is", "barcodebert_kmer")
#: Logit bias of output rows for tokens the original head could not predict (see the module docstring).
UNPREDICTABLE_BIAS = -1e4
# The authors' special tokens in id order, each named by the token of ours that plays its role (None: never an input).
AUTHORS_SPECIALS = ("[MASK]", "[UNK]")
AUTHORS_SPECIALS_WITH_CLS = ("[MASK]", "[UNK]", "[CLS]")
BARCODEBERT_PAPER_SPECIALS = (None, "[MASK]", "[UNK]")
MAX_K = 8  # our k-mer tokenizer's largest k


@dataclass(frozen=True)
class AuthorsKmerVocabulary:
    """The authors' k-mer vocabulary: ``specials`` (by role, in id order), then the 4**k ACGT k-mers."""

    k: int
    specials: tuple[str | None, ...]

    @property
    def size(self) -> int:
        return len(self.specials) + 4**self.k

    @property
    def framing(self) -> str:
        """The :class:`BarcodeTokenizer` framing that gives the original's inputs (a leading [CLS] only if used)."""
        return "cls" if "[CLS]" in self.specials else "none"

    def source_rows(self, rows: int, name: str) -> list[int | None]:
        """For each of our ids, the row of an original tensor with ``rows`` rows that holds it (None: none does).

        A tensor with one row per vocabulary entry has the specials first; the authors' output heads
        (``num_labels = 4**k``) have the k-mers only.
        """
        kmers = 4**self.k
        if rows == self.size:
            roles = {role: index for index, role in enumerate(self.specials) if role is not None}
            offset = len(self.specials)
        elif rows == kmers:
            roles, offset = {}, 0
        else:
            raise ValueError(f"{name} has {rows} rows; expected {self.size} (vocabulary) or {kmers} (k-mers)")
        return [roles.get(token) for token in SPECIAL_TOKENS] + list(range(offset, offset + kmers))


@dataclass
class ConversionReport:
    """What a conversion read and what it dropped, so nothing is lost silently."""

    source_format: str
    config: BarcodeMAEConfig
    ignored_keys: list[str] = field(default_factory=list)
    ignored_reasons: dict[str, str] = field(default_factory=dict)
    vocab_layout: str = "as_is"
    original_vocabulary: AuthorsKmerVocabulary | None = None


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


def _encoder_prefix(source_format: str) -> str:
    return "encoder." if source_format == "barcodemae" else "bert."


def _has_mlm_transform(state_dict: dict[str, torch.Tensor]) -> bool:
    """A BertForMaskedLM head (dense + LayerNorm before the vocabulary); a token-classification head has none."""
    return "cls.predictions.transform.dense.weight" in state_dict


def _head_keys(state_dict: dict[str, torch.Tensor], source_format: str) -> tuple[str, list[str]]:
    """The output head's weight key and bias key(s) (a tied BertForMaskedLM may lack the weight, never a bias)."""
    if source_format == "barcodemae":
        return "decoder.classifier.weight", ["decoder.classifier.bias"]
    if _has_mlm_transform(state_dict):
        biases = [k for k in ("cls.predictions.decoder.bias", "cls.predictions.bias") if k in state_dict]
        return "cls.predictions.decoder.weight", biases
    if "classifier.weight" in state_dict:
        return "classifier.weight", ["classifier.bias"]
    raise ValueError("BarcodeBERT checkpoint without an output head: expected cls.predictions.* or classifier.*")


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
    shape = bert_shape(state_dict, _encoder_prefix(source_format))
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
        kwargs.update(pretraining_objective="mlm", prediction_head_transform=_has_mlm_transform(state_dict))
    kwargs.update(overrides)
    return BarcodeMAEConfig(**kwargs)


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


def projection_applies(
    state_dict: dict[str, torch.Tensor], encoder_config: dict[str, Any] | None, decoder_config: dict[str, Any] | None
) -> bool:
    """Whether the authors' ``forward_v2`` applies ``projection_layer`` to the encoder outputs.

    It does when ``encoder.config.output_hidden_states != decoder.config.output_hidden_states``. The flag is not in
    a state dict: it is read from the original configs when both state it, else taken as ``pretraining.py`` sets it
    (encoder ``True``, decoder ``False``: applied). Unequal widths need the projection whatever the flags say.
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
    encoder_prefix = _encoder_prefix(source_format)
    out = _bert_stack(s, encoder_prefix, "barcodemae.")
    out["barcodemae.embeddings.word_embeddings.weight"] = s[f"{encoder_prefix}embeddings.word_embeddings.weight"]
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


# ---------------------------------------------------------------------------------------- vocabulary layout
def _authors_kmer_size(vocab_size: int, letters: int = 4) -> tuple[int, int] | None:
    """``(k, number of specials)`` when ``vocab_size`` is ``letters**k`` plus the authors' 2 or 3 special tokens."""
    for k in range(1, MAX_K + 1):
        for specials in (2, 3):
            if letters**k + specials == vocab_size:
                return k, specials
    return None


def _our_kmer_size(tokenizer_kwargs: dict[str, Any] | None) -> int | None:
    """k of the target tokenizer when it is our k-mer layout (4**k k-mers after our 5 specials), else None."""
    if not tokenizer_kwargs or tokenizer_kwargs.get("tokenizer_scheme") != "kmer":
        return None
    k = tokenizer_kwargs["kmer_size"]
    return k if tokenizer_kwargs.get("vocab_size") == 4**k + len(SPECIAL_TOKENS) else None


def _authors_specials(count: int, state_dict: dict[str, torch.Tensor], source_format: str) -> tuple:
    """Which special tokens the original had, from their count and the code that wrote the checkpoint.

    Three specials are ``use_cls_token`` in the BarcodeMAE code (MAELMModel, BertForTokenClassification), but the
    BarcodeBERT paper's BertForMaskedLM vocabulary ``<MASK> <CLS> <UNK>``.
    """
    if count == 2:
        return AUTHORS_SPECIALS
    if source_format == "barcodebert" and _has_mlm_transform(state_dict):
        return BARCODEBERT_PAPER_SPECIALS
    return AUTHORS_SPECIALS_WITH_CLS


def resolve_vocab_layout(
    vocab_layout: str,
    state_dict: dict[str, torch.Tensor],
    source_format: str,
    tokenizer_kwargs: dict[str, Any] | None,
) -> AuthorsKmerVocabulary | None:
    """The authors' k-mer vocabulary to re-index from, or None to keep ids as they are (see the module docstring)."""
    if vocab_layout not in VOCAB_LAYOUTS:
        raise ValueError(f"vocab_layout must be one of {VOCAB_LAYOUTS}, got {vocab_layout!r}")
    if vocab_layout == "as_is":
        return None
    explicit = vocab_layout == "barcodebert_kmer"
    target_k = _our_kmer_size(tokenizer_kwargs)
    if tokenizer_kwargs and target_k is None:  # a character, BPE or hand-made tokenizer: ids stay the checkpoint's
        if explicit:
            raise ValueError(
                "vocab_layout='barcodebert_kmer' converts to our k-mer tokenizer (4**k + 5 tokens); the given "
                f"tokenizer is {tokenizer_kwargs.get('tokenizer_scheme')!r} with {tokenizer_kwargs.get('vocab_size')} "
                "tokens"
            )
        return None
    vocab = state_dict[f"{_encoder_prefix(source_format)}embeddings.word_embeddings.weight"].shape[0]
    found = _authors_kmer_size(vocab)
    if found is None or target_k not in (None, found[0]):
        _refuse_n_kmers(vocab, target_k, explicit)
        if explicit:
            wanted = "4**k + 2, or + 3 with [CLS]" if target_k is None else f"{4**target_k + 2} or {4**target_k + 3}"
            raise ValueError(
                f"the checkpoint's vocabulary has {vocab} tokens: not the authors' k-mer layout ({wanted})"
            )
        return None
    layout = AuthorsKmerVocabulary(found[0], _authors_specials(found[1], state_dict, source_format))
    logger.info(
        "vocabulary layout barcodebert_kmer (%s): the authors' k=%d vocabulary %s + %d k-mers (%d tokens) is "
        "re-indexed to our k-mer tokenizer's (%d tokens); feed it with framing=%r",
        vocab_layout,
        layout.k,
        list(layout.specials),
        4**layout.k,
        vocab,
        4**layout.k + len(SPECIAL_TOKENS),
        layout.framing,
    )
    return layout


def _refuse_n_kmers(vocab: int, target_k: int | None, explicit: bool) -> None:
    """``tokenize_n_nucleotide=True`` vocabularies (5**k k-mers) have no exact counterpart: say so by name.

    Under ``auto`` only when the target is our k-mer tokenizer for that k: without a tokenizer the checkpoint may
    still be converted ``as_is`` for a tokenizer that has its vocabulary.
    """
    found = _authors_kmer_size(vocab, letters=5)
    if found is not None and target_k in ((None, found[0]) if explicit else (found[0],)):
        raise ValueError(
            f"the checkpoint's {vocab}-token vocabulary is the authors' tokenize_n_nucleotide=True layout "
            f"(k={found[0]}: one id per k-mer over ACGTN), which is not supported: our k-mer tokenizer maps every "
            "k-mer containing N to [UNK]"
        )


def _gather_rows(tensor: torch.Tensor, rows: list[int | None], fill: float) -> torch.Tensor:
    """``tensor``'s rows in the order ``rows``; a ``None`` row is filled with ``fill``."""
    present = torch.tensor([row is not None for row in rows]).view(-1, *([1] * (tensor.dim() - 1)))
    gathered = tensor.index_select(0, torch.tensor([0 if row is None else row for row in rows]))
    return torch.where(present, gathered, torch.full_like(gathered, fill))


def remap_vocabulary(
    state_dict: dict[str, torch.Tensor], source_format: str, layout: AuthorsKmerVocabulary
) -> dict[str, torch.Tensor]:
    """The checkpoint (same key names) with every vocabulary-indexed tensor in our k-mer tokenizer's id order."""
    out = dict(state_dict)
    embeddings = f"{_encoder_prefix(source_format)}embeddings.word_embeddings.weight"
    rows = layout.source_rows(state_dict[embeddings].shape[0], embeddings)
    unk = rows[SPECIAL_TOKENS.index("[UNK]")]
    out[embeddings] = _gather_rows(state_dict[embeddings], [unk if row is None else row for row in rows], 0.0)
    weight_key, bias_keys = _head_keys(state_dict, source_format)
    weight = state_dict.get(weight_key, state_dict[embeddings])  # a tied MLM head is the input embedding matrix
    rows = layout.source_rows(weight.shape[0], weight_key)
    out[weight_key] = _gather_rows(weight, rows, 0.0)
    for key in bias_keys:
        out[key] = _gather_rows(state_dict[key], rows, UNPREDICTABLE_BIAS)
    return out


# ------------------------------------------------------------------------------------------- conversion
def convert_checkpoint(
    checkpoint: str | Path | dict[str, torch.Tensor],
    *,
    encoder_config: dict[str, Any] | None = None,
    decoder_config: dict[str, Any] | None = None,
    num_attention_heads: int | None = None,
    decoder_num_attention_heads: int | None = None,
    tokenizer_kwargs: dict[str, Any] | None = None,
    vocab_layout: str = "auto",
    **config_overrides: Any,
) -> tuple[BarcodeMAEForPreTraining, ConversionReport]:
    """Load an original BarcodeMAE/BarcodeBERT checkpoint (path or state dict) as a ``BarcodeMAEForPreTraining``.

    Loading is strict: every parameter of our model must come from the checkpoint. ``tokenizer_kwargs`` are the
    target tokenizer's ``model_config_kwargs()``; ``vocab_layout`` is described in the module docstring, and
    :func:`converted_tokenizer` gives the tokenizer that reproduces the original's inputs.
    """
    if isinstance(checkpoint, (str, Path)):
        if encoder_config is None:
            encoder_config, decoder_config = _configs_beside(Path(checkpoint), decoder_config)
        state_dict = load_original_state_dict(checkpoint)
    else:
        state_dict = {k: v for k, v in checkpoint.items() if isinstance(v, torch.Tensor)}
    state_dict, alias_reasons = drop_aliases(_rename_legacy_layernorm(state_dict))
    source_format = detect_format(state_dict)
    original = resolve_vocab_layout(vocab_layout, state_dict, source_format, tokenizer_kwargs)
    if original is not None:
        state_dict = remap_vocabulary(state_dict, source_format, original)
        tokenizer_kwargs = tokenizer_kwargs or _kmer_config_kwargs(original)
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
    reasons = {**alias_reasons, **unused_key_reasons(ignored, projection_used=config.decoder_projection)}
    ignored = sorted(reasons)
    model.load_state_dict(converted, strict=True)
    model.eval()
    for key, reason in reasons.items():
        logger.info("not converted: %s (%s)", key, reason)
    return model, ConversionReport(
        source_format=source_format,
        config=config,
        ignored_keys=ignored,
        ignored_reasons=reasons,
        vocab_layout="as_is" if original is None else "barcodebert_kmer",
        original_vocabulary=original,
    )


def _kmer_config_kwargs(original: AuthorsKmerVocabulary) -> dict[str, Any]:
    """Config fields of our k-mer tokenizer for the original's k (the checkpoint's position table is kept)."""
    kwargs = converted_tokenizer(original).model_config_kwargs()
    kwargs.pop("max_position_embeddings")
    return kwargs


def converted_tokenizer(original: AuthorsKmerVocabulary, tokenizer: BarcodeTokenizer | None = None) -> BarcodeTokenizer:
    """Our k-mer tokenizer with the original's framing, keeping ``tokenizer``'s stride and ``max_bp`` if given."""
    settings = {"stride": tokenizer.stride, "max_bp": tokenizer.max_bp} if tokenizer is not None else {}
    return BarcodeTokenizer.kmer(original.k, framing=original.framing, **settings)


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
def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkpoint", required=True, help="original .pt/.bin/.safetensors state dict")
    parser.add_argument("--output", required=True, help="folder to write (model.safetensors, config.json, code)")
    parser.add_argument("--tokenizer", help=f"tokenizer to save with it: {BarcodeTokenizer.SPEC_GRAMMAR}")
    parser.add_argument("--bert-config", help="original BERT config.json (default: config.json beside the checkpoint)")
    parser.add_argument("--decoder-bert-config", help="original decoder BERT config.json (BarcodeMAE)")
    parser.add_argument("--num-attention-heads", type=int)
    parser.add_argument("--decoder-num-attention-heads", type=int)
    parser.add_argument("--mask-ratio", type=float, help="mask ratio the model was pretrained with")
    parser.add_argument(
        "--vocab-layout",
        choices=VOCAB_LAYOUTS,
        default="auto",
        help="as_is: keep token ids; barcodebert_kmer: re-index the authors' k-mer vocabulary onto our k-mer "
        "tokenizer and save it with the original's framing; auto: barcodebert_kmer when the sizes say so",
    )
    args = parser.parse_args(argv)

    encoder_config = json.loads(Path(args.bert_config).read_text()) if args.bert_config else None
    decoder_config = json.loads(Path(args.decoder_bert_config).read_text()) if args.decoder_bert_config else None
    tokenizer = BarcodeTokenizer.from_spec(args.tokenizer) if args.tokenizer else None
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
        vocab_layout=args.vocab_layout,
        **overrides,
    )
    if report.original_vocabulary is not None:
        tokenizer = converted_tokenizer(report.original_vocabulary, tokenizer)
    model.save_pretrained(args.output)
    if tokenizer is not None:
        tokenizer.save_pretrained(args.output)
    apply_umask(args.output)
    print(
        json.dumps(
            {
                "source_format": report.source_format,
                "output": str(args.output),
                "parameters": sum(p.numel() for p in model.parameters()),
                "ignored_keys": report.ignored_reasons,
                "vocab_layout": report.vocab_layout,
                "tokenizer_saved": tokenizer is not None,
                "tokenizer_framing": tokenizer.framing if tokenizer is not None else None,
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
