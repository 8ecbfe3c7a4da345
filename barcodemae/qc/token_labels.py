"""Token-level inputs and labels of corrupted reads for a character-level error detector, and back.

Why: the labels of :mod:`barcodemae.qc.error_injection` are per read base (``base_labels`` ``(L,)``) and per
boundary (``deletion_after`` ``(L + 1,)``); :class:`modeling_barcodemae.EnbedForErrorDetection` predicts per token
of the character tokenizer's ``[CLS] read [SEP]``. The layout maps one onto the other exactly:

* token ``i + 1`` is read base ``i``: it carries ``base_labels[i]`` and ``deletion_after[i]`` (a base missing
  right before it);
* ``[SEP]`` (token ``L + 1``) carries ``deletion_after[L]`` (a base missing at the read's end); its base label is
  -100;
* ``[CLS]`` (token 0) and padding are -100 in both.

Reads are encoded with the tokenizer's vocabulary directly, not by calling the tokenizer: its cleaning would trim
``N`` at the read's ends (an injected ``N`` run there is a labelled error) and truncate at ``max_bp`` (660 bp by
default; insertions can lengthen a read past it), either of which would shift every label after it. A read with
a letter outside the vocabulary raises an error naming the record. LongT5's relative positions accept any length.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from barcodemae.tokenization.fast_encoding import char_lookup, frame_batch

from .error_injection import CorruptedRead

IGNORE_INDEX = -100


@dataclass(frozen=True, eq=False)  # numpy fields
class TokenBatch:
    """``n`` reads as ``[CLS] read [SEP]`` tokens, right-padded to ``T`` = the longest read + 2."""

    input_ids: np.ndarray
    """``(n, T)`` int64."""
    attention_mask: np.ndarray
    """``(n, T)`` int64, 1 on real tokens."""
    base_labels: np.ndarray
    """``(n, T)`` int64: the base's label on base tokens, -100 elsewhere."""
    deletion_labels: np.ndarray
    """``(n, T)`` int64: 1 / 0 on base tokens and ``[SEP]``, -100 on ``[CLS]`` and padding."""

    def as_dict(self) -> dict[str, np.ndarray]:
        """The keyword arguments of ``EnbedForErrorDetection.forward`` (as numpy arrays)."""
        return {"input_ids": self.input_ids, "attention_mask": self.attention_mask,
                "base_labels": self.base_labels, "deletion_labels": self.deletion_labels}


def _letter_ids(tokenizer: Any) -> np.ndarray:
    """``(256,)`` int64 id of every single-letter token of the tokenizer's vocabulary by byte, -1 for others."""
    if getattr(tokenizer, "scheme", None) != "char" or getattr(tokenizer, "framing", None) != "cls_sep":
        raise ValueError("token labels need the character tokenizer with [CLS] read [SEP] framing "
                         "(BarcodeTokenizer.char()), got scheme "
                         f"{getattr(tokenizer, 'scheme', None)!r} / framing {getattr(tokenizer, 'framing', None)!r}")
    return char_lookup(tokenizer.get_vocab(), unk_id=-1)


def encode_reads(
    reads: Sequence[str], tokenizer: Any, record_ids: Sequence[str] | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """``input_ids`` and ``attention_mask`` ``(n, T)`` of ``[CLS] read [SEP]``, right-padded, nothing truncated
    or trimmed (see the module docstring). ``record_ids`` name the reads in errors (default: their index)."""
    table = _letter_ids(tokenizer)
    lengths = np.fromiter(map(len, reads), dtype=np.int64, count=len(reads))
    joined = "".join(reads)
    # a non-ASCII character becomes one "?" (not a token), so byte positions stay character positions
    ids = table[np.frombuffer(joined.encode("ascii", errors="replace"), dtype=np.uint8)]
    if (ids < 0).any():
        first = int(np.argmax(ids < 0))
        record = int(np.searchsorted(np.cumsum(lengths), first, side="right"))
        name = record_ids[record] if record_ids is not None else f"read {record}"
        position = first - int(lengths[:record].sum())
        raise ValueError(f"{name}: {joined[first]!r} at position {position} is not a token of the character "
                         f"tokenizer (uppercase IUPAC letters only); the read cannot be represented")
    input_ids, attention_mask, _ = frame_batch(
        ids, lengths, cls_id=tokenizer.cls_token_id, sep_id=tokenizer.sep_token_id, pad_id=tokenizer.pad_token_id,
        max_content=None, pad_to=None, left_padding=False,
    )
    return input_ids, attention_mask


def token_batch(
    reads: Sequence[CorruptedRead], tokenizer: Any, record_ids: Sequence[str] | None = None
) -> TokenBatch:
    """Tokens and token-level labels of corrupted reads (layout in the module docstring)."""
    input_ids, attention_mask = encode_reads([read.read for read in reads], tokenizer, record_ids)
    lengths = np.fromiter((len(read.read) for read in reads), dtype=np.int64, count=len(reads))
    positions = np.arange(input_ids.shape[1])[None, :]
    base_tokens = (positions >= 1) & (positions <= lengths[:, None])
    boundary_tokens = (positions >= 1) & (positions <= lengths[:, None] + 1)
    base_labels = np.full(input_ids.shape, IGNORE_INDEX, dtype=np.int64)
    deletion_labels = np.full(input_ids.shape, IGNORE_INDEX, dtype=np.int64)
    if len(reads):
        # boolean-mask assignment fills row by row, left to right: the concatenated per-read arrays line up
        base_labels[base_tokens] = np.concatenate([read.base_labels for read in reads])
        deletion_labels[boundary_tokens] = np.concatenate([read.deletion_after for read in reads])
    return TokenBatch(input_ids, attention_mask, base_labels, deletion_labels)


def read_predictions(
    base_predictions: np.ndarray, deletion_predictions: np.ndarray, lengths: Sequence[int]
) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Per-read arrays of token-level predictions, as :func:`barcodemae.qc.base_level_metrics` takes them.

    Args:
        base_predictions: ``(n, T)`` predicted base label per token (0..3).
        deletion_predictions: ``(n, T)`` bool, a deletion predicted right before the token.
        lengths: the ``n`` read lengths ``L``.

    Returns:
        ``(L,)`` int8 base labels (tokens ``1..L``) and ``(L + 1,)`` bool deletion boundaries (tokens
        ``1..L + 1``, the last one ``[SEP]``) per read.
    """
    base_predictions, deletion_predictions = np.asarray(base_predictions), np.asarray(deletion_predictions)
    if base_predictions.shape != deletion_predictions.shape or base_predictions.shape[0] != len(lengths):
        raise ValueError(f"need (n, T) predictions for {len(lengths)} reads, got {base_predictions.shape} and "
                         f"{deletion_predictions.shape}")
    if len(lengths) and max(lengths) + 2 > base_predictions.shape[1]:
        raise ValueError(f"predictions of {base_predictions.shape[1]} tokens cannot hold a read of "
                         f"{max(lengths)} bases plus [CLS] and [SEP]")
    labels = [base_predictions[row, 1 : length + 1].astype(np.int8) for row, length in enumerate(lengths)]
    deletions = [deletion_predictions[row, 1 : length + 2].astype(bool) for row, length in enumerate(lengths)]
    return labels, deletions


__all__ = ["IGNORE_INDEX", "TokenBatch", "encode_reads", "read_predictions", "token_batch"]
