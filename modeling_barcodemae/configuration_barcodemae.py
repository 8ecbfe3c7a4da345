"""Configuration of BarcodeMAE (masked autoencoder) and BarcodeBERT (masked language model) encoders.

One config serves both: ``pretraining_objective="mae"`` gives BarcodeMAE (the encoder sees only visible tokens,
a decoder reconstructs the masked ones), ``"mlm"`` gives BarcodeBERT (``[MASK]`` tokens go through the encoder,
no decoder). The paper defaults are non-overlapping 6-mers, 660 bp, a 6-layer/6-head/768-wide encoder, a 6-layer
decoder and a 50% mask ratio.
"""

from __future__ import annotations

from huggingface_hub.dataclasses import strict
from transformers import PretrainedConfig

OBJECTIVES = ("mae", "mlm")
POOLED_LAYERS = ("last", "mean")
POOLED_FRAMES = ("first", "all")
REPRESENTATIONS = ("tokens_with_cls", "tokens", "cls")
TAXONOMY_LOSSES = ("none", "ce", "triplet", "pair", "supcon")
TAXONOMY_RANKS = ("family", "genus", "species")
TAXONOMY_STATES = ("cls", "pooled")
ACTIVATIONS = ("gelu", "relu", "silu", "gelu_new")


@strict
class BarcodeMAEConfig(PretrainedConfig):
    r"""Configuration for [`BarcodeMAEModel`] and its heads.

    Args:
        vocab_size: tokens in the tokenizer (4**6 k-mers + 5 specials for the default 6-mer tokenizer).
        hidden_size / num_hidden_layers / num_attention_heads / intermediate_size: encoder shape.
        decoder_hidden_size / decoder_num_hidden_layers / decoder_num_attention_heads / decoder_intermediate_size:
            MAE decoder shape; a linear projection maps encoder to decoder width when they differ.
        decoder_projection: keep that linear projection even when the widths are equal. The authors' ``MAELMModel``
            applies its ``projection_layer`` whenever their encoder and decoder configs differ in
            ``output_hidden_states`` (as their pretraining always builds them), so converted checkpoints need it.
        max_position_embeddings: learned absolute positions (BERT-style), in tokens.
        mask_ratio: fraction of maskable tokens masked per sequence during pretraining.
        pretraining_objective: ``"mae"`` (BarcodeMAE) or ``"mlm"`` (BarcodeBERT).
        mlm_mask_token_prob / mlm_random_token_prob: BERT 80/10/10 corruption of masked tokens (``mlm`` only).
        prediction_head_transform: BERT-style dense+act+LayerNorm before the vocabulary projection.
        contrastive_weight: weight of a view-contrastive term added to the masked-token loss during pretraining
            (0: off, the papers' objectives). Two augmented views of each barcode (own start shift, reading frame and
            mask) must have pooled embeddings (``pooler_output``) closer to each other than to the batch's other
            barcodes (InfoNCE). Masked-token prediction alone makes pooled embeddings of small encoders lose genus
            information on unseen genera; this term trains the embedding that is evaluated.
        contrastive_temperature: InfoNCE temperature of the cosine similarities; also that of the ``"pair"`` and
            ``"supcon"`` taxonomy terms.
        composition_weight: weight of a composition term added during pretraining (0: off): a linear head on the
            pooled embedding predicts the barcode's ``composition_kmer_size``-mer frequency profile (KL divergence to
            the profile the batch carries). Counting 4-mers is the strongest baseline for genus 1-NN on unseen
            genera; this term asks the evaluated embedding to keep what those counts know.
        composition_kmer_size: k of that profile (``4**k`` frequencies).
        pooled_layers: which token states ``pooler_output`` (the barcode embedding) averages over the barcode's
            tokens: ``"last"``, the last block (the BIOSCAN-5M protocol's usual choice), or ``"mean"``, the average
            of every hidden state (embeddings and each block). Small encoders pretrained on barcodes lose lineage
            information in their last blocks while their embedding layer gains it, so the
            layer average is the better embedding there; ``barcodemae embed``, ``identify`` and ``eval/run.py``
            follow this choice unless told a layer.
        pooled_frames: which reading frames the barcode embedding of ``barcodemae``'s embedding functions (``embed``,
            ``identify``, ``eval/run.py``, the training-time probe) averages: ``"first"``, the barcode tokenized from
            its first base (the BIOSCAN-5M protocol, and ``pooler_output`` of any single forward pass), or
            ``"all"``, the mean of the embeddings of the barcode tokenized from each of its first ``kmer_size``
            bases. Non-overlapping k-mers see one of k phases of a sequence, so two barcodes of one genus whose
            reads start a base apart share few tokens; averaging the k phases makes the embedding nearly independent
            of where a read starts, as counting overlapping k-mers is. It costs k forward passes per barcode and
            changes nothing for tokenizers with one reading frame (characters, BPE).
        representation: what ``pooler_output`` pools from each of those states: ``"tokens_with_cls"``, the mean
            over every non-pad token ([CLS] and [SEP] included; the BIOSCAN protocol and the default),
            ``"tokens"``, the same mean without position 0 (the [CLS] the tokenizer always puts first), or
            ``"cls"``, the state at position 0. With ``pooled_layers="mean"`` the chosen representation of every
            hidden state is averaged. The taxonomy term trains the [CLS] state by default
            (``taxonomy_on``), and BarcodeMAE+ evaluates its models on ``"cls"``.
        taxonomy_loss: an auxiliary taxonomy term added during pretraining (BarcodeMAE+, Safari et al.): ``"none"``
            (off, the papers' objectives), ``"ce"`` (cross-entropy of a taxon classifier head, ``taxonomy_head``:
            LayerNorm, dropout 0.1, linear), ``"triplet"`` (batch-hard triplet loss on cosine distance, soft
            margin), ``"pair"`` (binary cross-entropy of same-taxon / other-taxon pairs on cosine similarity /
            ``contrastive_temperature``) or ``"supcon"`` (the view-contrastive InfoNCE with the rows of the same
            taxon as extra positives). It needs the rows' labels (``taxon_labels`` of the forward pass, -1 =
            unlabelled: such rows take no part in ``ce``, ``triplet`` and ``pair``; ``supcon`` keeps them as the
            view-contrastive term does, positives of their own views and negatives of every other row); without
            labels (validation batches) the term is left out. Masked-token prediction alone keeps little genus
            information in the embedding of small encoders; labels of the pretraining split put
            it there.
        taxonomy_rank: the rank whose names are the labels: ``"genus"`` (BarcodeMAE+), ``"family"`` or
            ``"species"``. The model does not read it; it records what the labels were.
        taxonomy_weight: weight of the taxonomy term (BarcodeMAE+: 0.1); unused when ``taxonomy_loss`` is
            ``"none"``.
        taxonomy_warmup_steps: optimiser steps over which the weight grows linearly from 0 (0: full weight from
            the start). The training loop turns the step into the forward pass's ``taxonomy_weight_scale``
            (``taxonomy_losses.taxonomy_warmup_scale``).
        taxonomy_num_classes: classes of the ``"ce"`` head (the training loop sets it from the labels of the
            pretraining rows); ignored by the other losses.
        taxonomy_margin: margin of the ``"triplet"`` loss, ``softplus(d_pos - d_neg + margin)`` (BarcodeMAE+: 0).
        taxonomy_max_pairs: at most this many pairs per batch for ``"pair"``, half of them same-taxon.
        taxonomy_on: which state the taxonomy term sees: ``"cls"``, the encoder's last state at position 0 (the
            [CLS] token, never masked; BarcodeMAE+), or ``"pooled"``, ``pooler_output`` (``representation``,
            ``pooled_layers``).
        tokenizer_scheme / kmer_size / kmer_stride / max_bp: which tokenizer the model was trained with.
        mask_token_id / cls_token_id / sep_token_id / unk_token_id / pad_token_id: special token ids.
    """

    model_type = "barcodemae"

    vocab_size: int = 4101
    hidden_size: int = 768
    num_hidden_layers: int = 6
    num_attention_heads: int = 6
    intermediate_size: int = 3072
    hidden_act: str = "gelu"
    hidden_dropout_prob: float = 0.1
    attention_probs_dropout_prob: float = 0.1
    max_position_embeddings: int = 512
    layer_norm_eps: float = 1e-12
    initializer_range: float = 0.02
    decoder_hidden_size: int = 768
    decoder_num_hidden_layers: int = 6
    decoder_num_attention_heads: int = 6
    decoder_intermediate_size: int = 3072
    decoder_projection: bool = False
    mask_ratio: float = 0.5
    pretraining_objective: str = "mae"
    mlm_mask_token_prob: float = 0.8
    mlm_random_token_prob: float = 0.1
    prediction_head_transform: bool = True
    contrastive_weight: float = 0.0
    contrastive_temperature: float = 0.1
    composition_weight: float = 0.0
    composition_kmer_size: int = 4
    pooled_layers: str = "last"
    pooled_frames: str = "first"
    representation: str = "tokens_with_cls"
    taxonomy_loss: str = "none"
    taxonomy_rank: str = "genus"
    taxonomy_weight: float = 0.1
    taxonomy_warmup_steps: int = 0
    taxonomy_num_classes: int = 0
    taxonomy_margin: float = 0.0
    taxonomy_max_pairs: int = 128
    taxonomy_on: str = "cls"
    classifier_dropout: float | None = None
    tokenizer_scheme: str = "kmer"
    kmer_size: int = 6
    kmer_stride: int = 6
    max_bp: int = 660
    pad_token_id: int | None = 0
    unk_token_id: int | None = 1
    cls_token_id: int | None = 2
    sep_token_id: int | None = 3
    mask_token_id: int | None = 4
    tie_word_embeddings: bool = False

    def validate_architecture(self) -> None:
        """Reject values that would fail deep inside the model with an unhelpful error."""
        super().validate_architecture()
        for name in (
            "vocab_size",
            "hidden_size",
            "num_hidden_layers",
            "num_attention_heads",
            "intermediate_size",
            "max_position_embeddings",
            "decoder_hidden_size",
            "decoder_num_hidden_layers",
            "decoder_num_attention_heads",
            "decoder_intermediate_size",
            "kmer_size",
            "kmer_stride",
            "max_bp",
        ):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool):
                raise TypeError(f"BarcodeMAEConfig.{name} must be an integer, got {value!r}")
            if value < 1:
                raise ValueError(f"BarcodeMAEConfig.{name} must be a positive integer, got {getattr(self, name)}")
        for width, heads, prefix in (
            (self.hidden_size, self.num_attention_heads, ""),
            (self.decoder_hidden_size, self.decoder_num_attention_heads, "decoder_"),
        ):
            if width % heads:
                raise ValueError(
                    f"BarcodeMAEConfig.{prefix}hidden_size ({width}) must be divisible by "
                    f"{prefix}num_attention_heads ({heads})"
                )
        if not 0.0 < self.mask_ratio < 1.0:
            raise ValueError(f"BarcodeMAEConfig.mask_ratio must be in (0, 1), got {self.mask_ratio}")
        if self.pretraining_objective not in OBJECTIVES:
            raise ValueError(
                f"BarcodeMAEConfig.pretraining_objective must be one of {OBJECTIVES}, "
                f"got {self.pretraining_objective!r}"
            )
        if self.pooled_layers not in POOLED_LAYERS:
            raise ValueError(
                f"BarcodeMAEConfig.pooled_layers must be one of {POOLED_LAYERS}, got {self.pooled_layers!r}"
            )
        for name, allowed in (
            ("pooled_frames", POOLED_FRAMES),
            ("representation", REPRESENTATIONS),
            ("taxonomy_loss", TAXONOMY_LOSSES),
            ("taxonomy_rank", TAXONOMY_RANKS),
            ("taxonomy_on", TAXONOMY_STATES),
        ):
            if getattr(self, name) not in allowed:
                raise ValueError(f"BarcodeMAEConfig.{name} must be one of {allowed}, got {getattr(self, name)!r}")
        for name in ("taxonomy_weight", "taxonomy_margin"):
            if not getattr(self, name) >= 0.0:
                raise ValueError(f"BarcodeMAEConfig.{name} must be >= 0, got {getattr(self, name)}")
        for name in ("taxonomy_warmup_steps", "taxonomy_num_classes", "taxonomy_max_pairs"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise ValueError(f"BarcodeMAEConfig.{name} must be a non-negative integer, got {value!r}")
        if self.taxonomy_loss == "pair" and self.taxonomy_max_pairs < 2:
            raise ValueError(
                f"BarcodeMAEConfig.taxonomy_max_pairs must be >= 2 for the pair loss (one same-taxon and one "
                f"other-taxon pair), got {self.taxonomy_max_pairs}"
            )
        if not self.contrastive_weight >= 0.0:
            raise ValueError(f"BarcodeMAEConfig.contrastive_weight must be >= 0, got {self.contrastive_weight}")
        if not self.contrastive_temperature > 0.0:
            raise ValueError(
                f"BarcodeMAEConfig.contrastive_temperature must be > 0, got {self.contrastive_temperature}"
            )
        if not self.composition_weight >= 0.0:
            raise ValueError(f"BarcodeMAEConfig.composition_weight must be >= 0, got {self.composition_weight}")
        if not 1 <= self.composition_kmer_size <= 6:
            raise ValueError(
                f"BarcodeMAEConfig.composition_kmer_size must be in 1..6, got {self.composition_kmer_size}"
            )
        if self.hidden_act not in ACTIVATIONS:
            raise ValueError(f"BarcodeMAEConfig.hidden_act must be one of {ACTIVATIONS}, got {self.hidden_act!r}")
        for name in (
            "hidden_dropout_prob",
            "attention_probs_dropout_prob",
            "mlm_mask_token_prob",
            "mlm_random_token_prob",
        ):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"BarcodeMAEConfig.{name} must be in [0, 1], got {getattr(self, name)}")
        if self.mlm_mask_token_prob + self.mlm_random_token_prob > 1.0:
            raise ValueError("BarcodeMAEConfig.mlm_mask_token_prob + mlm_random_token_prob must not exceed 1")
        if self.tokenizer_scheme not in ("kmer", "char", "bpe"):
            raise ValueError(
                f"BarcodeMAEConfig.tokenizer_scheme must be kmer, char or bpe, got {self.tokenizer_scheme!r}"
            )
        for name in ("pad_token_id", "unk_token_id", "cls_token_id", "sep_token_id", "mask_token_id"):
            value = getattr(self, name)
            if value is not None and not 0 <= value < self.vocab_size:
                raise ValueError(f"BarcodeMAEConfig.{name}={value} is outside the vocabulary (size {self.vocab_size})")

        for name in ("pad_token_id", "mask_token_id"):
            if getattr(self, name) is None:
                raise ValueError(f"BarcodeMAEConfig.{name} is required (padding and masking use it)")
        if self.kmer_stride > self.kmer_size:
            raise ValueError(
                f"BarcodeMAEConfig.kmer_stride ({self.kmer_stride}) cannot exceed kmer_size ({self.kmer_size})"
            )

    @classmethod
    def from_tokenizer(cls, tokenizer, **architecture) -> BarcodeMAEConfig:
        """A config whose vocabulary, special ids, tokenizer description and position table come from ``tokenizer``.

        Keeps model and tokenizer from drifting apart; ``architecture`` sets the rest (and may override
        ``max_position_embeddings``). ``tokenizer`` is a ``BarcodeTokenizer`` (anything with ``model_config_kwargs``).
        """
        return cls(**{**tokenizer.model_config_kwargs(), **architecture})

    @property
    def special_token_ids(self) -> list[int]:
        """Ids that are never masked."""
        ids = (self.pad_token_id, self.unk_token_id, self.cls_token_id, self.sep_token_id, self.mask_token_id)
        return [i for i in ids if i is not None and i != self.unk_token_id]


__all__ = [
    "POOLED_FRAMES",
    "POOLED_LAYERS",
    "REPRESENTATIONS",
    "TAXONOMY_LOSSES",
    "TAXONOMY_RANKS",
    "TAXONOMY_STATES",
    "BarcodeMAEConfig",
]
