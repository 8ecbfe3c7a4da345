"""ENBED for barcodes: a character-level encoder-decoder (Malusare et al. 2023) on ``transformers``' LongT5.

Why LongT5: ENBED analyses DNA one base at a time, so a 660 bp barcode is 662 tokens and a mitogenome 16k; full
self-attention grows with the square of that. LongT5's encoder attends within a local window (``"local"``) or a
window plus per-block summaries (``"transient-global"``), linear in length, and its decoder generates sequences
(read correction). ``transformers`` has the whole model, so nothing here re-implements attention: this module adds
what pretraining on barcodes needs and LongT5 does not have.

* :func:`enbed_config`: the LongT5 config of a character tokenizer plus T5 sentinel tokens (their ids follow the
  tokenizer's vocabulary, see ``barcodemae.masking.span_corruption``); the tokenizer's description is recorded in
  the config as for BarcodeMAE.
* :class:`EnbedForConditionalGeneration`: LongT5ForConditionalGeneration whose loss is summed over the target
  tokens and divided by ``num_items_in_batch`` (the targets of the whole optimiser step, over micro-batches and
  processes), the contract of ``train.py``'s loop. Its weights are LongT5's: a saved folder loads in a plain
  environment with ``AutoModelForSeq2SeqLM`` (and ``LongT5EncoderModel`` for embeddings), no remote code. Read
  correction (read with errors -> original barcode) is this model fine-tuned, generating with ``generate``.
* :class:`EnbedForErrorDetection`: the LongT5 encoder with per-token heads for barcode quality control (issue
  #15): which bases are substituted, inserted or ``N``, where a base is missing, and whether the read has any
  error. It loads the encoder of an ENBED pretraining folder; its own folders load with
  ``AutoModelForTokenClassification`` and ``trust_remote_code=True`` (this file is their remote code).

This file is copied into saved model folders: it imports only torch and transformers.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import nn
from transformers import LongT5Config, LongT5ForConditionalGeneration
from transformers import initialization as init
from transformers.modeling_outputs import Seq2SeqLMOutput
from transformers.models.longt5.modeling_longt5 import LongT5PreTrainedModel, LongT5Stack
from transformers.utils import ModelOutput

ENCODER_ATTENTION = ("local", "transient-global")
"""LongT5's sub-quadratic encoder attentions (the decoder attends fully: its targets are short spans)."""


def enbed_config(
    tokenizer_fields: dict,
    num_sentinels: int,
    *,
    hidden_size: int = 512,
    num_hidden_layers: int = 8,
    num_decoder_layers: int = 8,
    num_attention_heads: int = 8,
    intermediate_size: int = 1024,
    dropout: float = 0.1,
    encoder_attention: str = "transient-global",
    local_radius: int = 127,
    global_block_size: int = 16,
) -> LongT5Config:
    """A LongT5 config for a character tokenizer whose vocabulary is followed by ``num_sentinels`` T5 sentinels.

    ``tokenizer_fields``: ``BarcodeTokenizer.model_config_kwargs()`` (vocabulary size, special ids, scheme,
    ``max_bp``): the tokenizer stays described in the model's config. ``[SEP]`` ends sequences (T5's EOS) and
    ``[PAD]`` starts the decoder (T5's convention). The feed-forward is T5 v1.1's gated GELU. The size defaults are
    the ``enbed`` preset's T5-small-like model, and what ``train.py --objective enbed`` uses for unset size flags.
    """
    if encoder_attention not in ENCODER_ATTENTION:
        raise ValueError(f"encoder_attention must be one of {ENCODER_ATTENTION}, got {encoder_attention!r}")
    if hidden_size % num_attention_heads:
        raise ValueError(
            f"hidden_size ({hidden_size}) must be divisible by num_attention_heads ({num_attention_heads})"
        )
    if num_sentinels < 1:
        raise ValueError(f"num_sentinels must be >= 1, got {num_sentinels}")
    fields = dict(tokenizer_fields)
    base_vocab = fields.pop("vocab_size")
    pad_id, eos_id = fields.pop("pad_token_id"), fields.pop("sep_token_id")
    fields.pop("max_position_embeddings", None)  # LongT5 has relative positions: any length
    return LongT5Config(
        vocab_size=base_vocab + num_sentinels,
        d_model=hidden_size,
        d_kv=hidden_size // num_attention_heads,
        d_ff=intermediate_size,
        num_layers=num_hidden_layers,
        num_decoder_layers=num_decoder_layers,
        num_heads=num_attention_heads,
        dropout_rate=dropout,
        feed_forward_proj="gated-gelu",
        encoder_attention_type=encoder_attention,
        local_radius=local_radius,
        global_block_size=global_block_size,
        pad_token_id=pad_id,
        eos_token_id=eos_id,
        decoder_start_token_id=pad_id,
        scale_decoder_outputs=True,  # T5 with tied input/output embeddings scales the decoder output by d_model**-0.5
        sentinel_first_id=base_vocab,
        num_sentinels=num_sentinels,
        sep_token_id=eos_id,
        pretraining_objective="enbed",
        **fields,
    )


@dataclass
class EnbedSeq2SeqOutput(Seq2SeqLMOutput):
    """LongT5's output with the loss split as ``train.py``'s loop reads it.

    reconstruction_loss: cross-entropy over the target tokens (``labels != -100``), normalised as the forward pass
    says; equal to ``loss`` (ENBED has no auxiliary term). contrastive_loss / composition_loss: always ``None``.
    """

    reconstruction_loss: torch.Tensor | None = None
    contrastive_loss: torch.Tensor | None = None
    composition_loss: torch.Tensor | None = None


class EnbedForConditionalGeneration(LongT5ForConditionalGeneration):
    """LongT5 encoder-decoder pretrained with T5 span corruption on barcodes (ENBED).

    Only the loss differs from LongT5's (a mean over the micro-batch's targets there): summed over the targets and
    divided by ``num_items_in_batch`` when given, so every target token weighs the same however a step is split
    over gradient accumulation and processes.
    """

    def forward(
        self,
        input_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        decoder_input_ids: torch.Tensor | None = None,
        num_items_in_batch: float | None = None,
        **kwargs,
    ) -> EnbedSeq2SeqOutput:
        """``input_ids`` / ``attention_mask`` ``(batch, source_length)``: the corrupted sequences (a sentinel per
        masked span); ``labels`` ``(batch, target_length)``: each span after its sentinel, then ``[SEP]``, padded
        with -100. The decoder reads ``labels`` shifted right (``[PAD]`` first) unless ``decoder_input_ids`` are
        given. Returns ``logits`` ``(batch, target_length, vocab)`` and, with ``labels``, the loss; any other
        argument (``generate``'s caches, ``encoder_outputs``, ...) goes to LongT5 unchanged."""
        if labels is not None and decoder_input_ids is None:
            decoder_input_ids = self._shift_right(labels)
        output = super().forward(
            input_ids=input_ids, attention_mask=attention_mask, decoder_input_ids=decoder_input_ids, **kwargs
        )
        loss = None
        if labels is not None:
            logits = output.logits.float()
            loss_sum = F.cross_entropy(logits.flatten(0, 1), labels.flatten(), ignore_index=-100, reduction="sum")
            if num_items_in_batch is None:
                loss = loss_sum / (labels != -100).sum().clamp(min=1)
            else:
                loss = loss_sum * (1.0 / num_items_in_batch)
        return EnbedSeq2SeqOutput(**{**output, "loss": loss, "reconstruction_loss": loss})


ERROR_DETECTION_LABELS: tuple[str, ...] = ("correct", "substituted", "inserted", "n")
"""The classes of :class:`EnbedForErrorDetection`'s base head, by index: the values of
``barcodemae.qc.BASE_LABELS`` (this file may not import the package, so they are restated here)."""


@dataclass
class EnbedErrorDetectionOutput(ModelOutput):
    """Output of :class:`EnbedForErrorDetection` for a batch of ``B`` tokenised reads of ``L`` tokens.

    loss: ``base_loss + deletion_loss`` when labels are given (see :meth:`EnbedForErrorDetection.forward`).
    base_logits: ``(B, L, 4)`` per token, over :data:`ERROR_DETECTION_LABELS`.
    deletion_logits: ``(B, L)`` per token, "a base of the original is missing right before this token".
    error_score: ``(B,)`` probability that the read has at least one error (substituted, inserted or ``N`` base,
        or a missing base), from the per-token probabilities taken as independent.
    clean_log_probability: ``(B,)`` the log of ``1 - error_score``, computed directly: for a read of hundreds of
        bases ``error_score`` rounds to 1 in float32 while this keeps ranking reads (rank and threshold by it).
    hidden_states / attentions: the encoder's, when asked for.
    """

    loss: torch.Tensor | None = None
    base_loss: torch.Tensor | None = None
    deletion_loss: torch.Tensor | None = None
    base_logits: torch.Tensor | None = None
    deletion_logits: torch.Tensor | None = None
    error_score: torch.Tensor | None = None
    clean_log_probability: torch.Tensor | None = None
    hidden_states: tuple[torch.Tensor, ...] | None = None
    attentions: tuple[torch.Tensor, ...] | None = None


class EnbedForErrorDetection(LongT5PreTrainedModel):
    """Per-base sequencing-error detection on ENBED's encoder: a token classifier for barcode quality control.

    Why: a read's errors are local (a wrong, extra or unreadable base, or a missing one) but recognising them takes
    context (the reading frame, the codon, what barcodes look like), which the pretrained encoder supplies. Inputs
    are the character tokenizer's ``[CLS] read [SEP]``: token ``i + 1`` is base ``i``.

    Two linear heads on the encoder's output:

    * ``base_head``: 4 logits per token, the base's label (:data:`ERROR_DETECTION_LABELS`); meaningful on base
      tokens only.
    * ``deletion_head``: 1 logit per token, a base missing between this token and the previous one. A deletion
      before the read's first base sits on its first base token, one after its last base on ``[SEP]``.

    The encoder's attribute names are those of ``transformers.LongT5EncoderModel`` (``shared``, ``encoder``), so
    ``from_pretrained`` on an ENBED pretraining folder (``EnbedForConditionalGeneration``) loads the pretrained
    encoder, drops the decoder and initialises only the heads.
    """

    _tied_weights_keys: ClassVar[dict[str, str]] = {"encoder.embed_tokens.weight": "shared.weight"}
    _keys_to_ignore_on_load_unexpected: ClassVar[list[str]] = [r"decoder", r"lm_head"]

    def __init__(self, config: LongT5Config) -> None:
        super().__init__(config)
        if config.cls_token_id is None or config.sep_token_id is None or config.pad_token_id is None:
            raise ValueError("the config must name the tokenizer's [CLS], [SEP] and [PAD] ids (see enbed_config)")
        self.shared = nn.Embedding(config.vocab_size, config.d_model)
        encoder_config = copy.deepcopy(config)
        encoder_config.use_cache = False
        encoder_config.is_decoder = False
        self.encoder = LongT5Stack(encoder_config)
        self.dropout = nn.Dropout(config.dropout_rate)
        self.base_head = nn.Linear(config.d_model, len(ERROR_DETECTION_LABELS))
        self.deletion_head = nn.Linear(config.d_model, 1)
        self.post_init()

    def _init_weights(self, module: nn.Module) -> None:
        """LongT5's initialisation; the heads get T5's ``d_model ** -0.5`` scale (the generic one is 1.0 here)."""
        super()._init_weights(module)
        if module is self.base_head or module is self.deletion_head:
            init.normal_(module.weight, mean=0.0, std=self.config.initializer_factor * self.config.d_model**-0.5)
            init.zeros_(module.bias)

    def get_input_embeddings(self) -> nn.Embedding:
        return self.shared

    def set_input_embeddings(self, new_embeddings: nn.Embedding) -> None:
        self.shared = new_embeddings
        self.encoder.set_input_embeddings(new_embeddings)

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        base_labels: torch.Tensor | None = None,
        deletion_labels: torch.Tensor | None = None,
        output_attentions: bool | None = None,
        output_hidden_states: bool | None = None,
    ) -> EnbedErrorDetectionOutput:
        """Per-token error logits and a per-read error score for ``[CLS] read [SEP]`` inputs.

        Args:
            input_ids / attention_mask: ``(B, L)``, right- or left-padded with ``[PAD]``.
            base_labels: ``(B, L)`` int64, the label of each base token (0..3), -100 elsewhere (``[CLS]``,
                ``[SEP]``, padding).
            deletion_labels: ``(B, L)`` int64 or float, 1 where a base is missing right before the token, 0 where
                not, -100 where undefined (``[CLS]``, padding).

        The loss is ``base_loss + deletion_loss``, equally weighted: the cross-entropy of the base labels and the
        binary cross-entropy of the deletion labels, each summed over its own labelled tokens and divided by their
        count (a read has ``L`` bases and ``L + 1`` boundaries, so both tasks weigh about the same per read). Either
        label tensor may be omitted; its term is then absent. ``config.error_label_weight`` (default 1) multiplies
        the terms of error labels (substituted / inserted / unreadable bases, missing bases): errors are ~0.5% of
        a read's bases, and with equal weights the arg-max is "correct" almost everywhere.

        ``error_score`` ``(B,)`` = ``1 - prod P(correct) * prod (1 - P(deletion))`` over the read's base tokens
        (not ``[CLS]`` / ``[SEP]`` / padding) and boundary tokens (base tokens and ``[SEP]``), computed from
        log-probabilities (``-expm1(sum log ...)``) so long reads do not underflow.
        """
        encoded = self.encoder(
            input_ids=input_ids, attention_mask=attention_mask, output_attentions=output_attentions,
            output_hidden_states=output_hidden_states, return_dict=True,
        )
        hidden = self.dropout(encoded.last_hidden_state)
        base_logits = self.base_head(hidden)
        deletion_logits = self.deletion_head(hidden).squeeze(-1)

        real = torch.ones_like(input_ids, dtype=torch.bool) if attention_mask is None else attention_mask.bool()
        boundary = real & (input_ids != self.config.cls_token_id) & (input_ids != self.config.pad_token_id)
        base = boundary & (input_ids != self.config.sep_token_id)
        log_correct = F.log_softmax(base_logits.float(), dim=-1)[..., 0]
        log_no_deletion = F.logsigmoid(-deletion_logits.float())
        log_clean = (log_correct * base).sum(-1) + (log_no_deletion * boundary).sum(-1)
        error_score = -torch.expm1(log_clean)

        base_loss = deletion_loss = None
        error_weight = float(getattr(self.config, "error_label_weight", 1.0))
        if base_labels is not None:
            labelled = (base_labels != -100).sum().clamp(min=1)
            class_weights = torch.full((len(ERROR_DETECTION_LABELS),), error_weight, device=base_logits.device)
            class_weights[0] = 1.0  # label 0: the base is correct
            base_loss = F.cross_entropy(
                base_logits.float().flatten(0, 1), base_labels.flatten().long(), weight=class_weights,
                ignore_index=-100, reduction="sum",
            ) / labelled
        if deletion_labels is not None:
            labelled_boundary = deletion_labels != -100
            per_token = F.binary_cross_entropy_with_logits(
                deletion_logits.float(), deletion_labels.float().clamp(min=0), reduction="none",
                pos_weight=torch.tensor(error_weight, device=deletion_logits.device),
            )
            deletion_loss = (per_token * labelled_boundary).sum() / labelled_boundary.sum().clamp(min=1)
        terms = [term for term in (base_loss, deletion_loss) if term is not None]
        return EnbedErrorDetectionOutput(
            loss=sum(terms) if terms else None,
            base_loss=base_loss,
            deletion_loss=deletion_loss,
            base_logits=base_logits,
            deletion_logits=deletion_logits,
            error_score=error_score,
            clean_log_probability=log_clean,
            hidden_states=encoded.hidden_states,
            attentions=encoded.attentions,
        )


__all__ = [
    "ENCODER_ATTENTION",
    "ERROR_DETECTION_LABELS",
    "EnbedErrorDetectionOutput",
    "EnbedForConditionalGeneration",
    "EnbedForErrorDetection",
    "EnbedSeq2SeqOutput",
    "enbed_config",
]
