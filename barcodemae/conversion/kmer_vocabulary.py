"""The authors' k-mer vocabulary re-indexed onto our k-mer tokenizer's ids (``vocab_layout``).

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

import logging
from dataclasses import dataclass
from typing import Any

import torch

from barcodemae.tokenization import BarcodeTokenizer
from barcodemae.tokenization.tokenization_barcodemae import SPECIAL_TOKENS

from .checkpoint_keys import encoder_prefix, has_mlm_transform, head_keys

logger = logging.getLogger(__name__)

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
    if source_format == "barcodebert" and has_mlm_transform(state_dict):
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
    vocab = state_dict[f"{encoder_prefix(source_format)}embeddings.word_embeddings.weight"].shape[0]
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
    embeddings = f"{encoder_prefix(source_format)}embeddings.word_embeddings.weight"
    rows = layout.source_rows(state_dict[embeddings].shape[0], embeddings)
    unk = rows[SPECIAL_TOKENS.index("[UNK]")]
    out[embeddings] = _gather_rows(state_dict[embeddings], [unk if row is None else row for row in rows], 0.0)
    weight_key, bias_keys = head_keys(state_dict, source_format)
    weight = state_dict.get(weight_key, state_dict[embeddings])  # a tied MLM head is the input embedding matrix
    rows = layout.source_rows(weight.shape[0], weight_key)
    out[weight_key] = _gather_rows(weight, rows, 0.0)
    for key in bias_keys:
        out[key] = _gather_rows(state_dict[key], rows, UNPREDICTABLE_BIAS)
    return out


def kmer_config_kwargs(original: AuthorsKmerVocabulary) -> dict[str, Any]:
    """Config fields of our k-mer tokenizer for the original's k (the checkpoint's position table is kept)."""
    kwargs = converted_tokenizer(original).model_config_kwargs()
    kwargs.pop("max_position_embeddings")
    return kwargs


def converted_tokenizer(original: AuthorsKmerVocabulary, tokenizer: BarcodeTokenizer | None = None) -> BarcodeTokenizer:
    """Our k-mer tokenizer with the original's framing, keeping ``tokenizer``'s stride and ``max_bp`` if given."""
    settings = {"stride": tokenizer.stride, "max_bp": tokenizer.max_bp} if tokenizer is not None else {}
    return BarcodeTokenizer.kmer(original.k, framing=original.framing, **settings)


__all__ = [
    "UNPREDICTABLE_BIAS",
    "VOCAB_LAYOUTS",
    "AuthorsKmerVocabulary",
    "converted_tokenizer",
    "kmer_config_kwargs",
    "remap_vocabulary",
    "resolve_vocab_layout",
]
