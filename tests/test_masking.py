"""Masking strategies, NPMI statistics, curricula and the pretraining collator (issue #4)."""

from __future__ import annotations

import itertools
import math
from collections import Counter

import numpy as np
import pandas as pd
import pytest
import torch
from torch.utils.data import DataLoader

from barcodemae import BarcodeMAEConfig, BarcodeMAEForPreTraining, BarcodeTokenizer
from barcodemae.masking import (
    STRATEGIES,
    BarcodeMaskingCollator,
    CMGEMSCurriculum,
    CMStepCurriculum,
    MaskingCurriculum,
    MaskingStrategy,
    MaskRatioSchedule,
    NPMITable,
    count_ngrams,
    fixed_validation_masks,
    mask_budget,
    select_by_key,
    spans_to_token_keys,
)
from conftest import tiny_config_kwargs

# ------------------------------------------------------------------------------------------------ fixtures
TOKENIZERS = {
    "kmer6": lambda: BarcodeTokenizer.kmer(6),
    "kmer6_stride1": lambda: BarcodeTokenizer.kmer(6, stride=1),
    "kmer4_stride2": lambda: BarcodeTokenizer.kmer(4, stride=2),
    "char": BarcodeTokenizer.char,
}


@pytest.fixture(scope="module")
def barcodes(fixture_csv) -> list[str]:
    sequences = pd.read_csv(fixture_csv)["dna_barcode"].tolist()
    # vary lengths (budgets differ per row) and include ambiguity codes ([UNK] k-mers must stay maskable)
    sequences[1] = sequences[1][:350]
    sequences[2] = sequences[2][:200] + "NNRY" + sequences[2][204:400]
    return sequences


@pytest.fixture(scope="module")
def same_length(barcodes) -> list[str]:
    """600 bp barcodes: 100 non-overlapping 6-mers each, so every row has the same budget."""
    return [s[:600] for s in barcodes if len(s) >= 600]


@pytest.fixture(scope="module")
def table(barcodes) -> NPMITable:
    return NPMITable.build(barcodes, min_count=3, progress=False)


@pytest.fixture(scope="module", params=list(TOKENIZERS))
def tokenizer(request):
    return TOKENIZERS[request.param]()


def features(tokenizer, sequences, n=24):
    return [{"input_ids": ids} for ids in tokenizer(sequences[:n])["input_ids"]]


# ---------------------------------------------------------------------------------------------- budgets
@pytest.mark.parametrize("strategy", STRATEGIES)
def test_every_strategy_has_exact_budget_and_never_masks_special_tokens(tokenizer, barcodes, table, strategy):
    collator = BarcodeMaskingCollator(tokenizer, strategy, mask_ratio=0.4, seed=1, npmi_table=table)
    batch = collator(features(tokenizer, barcodes))
    ids, attention, masked = batch["input_ids"], batch["attention_mask"], batch["masked_positions"]
    assert masked.dtype == torch.bool and masked.shape == ids.shape
    special = torch.isin(ids, torch.tensor([tokenizer.cls_token_id, tokenizer.sep_token_id, tokenizer.pad_token_id]))
    assert not (masked & special).any()
    assert not (masked & (attention == 0)).any()
    n_maskable = (attention.bool() & ~special).sum(1)
    expected = torch.clamp(torch.round(n_maskable * 0.4), min=1)
    assert torch.equal(masked.sum(1), expected.long())
    # the [UNK] k-mers of the ambiguous row are ordinary maskable tokens
    assert (ids[2] == tokenizer.unk_token_id).any() or tokenizer.scheme == "char"


def test_equal_length_rows_get_equal_visible_counts_for_mae(same_length, table):
    tokenizer = BarcodeTokenizer.kmer(6)
    for strategy in STRATEGIES:
        collator = BarcodeMaskingCollator(tokenizer, strategy, mask_ratio=0.5, npmi_table=table)
        out = collator(features(tokenizer, same_length))
        visible = (out["attention_mask"].bool() & ~out["masked_positions"]).sum(1)
        assert len(set(visible.tolist())) == 1, strategy


def test_mask_budget_keeps_one_visible_and_one_masked():
    maskable = np.array([[1, 1, 0], [1, 0, 0], [1, 1, 1]], dtype=bool)
    assert mask_budget(maskable, 0.99).tolist() == [1, 0, 2]
    assert mask_budget(maskable, 0.01).tolist() == [1, 0, 1]


# ------------------------------------------------------------------------------------- span semantics
def _token_coordinates(tokenizer, sequence):
    ids = np.array([tokenizer(sequence)["input_ids"]])
    return ids, *tokenizer.nucleotide_spans(ids)


@pytest.mark.parametrize(
    ("k", "stride", "expected_starts"), [(6, 6, [6]), (6, 1, [2, 3, 4, 5, 6, 7, 8]), (4, 2, [4, 6, 8])]
)
def test_a_base_span_masks_every_token_overlapping_it(k, stride, expected_starts):
    tokenizer = BarcodeTokenizer.kmer(k, stride=stride)
    _ids, starts, ends = _token_coordinates(tokenizer, "ACGTACGTACGTACGTACGTACGTACGT")
    keys = spans_to_token_keys(
        np.array([[7]]), np.array([[9]]), np.array([[True]]), starts, ends, np.random.default_rng(0)
    )
    covered = keys < 1  # rank 0 span; uncovered tokens get keys >= n_spans = 1
    assert starts[covered].tolist() == expected_starts
    overlap = (starts < 9) & (ends > 7) & (starts >= 0)
    assert np.array_equal(covered, overlap)


def test_overshooting_spans_are_trimmed_from_the_tail_and_short_ones_topped_up():
    tokenizer = BarcodeTokenizer.char()
    _ids, starts, ends = _token_coordinates(tokenizer, "ACGT" * 10)
    maskable = starts >= 0
    span_starts, span_ends = np.array([[5, 20]]), np.array([[10, 30]])  # 5 + 10 bases
    keys = spans_to_token_keys(span_starts, span_ends, np.ones((1, 2), bool), starts, ends, np.random.default_rng(0))
    trimmed = select_by_key(keys, maskable, np.array([8]))
    assert starts[trimmed].tolist() == [5, 6, 7, 8, 9, 20, 21, 22]  # first span whole, second cut at its tail
    topped = select_by_key(keys, maskable, np.array([20]))
    assert topped.sum() == 20 and set(range(5, 10)) | set(range(20, 30)) <= set(starts[topped].tolist())


def _mean_run_length(masked: torch.Tensor) -> float:
    m = masked.numpy().astype(np.int8)
    starts = (np.diff(m, axis=1, prepend=0) == 1).sum()
    return m.sum() / max(starts, 1)


def test_span_masking_masks_contiguous_runs(barcodes):
    tokenizer = BarcodeTokenizer.kmer(6)
    batch = features(tokenizer, barcodes, 64)
    run = {
        s: _mean_run_length(BarcodeMaskingCollator(tokenizer, s, mask_ratio=0.15, seed=0)(batch)["masked_positions"])
        for s in ("random", "span")
    }
    assert run["span"] > 2 * run["random"]


# ------------------------------------------------------------------------------------ NPMI strategies
def _masked_base_scores(collator, table, batch):
    """Mean best-NPMI of the n-grams starting at each masked token's first base."""
    out = collator(batch)
    ids = out["input_ids"].numpy()
    starts, _ = collator.tokenizer.nucleotide_spans(ids)
    from barcodemae.masking.spans import batch_bases

    _, ends = collator.tokenizer.nucleotide_spans(ids)
    scores, _ = table.position_scores(batch_bases(ids, starts, ends, collator.base_table))
    at = np.take_along_axis(scores, np.clip(starts, 0, scores.shape[1] - 1), axis=1)
    finite = np.isfinite(at)
    masked = out["masked_positions"].numpy()
    return at[masked & finite].mean(), at[~masked & finite & (starts >= 0)].mean()


@pytest.mark.parametrize("strategy", ["global", "genemask"])
def test_npmi_strategies_prefer_high_npmi_ngrams(barcodes, table, strategy):
    tokenizer = BarcodeTokenizer.kmer(6, stride=1)
    batch = features(tokenizer, barcodes, 16)
    kwargs = {"npmi_fraction": 1.0} if strategy == "genemask" else {}
    collator = BarcodeMaskingCollator(tokenizer, strategy, 0.15, npmi_table=table, strategy_kwargs=kwargs)
    masked_mean, visible_mean = _masked_base_scores(collator, table, batch)
    random_masked, random_visible = _masked_base_scores(BarcodeMaskingCollator(tokenizer, "random", 0.15), table, batch)
    assert masked_mean > visible_mean + 0.05
    assert abs(random_masked - random_visible) < masked_mean - visible_mean


def test_global_masks_the_top_ngram_deterministically_and_stochastic_global_varies(barcodes, table):
    tokenizer = BarcodeTokenizer.kmer(6)
    batch = features(tokenizer, barcodes, 16)
    masks = [
        BarcodeMaskingCollator(tokenizer, "global", 0.1, seed=s, npmi_table=table)(batch)["masked_positions"]
        for s in (0, 1)
    ]
    # with ~10 masked k-mers out of ~100 the budget is filled by top-NPMI spans alone: no random top-up, no seed
    assert torch.equal(masks[0], masks[1])
    stochastic = BarcodeMaskingCollator(tokenizer, "stochastic_global", 0.1, seed=0, npmi_table=table,
                                        strategy_kwargs={"temperature": 0.3})
    epochs = [stochastic(batch)["masked_positions"] for _ in range(2)]
    assert not torch.equal(epochs[0], epochs[1])
    random_mask = BarcodeMaskingCollator(tokenizer, "random", 0.1, seed=0)(batch)["masked_positions"]
    overlap = lambda a, b: (a & b).sum().item() / b.sum().item()
    assert overlap(epochs[0], masks[0]) > overlap(random_mask, masks[0])


def test_npmi_strategy_without_table_is_a_clear_error():
    with pytest.raises(ValueError, match="NPMITable"):
        BarcodeMaskingCollator(BarcodeTokenizer.kmer(6), "global")
    with pytest.raises(ValueError, match="unknown masking strategy"):
        BarcodeMaskingCollator(BarcodeTokenizer.kmer(6), "bogus")


# --------------------------------------------------------------------------------------------- NPMI
def test_npmi_values_on_a_hand_checked_corpus():
    # 1-grams A3 C2 G2 T1 (N_1=8); 2-grams AC2 CG2 GT1 GA1 (N_2=6); 3-grams ACG2 CGT1 CGA1 (N_3=4)
    corpus = ["ACGT", "acga"]
    table = NPMITable.build(corpus, min_n=2, max_n=3, min_count=1, progress=False)
    # PMI(AC) = ln (2/6) / ((3/8)(2/8)) = ln 32/9; with c = 1, ln c = 0 so NPMI = PMI
    assert table.score(["AC"])[0] == pytest.approx(math.log(32 / 9), rel=1e-6)
    # ACG: splits A|C|G = 3/128, AC|G = 1/12, A|CG = 1/8 -> min PMI uses the likeliest split: ln (1/2)/(1/8)
    assert table.score(["ACG"])[0] == pytest.approx(math.log(4), rel=1e-6)
    only_unigrams = NPMITable.build(corpus, min_n=2, max_n=3, min_count=1, max_piece=1, progress=False)
    assert only_unigrams.score(["ACG"])[0] == pytest.approx(math.log(64 / 3), rel=1e-6)
    # c = 2: n-grams seen once get no score, the others are weighted by ln f / (ln c + ln f) = 1/2 for f = 2
    strict = NPMITable.build(corpus, min_n=2, max_n=3, min_count=2, progress=False)
    scores = strict.score(["AC", "GT", "ACG", "CGT", "ANG", "ACGTA"])
    assert scores[0] == pytest.approx(0.5 * math.log(32 / 9), rel=1e-6)
    assert scores[2] == pytest.approx(0.5 * math.log(4), rel=1e-6)
    assert np.isnan(scores[[1, 3, 4, 5]]).all()


def _brute_force_pmi(word, counts, totals, max_piece=None):
    n = len(word)
    longest = n - 1 if max_piece is None else max_piece
    best = -math.inf
    for cuts in itertools.chain.from_iterable(itertools.combinations(range(1, n), r) for r in range(1, n)):
        bounds = (0, *cuts, n)
        pieces = [word[a:b] for a, b in itertools.pairwise(bounds)]
        if max(len(p) for p in pieces) > longest:
            continue
        best = max(best, sum(math.log(counts[p] / totals[len(p)]) for p in pieces))
    return math.log(counts[word] / totals[n]) - best


@pytest.mark.parametrize("max_piece", [None, 2])
def test_npmi_matches_brute_force_segmentation_on_real_barcodes(barcodes, max_piece):
    corpus = barcodes[:30]
    counts = Counter()
    for seq in corpus:
        for n in range(1, 6):
            counts.update(seq[i : i + n] for i in range(len(seq) - n + 1) if set(seq[i : i + n]) <= set("ACGT"))
    totals = Counter()
    for word, c in counts.items():
        totals[len(word)] += c
    table = NPMITable.build(corpus, min_n=2, max_n=5, min_count=5, max_piece=max_piece, progress=False)
    words = [w for w, c in counts.items() if len(w) >= 2 and c >= 5][:200]
    expected = [
        _brute_force_pmi(w, counts, totals, max_piece) * math.log(counts[w]) / (math.log(5) + math.log(counts[w]))
        for w in words
    ]
    np.testing.assert_allclose(table.score(words), expected, rtol=1e-5)


def test_counting_never_crosses_records_or_ambiguity_codes_and_counts_rejects():
    corpus = counts = count_ngrams(["AAC", "CAA", "ANA", "XYZ!", None], max_n=3, progress=False)
    assert counts.n_sequences == 3 and counts.n_rejected == 2 and "record '3'" in corpus.rejected_examples[0]
    ids = {"AA": 0, "AC": 1, "CA": 4}
    two = counts.counts[2]
    assert two[ids["AA"]] == 2 and two[ids["AC"]] == 1 and two[ids["CA"]] == 1 and two.sum() == 4  # no CC, no AN
    assert counts.counts[3].sum() == 2


def test_min_count_scales_with_corpus_size(barcodes):
    small = NPMITable.build(barcodes[:20], min_count_rate=1e-4, progress=False)
    large = NPMITable.build(barcodes, min_count_rate=1e-4, progress=False)
    assert large.min_count > small.min_count >= 2


def test_npmi_table_round_trips_through_safetensors(tmp_path, table):
    path = table.save(tmp_path / "model")
    assert path.name == "npmi_table.safetensors"
    loaded = NPMITable.load(tmp_path / "model")
    words = [w for w, _, _ in table.top(6, 20)] + ["ACGTNN", "AC"]
    np.testing.assert_array_equal(loaded.score(words), table.score(words))
    assert (loaded.min_count, loaded.max_piece, loaded.metadata) == (table.min_count, table.max_piece, table.metadata)
    with pytest.raises(FileNotFoundError, match="npmi_table.safetensors"):
        NPMITable.load(tmp_path / "missing")


# ------------------------------------------------------------------------------------------- seeding
def test_masks_are_reproducible_with_a_seed(barcodes, table):
    tokenizer = BarcodeTokenizer.kmer(6)
    batch = features(tokenizer, barcodes)
    for strategy in STRATEGIES:
        a = BarcodeMaskingCollator(tokenizer, strategy, seed=7, npmi_table=table)(batch)["masked_positions"]
        b = BarcodeMaskingCollator(tokenizer, strategy, seed=7, npmi_table=table)(batch)["masked_positions"]
        c = BarcodeMaskingCollator(tokenizer, strategy, seed=8, npmi_table=table)(batch)["masked_positions"]
        assert torch.equal(a, b), strategy
        if strategy != "global":
            assert not torch.equal(a, c), strategy


def test_fixed_validation_masks_are_fixed_and_passed_through(barcodes):
    tokenizer = BarcodeTokenizer.kmer(6)
    collator = BarcodeMaskingCollator(tokenizer, "random", seed=3)
    val = features(tokenizer, barcodes, 40)
    first = fixed_validation_masks(collator, val, seed=11, batch_size=16)
    again = fixed_validation_masks(collator, val, seed=11, batch_size=16)
    assert [f["masked_positions"] for f in first] == [f["masked_positions"] for f in again]
    out1 = collator(first[:8])["masked_positions"]
    out2 = collator(first[:8])["masked_positions"]
    assert torch.equal(out1, out2)
    assert out1[0, : len(first[0]["input_ids"])].tolist() == first[0]["masked_positions"]


def test_padding_and_pad_to_multiple_of(barcodes):
    tokenizer = BarcodeTokenizer.kmer(6)
    batch = features(tokenizer, barcodes, 4)
    out = BarcodeMaskingCollator(tokenizer, "random", pad_to_multiple_of=32)(batch)
    assert out["input_ids"].shape[1] % 32 == 0
    assert (out["input_ids"][1, len(batch[1]["input_ids"]) :] == tokenizer.pad_token_id).all()
    assert out["attention_mask"].sum(1).tolist() == [len(f["input_ids"]) for f in batch]
    with pytest.raises(ValueError, match="empty batch"):
        BarcodeMaskingCollator(tokenizer, "random")([])


def test_bpe_tokenizer_masks_in_base_coordinates(shared_data, barcodes, table):
    tokenizer = BarcodeTokenizer.from_tokenizer_file(
        shared_data / "reference_tokenizers/bpe_barcode_256/tokenizer.json"
    )
    batch = features(tokenizer, barcodes, 8)
    for strategy in ("span", "global"):
        out = BarcodeMaskingCollator(tokenizer, strategy, 0.3, npmi_table=table)(batch)
        special = torch.isin(out["input_ids"], torch.tensor(tokenizer.all_special_ids)) & (
            out["input_ids"] != tokenizer.unk_token_id
        )
        n = (out["attention_mask"].bool() & ~special).sum(1)
        assert torch.equal(out["masked_positions"].sum(1), torch.round(n * 0.3).long())


# ----------------------------------------------------------------------------------------- curricula
class _LeftMost(MaskingStrategy):
    """Masks the first tokens: lets tests see which phase produced a mask."""

    name = "leftmost"

    def keys(self, batch, rng):
        return np.broadcast_to(np.arange(batch.input_ids.shape[1], dtype=float), batch.input_ids.shape).copy()


class _RightMost(MaskingStrategy):
    name = "rightmost"

    def keys(self, batch, rng):
        return -np.broadcast_to(np.arange(batch.input_ids.shape[1], dtype=float), batch.input_ids.shape).copy()


def _left_fraction(masked: torch.Tensor) -> float:
    """Share of rows whose first real token (position 1) is masked."""
    return masked[:, 1].float().mean().item()


def test_cm_gems_switches_when_perplexity_flattens_and_resumes_in_phase(barcodes):
    curriculum = CMGEMSCurriculum(threshold=0.5, early=_LeftMost(), late=_RightMost())
    tokenizer = BarcodeTokenizer.kmer(6)
    collator = BarcodeMaskingCollator(tokenizer, None, 0.2, curriculum=curriculum)
    batch = features(tokenizer, barcodes, 16)
    assert _left_fraction(collator(batch)["masked_positions"]) == 1.0
    assert not curriculum.on_evaluate(100, 40.0)  # first evaluation: nothing to compare
    assert not curriculum.on_evaluate(200, 30.0)  # drop 10 >= 0.5
    assert curriculum.on_evaluate(300, 29.8)  # drop 0.2 < 0.5 -> switch to Global
    assert curriculum.switched and curriculum.switch_step == 300
    assert _left_fraction(collator(batch)["masked_positions"]) == 0.0
    assert not curriculum.on_evaluate(400, 10.0)  # the switch is one-way
    resumed = CMGEMSCurriculum(threshold=0.5, early=_LeftMost(), late=_RightMost())
    resumed.load_state_dict(curriculum.state_dict())
    assert resumed.switched and resumed.late_probability == 1.0 and resumed.history == curriculum.history
    with pytest.raises(ValueError, match="perplexity"):
        resumed.on_evaluate(500, float("nan"))


def test_cm_gems_patience_needs_consecutive_flat_evaluations():
    curriculum = CMGEMSCurriculum(threshold=1.0, patience=2)
    results = [curriculum.on_evaluate(step, ppl) for step, ppl in enumerate([50, 49.5, 40, 39.9, 39.8])]
    assert results == [False, False, False, False, True]


def test_cm_step_mixes_strategies_with_a_linear_probability(barcodes):
    curriculum = CMStepCurriculum(early=_LeftMost(), late=_RightMost())
    tokenizer = BarcodeTokenizer.kmer(6)
    collator = BarcodeMaskingCollator(tokenizer, None, 0.2, seed=0, curriculum=curriculum)
    batch = features(tokenizer, barcodes, 200)
    fractions = []
    for step in (0, 500, 1000):
        curriculum.on_step(step, 1000)
        fractions.append(_left_fraction(collator(batch)["masked_positions"]))
    assert fractions[0] == 1.0 and fractions[2] == 0.0 and 0.35 < fractions[1] < 0.65
    assert curriculum.late_probability == 1.0


def test_mask_ratio_schedule_reaches_the_collator(same_length):
    schedule = MaskRatioSchedule(0.5, 0.2, kind="linear")
    assert (
        schedule(0, 100) == 0.5
        and schedule(100, 100) == pytest.approx(0.2)
        and schedule(50, 100) == pytest.approx(0.35)
    )
    assert MaskRatioSchedule(0.5, 0.2, kind="cosine")(50, 100) == pytest.approx(0.35)
    curriculum = MaskingCurriculum("random", ratio_schedule=schedule)
    tokenizer = BarcodeTokenizer.kmer(6)
    collator = BarcodeMaskingCollator(tokenizer, None, 0.9, curriculum=curriculum)
    batch = features(tokenizer, same_length, 4)
    assert collator(batch)["masked_positions"].sum(1).tolist() == [90] * 4  # no schedule step yet: collator ratio
    curriculum.on_step(100, 100)
    assert collator(batch)["masked_positions"].sum(1).tolist() == [20] * 4
    restored = MaskingCurriculum("random", ratio_schedule=schedule)
    restored.load_state_dict(curriculum.state_dict())
    assert restored.mask_ratio == pytest.approx(0.2) and restored.step == 100


class _Rows(torch.utils.data.Dataset):
    def __init__(self, rows):
        self.rows = rows

    def __len__(self):
        return len(self.rows)

    def __getitem__(self, index):
        return self.rows[index]


def test_phase_and_ratio_reach_persistent_dataloader_workers(same_length):
    tokenizer = BarcodeTokenizer.kmer(6)
    curriculum = CMGEMSCurriculum(threshold=1.0, early=_LeftMost(), late=_RightMost(),
                                  ratio_schedule=MaskRatioSchedule(0.5, 0.1))
    collator = BarcodeMaskingCollator(tokenizer, None, 0.5, curriculum=curriculum)
    loader = DataLoader(_Rows(features(tokenizer, same_length, 32)), batch_size=4,
                        collate_fn=collator, num_workers=2, persistent_workers=True)
    first = [b["masked_positions"] for b in loader]
    assert all(_left_fraction(m) == 1.0 and m.sum(1).eq(50).all() for m in first)
    curriculum.on_evaluate(1, 20.0)
    curriculum.on_evaluate(2, 19.9)  # flat -> switch, made in the main process only
    curriculum.on_step(10, 10)  # ratio schedule at its end: 0.1
    second = [b["masked_positions"] for b in loader]  # same (persistent) worker processes
    assert all(_left_fraction(m) == 0.0 and m.sum(1).eq(10).all() for m in second)


def test_workers_do_not_repeat_each_others_masks(same_length):
    tokenizer = BarcodeTokenizer.kmer(6)
    same = same_length[:1] * 8
    loader = DataLoader(_Rows(features(tokenizer, same, 8)), batch_size=4, num_workers=2,
                        collate_fn=BarcodeMaskingCollator(tokenizer, "random", seed=0))
    a, b = [batch["masked_positions"] for batch in loader]
    assert not torch.equal(a, b)


# ---------------------------------------------------------------------------------------- the model
@pytest.mark.parametrize("objective", ["mae", "mlm"])
def test_collator_output_trains_the_model(barcodes, table, objective):
    tokenizer = BarcodeTokenizer.kmer(4)
    config = BarcodeMAEConfig(
        **{**tiny_config_kwargs(), **tokenizer.model_config_kwargs()}, pretraining_objective=objective
    )
    model = BarcodeMAEForPreTraining(config)
    batch = BarcodeMaskingCollator(tokenizer, "genemask", 0.5, npmi_table=table)(features(tokenizer, barcodes, 8))
    output = model(**batch)
    assert torch.isfinite(output.loss)
    assert torch.equal(output.masked_positions, batch["masked_positions"])
    output.loss.backward()
