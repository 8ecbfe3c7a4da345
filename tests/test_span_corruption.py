"""T5 span corruption for ENBED (issue #15): noise budgets, inputs/labels layout, exact reconstruction,
plug-in masks."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from barcodemae import BarcodeTokenizer
from barcodemae.masking import (
    BarcodeMaskingCollator,
    SentinelVocabulary,
    SpanCorruptionCollator,
    corrupt_spans,
    random_spans_noise_mask,
    reconstruct,
)
from barcodemae.masking.span_corruption import IGNORE_INDEX

SENTINELS = SentinelVocabulary(first_id=20)
EOS, PAD = 3, 0


# ------------------------------------------------------------------------------------------------ helpers
def runs(mask_row: np.ndarray) -> list[tuple[int, int]]:
    """``[start, end)`` of every run of True, by hand."""
    out, start = [], None
    for i, value in enumerate(list(mask_row) + [False]):
        if value and start is None:
            start = i
        elif not value and start is not None:
            out.append((start, i))
            start = None
    return out


def expected_counts(n: int, density: float, mean: float) -> tuple[int, int]:
    """The documented budget: noise tokens and spans of a row with ``n`` maskable tokens."""
    if n < 2:
        return 0, 0
    noise = min(max(int(np.rint(density * n)), 1), n - 1)
    spans = max(1, int(np.rint(noise / mean)))
    return noise, min(spans, noise, n - noise + 1)


def framed_batch(lengths: list[int], rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """``[CLS] bases [SEP]`` rows of random bases (ids 5..19), right-padded: what the char tokenizer gives."""
    width = max(lengths) + 2
    ids = np.full((len(lengths), width), PAD, np.int64)
    attention = np.zeros((len(lengths), width), np.int64)
    for row, n in enumerate(lengths):
        ids[row, : n + 2] = [2, *rng.integers(5, 20, size=n), 3]
        attention[row, : n + 2] = 1
    return ids, attention


def maskable_of(ids: np.ndarray, attention: np.ndarray) -> np.ndarray:
    return attention.astype(bool) & ~np.isin(ids, [0, 2, 3, 4])


@pytest.fixture(scope="module")
def barcodes(fixture_csv) -> list[str]:
    return pd.read_csv(fixture_csv)["dna_barcode"].tolist()


# ------------------------------------------------------------------------------------------------ noise mask
@pytest.mark.parametrize("density, mean", [(0.15, 3.0), (0.3, 1.0), (0.5, 8.0), (0.9, 2.0)])
def test_noise_mask_has_exact_noise_and_span_counts(density, mean):
    rng = np.random.default_rng(0)
    lengths = [0, 1, 2, 3, 5, 17, *rng.integers(50, 700, size=40).tolist()]
    ids, attention = framed_batch(lengths, rng)
    maskable = maskable_of(ids, attention)
    noise = random_spans_noise_mask(maskable, density, mean, rng)
    assert noise.shape == ids.shape and noise.dtype == bool
    assert not (noise & ~maskable).any()
    for row, n in enumerate(lengths):
        k, s = expected_counts(n, density, mean)
        assert noise[row].sum() == k
        assert len(runs(noise[row])) == s


def test_noise_mask_works_in_maskable_index_space():
    """Scattered maskable tokens: budgets and span counts hold for the maskable tokens taken in order."""
    rng = np.random.default_rng(1)
    maskable = rng.random((64, 300)) < 0.6
    noise = random_spans_noise_mask(maskable, 0.2, 4.0, rng)
    assert not (noise & ~maskable).any()
    for row in range(64):
        k, s = expected_counts(int(maskable[row].sum()), 0.2, 4.0)
        compact = noise[row][maskable[row]]
        assert compact.sum() == k and len(runs(compact)) == s


def test_noise_mask_is_reproducible_with_a_seed():
    maskable = np.ones((8, 200), bool)
    first = random_spans_noise_mask(maskable, 0.15, 3.0, np.random.default_rng(7))
    again = random_spans_noise_mask(maskable, 0.15, 3.0, np.random.default_rng(7))
    other = random_spans_noise_mask(maskable, 0.15, 3.0, np.random.default_rng(8))
    np.testing.assert_array_equal(first, again)
    assert (first != other).any()


def test_span_lengths_average_the_mean_and_every_arrangement_is_equally_likely():
    """Over many rows spans average ``mean_span_length`` and vary in length. Every arrangement of the noise is
    equally likely, so the first and last tokens are noise when a span starts or ends exactly there (probability
    ``s / (c + 1)``), not never and always as in T5's unrolled mask, and interior tokens with ``noise_density``."""
    rng = np.random.default_rng(2)
    lengths = rng.integers(150, 660, size=600)
    maskable = np.arange(700)[None, :] < lengths[:, None]
    noise = random_spans_noise_mask(maskable, 0.15, 3.0, rng)
    span_lengths = np.array([end - start for row in noise for start, end in runs(row)])
    assert abs(span_lengths.mean() - 3.0) < 0.1
    assert span_lengths.min() == 1 and span_lengths.max() >= 8  # a random segmentation, not fixed spans
    counts = np.array([expected_counts(n, 0.15, 3.0) for n in lengths])
    at_an_end = np.mean(counts[:, 1] / (lengths - counts[:, 0] + 1))
    assert abs(noise[:, 0].mean() - at_an_end) < 0.03
    assert abs(noise[np.arange(len(lengths)), lengths - 1].mean() - at_an_end) < 0.03
    assert abs(noise[:, 20:140].mean() - 0.15) < 0.02


@pytest.mark.parametrize("density, mean", [(0.0, 3.0), (1.0, 3.0), (0.15, 0.5)])
def test_noise_mask_rejects_bad_parameters(density, mean):
    with pytest.raises(ValueError):
        random_spans_noise_mask(np.ones((1, 10), bool), density, mean, np.random.default_rng(0))


# ------------------------------------------------------------------------------------------------ corruption
def test_corruption_by_hand():
    """The module docstring's example: spans ``G T`` and ``C G A`` of ``A C G T T A C G A T``."""
    ids = np.array([[2, 5, 6, 7, 8, 8, 5, 6, 7, 5, 8, 3], [2, 5, 6, 3, 0, 0, 0, 0, 0, 0, 0, 0]])
    attention = (np.arange(12)[None, :] < np.array([[12], [4]])).astype(np.int64)
    noise = np.zeros(ids.shape, bool)
    noise[0, [3, 4, 7, 8, 9]] = True
    noise[1, 2] = True
    out = corrupt_spans(ids, attention, noise, SENTINELS, eos_id=EOS, pad_id=PAD)
    np.testing.assert_array_equal(out["input_ids"], [[2, 5, 6, 20, 8, 5, 21, 8, 3], [2, 5, 20, 3, 0, 0, 0, 0, 0]])
    np.testing.assert_array_equal(out["attention_mask"], [[1] * 9, [1, 1, 1, 1, 0, 0, 0, 0, 0]])
    np.testing.assert_array_equal(out["labels"], [[20, 7, 8, 21, 6, 7, 5, 3], [20, 6, 3, -100, -100, -100, -100, -100]])
    np.testing.assert_array_equal(out["decoder_attention_mask"], out["labels"] != IGNORE_INDEX)
    np.testing.assert_array_equal(out["noise_mask"], noise)


def test_inputs_and_labels_reconstruct_random_rows_exactly():
    """Any noise mask (specials included, runs of any length, rows of unequal length) round-trips."""
    rng = np.random.default_rng(3)
    for density in (0.05, 0.3, 0.7):
        lengths = rng.integers(0, 120, size=50).tolist()
        ids, attention = framed_batch(lengths, rng)
        noise = rng.random(ids.shape) < density
        out = corrupt_spans(ids, attention, noise, SENTINELS, eos_id=EOS, pad_id=PAD)
        for row, n in enumerate(lengths):
            restored = reconstruct(out["input_ids"][row], out["labels"][row], SENTINELS, out["attention_mask"][row])
            np.testing.assert_array_equal(restored, ids[row, : n + 2])


def test_labels_hold_exactly_the_spans_their_sentinels_and_eos():
    rng = np.random.default_rng(4)
    lengths = rng.integers(2, 400, size=60).tolist()
    ids, attention = framed_batch(lengths, rng)
    noise = random_spans_noise_mask(maskable_of(ids, attention), 0.15, 3.0, rng)
    out = corrupt_spans(ids, attention, noise, SENTINELS, eos_id=EOS, pad_id=PAD)
    labels, inputs = out["labels"], out["input_ids"]
    for row, n in enumerate(lengths):
        k, s = int(noise[row].sum()), len(runs(noise[row]))
        targets = labels[row][labels[row] != IGNORE_INDEX]
        assert len(targets) == k + s + 1  # the loss covers the masked tokens, one sentinel per span and EOS
        assert (labels[row][len(targets) :] == IGNORE_INDEX).all()  # padding only after the targets
        assert targets[-1] == EOS
        is_sentinel = SENTINELS.is_sentinel(targets)
        np.testing.assert_array_equal(targets[is_sentinel], SENTINELS.first_id + np.arange(s))
        np.testing.assert_array_equal(targets[:-1][~is_sentinel[:-1]], ids[row][noise[row]])
        real_inputs = inputs[row][out["attention_mask"][row].astype(bool)]
        assert len(real_inputs) == n + 2 - k + s  # a span costs one position
        np.testing.assert_array_equal(
            real_inputs[SENTINELS.is_sentinel(real_inputs)], SENTINELS.first_id + np.arange(s)
        )
        assert real_inputs[0] == 2 and real_inputs[-1] == 3  # [CLS] and [SEP] are kept
    assert out["input_ids"].shape[1] == out["attention_mask"].sum(axis=1).max()
    assert labels.shape[1] == out["decoder_attention_mask"].sum(axis=1).max()


def test_more_spans_than_sentinels_is_an_error():
    ids, attention = framed_batch([10, 12], np.random.default_rng(5))
    noise = np.zeros(ids.shape, bool)
    noise[0, [1, 3]] = True
    noise[1, [1, 3, 5, 7]] = True  # four spans
    with pytest.raises(ValueError, match=r"row 1 has 4 noise spans but there are only 3 sentinels"):
        corrupt_spans(ids, attention, noise, SentinelVocabulary(first_id=20, count=3), eos_id=EOS, pad_id=PAD)


def test_corruption_rejects_ids_that_clash_with_sentinels():
    ids, attention = framed_batch([5], np.random.default_rng(6))
    noise = np.zeros(ids.shape, bool)
    with pytest.raises(ValueError, match="sentinel"):
        corrupt_spans(ids, attention, noise, SENTINELS, eos_id=20, pad_id=PAD)
    with pytest.raises(ValueError, match="first sentinel id"):
        corrupt_spans(np.where(ids == 3, 25, ids), attention, noise, SENTINELS, eos_id=EOS, pad_id=PAD)


# ------------------------------------------------------------------------------------------------ sentinels
def test_sentinel_vocabulary_layout_and_validation():
    tokenizer = BarcodeTokenizer.char()
    sentinels = SentinelVocabulary.for_tokenizer(tokenizer)
    assert sentinels.first_id == tokenizer.describe()["vocab_size"] == 20
    assert sentinels.count == 128 and sentinels.model_vocab_size == 148
    np.testing.assert_array_equal(sentinels.ids(), np.arange(20, 148))
    np.testing.assert_array_equal(sentinels.is_sentinel([19, 20, 147, 148]), [False, True, True, False])
    with pytest.raises(ValueError):
        SentinelVocabulary(first_id=0)
    with pytest.raises(ValueError):
        SentinelVocabulary(first_id=20, count=0)


# ------------------------------------------------------------------------------------------------ collator
def test_collator_on_real_barcodes(barcodes):
    tokenizer = BarcodeTokenizer.char()
    collator = SpanCorruptionCollator.from_tokenizer(tokenizer)
    sequences = [s[: 100 + 23 * i] for i, s in enumerate(barcodes[:24])]  # unequal lengths
    encoded = tokenizer(sequences, padding=True, return_tensors="np")
    ids, attention = encoded["input_ids"].astype(np.int64), encoded["attention_mask"].astype(np.int64)
    out = collator(ids, attention, np.random.default_rng(0))
    noise = out["noise_mask"]
    special = np.isin(ids, [tokenizer.cls_token_id, tokenizer.sep_token_id, tokenizer.pad_token_id])
    assert not (noise & special).any() and not (noise & (attention == 0)).any()
    for row in range(len(sequences)):
        k, s = expected_counts(int((attention[row] == 1).sum()) - 2, 0.15, 3.0)
        assert noise[row].sum() == k and len(runs(noise[row])) == s
        restored = reconstruct(
            out["input_ids"][row], out["labels"][row], collator.sentinels, out["attention_mask"][row]
        )
        np.testing.assert_array_equal(restored, ids[row][attention[row] == 1])
    assert out["input_ids"].max() < collator.sentinels.model_vocab_size
    assert out["labels"].max() < collator.sentinels.model_vocab_size
    assert out["input_ids"].shape[1] < ids.shape[1]  # shorter encoder inputs than BERT-style masking
    assert (out["labels"][:, 0] == collator.sentinels.first_id).all()
    again = collator(ids, attention, np.random.default_rng(0))
    assert all(np.array_equal(out[key], again[key]) for key in out)


def test_collator_without_framing_can_corrupt_every_base(barcodes):
    tokenizer = BarcodeTokenizer.char(framing="none")
    collator = SpanCorruptionCollator.from_tokenizer(tokenizer, noise_density=0.3, mean_span_length=3.0)
    encoded = tokenizer(barcodes[:8], padding=True, return_tensors="np")
    ids, attention = encoded["input_ids"].astype(np.int64), encoded["attention_mask"].astype(np.int64)
    out = collator(ids, attention, np.random.default_rng(1))
    for row in range(8):
        n = int(attention[row].sum())
        assert out["noise_mask"][row].sum() == expected_counts(n, 0.3, 3.0)[0]
        restored = reconstruct(
            out["input_ids"][row], out["labels"][row], collator.sentinels, out["attention_mask"][row]
        )
        np.testing.assert_array_equal(restored, ids[row, :n])


def test_mask_fn_runs_become_spans_and_specials_are_dropped():
    ids, attention = framed_batch([10, 6], np.random.default_rng(8))
    given = np.zeros(ids.shape, bool)
    given[0, [0, 1, 2, 5, 9, 10, 11]] = True  # [CLS] and [SEP] (columns 0 and 11) must be dropped
    given[1, [3, 4, 9]] = True  # column 9 is padding

    def mask_fn(input_ids, attention_mask, rng):
        return given

    collator = SpanCorruptionCollator(SENTINELS, eos_id=EOS, mask_fn=mask_fn)
    out = collator(ids, attention, np.random.default_rng(0))
    np.testing.assert_array_equal(out["noise_mask"], given & maskable_of(ids, attention))
    assert runs(out["noise_mask"][0]) == [(1, 3), (5, 6), (9, 11)] and runs(out["noise_mask"][1]) == [(3, 5)]
    np.testing.assert_array_equal(out["labels"][1][:4], [20, ids[1, 3], ids[1, 4], EOS])


def test_another_masking_strategy_plugs_in(barcodes):
    """The seeds' strategies (here SpanBERT spans) supply the noise through ``mask_batch``."""
    tokenizer = BarcodeTokenizer.char()
    strategy = BarcodeMaskingCollator(tokenizer, "span", mask_ratio=0.15, seed=0)
    collator = SpanCorruptionCollator.from_tokenizer(tokenizer, mask_fn=strategy.mask_batch)
    encoded = tokenizer(barcodes[:16], padding=True, return_tensors="np")
    ids, attention = encoded["input_ids"].astype(np.int64), encoded["attention_mask"].astype(np.int64)
    out = collator(ids, attention, np.random.default_rng(0))
    expected = strategy.mask_batch(ids, attention, np.random.default_rng(0))
    np.testing.assert_array_equal(out["noise_mask"], expected)
    for row in range(16):
        n_spans = len(runs(expected[row]))
        assert (out["labels"][row] != IGNORE_INDEX).sum() == expected[row].sum() + n_spans + 1
        restored = reconstruct(
            out["input_ids"][row], out["labels"][row], collator.sentinels, out["attention_mask"][row]
        )
        np.testing.assert_array_equal(restored, ids[row][attention[row] == 1])


@pytest.mark.parametrize(
    "kwargs",
    [{"noise_density": 0.0}, {"noise_density": 1.0}, {"mean_span_length": 0.9}, {"eos_id": 20}, {"pad_id": 147}],
)
def test_collator_rejects_bad_parameters(kwargs):
    arguments = {"eos_id": EOS, **kwargs}
    with pytest.raises(ValueError):
        SpanCorruptionCollator(SENTINELS, **arguments)
