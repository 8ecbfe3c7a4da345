"""Nucleotide coordinates for masking: which tokens a base span touches, and the bases behind token ids.

Strategies choose *base* spans ``[start, end)``; a token is masked when its base interval overlaps a chosen span.
That single rule is right for non-overlapping k-mers (a span hides the k-mers it touches), overlapping k-mers
(a span of ``l`` bases hides ``l + k - 1`` windows, so no neighbour leaks the hidden bases), characters and BPE.
"""

from __future__ import annotations

import numpy as np

#: Base code of anything that is not A, C, G or T (ambiguity codes, ``[UNK]``, positions past the end).
OTHER = 4
_CODE = np.full(256, OTHER, dtype=np.uint8)
for _i, _letter in enumerate("ACGT"):
    _CODE[ord(_letter)] = _i
    _CODE[ord(_letter.lower())] = _i


def encode_bases(sequence: str) -> np.ndarray:
    """ACGT -> 0..3, anything else -> 4 (uint8), via a lookup table."""
    return _CODE[np.frombuffer(sequence.encode("ascii", errors="replace"), dtype=np.uint8)]


def token_base_table(tokenizer) -> np.ndarray:
    """``(vocab, max_token_length)`` base codes of every vocabulary entry (special tokens and [UNK] -> 4).

    Built once per tokenizer, so reading the bases behind a batch of ids is a gather, not string work.
    """
    lengths = tokenizer.token_lengths()
    vocab = tokenizer.get_vocab()
    special = set(tokenizer.all_special_tokens)
    width = max(1, max((len(t) for t in vocab if t not in special), default=1))
    table = np.full((len(tokenizer), width), OTHER, dtype=np.uint8)
    for token, index in vocab.items():
        if token not in special and lengths[index] > 0:
            codes = encode_bases(token)
            table[index, : len(codes)] = codes
    return table


def token_widths(starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
    """Bases each token covers (0 for special/pad tokens, whose coordinates are -1)."""
    return np.where(starts >= 0, ends - starts, 0)


def batch_bases(input_ids: np.ndarray, starts: np.ndarray, ends: np.ndarray, table: np.ndarray) -> np.ndarray:
    """``(batch, n_bases)`` base codes rebuilt from token ids (4 where unknown or past a row's end).

    Loops over the token *width* (<= max token length), vectorised over batch and tokens.
    """
    n_bases = int(max(ends.max(initial=0), 0))
    bases = np.full((input_ids.shape[0], n_bases + 1), OTHER, dtype=np.uint8)
    widths = token_widths(starts, ends)
    rows = np.broadcast_to(np.arange(input_ids.shape[0])[:, None], input_ids.shape)
    for j in range(table.shape[1]):
        inside = widths > j
        bases[rows[inside], starts[inside] + j] = table[input_ids[inside], j]
    return bases[:, :n_bases]


def spans_to_token_keys(
    span_starts: np.ndarray,
    span_ends: np.ndarray,
    span_valid: np.ndarray,
    token_starts: np.ndarray,
    token_ends: np.ndarray,
    rng: np.random.Generator,
) -> np.ndarray:
    """Selection keys for :func:`selection.select_by_key` from ranked base spans.

    Span ``s`` of a row has rank ``s`` (earlier spans are more important). A token overlapping spans gets key
    ``min rank + position / (L + 1)``: whole spans are taken in rank order and a span that overshoots the budget
    is trimmed from its tail. Tokens outside every span get ``n_spans + U(0, 1)``, i.e. a uniform random top-up.
    """
    batch, n_spans = span_starts.shape
    length = token_starts.shape[1]
    n_bases = int(max(token_ends.max(initial=0), span_ends.max(initial=0), 0))
    lengths = np.where(span_valid, np.clip(span_ends, 0, n_bases) - np.clip(span_starts, 0, n_bases), 0)
    lengths = np.maximum(lengths, 0)
    # Expand every span into its bases (flat, vectorised) and keep the lowest rank covering each base.
    total = int(lengths.sum())
    base_rank = np.full(batch * (n_bases + 1), n_spans, dtype=np.int64)
    if total:
        flat_len = lengths.ravel()
        span_id = np.repeat(np.arange(flat_len.size), flat_len)
        first = np.cumsum(flat_len) - flat_len
        offset = np.arange(total) - np.repeat(first, flat_len)
        row = span_id // n_spans
        base = np.clip(span_starts.ravel(), 0, n_bases)[span_id] + offset
        np.minimum.at(base_rank, row * (n_bases + 1) + base, span_id % n_spans)
    base_rank = base_rank.reshape(batch, n_bases + 1)
    token_rank = np.full((batch, length), n_spans, dtype=np.int64)
    widths = token_widths(token_starts, token_ends)
    for j in range(int(widths.max(initial=0))):
        position = np.where(widths > j, token_starts + j, n_bases)  # n_bases is an always-uncovered sentinel
        token_rank = np.minimum(token_rank, np.take_along_axis(base_rank, position, axis=1))
    covered = token_rank < n_spans
    position_tiebreak = np.arange(length)[None, :] / (length + 1)
    return np.where(covered, token_rank + position_tiebreak, n_spans + rng.random((batch, length)))
