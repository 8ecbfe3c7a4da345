"""BarcodeMAE / BarcodeBERT models for DNA barcodes.

BarcodeMAE (Safari et al. 2025) closes the pretraining/inference gap of masked language modelling: ``[MASK]``
never reaches the encoder. The encoder runs on the *visible* tokens only (gathered by index, keeping their
original position ids), so its cost scales with the visible count; a decoder receives the encoder outputs
scattered back to full length, with a learned mask embedding at masked positions, and predicts the masked
tokens. ``pretraining_objective="mlm"`` is BarcodeBERT: BERT 80/10/10 corruption, everything through the encoder,
no decoder. The encoder is BERT-compatible (post-LayerNorm, learned absolute positions) so the authors'
checkpoints convert exactly; attention uses ``torch.nn.functional.scaled_dot_product_attention``.

This file is copied into saved model folders: it imports only torch, transformers and its siblings (the config and
the taxonomy terms).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import nn
from transformers import PreTrainedModel
from transformers import initialization as init
from transformers.activations import ACT2FN
from transformers.modeling_layers import GradientCheckpointingLayer
from transformers.modeling_outputs import BaseModelOutputWithPooling, SequenceClassifierOutput
from transformers.utils import ModelOutput, logging

from .configuration_barcodemae import BarcodeMAEConfig
from .taxonomy_losses import (
    TaxonomyHead,
    batch_hard_triplet_loss,
    same_taxon_pair_loss,
    taxon_positive_mask,
    taxonomy_ce_loss,
)

logger = logging.get_logger(__name__)


# ------------------------------------------------------------------------------------------------- masking
def maskable_positions(input_ids: torch.Tensor, attention_mask: torch.Tensor, config: BarcodeMAEConfig) -> torch.Tensor:
    """Tokens that may be masked: real (non-pad) tokens that are not special ([CLS], [SEP], ...)."""
    special = torch.tensor(config.special_token_ids, device=input_ids.device)
    return attention_mask.bool() & ~torch.isin(input_ids, special)


def random_token_mask(
    maskable: torch.Tensor, mask_ratio: float, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Uniform random mask with an exact per-sequence budget of ``round(mask_ratio * n_maskable)`` tokens.

    Exact budgets give every sequence of equal length the same visible count, so MAE batches stay dense.
    At least one maskable token stays visible and at least one is masked (when there are two or more).
    """
    counts = maskable.sum(dim=1)
    budget = torch.round(counts.float() * mask_ratio).long()
    budget = torch.minimum(torch.clamp(budget, min=1), torch.clamp(counts - 1, min=0))
    scores = torch.rand(maskable.shape, device=maskable.device, generator=generator)
    scores = scores.masked_fill(~maskable, 2.0)
    ranks = scores.argsort(dim=1).argsort(dim=1)
    return ranks < budget.unsqueeze(1)


def random_regular_tokens(
    shape: torch.Size, config: BarcodeMAEConfig, device: torch.device, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Uniform ids over the vocabulary minus every special token, wherever the specials sit (BPE files differ).

    Draw from ``vocab_size - n_special`` slots, then step over each special id in increasing order.
    """
    specials = sorted(
        {
            i
            for i in (
                config.pad_token_id,
                config.unk_token_id,
                config.cls_token_id,
                config.sep_token_id,
                config.mask_token_id,
            )
            if i is not None
        }
    )
    ids = torch.randint(0, config.vocab_size - len(specials), shape, device=device, generator=generator)
    for special in specials:
        ids = ids + (ids >= special).long()
    return ids


def corrupt_for_mlm(
    input_ids: torch.Tensor, masked: torch.Tensor, config: BarcodeMAEConfig, generator: torch.Generator | None = None
) -> torch.Tensor:
    """BERT 80/10/10: masked tokens become [MASK], a random non-special token, or stay unchanged."""
    draw = torch.rand(input_ids.shape, device=input_ids.device, generator=generator)
    to_mask = masked & (draw < config.mlm_mask_token_prob)
    to_random = (
        masked
        & (draw >= config.mlm_mask_token_prob)
        & (draw < config.mlm_mask_token_prob + config.mlm_random_token_prob)
    )
    random_ids = random_regular_tokens(input_ids.shape, config, input_ids.device, generator)
    corrupted = torch.where(to_mask, torch.full_like(input_ids, config.mask_token_id), input_ids)
    return torch.where(to_random, random_ids, corrupted)


def gather_visible(
    visible: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Indices of the visible tokens of each row, in order, padded to the row maximum.

    Returns ``(index, valid)``: ``index[b, j]`` is the original position of the j-th visible token of row b
    (its position id), ``valid`` marks real entries. A stable sort puts visible positions first, so no loop.
    """
    count = visible.sum(dim=1)
    width = int(count.max().item()) if visible.numel() else 0
    order = torch.argsort((~visible).to(torch.int8), dim=1, stable=True)[:, :width]
    valid = torch.arange(width, device=visible.device).unsqueeze(0) < count.unsqueeze(1)
    return order, valid


# ----------------------------------------------------------------------------------------------- modules
class BarcodeMAEEmbeddings(nn.Module):
    """Token + learned absolute position embeddings, LayerNorm, dropout (BERT layout)."""

    def __init__(self, config: BarcodeMAEConfig):
        super().__init__()
        self.word_embeddings = nn.Embedding(config.vocab_size, config.hidden_size, padding_idx=config.pad_token_id)
        self.position_embeddings = nn.Embedding(config.max_position_embeddings, config.hidden_size)
        self.LayerNorm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.dropout = nn.Dropout(config.hidden_dropout_prob)

    def forward(self, input_ids: torch.Tensor, position_ids: torch.Tensor) -> torch.Tensor:
        """Token + position embeddings ``(batch, length, hidden)`` of ids and their positions, both
        ``(batch, length)`` (the MAE encoder passes the visible tokens' original positions)."""
        embeddings = self.word_embeddings(input_ids) + self.position_embeddings(position_ids)
        return self.dropout(self.LayerNorm(embeddings))


class BarcodeMAEAttention(nn.Module):
    """Multi-head self-attention with a fused QKV projection and SDPA; post-LayerNorm residual."""

    def __init__(self, hidden_size: int, num_heads: int, config: BarcodeMAEConfig):
        super().__init__()
        self.num_heads = num_heads
        self.head_dim = hidden_size // num_heads
        self.qkv = nn.Linear(hidden_size, 3 * hidden_size)
        self.output = nn.Linear(hidden_size, hidden_size)
        self.LayerNorm = nn.LayerNorm(hidden_size, eps=config.layer_norm_eps)
        self.dropout = nn.Dropout(config.hidden_dropout_prob)
        self.attention_dropout = config.attention_probs_dropout_prob

    def forward(self, hidden_states: torch.Tensor, attention_mask: torch.Tensor | None) -> torch.Tensor:
        """Self-attention with residual and LayerNorm: ``(batch, length, width)`` to the same shape;
        ``attention_mask`` is :func:`sdpa_key_mask`'s ``(batch, 1, 1, length)`` boolean or ``None``."""
        batch, length, width = hidden_states.shape
        qkv = self.qkv(hidden_states).view(batch, length, 3, self.num_heads, self.head_dim).permute(2, 0, 3, 1, 4)
        context = F.scaled_dot_product_attention(
            qkv[0], qkv[1], qkv[2], attn_mask=attention_mask, dropout_p=self.attention_dropout if self.training else 0.0
        )
        context = context.transpose(1, 2).reshape(batch, length, width)
        return self.LayerNorm(hidden_states + self.dropout(self.output(context)))


class BarcodeMAELayer(GradientCheckpointingLayer):
    """One post-LN transformer block (attention, then a two-layer feed-forward network)."""

    def __init__(self, hidden_size: int, num_heads: int, intermediate_size: int, config: BarcodeMAEConfig):
        super().__init__()
        self.attention = BarcodeMAEAttention(hidden_size, num_heads, config)
        self.intermediate = nn.Linear(hidden_size, intermediate_size)
        self.activation = ACT2FN[config.hidden_act]
        self.output = nn.Linear(intermediate_size, hidden_size)
        self.LayerNorm = nn.LayerNorm(hidden_size, eps=config.layer_norm_eps)
        self.dropout = nn.Dropout(config.hidden_dropout_prob)

    def forward(self, hidden_states: torch.Tensor, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        """``(batch, length, width)`` to the same shape; ``attention_mask`` as in :class:`BarcodeMAEAttention`."""
        hidden_states = self.attention(hidden_states, attention_mask)
        feed_forward = self.output(self.activation(self.intermediate(hidden_states)))
        return self.LayerNorm(hidden_states + self.dropout(feed_forward))


class BarcodeMAEStack(nn.Module):
    """A stack of layers; returns the last hidden state and, on request, every layer's output."""

    def __init__(
        self, num_layers: int, hidden_size: int, num_heads: int, intermediate_size: int, config: BarcodeMAEConfig
    ):
        super().__init__()
        self.layer = nn.ModuleList(
            BarcodeMAELayer(hidden_size, num_heads, intermediate_size, config) for _ in range(num_layers)
        )

    def forward(
        self, hidden_states: torch.Tensor, attention_mask: torch.Tensor | None, output_hidden_states: bool = False
    ) -> tuple[torch.Tensor, tuple[torch.Tensor, ...] | None]:
        """The last layer's output ``(batch, length, width)`` and, with ``output_hidden_states``, the input and
        every layer's output (``num_layers + 1`` tensors of that shape)."""
        all_states = (hidden_states,) if output_hidden_states else None
        for layer in self.layer:
            hidden_states = layer(hidden_states, attention_mask)
            if output_hidden_states:
                all_states = all_states + (hidden_states,)
        return hidden_states, all_states


def sdpa_key_mask(attention_mask: torch.Tensor) -> torch.Tensor | None:
    """Boolean key-padding mask broadcastable over heads and queries; ``None`` when nothing is padded.

    ``None`` lets SDPA pick its fastest (flash) kernel on GPU for unpadded batches. A row with no real token at
    all (an empty slot in a batch) may attend everywhere: an all-False row would make SDPA return NaN, and the
    row's outputs are ignored anyway (its pooled embedding is zero).
    """
    if bool(attention_mask.all()):
        return None
    keys = attention_mask.bool()
    keys = keys | ~keys.any(dim=1, keepdim=True)
    return keys[:, None, None, :]


def mean_pool(hidden_states: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """Mean over non-pad tokens: the barcode embedding used by every evaluation."""
    weights = attention_mask.to(hidden_states.dtype).unsqueeze(-1)
    return (hidden_states * weights).sum(dim=1) / weights.sum(dim=1).clamp(min=1.0)


def pool_representation(
    hidden_states: torch.Tensor, attention_mask: torch.Tensor, representation: str
) -> torch.Tensor:
    """One vector ``(batch, hidden)`` per row of token states ``(batch, length, hidden)``, as
    ``config.representation`` says: the state at position 0 (``"cls"``: the [CLS] token the tokenizer puts first
    and masking never hides), the mean over the non-pad tokens of ``attention_mask`` ``(batch, length)``
    (``"tokens_with_cls"``), or that mean without position 0 (``"tokens"``)."""
    if representation == "cls":
        return hidden_states[:, 0]
    if representation == "tokens":
        attention_mask = attention_mask * (torch.arange(attention_mask.shape[1], device=attention_mask.device) > 0)
    return mean_pool(hidden_states, attention_mask)


def view_contrastive_loss(
    embeddings: torch.Tensor,
    barcode_ids: torch.Tensor | None,
    temperature: float,
    positives: torch.Tensor | None = None,
) -> torch.Tensor:
    """InfoNCE between augmented views of the same barcodes within a batch (SimCLR's NT-Xent, any view count).

    ``embeddings`` ``(batch, hidden)``: pooled embeddings of the rows; ``barcode_ids`` ``(batch,)``: rows with equal
    ids are views of one barcode (positives), every other row is a negative. ``positives`` ``(batch, batch)`` bool
    replaces that rule when given (its diagonal is ignored; ``barcode_ids`` may then be ``None``): the ``"supcon"``
    taxonomy term adds the rows of the same taxon (``taxonomy_losses.taxon_positive_mask``). Each row's loss is the
    mean negative log-probability of its positives under a softmax over cosine similarities / ``temperature``
    (itself excluded); rows without a positive do not count. Returns a scalar (0 when no row has a positive).
    """
    normalised = F.normalize(embeddings.float(), dim=-1)
    similarity = normalised @ normalised.T / temperature
    itself = torch.eye(len(embeddings), dtype=torch.bool, device=embeddings.device)
    log_prob = similarity.masked_fill(itself, float("-inf")).log_softmax(dim=1)
    if positives is None:
        positives = barcode_ids.unsqueeze(0) == barcode_ids.unsqueeze(1)
    positives = positives & ~itself
    counts = positives.sum(dim=1)
    per_row = -log_prob.masked_fill(~positives, 0.0).sum(dim=1) / counts.clamp(min=1)
    has_positive = counts > 0
    return (per_row * has_positive).sum() / has_positive.sum().clamp(min=1)


def composition_loss(logits: torch.Tensor, profiles: torch.Tensor) -> torch.Tensor:
    """KL divergence from each row's k-mer frequency profile to the softmax of its predicted logits, batch mean.

    ``logits`` ``(batch, 4**k)``: the composition head on the pooled embeddings; ``profiles`` ``(batch, 4**k)``:
    frequencies summing to 1 (a row with no complete k-mer is all zeros and adds nothing). Returns a scalar, 0 when
    every prediction is exact.
    """
    log_predicted = F.log_softmax(logits.float(), dim=-1)
    return F.kl_div(log_predicted, profiles.float(), reduction="batchmean")


LEGACY_WEIGHT_NAMES: dict[str, str] = {
    r"^lm_head\.decoder\.": "lm_head.vocab_projection.",
    r"^lm_head\.transform\.0\.": "lm_head.dense.",
    r"^lm_head\.transform\.2\.": "lm_head.layer_norm.",
}
"""Weight-name patterns of folders saved before the prediction head's parts were named, and their names now
(``from_pretrained`` renames them on load)."""


class BarcodeMAEPreTrainedModel(PreTrainedModel):
    """Weight initialisation and loading conventions shared by all BarcodeMAE models."""

    config_class = BarcodeMAEConfig
    config: BarcodeMAEConfig
    base_model_prefix = "barcodemae"
    main_input_name = "input_ids"
    supports_gradient_checkpointing = True
    _supports_sdpa = True
    _no_split_modules: ClassVar[list[str]] = ["BarcodeMAELayer"]

    auto_classes: ClassVar[dict[str, str]] = {"AutoModel": "BarcodeMAEModel"}
    """The Auto classes a saved folder of this model serves, and the class each builds: an encoder folder only the
    encoder, a pretraining folder also the pretraining and classification heads (its weights hold them)."""

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path, *model_args, **kwargs):
        """``PreTrainedModel.from_pretrained``, also for folders saved before the head's parts had names.

        Their weights (``lm_head.decoder``, ``lm_head.transform.0`` / ``.2``: see :data:`LEGACY_WEIGHT_NAMES`) are
        renamed on load; the model then saves under the current names (transformers would otherwise write the
        loaded names back).
        """
        kwargs["key_mapping"] = {**LEGACY_WEIGHT_NAMES, **(kwargs.get("key_mapping") or {})}
        loaded = super().from_pretrained(pretrained_model_name_or_path, *model_args, **kwargs)
        model = loaded[0] if isinstance(loaded, tuple) else loaded
        model._weight_conversions = None  # saving reverts these renames unless they are forgotten
        return loaded

    def save_pretrained(self, save_directory, *args, **kwargs) -> None:
        """Save, recording :attr:`auto_classes` in ``auto_map`` so those Auto classes load the folder remotely."""
        module = type(self).__module__.rsplit(".", 1)[-1]
        self.config.auto_map = {
            "AutoConfig": f"{module.replace('modeling_', 'configuration_')}.BarcodeMAEConfig",
            **{auto: f"{module}.{name}" for auto, name in self.auto_classes.items()},
        }
        super().save_pretrained(save_directory, *args, **kwargs)

    def _init_weights(self, module: nn.Module) -> None:
        super()._init_weights(module)
        if isinstance(module, BarcodeMAEDecoder):
            init.normal_(module.mask_embedding, mean=0.0, std=self.config.initializer_range)


# ------------------------------------------------------------------------------------------------ models
class BarcodeMAEModel(BarcodeMAEPreTrainedModel):
    """The encoder: token ids to hidden states, with a pooled barcode embedding as ``pooler_output``.

    ``pooler_output`` ``(batch, hidden)`` is :func:`pool_representation` of the last block's states
    (``config.representation``: by default the mean over non-pad tokens), or the average of that of every hidden
    state when ``config.pooled_layers == "mean"``; ``last_hidden_state`` ``(batch, length, hidden)`` is always the
    last block's (what ``pipeline("feature-extraction")`` returns per token). One forward pass sees one reading
    frame of its tokens; with ``config.pooled_frames == "all"`` the barcode embedding is the mean of
    ``pooler_output`` over the barcode tokenized from each of its first k bases, which barcodemae's embedding
    functions compute (``tokenizer(barcodes, frame_offset=i)`` for ``i < k``).
    """

    # Loading the encoder from a pretraining folder drops the MAE decoder and the pretraining heads by design.
    _keys_to_ignore_on_load_unexpected: ClassVar[list[str]] = [
        r"^decoder\.",
        r"^lm_head\.",
        r"^composition_head\.",
        r"^taxonomy_head\.",
    ]

    def __init__(self, config: BarcodeMAEConfig):
        super().__init__(config)
        self.embeddings = BarcodeMAEEmbeddings(config)
        self.encoder = BarcodeMAEStack(
            config.num_hidden_layers, config.hidden_size, config.num_attention_heads, config.intermediate_size, config
        )
        self.post_init()

    def get_input_embeddings(self) -> nn.Embedding:
        return self.embeddings.word_embeddings

    def set_input_embeddings(self, value: nn.Embedding) -> None:
        self.embeddings.word_embeddings = value

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.Tensor | None = None,
        output_hidden_states: bool | None = None,
        return_dict: bool | None = None,
        **kwargs,
    ) -> BaseModelOutputWithPooling | tuple:
        """Encode ``input_ids`` ``(batch, length)``.

        ``attention_mask`` ``(batch, length)`` (default: non-pad tokens); ``position_ids`` ``(batch, length)`` lets
        the MAE encoder keep the original positions of the visible tokens (default ``0..length-1``). Returns
        ``last_hidden_state`` ``(batch, length, hidden)``, ``pooler_output`` ``(batch, hidden)`` (see the class)
        and, on request, ``hidden_states``: ``num_hidden_layers + 1`` tensors ``(batch, length, hidden)``.
        """
        kwargs.pop("token_type_ids", None)  # pipelines may pass it; barcodes have a single segment
        if kwargs:
            raise TypeError(f"BarcodeMAEModel.forward got unexpected arguments {sorted(kwargs)}")
        output_hidden_states = (
            output_hidden_states if output_hidden_states is not None else self.config.output_hidden_states
        )
        return_dict = return_dict if return_dict is not None else self.config.return_dict
        if input_ids.dim() != 2:
            raise ValueError(f"input_ids must be (batch, length), got shape {tuple(input_ids.shape)}")
        if input_ids.shape[1] > self.config.max_position_embeddings:
            raise ValueError(
                f"sequence of {input_ids.shape[1]} tokens exceeds max_position_embeddings="
                f"{self.config.max_position_embeddings}; truncate the barcode (the tokenizer does this at max_bp)"
            )
        if attention_mask is None:
            attention_mask = (input_ids != self.config.pad_token_id).long()
        if position_ids is None:
            position_ids = torch.arange(input_ids.shape[1], device=input_ids.device).expand_as(input_ids)
        hidden = self.embeddings(input_ids, position_ids)
        pool_every_layer = self.config.pooled_layers == "mean"
        hidden, all_states = self.encoder(
            hidden, sdpa_key_mask(attention_mask), bool(output_hidden_states) or pool_every_layer
        )
        representation = self.config.representation
        if pool_every_layer:  # pooling is linear: the mean of pooled states, without a (layers, B, L, H) stack
            pooled = sum(pool_representation(state, attention_mask, representation) for state in all_states)
            pooled = pooled / len(all_states)
        else:
            pooled = pool_representation(hidden, attention_mask, representation)
        if not output_hidden_states:
            all_states = None
        if not return_dict:
            return (hidden, pooled) + ((all_states,) if output_hidden_states else ())
        return BaseModelOutputWithPooling(last_hidden_state=hidden, pooler_output=pooled, hidden_states=all_states)


class BarcodeMAEDecoder(nn.Module):
    """MAE decoder: encoder outputs at visible positions, a learned mask embedding elsewhere, own positions."""

    def __init__(self, config: BarcodeMAEConfig):
        super().__init__()
        width = config.decoder_hidden_size
        projects = width != config.hidden_size or config.decoder_projection
        self.projection = nn.Linear(config.hidden_size, width) if projects else nn.Identity()
        self.mask_embedding = nn.Parameter(torch.zeros(width))
        self.position_embeddings = nn.Embedding(config.max_position_embeddings, width)
        self.LayerNorm = nn.LayerNorm(width, eps=config.layer_norm_eps)
        self.dropout = nn.Dropout(config.hidden_dropout_prob)
        self.layers = BarcodeMAEStack(
            config.decoder_num_hidden_layers,
            width,
            config.decoder_num_attention_heads,
            config.decoder_intermediate_size,
            config,
        )

    def forward(
        self,
        visible_states: torch.Tensor,
        visible_index: torch.Tensor,
        visible: torch.Tensor,
        attention_mask: torch.Tensor,
    ) -> torch.Tensor:
        """Decoder states ``(batch, length, decoder_hidden)`` at every position.

        ``visible_states`` ``(batch, num_visible, hidden)``: encoder outputs of the gathered visible tokens, whose
        original positions are ``visible_index`` ``(batch, num_visible)``; ``visible`` and ``attention_mask``
        ``(batch, length)``: which positions were visible, and which are real tokens.
        """
        batch, length = visible.shape
        projected = self.projection(visible_states)
        scattered = projected.new_zeros(batch, length, projected.shape[-1])
        scattered.scatter_(1, visible_index.unsqueeze(-1).expand_as(projected), projected)
        hidden = torch.where(visible.unsqueeze(-1), scattered, self.mask_embedding.to(projected.dtype))
        positions = torch.arange(length, device=hidden.device)
        hidden = self.dropout(self.LayerNorm(hidden + self.position_embeddings(positions)))
        hidden, _ = self.layers(hidden, sdpa_key_mask(attention_mask))
        return hidden


class BarcodeMAEPredictionHead(nn.Module):
    """Vocabulary projection, optionally after BERT's transform (``dense``, activation, ``layer_norm``).

    BarcodeBERT's head has the transform (``config.prediction_head_transform``); BarcodeMAE's decoder output goes
    straight to ``vocab_projection``.
    """

    def __init__(self, config: BarcodeMAEConfig, width: int):
        super().__init__()
        self.dense = nn.Linear(width, width) if config.prediction_head_transform else None
        self.activation = ACT2FN[config.hidden_act]
        self.layer_norm = (
            nn.LayerNorm(width, eps=config.layer_norm_eps) if config.prediction_head_transform else None
        )
        self.vocab_projection = nn.Linear(width, config.vocab_size)

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        """Vocabulary logits ``(..., vocab_size)`` of hidden states ``(..., width)`` (any leading shape)."""
        if self.dense is not None:
            hidden_states = self.layer_norm(self.activation(self.dense(hidden_states)))
        return self.vocab_projection(hidden_states)


@dataclass
class BarcodeMAEPreTrainingOutput(ModelOutput):
    """Pretraining output.

    loss: what pretraining minimises: ``reconstruction_loss + config.contrastive_weight * contrastive_loss +
    config.composition_weight * composition_loss + config.taxonomy_weight * taxonomy_weight_scale * taxonomy_loss``
    (the terms that apply).
    reconstruction_loss: cross-entropy over masked tokens only (normalised as the forward pass says).
    contrastive_loss: :func:`view_contrastive_loss` of the pooled embeddings when the forward pass got
    ``barcode_ids`` and the config's weight is positive, else ``None``.
    composition_loss: :func:`composition_loss` when the forward pass got ``composition_targets`` and the config's
    ``composition_weight`` is positive, else ``None``.
    taxonomy_loss: the ``config.taxonomy_loss`` term (``taxonomy_losses``) when the forward pass got
    ``taxon_labels`` and the term is on, else ``None``. taxonomy_accuracy: for ``"ce"``, the head's accuracy on the
    labelled rows (0 without any), else ``None``.
    logits: ``(num_masked, vocab)``, always: the masked tokens in row-major order (``logits[i]`` predicts
    ``input_ids[masked_positions][i]``). full_logits: ``(batch, length, vocab)`` for every position, only when the
    forward pass is called with ``full_logits=True`` (else ``None``). masked_positions: the mask that was used.
    encoder_last_hidden_state: encoder output (visible tokens only in ``mae`` mode).
    """

    loss: torch.Tensor | None = None
    reconstruction_loss: torch.Tensor | None = None
    contrastive_loss: torch.Tensor | None = None
    composition_loss: torch.Tensor | None = None
    taxonomy_loss: torch.Tensor | None = None
    taxonomy_accuracy: torch.Tensor | None = None
    logits: torch.Tensor | None = None
    full_logits: torch.Tensor | None = None
    masked_positions: torch.Tensor | None = None
    encoder_last_hidden_state: torch.Tensor | None = None
    hidden_states: tuple[torch.Tensor, ...] | None = None


class BarcodeMAEForPreTraining(BarcodeMAEPreTrainedModel):
    """Encoder + (MAE decoder) + vocabulary head, trained with cross-entropy on masked tokens (and the optional
    contrastive, composition and taxonomy terms of the config)."""

    auto_classes: ClassVar[dict[str, str]] = {
        "AutoModel": "BarcodeMAEModel",
        "AutoModelForPreTraining": "BarcodeMAEForPreTraining",
        "AutoModelForSequenceClassification": "BarcodeMAEForSequenceClassification",
    }

    def __init__(self, config: BarcodeMAEConfig):
        super().__init__(config)
        self.barcodemae = BarcodeMAEModel(config)
        is_mae = config.pretraining_objective == "mae"
        self.decoder = BarcodeMAEDecoder(config) if is_mae else None
        self.lm_head = BarcodeMAEPredictionHead(config, config.decoder_hidden_size if is_mae else config.hidden_size)
        self.composition_head = (
            nn.Linear(config.hidden_size, 4**config.composition_kmer_size) if config.composition_weight > 0 else None
        )
        self.taxonomy_head = None
        if config.taxonomy_loss == "ce":
            if config.taxonomy_num_classes < 2:
                raise ValueError(
                    f"taxonomy_loss='ce' needs taxonomy_num_classes >= 2 (the classes of the pretraining labels), "
                    f"got {config.taxonomy_num_classes}"
                )
            self.taxonomy_head = TaxonomyHead(config.hidden_size, config.taxonomy_num_classes, config.layer_norm_eps)
        self.post_init()

    def get_output_embeddings(self) -> nn.Linear:
        return self.lm_head.vocab_projection

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        masked_positions: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        output_hidden_states: bool | None = None,
        return_dict: bool | None = None,
        full_logits: bool = False,
        num_items_in_batch: float | None = None,
        barcode_ids: torch.Tensor | None = None,
        composition_targets: torch.Tensor | None = None,
        taxon_labels: torch.Tensor | None = None,
        taxonomy_weight_scale: float = 1.0,
        **kwargs,
    ) -> BarcodeMAEPreTrainingOutput | tuple:
        """Mask (uniformly at ``config.mask_ratio`` unless ``masked_positions`` is given) and reconstruct.

        ``input_ids`` are the *uncorrupted* tokens; in ``mlm`` mode the 80/10/10 corruption happens here.
        ``labels`` default to ``input_ids``; only masked positions contribute to the loss.
        ``loss`` is the cross-entropy summed over the masked tokens and divided by ``num_items_in_batch`` when
        given (as in ``transformers``: the masked tokens of the whole optimiser step, over gradient-accumulation
        micro-batches and processes, so every token weighs the same however the step is split; ``1`` gives the
        sum), else by this batch's masked-token count (the mean).
        The vocabulary head runs on the masked tokens only (``logits``) unless ``full_logits=True`` also asks for
        every position's (``full_logits``): with a 4,101-token vocabulary, full ``(batch, length, vocab)`` logits and
        their softmax cost more than a small model itself.
        ``barcode_ids`` ``(batch,)``: rows with equal ids are augmented views of one barcode; with a positive
        ``config.contrastive_weight`` the pooled embeddings of the encoder's input (the visible tokens for the MAE,
        the corrupted sequence for the MLM) add the weighted :func:`view_contrastive_loss` (a mean over rows).
        ``composition_targets`` ``(batch, 4**config.composition_kmer_size)``: each row's k-mer frequency profile;
        with a positive ``config.composition_weight`` the composition head's prediction from the same pooled
        embeddings adds the weighted :func:`composition_loss`.
        ``taxon_labels`` ``(batch,)`` int64: each row's taxon id (-1: unlabelled; every view of a barcode carries its
        label); with ``config.taxonomy_loss`` on, the term of :meth:`taxonomy_term` on the encoder's [CLS] state (or
        its pooled embedding, ``config.taxonomy_on``) adds ``config.taxonomy_weight * taxonomy_weight_scale`` times
        itself. ``taxonomy_weight_scale`` in [0, 1] is the warmup factor of the training loop
        (``taxonomy_losses.taxonomy_warmup_scale`` of the step).
        """
        kwargs.pop("token_type_ids", None)
        if kwargs:
            raise TypeError(f"BarcodeMAEForPreTraining.forward got unexpected arguments {sorted(kwargs)}")
        return_dict = return_dict if return_dict is not None else self.config.return_dict
        if attention_mask is None:
            attention_mask = (input_ids != self.config.pad_token_id).long()
        maskable = maskable_positions(input_ids, attention_mask, self.config)
        if masked_positions is not None and masked_positions.shape != input_ids.shape:
            raise ValueError(
                f"masked_positions has shape {tuple(masked_positions.shape)}, input_ids {tuple(input_ids.shape)}"
            )
        if masked_positions is None:
            masked_positions = random_token_mask(maskable, self.config.mask_ratio)
        else:
            masked_positions = masked_positions.bool() & maskable
        if self.config.pretraining_objective == "mae":
            visible = attention_mask.bool() & ~masked_positions
            index, valid = gather_visible(visible)
            encoder_out = self.barcodemae(
                input_ids=input_ids.gather(1, index),
                attention_mask=valid.long(),
                position_ids=index,
                output_hidden_states=output_hidden_states,
                return_dict=True,
            )
            sequence = self.decoder(encoder_out.last_hidden_state, index, visible, attention_mask)
        else:
            encoder_out = self.barcodemae(
                input_ids=corrupt_for_mlm(input_ids, masked_positions, self.config),
                attention_mask=attention_mask,
                output_hidden_states=output_hidden_states,
                return_dict=True,
            )
            sequence = encoder_out.last_hidden_state
        targets = (input_ids if labels is None else labels)[masked_positions]
        if full_logits:
            all_logits = self.lm_head(sequence)
            logits = all_logits[masked_positions]
        else:
            all_logits, logits = None, self.lm_head(sequence[masked_positions])
        loss_sum = F.cross_entropy(logits.float(), targets, ignore_index=-100, reduction="sum")
        if num_items_in_batch is None:
            # Sum / count rather than a mean: a batch with nothing masked (all rows too short) gives 0, not NaN.
            loss = loss_sum / (targets != -100).sum().clamp(min=1)
        else:
            loss = loss_sum * (1.0 / num_items_in_batch)
        reconstruction_loss = loss
        contrastive, composition = None, None
        if barcode_ids is not None and self.config.contrastive_weight > 0:
            contrastive = view_contrastive_loss(
                encoder_out.pooler_output, barcode_ids, self.config.contrastive_temperature
            )
            loss = loss + self.config.contrastive_weight * contrastive
        if composition_targets is not None and self.composition_head is not None:
            composition = composition_loss(self.composition_head(encoder_out.pooler_output), composition_targets)
            loss = loss + self.config.composition_weight * composition
        taxonomy, taxonomy_accuracy = None, None
        if self.config.taxonomy_loss != "none":
            if taxon_labels is not None:
                if not 0.0 <= taxonomy_weight_scale <= 1.0:
                    raise ValueError(f"taxonomy_weight_scale must be in [0, 1], got {taxonomy_weight_scale}")
                taxonomy, taxonomy_accuracy = self.taxonomy_term(encoder_out, taxon_labels, barcode_ids)
                loss = loss + self.config.taxonomy_weight * taxonomy_weight_scale * taxonomy
            elif self.training:
                logger.warning_once(
                    f"taxonomy_loss={self.config.taxonomy_loss!r} but the batch has no taxon_labels: the taxonomy "
                    "term is left out"
                )
        output = BarcodeMAEPreTrainingOutput(
            loss=loss,
            reconstruction_loss=reconstruction_loss,
            contrastive_loss=contrastive,
            composition_loss=composition,
            taxonomy_loss=taxonomy,
            taxonomy_accuracy=taxonomy_accuracy,
            logits=logits,
            full_logits=all_logits,
            masked_positions=masked_positions,
            encoder_last_hidden_state=encoder_out.last_hidden_state,
            hidden_states=encoder_out.hidden_states,
        )
        return output if return_dict else output.to_tuple()

    def taxonomy_term(
        self, encoder_out: BaseModelOutputWithPooling, taxon_labels: torch.Tensor, barcode_ids: torch.Tensor | None
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """``config.taxonomy_loss`` of the encoder's output (``taxonomy_losses``), and the ``"ce"`` head's accuracy
        (``None`` for the other terms).

        The state is the encoder's last state at position 0 (``taxonomy_on="cls"``: the [CLS] token, which the MAE
        encoder always sees since masking never hides it) or ``pooler_output`` (``"pooled"``), ``(batch, hidden)``;
        ``taxon_labels`` ``(batch,)``, -1 unlabelled; ``barcode_ids`` ``(batch,)`` or ``None``: views of one barcode
        are positives of ``"supcon"`` too.
        """
        if taxon_labels.shape != encoder_out.pooler_output.shape[:1]:
            raise ValueError(
                f"taxon_labels has shape {tuple(taxon_labels.shape)}, expected one label per row "
                f"({encoder_out.pooler_output.shape[0]},)"
            )
        config = self.config
        if config.taxonomy_on == "cls":
            states = encoder_out.last_hidden_state[:, 0]
        else:
            states = encoder_out.pooler_output
        if config.taxonomy_loss == "ce":
            if self.taxonomy_head is None:
                raise ValueError(
                    "taxonomy_loss='ce' was set after this model was built, without its taxonomy_head: build the "
                    "model from a config that asks for it (from_pretrained(folder, taxonomy_loss='ce', "
                    "taxonomy_num_classes=N) adds a new head)"
                )
            return taxonomy_ce_loss(self.taxonomy_head(states), taxon_labels)
        if config.taxonomy_loss == "triplet":
            return batch_hard_triplet_loss(states, taxon_labels, config.taxonomy_margin), None
        if config.taxonomy_loss == "pair":
            return (
                same_taxon_pair_loss(states, taxon_labels, config.taxonomy_max_pairs, config.contrastive_temperature),
                None,
            )
        positives = taxon_positive_mask(taxon_labels, barcode_ids)
        return view_contrastive_loss(states, barcode_ids, config.contrastive_temperature, positives=positives), None


class BarcodeMAEForSequenceClassification(BarcodeMAEPreTrainedModel):
    """Pooled encoder (``pooler_output``) + linear classifier, for closed-world species fine-tuning."""

    auto_classes: ClassVar[dict[str, str]] = {
        "AutoModel": "BarcodeMAEModel",
        "AutoModelForSequenceClassification": "BarcodeMAEForSequenceClassification",
    }

    def __init__(self, config: BarcodeMAEConfig):
        super().__init__(config)
        self.num_labels = config.num_labels
        self.barcodemae = BarcodeMAEModel(config)
        dropout = config.classifier_dropout if config.classifier_dropout is not None else config.hidden_dropout_prob
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(config.hidden_size, config.num_labels)
        self.post_init()

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        output_hidden_states: bool | None = None,
        return_dict: bool | None = None,
        **kwargs,
    ) -> SequenceClassifierOutput | tuple:
        """Logits ``(batch, num_labels)`` from the pooled embedding of ``input_ids`` ``(batch, length)``; with
        ``labels`` ``(batch,)``, the cross-entropy (mean squared error for one label) as ``loss``."""
        return_dict = return_dict if return_dict is not None else self.config.return_dict
        encoded = self.barcodemae(
            input_ids,
            attention_mask=attention_mask,
            output_hidden_states=output_hidden_states,
            return_dict=True,
            **kwargs,
        )
        logits = self.classifier(self.dropout(encoded.pooler_output))
        loss = None
        if labels is not None:
            if self.num_labels == 1:
                loss = F.mse_loss(logits.squeeze(-1), labels.to(logits.dtype))
            else:
                loss = F.cross_entropy(logits, labels)
        output = SequenceClassifierOutput(loss=loss, logits=logits, hidden_states=encoded.hidden_states)
        return output if return_dict else output.to_tuple()


__all__ = [
    "BarcodeMAEForPreTraining",
    "BarcodeMAEForSequenceClassification",
    "BarcodeMAEModel",
    "BarcodeMAEPreTrainedModel",
    "BarcodeMAEPreTrainingOutput",
    "composition_loss",
    "gather_visible",
    "mean_pool",
    "pool_representation",
    "random_token_mask",
    "view_contrastive_loss",
]
