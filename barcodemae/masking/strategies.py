"""Masking strategies: each turns a padded batch into per-token selection keys (lower = masked first).

The collator then takes exactly the per-sample budget of tokens with the smallest keys
(:func:`selection.select_by_key`), so every strategy has exact budgets, never masks special or pad tokens, and is
correct for any tokenizer because span strategies work in nucleotide coordinates (:mod:`spans`).

========================  ==========================================================================================
``random``                uniform over tokens (MAE default; BarcodeMAE / BarcodeBERT)
``span``                  SpanBERT: geometric span lengths (p=0.2, at most 10 token steps), uniform span starts
``genemask``              GeneMask: random centres; for half of them the highest-NPMI n-gram within a local window
                          replaces the centre and is masked whole (a wider span), the rest mask one token step
``global``                CM-GEMS Global: the top-NPMI n-grams of the sequence, highest first
``stochastic_global``     Global with Gumbel noise on the scores (Gumbel-top-k sampling), so the same spans are not
                          masked in every epoch while high-NPMI n-grams stay the most likely
========================  ==========================================================================================
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np

from .npmi import NPMITable
from .spans import batch_bases, spans_to_token_keys


@dataclass
class MaskingBatch:
    """What a strategy sees: token ids, their base coordinates, which tokens may be masked and the budget."""

    input_ids: np.ndarray  # (B, L) int64
    maskable: np.ndarray  # (B, L) bool
    budget: np.ndarray  # (B,) int64
    token_starts: np.ndarray  # (B, L) first base of each token, -1 for special/pad
    token_ends: np.ndarray  # (B, L) end base (exclusive), -1 for special/pad
    base_table: np.ndarray  # (vocab, max token length) base codes of every id
    token_step: float  # bases a token advances the read by (k-mer stride, 1 for chars, mean length for BPE)

    @cached_property
    def bases(self) -> np.ndarray:
        """``(B, n_bases)`` base codes rebuilt from the ids (4 = ambiguous / past the end of a row)."""
        return batch_bases(self.input_ids, self.token_starts, self.token_ends, self.base_table)

    @cached_property
    def n_bases(self) -> np.ndarray:
        """Bases covered by each row's tokens."""
        return np.maximum(self.token_ends.max(axis=1), 0)

    def n_spans(self, tokens_per_span: float) -> int:
        """Spans to draw so that, even with overlaps, the budget is almost always reached before the top-up."""
        return int(np.ceil(self.budget.max(initial=1) / max(tokens_per_span, 1.0) * 2)) + 2


class MaskingStrategy:
    """Base class: ``keys(batch, rng)`` returns ``(B, L)`` float keys; the collator selects the budget."""

    name: str = ""
    needs_npmi: bool = False

    def keys(self, batch: MaskingBatch, rng: np.random.Generator) -> np.ndarray:
        raise NotImplementedError

    def __repr__(self) -> str:
        fields = ", ".join(f"{k}={v!r}" for k, v in vars(self).items() if k != "table")
        return f"{type(self).__name__}({fields})"


class RandomMasking(MaskingStrategy):
    """Uniform random tokens: with exact budgets this is the MAE default mask."""

    name = "random"

    def keys(self, batch: MaskingBatch, rng: np.random.Generator) -> np.ndarray:
        return rng.random(batch.input_ids.shape)


class SpanMasking(MaskingStrategy):
    """SpanBERT spans: length ~ Geometric(p) clipped to ``max_span`` token steps, start uniform over the bases."""

    name = "span"

    def __init__(self, p: float = 0.2, max_span: int = 10) -> None:
        if not 0 < p <= 1 or max_span < 1:
            raise ValueError(f"need 0 < p <= 1 and max_span >= 1, got p={p}, max_span={max_span}")
        self.p, self.max_span = p, max_span

    def keys(self, batch: MaskingBatch, rng: np.random.Generator) -> np.ndarray:
        mean_tokens = min(1 / self.p, self.max_span)
        shape = (batch.input_ids.shape[0], batch.n_spans(mean_tokens))
        lengths = np.minimum(rng.geometric(self.p, size=shape), self.max_span)
        starts = np.floor(rng.random(shape) * batch.n_bases[:, None]).astype(np.int64)
        ends = starts + np.ceil(lengths * batch.token_step).astype(np.int64)
        return spans_to_token_keys(starts, ends, np.ones(shape, bool), batch.token_starts, batch.token_ends, rng)


class _NPMIStrategy(MaskingStrategy):
    needs_npmi = True

    def __init__(self, table: NPMITable) -> None:
        if table is None:
            raise ValueError(f"strategy {self.name!r} needs an NPMITable (build one with NPMITable.build)")
        self.table = table


class GeneMaskMasking(_NPMIStrategy):
    """GeneMask: random mask centres; a fraction (half) move to the best-NPMI n-gram within ``window`` bases.

    NPMI-guided centres mask their whole n-gram (2..10 bases, at least one token step): the "wider span" that
    stops the model from reconstructing a strongly associated n-gram from its own visible half. Other centres
    mask one token step. Spans are ranked in random order, so both kinds share the budget.
    """

    name = "genemask"

    def __init__(self, table: NPMITable, npmi_fraction: float = 0.5, window: int = 10) -> None:
        super().__init__(table)
        if not 0 <= npmi_fraction <= 1 or window < 0:
            raise ValueError(f"need 0 <= npmi_fraction <= 1 and window >= 0, got {npmi_fraction}, {window}")
        self.npmi_fraction, self.window = npmi_fraction, window

    def keys(self, batch: MaskingBatch, rng: np.random.Generator) -> np.ndarray:
        scores, lengths = self.table.position_scores(batch.bases)
        n_rows, n_bases = scores.shape
        shape = (n_rows, batch.n_spans(1.0))
        centres = np.floor(rng.random(shape) * batch.n_bases[:, None]).astype(np.int64)
        offsets = np.arange(-self.window, self.window + 1)
        candidates = np.clip(centres[:, :, None] + offsets, 0, max(n_bases - 1, 0))  # (B, S, W)
        window_scores = np.take_along_axis(scores[:, None, :], candidates, axis=2) if n_bases else np.full(
            candidates.shape, -np.inf
        )
        pick = window_scores.argmax(axis=2)
        best_pos = np.take_along_axis(candidates, pick[..., None], axis=2)[..., 0]
        best_score = np.take_along_axis(window_scores, pick[..., None], axis=2)[..., 0]
        step = int(np.ceil(batch.token_step))
        guided = (rng.random(shape) < self.npmi_fraction) & np.isfinite(best_score)
        best_len = np.take_along_axis(lengths, best_pos, axis=1) if n_bases else np.zeros(shape, np.int64)
        starts = np.where(guided, best_pos, centres)
        ends = starts + np.where(guided, np.maximum(best_len, step), step)
        return spans_to_token_keys(starts, ends, np.ones(shape, bool), batch.token_starts, batch.token_ends, rng)


class GlobalMasking(_NPMIStrategy):
    """CM-GEMS Global: mask the top-NPMI n-grams of each sequence, best first, until the budget is spent.

    ``temperature > 0`` adds Gumbel noise to the scores (Gumbel-top-k, i.e. sampling without replacement with
    probability ~ exp(npmi / temperature)): the stochastic variant, so every epoch does not mask the same spans.
    """

    name = "global"

    def __init__(self, table: NPMITable, temperature: float = 0.0) -> None:
        super().__init__(table)
        if temperature < 0:
            raise ValueError(f"temperature must be >= 0, got {temperature}")
        self.temperature = temperature

    def keys(self, batch: MaskingBatch, rng: np.random.Generator) -> np.ndarray:
        scores, lengths = self.table.position_scores(batch.bases)
        scores = scores.astype(np.float64)
        if self.temperature > 0:
            scores = scores + self.temperature * rng.gumbel(size=scores.shape)
        n_spans = min(batch.n_spans(1.0), scores.shape[1])
        order = np.argsort(-scores, axis=1, kind="stable")[:, :n_spans]
        starts = order
        ends = order + np.take_along_axis(lengths, order, axis=1)
        valid = np.isfinite(np.take_along_axis(scores, order, axis=1))
        return spans_to_token_keys(starts, ends, valid, batch.token_starts, batch.token_ends, rng)


def stochastic_global(table: NPMITable, temperature: float = 0.1) -> GlobalMasking:
    """Global masking with Gumbel noise (see :class:`GlobalMasking`)."""
    return GlobalMasking(table, temperature=temperature)


STRATEGIES = ("random", "span", "genemask", "global", "stochastic_global")


def build_strategy(name: str | MaskingStrategy, npmi_table: NPMITable | None = None, **kwargs) -> MaskingStrategy:
    """A strategy from its name (``STRATEGIES``); NPMI strategies need ``npmi_table``."""
    if isinstance(name, MaskingStrategy):
        return name
    if name == "random":
        return RandomMasking(**kwargs)
    if name == "span":
        return SpanMasking(**kwargs)
    if name == "genemask":
        return GeneMaskMasking(npmi_table, **kwargs)
    if name == "global":
        return GlobalMasking(npmi_table, **kwargs)
    if name == "stochastic_global":
        return stochastic_global(npmi_table, **kwargs)
    raise ValueError(f"unknown masking strategy {name!r}; choose one of {STRATEGIES}")
