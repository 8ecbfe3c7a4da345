"""T5 span corruption for encoder-decoder pretraining (ENBED, Malusare et al., arXiv 2311.02333).

What this is: the objective of T5 / LongT5 pretraining, on tokenized barcodes. A random set of noise spans is chosen
in each barcode; the encoder sees the barcode with every span replaced by one sentinel token, and the decoder
generates, for each span in order, its sentinel followed by the span's tokens, then EOS::

    bases     A C G T T A C G A T          (noise: "G T" and "C G A")
    inputs    A C <s0> T A <s1> T
    labels    <s0> G T <s1> C G A <eos>

Why: unlike BERT masking, the encoder input is *shorter* than the barcode (a span costs one position however long
it is) and the targets hold only the corrupted spans, so both sides of the model see far fewer tokens than the
barcode length; and the decoder learns to *generate* bases in context, which is what ENBED's read correction and
sequence generation need (a masked-LM head only fills positions it is told about).

Pieces, all vectorised over the batch with numpy (no Python loop over rows or tokens):

* :func:`random_spans_noise_mask` -- T5's noise mask (exact noise and span counts per row) within maskable tokens;
* :class:`SentinelVocabulary` -- where the sentinel ids live (after the tokenizer's vocabulary);
* :func:`corrupt_spans` -- any boolean noise mask -> encoder inputs and decoder labels (runs become spans);
* :func:`reconstruct` -- the inverse for one row (tests, debugging);
* :class:`SpanCorruptionCollator` -- ``(input_ids, attention_mask, rng) -> batch``, T5 noise by default or the mask
  of any other masking strategy (``mask_fn``), e.g. :meth:`BarcodeMaskingCollator.mask_batch`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from .selection import mask_budget, select_by_key

__all__ = [
    "DEFAULT_SENTINEL_COUNT",
    "IGNORE_INDEX",
    "SentinelVocabulary",
    "SpanCorruptionCollator",
    "corrupt_spans",
    "random_spans_noise_mask",
    "reconstruct",
]

#: Label of positions without a target (PyTorch's cross-entropy ``ignore_index``).
IGNORE_INDEX = -100

#: Sentinel tokens after the tokenizer's vocabulary (at most this many spans per row): ENBED's, where neither a
#: preset nor ``train.py --num_sentinels`` says otherwise.
DEFAULT_SENTINEL_COUNT = 128

#: ``(input_ids, attention_mask, rng) -> (batch, length) bool`` noise mask, e.g. ``collator.mask_batch``.
MaskFn = Callable[[np.ndarray, np.ndarray, np.random.Generator], np.ndarray]


def _span_counts(noise: np.ndarray, clean: np.ndarray, mean_span_length: float) -> np.ndarray:
    """``max(1, round(noise / mean_span_length))`` spans per row (0 without noise), at most ``noise`` (spans are
    non-empty) and ``clean + 1`` (consecutive spans need a clean token between them, or they would be one run)."""
    spans = np.maximum(np.rint(noise / mean_span_length).astype(np.int64), 1)
    return np.where(noise > 0, np.minimum(spans, np.minimum(noise, clean + 1)), 0)


def random_spans_noise_mask(
    maskable: np.ndarray, noise_density: float, mean_span_length: float, rng: np.random.Generator
) -> np.ndarray:
    """T5's random span noise mask, drawn within each row's maskable tokens.

    Per row with ``n`` maskable tokens: ``k = round(noise_density * n)`` noise tokens, kept in ``[1, n - 1]`` (none
    when ``n < 2``; :func:`selection.mask_budget`, the rule of every other strategy), in exactly
    ``s = max(1, round(k / mean_span_length))`` spans (capped at ``k`` and ``n - k + 1`` in degenerate rows). As in
    T5, span lengths are a uniformly random segmentation of the ``k`` noise tokens into ``s`` non-empty parts and
    clean runs one of the ``n - k`` clean tokens; spans and clean runs alternate.

    One difference: T5 always starts with a clean run and ends with a span (its first token is never noise and its
    last always is, unless the mask is rolled). Here only the ``s - 1`` clean runs *between* spans must be
    non-empty and the leading and trailing runs may be empty, so every arrangement of ``k`` noise tokens in ``s``
    runs is equally likely. Interior tokens are then noise with probability about ``k / n``; the first and last
    only when a span starts or ends exactly there, ``s / (n - k + 1)`` (about 0.06 for T5's 0.15 and 3).

    Positions are counted in maskable-index space (the ``i``-th maskable token of the row), so any maskable pattern
    works. For tokenized barcodes the maskable tokens are contiguous (the bases between ``[CLS]`` and ``[SEP]``);
    were they scattered, a span could straddle an unmaskable token and :func:`corrupt_spans` would see two runs.

    Args:
        maskable: ``(batch, length)`` bool, the tokens that may be noise (no specials, no padding).
        noise_density: fraction of maskable tokens to corrupt, in ``(0, 1)``.
        mean_span_length: mean noise span length in tokens, ``>= 1``.
        rng: numpy generator (the only source of randomness).

    Returns:
        ``(batch, length)`` bool noise mask, a subset of ``maskable``.
    """
    if not 0 < noise_density < 1:
        raise ValueError(f"noise_density must be in (0, 1), got {noise_density}")
    if mean_span_length < 1:
        raise ValueError(f"mean_span_length must be >= 1, got {mean_span_length}")
    maskable = np.asarray(maskable, dtype=bool)
    batch, length = maskable.shape
    noise = mask_budget(maskable, noise_density)  # (B,) noise tokens k
    clean = maskable.sum(axis=1) - noise  # (B,) clean tokens c
    spans = _span_counts(noise, clean, mean_span_length)  # (B,) spans s
    mask = np.zeros((batch, length), dtype=bool)
    max_noise = int(noise.max(initial=0))
    if max_noise == 0:
        return mask
    # Span lengths: s - 1 cuts among the k - 1 gaps between noise tokens (column g: the gap before noise token g + 1).
    gaps = np.arange(max_noise - 1)[None, :]
    cuts = select_by_key(rng.random((batch, max_noise - 1)), gaps < (noise - 1)[:, None], spans - 1)
    span_of = np.concatenate([np.zeros((batch, 1), np.int64), np.cumsum(cuts, axis=1)], axis=1)  # (B, K)
    # Clean runs: pad the c clean tokens with one virtual token at each end and cut the c + 2 tokens into s + 1
    # non-empty runs (s cuts among gaps 1..c + 1); the end runs minus their virtual token may then be empty.
    # The t-th smallest cut g_t is the number of clean tokens before span t, plus one.
    cut_positions = np.arange(1, int(clean.max()) + 2)[None, :]
    chosen = select_by_key(rng.random((batch, cut_positions.shape[1])), cut_positions <= (clean + 1)[:, None], spans)
    unused = length + 2  # sorts after every chosen cut (g_t <= c + 1 <= length + 1)
    before = np.sort(np.where(chosen, cut_positions, unused), axis=1)[:, : max(int(spans.max()), 1)]  # (B, S)
    # Noise token j of span t lands at maskable index j + g_t - 1.
    noise_index = np.arange(max_noise)[None, :]
    valid = noise_index < noise[:, None]
    index = noise_index + np.take_along_axis(before, span_of, axis=1) - 1
    columns = np.argsort(~maskable, axis=1, kind="stable")  # column of each maskable index, maskable ones first
    column = np.take_along_axis(columns, np.clip(index, 0, length - 1), axis=1)
    rows = np.broadcast_to(np.arange(batch)[:, None], valid.shape)
    mask[rows[valid], column[valid]] = True
    return mask


@dataclass(frozen=True)
class SentinelVocabulary:
    """Sentinel ids appended after the tokenizer's vocabulary: sentinel ``i`` is ``first_id + i``.

    ``first_id`` is the tokenizer's size (``len(tokenizer)``, 20 for :meth:`BarcodeTokenizer.char`), so base and
    special ids are unchanged and the model's embedding has :attr:`model_vocab_size` rows. Ascending ids, unlike
    T5's (``<extra_id_0>`` is its *last* id), mean a sentinel's id does not depend on ``count``: a model trained
    with 128 sentinels reads batches made with fewer, and the tokenizer needs no new tokens.
    """

    first_id: int
    count: int = 128

    def __post_init__(self) -> None:
        if self.first_id < 1:
            raise ValueError(f"first_id must be positive (the tokenizer's vocabulary size), got {self.first_id}")
        if self.count < 1:
            raise ValueError(f"need at least one sentinel, got count={self.count}")

    @classmethod
    def for_tokenizer(cls, tokenizer: Any, count: int = 128) -> SentinelVocabulary:
        """Sentinels after ``tokenizer``'s vocabulary (ids ``len(tokenizer) .. len(tokenizer) + count - 1``)."""
        return cls(first_id=len(tokenizer), count=count)

    @property
    def model_vocab_size(self) -> int:
        """Embedding rows a model needs: the base vocabulary plus the sentinels."""
        return self.first_id + self.count

    def ids(self) -> np.ndarray:
        """``(count,)`` all sentinel ids, in span order."""
        return np.arange(self.first_id, self.model_vocab_size, dtype=np.int64)

    def is_sentinel(self, ids: np.ndarray) -> np.ndarray:
        """Elementwise: is each id a sentinel?"""
        ids = np.asarray(ids)
        return (ids >= self.first_id) & (ids < self.model_vocab_size)


def _compact(values: np.ndarray, keep: np.ndarray, fill: int) -> np.ndarray:
    """Left-align the kept entries of each row (order preserved), pad with ``fill`` to the longest row.

    ``values``, ``keep``: ``(batch, width)``; returns ``(batch, max kept)``.
    """
    counts = keep.sum(axis=1)
    out = np.full((values.shape[0], int(counts.max(initial=0))), fill, dtype=values.dtype)
    out[np.arange(out.shape[1])[None, :] < counts[:, None]] = values[keep]
    return out


def corrupt_spans(
    input_ids: np.ndarray,
    attention_mask: np.ndarray,
    noise_mask: np.ndarray,
    sentinels: SentinelVocabulary,
    eos_id: int,
    pad_id: int = 0,
) -> dict[str, np.ndarray]:
    """Encoder inputs and decoder labels of T5 span corruption; every run of noise tokens is one span.

    Span ``i`` of a row (counted from the left) is replaced in the inputs by sentinel ``i``; the labels are
    ``sentinel_0, span_0 tokens, sentinel_1, span_1 tokens, ..., eos_id``, the same sentinel on both sides as in T5.
    Clean tokens, specials included, stay in the inputs; nothing is appended to them (with the default
    ``[CLS] bases [SEP]`` framing, ``[SEP]`` already ends every input).

    Args:
        input_ids: ``(batch, length)`` int token ids, right-padded, all below ``sentinels.first_id``.
        attention_mask: ``(batch, length)`` 1 for real tokens.
        noise_mask: ``(batch, length)`` bool tokens to corrupt (only real tokens count).
        sentinels: where the sentinel ids live.
        eos_id: id ending every label row (must not be a sentinel).
        pad_id: id padding the encoder inputs.

    Returns:
        ``input_ids`` / ``attention_mask``: ``(batch, enc_length)`` int64, the corrupted inputs padded with
        ``pad_id`` to the longest row; ``labels``: ``(batch, dec_length)`` int64 padded with ``IGNORE_INDEX``
        (a row has ``noise tokens + spans + 1`` targets); ``decoder_attention_mask``: ``(batch, dec_length)`` int64,
        1 where ``labels`` is a target; ``noise_mask``: ``(batch, length)`` bool, the noise actually used (in the
        uncorrupted coordinates; not a model input).

    Raises:
        ValueError: a row has more spans than sentinels, an input id is already a sentinel, or ``eos_id`` /
        ``pad_id`` is a sentinel.
    """
    input_ids = np.asarray(input_ids, dtype=np.int64)
    real = np.asarray(attention_mask).astype(bool)
    if input_ids.shape != real.shape or np.shape(noise_mask) != real.shape:
        raise ValueError(
            f"input_ids {input_ids.shape}, attention_mask {real.shape} and noise_mask {np.shape(noise_mask)} differ"
        )
    if sentinels.is_sentinel(np.array([eos_id, pad_id])).any():
        raise ValueError(f"eos_id={eos_id} and pad_id={pad_id} must not be sentinel ids ({sentinels})")
    if (input_ids[real] >= sentinels.first_id).any():
        raise ValueError(f"input ids must be below the first sentinel id {sentinels.first_id}")
    noise = np.asarray(noise_mask, dtype=bool) & real
    batch = noise.shape[0]
    starts = noise & ~np.pad(noise, ((0, 0), (1, 0)))[:, :-1]  # first token of each span
    n_spans = starts.sum(axis=1)
    if (n_spans > sentinels.count).any():
        row = int(np.argmax(n_spans > sentinels.count))
        raise ValueError(
            f"row {row} has {int(n_spans[row])} noise spans but there are only {sentinels.count} sentinels; "
            "use more sentinels, a lower noise density or longer spans"
        )
    sentinel = sentinels.first_id + np.cumsum(starts, axis=1) - 1  # (B, L) sentinel of the span a token is in
    # Inputs: a span's first token becomes its sentinel, its other tokens go.
    keep = real & (~noise | starts)
    inputs = _compact(np.where(starts, sentinel, input_ids), keep, pad_id)
    # Labels: two slots per token (its span's sentinel when it starts one, then the token when it is noise) and a
    # final EOS slot, left-aligned.
    slots = np.stack([sentinel, input_ids], axis=2).reshape(batch, -1)
    slot_kept = np.stack([starts, noise], axis=2).reshape(batch, -1)
    slots = np.concatenate([slots, np.full((batch, 1), eos_id, np.int64)], axis=1)
    slot_kept = np.concatenate([slot_kept, np.ones((batch, 1), bool)], axis=1)
    labels = _compact(slots, slot_kept, IGNORE_INDEX)
    return {
        "input_ids": inputs,
        "attention_mask": (np.arange(inputs.shape[1])[None, :] < keep.sum(axis=1)[:, None]).astype(np.int64),
        "labels": labels,
        "decoder_attention_mask": (labels != IGNORE_INDEX).astype(np.int64),
        "noise_mask": noise,
    }


def reconstruct(
    input_ids: np.ndarray,
    labels: np.ndarray,
    sentinels: SentinelVocabulary,
    attention_mask: np.ndarray | None = None,
) -> np.ndarray:
    """The uncorrupted row back from one row of :func:`corrupt_spans`: each sentinel filled with its span.

    Args:
        input_ids: ``(enc_length,)`` corrupted inputs of one row.
        labels: ``(dec_length,)`` its labels (``IGNORE_INDEX`` padding; the last target, EOS, is dropped).
        sentinels: the sentinels used to corrupt it.
        attention_mask: ``(enc_length,)``; without it the whole of ``input_ids`` is taken as real.

    Returns:
        ``(length,)`` int64 the original real tokens (no padding).
    """
    inputs = np.asarray(input_ids, dtype=np.int64)
    if attention_mask is not None:
        inputs = inputs[np.asarray(attention_mask).astype(bool)]
    targets = np.asarray(labels, dtype=np.int64)
    targets = targets[targets != IGNORE_INDEX][:-1]
    # Span of each label sentinel: the targets after it, up to the next sentinel.
    label_starts = np.flatnonzero(sentinels.is_sentinel(targets))
    label_spans = targets[label_starts] - sentinels.first_id
    input_spans = inputs[sentinels.is_sentinel(inputs)] - sentinels.first_id
    if not np.array_equal(np.sort(input_spans), np.sort(label_spans)):
        raise ValueError(f"sentinels of the inputs {input_spans.tolist()} and labels {label_spans.tolist()} differ")
    span_start = np.zeros(sentinels.count, np.int64)
    span_length = np.zeros(sentinels.count, np.int64)
    span_start[label_spans] = label_starts + 1
    span_length[label_spans] = np.diff(np.append(label_starts, len(targets))) - 1
    # Each input token stands for itself, each sentinel for its span's tokens.
    is_sentinel = sentinels.is_sentinel(inputs)
    span = np.where(is_sentinel, inputs - sentinels.first_id, 0)
    counts = np.where(is_sentinel, span_length[span], 1)
    offset = np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts)
    out = np.repeat(inputs, counts)
    from_span = np.repeat(is_sentinel, counts)
    out[from_span] = targets[(np.repeat(span_start[span], counts) + offset)[from_span]]
    return out


class SpanCorruptionCollator:
    """``(input_ids, attention_mask, rng) -> batch``: T5 span corruption of a padded batch (numpy in, numpy out).

    Called like the pretraining stream's ``mask_fn`` (same arguments), it returns the :func:`corrupt_spans` dict
    instead of a mask. Specials (``special_ids``, by default ``[PAD]``, ``[CLS]``, ``[SEP]``, ``[MASK]``) and padding
    are never noise.

    Args:
        sentinels: sentinel ids (:meth:`SentinelVocabulary.for_tokenizer`).
        eos_id: id ending every label row.
        pad_id: id padding the encoder inputs.
        special_ids: ids that are never noise.
        noise_density: fraction of maskable tokens corrupted per row (T5: 0.15).
        mean_span_length: mean span length in tokens (T5: 3).
        mask_fn: optional ``(input_ids, attention_mask, rng) -> (batch, length) bool`` noise mask from another
            masking strategy (e.g. ``BarcodeMaskingCollator(...).mask_batch``), whose runs of masked tokens become
            the spans; it replaces the T5 noise (``noise_density`` and ``mean_span_length`` are then unused).
            Specials and padding are removed from its mask.
    """

    def __init__(
        self,
        sentinels: SentinelVocabulary,
        eos_id: int,
        pad_id: int = 0,
        special_ids: tuple[int, ...] = (0, 2, 3, 4),
        noise_density: float = 0.15,
        mean_span_length: float = 3.0,
        mask_fn: MaskFn | None = None,
    ) -> None:
        if not 0 < noise_density < 1:
            raise ValueError(f"noise_density must be in (0, 1), got {noise_density}")
        if mean_span_length < 1:
            raise ValueError(f"mean_span_length must be >= 1, got {mean_span_length}")
        if sentinels.is_sentinel(np.array([eos_id, pad_id])).any():
            raise ValueError(f"eos_id={eos_id} and pad_id={pad_id} must not be sentinel ids ({sentinels})")
        self.sentinels = sentinels
        self.eos_id = eos_id
        self.pad_id = pad_id
        self.special_ids = np.array(sorted(set(special_ids)), dtype=np.int64)
        self.noise_density = noise_density
        self.mean_span_length = mean_span_length
        self.mask_fn = mask_fn

    @classmethod
    def from_tokenizer(
        cls, tokenizer: Any, sentinel_count: int = DEFAULT_SENTINEL_COUNT, **kwargs: Any
    ) -> SpanCorruptionCollator:
        """Sentinels after ``tokenizer``'s vocabulary, ``[SEP]`` as EOS, its ``[PAD]`` and specials.

        ``[SEP]`` is the id every framed input already ends with, so it is T5's ``</s>`` on both sides.
        """
        special = (tokenizer.pad_token_id, tokenizer.cls_token_id, tokenizer.sep_token_id, tokenizer.mask_token_id)
        kwargs.setdefault("eos_id", tokenizer.sep_token_id)
        kwargs.setdefault("pad_id", tokenizer.pad_token_id)
        kwargs.setdefault("special_ids", tuple(i for i in special if i is not None))
        return cls(SentinelVocabulary.for_tokenizer(tokenizer, sentinel_count), **kwargs)

    def noise_mask(self, input_ids: np.ndarray, attention_mask: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """``(batch, length)`` bool noise: T5 random spans, or ``mask_fn``'s mask, over non-special real tokens."""
        input_ids = np.asarray(input_ids, dtype=np.int64)
        maskable = np.asarray(attention_mask).astype(bool) & ~np.isin(input_ids, self.special_ids)
        if self.mask_fn is None:
            return random_spans_noise_mask(maskable, self.noise_density, self.mean_span_length, rng)
        return np.asarray(self.mask_fn(input_ids, attention_mask, rng), dtype=bool) & maskable

    def __call__(
        self, input_ids: np.ndarray, attention_mask: np.ndarray, rng: np.random.Generator
    ) -> dict[str, np.ndarray]:
        """The :func:`corrupt_spans` dict of a ``(batch, length)`` padded batch."""
        noise = self.noise_mask(input_ids, attention_mask, rng)
        return corrupt_spans(input_ids, attention_mask, noise, self.sentinels, self.eos_id, self.pad_id)

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(sentinels={self.sentinels}, eos_id={self.eos_id}, pad_id={self.pad_id}, "
            f"noise_density={self.noise_density}, mean_span_length={self.mean_span_length}, mask_fn={self.mask_fn})"
        )
