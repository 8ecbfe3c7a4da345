"""The original BarcodeMAE pretraining arrangement built from plain transformers BERT classes: the speed baseline.

Safari et al. (2025) train BarcodeMAE as two stock Hugging Face models glued together: a ``BertModel`` encoder run
on the gathered *visible* tokens (original position ids, rows padded with ``[UNK]`` and attention 0), its outputs
scattered back to full length, masked positions filled with the decoder's word embedding of token 0, and a
``BertForTokenClassification`` decoder fed ``inputs_embeds`` whose classifier predicts the vocabulary (labels
-100 on unmasked positions). This module rebuilds that arrangement from transformers' classes (SDPA attention) so
``bench_pretraining.py`` can time our ``BarcodeMAEForPreTraining`` against it on identical batches and masks.
It is written from the description above, not copied from the authors' repository.
"""

from __future__ import annotations

import torch
from torch import nn
from transformers import BertConfig, BertForTokenClassification, BertModel

UNK_TOKEN_ID = 1
IGNORE_INDEX = -100


def bert_config(
    vocab_size: int, hidden_size: int, num_layers: int, num_heads: int, intermediate_size: int,
    max_position_embeddings: int = 512, num_labels: int = 2,
) -> BertConfig:
    """A BERT config with SDPA attention, matching BarcodeMAEConfig's widths, activations and dropouts."""
    config = BertConfig(
        vocab_size=vocab_size, hidden_size=hidden_size, num_hidden_layers=num_layers,
        num_attention_heads=num_heads, intermediate_size=intermediate_size,
        max_position_embeddings=max_position_embeddings, num_labels=num_labels, pad_token_id=0,
    )
    config._attn_implementation = "sdpa"
    return config


class BertReferenceMAE(nn.Module):
    """BertModel encoder on visible tokens + BertForTokenClassification decoder on ``inputs_embeds``.

    ``forward(input_ids, attention_mask, masked_positions)`` returns the decoder's loss (cross-entropy over the
    masked positions) and logits, like ``BarcodeMAEForPreTraining`` in ``mae`` mode.
    """

    def __init__(
        self, vocab_size: int, hidden_size: int = 768, num_layers: int = 6, decoder_layers: int = 6,
        num_heads: int = 12, intermediate_size: int = 3072, max_position_embeddings: int = 512,
    ):
        super().__init__()
        self.encoder = BertModel(
            bert_config(vocab_size, hidden_size, num_layers, num_heads, intermediate_size, max_position_embeddings),
            add_pooling_layer=False,
        )
        self.decoder = BertForTokenClassification(
            bert_config(
                vocab_size, hidden_size, decoder_layers, num_heads, intermediate_size, max_position_embeddings,
                num_labels=vocab_size,
            )
        )

    def forward(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor, masked_positions: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Loss and logits for one batch; ``masked_positions`` is a boolean ``(batch, length)`` mask."""
        batch, length = input_ids.shape
        visible = attention_mask.bool() & ~masked_positions
        count = visible.sum(dim=1)
        width = int(count.max())
        # Visible positions first, in order (stable sort), cut to the widest row; the rest is [UNK] padding.
        index = torch.argsort((~visible).to(torch.int8), dim=1, stable=True)[:, :width]
        valid = torch.arange(width, device=input_ids.device).unsqueeze(0) < count.unsqueeze(1)
        visible_ids = torch.where(valid, input_ids.gather(1, index), torch.full_like(index, UNK_TOKEN_ID))
        encoded = self.encoder(
            input_ids=visible_ids, attention_mask=valid.long(), position_ids=index
        ).last_hidden_state

        full = encoded.new_zeros(batch, length, encoded.shape[-1])
        full[visible] = encoded[valid]
        full[masked_positions] = self.decoder.bert.embeddings.word_embeddings.weight[0].to(full.dtype)
        labels = input_ids.masked_fill(~masked_positions, IGNORE_INDEX)
        positions = torch.arange(length, device=input_ids.device).expand(batch, length)
        out = self.decoder(inputs_embeds=full, attention_mask=attention_mask, position_ids=positions, labels=labels)
        return out.loss, out.logits
