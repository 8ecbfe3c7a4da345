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
  environment with ``AutoModelForSeq2SeqLM`` (and ``LongT5EncoderModel`` for embeddings), no remote code.

This file is copied into saved model folders: it imports only torch and transformers.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from transformers import LongT5Config, LongT5ForConditionalGeneration
from transformers.modeling_outputs import Seq2SeqLMOutput

ENCODER_ATTENTION = ("local", "transient-global")
"""LongT5's sub-quadratic encoder attentions (the decoder attends fully: its targets are short spans)."""


def enbed_config(
    tokenizer_fields: dict,
    num_sentinels: int,
    *,
    hidden_size: int,
    num_hidden_layers: int,
    num_decoder_layers: int,
    num_attention_heads: int,
    intermediate_size: int,
    dropout: float,
    encoder_attention: str = "transient-global",
    local_radius: int = 127,
    global_block_size: int = 16,
) -> LongT5Config:
    """A LongT5 config for a character tokenizer whose vocabulary is followed by ``num_sentinels`` T5 sentinels.

    ``tokenizer_fields``: ``BarcodeTokenizer.model_config_kwargs()`` (vocabulary size, special ids, scheme,
    ``max_bp``): the tokenizer stays described in the model's config. ``[SEP]`` ends sequences (T5's EOS) and
    ``[PAD]`` starts the decoder (T5's convention). The feed-forward is T5 v1.1's gated GELU.
    """
    if encoder_attention not in ENCODER_ATTENTION:
        raise ValueError(f"encoder_attention must be one of {ENCODER_ATTENTION}, got {encoder_attention!r}")
    if hidden_size % num_attention_heads:
        raise ValueError(f"hidden_size ({hidden_size}) must be divisible by num_attention_heads ({num_attention_heads})")
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
    says; equal to ``loss`` (ENBED has no auxiliary term). contrastive_loss: always ``None``.
    """

    reconstruction_loss: torch.Tensor | None = None
    contrastive_loss: torch.Tensor | None = None


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


__all__ = ["ENCODER_ATTENTION", "EnbedForConditionalGeneration", "EnbedSeq2SeqOutput", "enbed_config"]
