"""The speed baseline and the benchmark arithmetic must be right, or the speed comparisons mean nothing."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from unittest import mock

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F
from bench_embedding import forward_flops_per_barcode
from bench_pretraining import (
    MAIN_VARIANTS,
    VOCAB_SIZE,
    measure_step,
    speedups,
    step_flops,
    synthetic_batch,
)
from bert_reference import BertReferenceMAE
from flops import head_flops
from timing import time_steps
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.utils.flop_counter import FlopCounterMode

from modeling_barcodemae import BarcodeMAEConfig, BarcodeMAEModel

VOCAB = 4101


@pytest.fixture(scope="module")
def reference() -> BertReferenceMAE:
    torch.manual_seed(0)
    return BertReferenceMAE(
        VOCAB, hidden_size=32, num_layers=2, decoder_layers=1, num_heads=2, intermediate_size=64
    ).eval()


@pytest.fixture(scope="module")
def batch() -> dict:
    values = synthetic_batch(batch_size=3, seq_len=20, mask_ratio=0.5, device=torch.device("cpu"), seed=1)
    values["attention_mask"][2, 14:] = 0  # a shorter barcode, padded
    values["input_ids"][2, 14:] = 0
    values["input_ids"][2, 13] = 3
    values["masked_positions"] &= values["attention_mask"].bool()
    values["masked_positions"][2, 13] = False
    return values


def test_masked_tokens_never_reach_the_reference_encoder(reference, batch):
    """Changing the ids under the mask leaves every logit unchanged: only visible tokens are encoded."""
    with torch.no_grad():
        _, logits = reference(batch["input_ids"], batch["attention_mask"], batch["masked_positions"])
        altered = torch.where(batch["masked_positions"], torch.full_like(batch["input_ids"], 7), batch["input_ids"])
        _, logits_altered = reference(altered, batch["attention_mask"], batch["masked_positions"])
    torch.testing.assert_close(logits, logits_altered)


def test_reference_loss_is_cross_entropy_on_masked_positions_only(reference, batch):
    with torch.no_grad():
        loss, logits = reference(batch["input_ids"], batch["attention_mask"], batch["masked_positions"])
    masked = batch["masked_positions"]
    expected = F.cross_entropy(logits[masked], batch["input_ids"][masked])
    torch.testing.assert_close(loss, expected)


def test_reference_padding_does_not_change_a_barcode_result(reference, batch):
    """Row 2 alone (unpadded) and inside the padded batch gives the same logits on its real tokens."""
    with torch.no_grad():
        _, batched = reference(batch["input_ids"], batch["attention_mask"], batch["masked_positions"])
        _, alone = reference(
            batch["input_ids"][2:, :14], batch["attention_mask"][2:, :14], batch["masked_positions"][2:, :14]
        )
    torch.testing.assert_close(batched[2, :14], alone[0], atol=1e-5, rtol=1e-4)


def test_reference_trains(reference, batch):
    model = BertReferenceMAE(VOCAB, hidden_size=32, num_layers=1, decoder_layers=1, num_heads=2, intermediate_size=64)
    loss, _ = model(batch["input_ids"], batch["attention_mask"], batch["masked_positions"])
    loss.backward()
    assert all(p.grad is not None for p in model.encoder.encoder.parameters())
    assert model.decoder.classifier.weight.grad.abs().sum() > 0


def test_flop_formula_matches_torch_flop_counter():
    config = BarcodeMAEConfig(
        vocab_size=VOCAB, hidden_size=64, num_hidden_layers=2, num_attention_heads=4, intermediate_size=96
    )
    model = BarcodeMAEModel(config).eval()
    input_ids = torch.randint(5, VOCAB, (2, 30))
    counter = FlopCounterMode(display=False)
    # The math SDPA backend runs attention as counted matmuls; the fused CPU kernel is invisible to the counter.
    with torch.no_grad(), sdpa_kernel(SDPBackend.MATH), counter:
        model(input_ids=input_ids, attention_mask=torch.ones_like(input_ids))
    assert counter.get_total_flops() == pytest.approx(2 * forward_flops_per_barcode(config, 30), rel=1e-6)


def test_step_measurement_and_speedups_are_consistent():
    args = argparse.Namespace(
        device="cpu", dtype="float32", hidden=32, layers=1, decoder_layers=1, heads=2, batch_size=4, steps=2, warmup=1
    )
    rows = [measure_step(args, variant, mask_ratio=0.5, seq_len=24) for variant in MAIN_VARIANTS]
    for row in rows:
        assert row["median_s"] > 0
        assert row["barcodes_per_s"] == pytest.approx(4 / row["median_s"])
        assert row["tokens_per_s"] == pytest.approx(4 * 24 / row["median_s"])
    by_name = {row["variant"]: row for row in rows}
    assert by_name["mlm_equal_depth"]["parameters_m"] > by_name["mlm_same_encoder"]["parameters_m"]
    ratios = speedups(rows)
    assert ratios["mae_vs_bert_reference"] == pytest.approx(
        by_name["bert_reference"]["median_s"] / by_name["mae"]["median_s"]
    )
    assert ratios["target_not_slower_than_reference_met"] == (ratios["mae_vs_bert_reference"] >= 1.0)


def test_time_steps_counts_and_orders():
    calls = []
    timing = time_steps(lambda: calls.append(1), torch.device("cpu"), steps=5, warmup=2)
    assert len(calls) == 7 and timing["steps"] == 5
    assert timing["p10_s"] <= timing["median_s"] <= timing["p90_s"]


def test_analytic_step_flops_follow_the_visible_token_count():
    """With nothing masked, MAE 6+6 costs what a 12-layer MLM costs; masking shrinks only the MAE encoder's share.

    Both of our models run the vocabulary head on masked tokens only, so the head's share grows with the ratio.
    """
    args = argparse.Namespace(hidden=64, layers=6, decoder_layers=6, batch_size=8)
    assert step_flops(args, "mae", 0.0, 112) == pytest.approx(step_flops(args, "mlm_equal_depth", 0.0, 112))

    def without_head(variant: str, ratio: float) -> float:
        masked = round(ratio * 110)
        return step_flops(args, variant, ratio, 112) - 3 * args.batch_size * head_flops(masked, 64, VOCAB_SIZE, True)

    mae = [without_head("mae", ratio) for ratio in (0.0, 0.15, 0.5, 0.75)]
    assert mae == sorted(mae, reverse=True) and mae[-1] < mae[0]
    assert without_head("mlm_same_encoder", 0.15) == pytest.approx(without_head("mlm_same_encoder", 0.75))


def test_quality_table_reads_runs_and_reports_mean_and_sd(tmp_path):
    from quality_table import main as quality_table_main

    for seed, (probe, ppl) in enumerate([(0.50, 10.0), (0.70, 12.0)]):
        run = tmp_path / f"mae-{seed}"
        (run / "eval").mkdir(parents=True)
        metrics = {
            "closed_world_species": {"linear_probe": {"accuracy": probe}, "one_nn": {"accuracy": 0.9}},
            "open_world_genus": {"one_nn": {"accuracy": 0.3 + seed / 10, "macro_accuracy": 0.2},
                                 "knn": {str(k): {"accuracy": k / 10 + seed / 10} for k in (1, 3, 5, 7)}},
            "bin_reconstruction": {"dna_bin": {"ami": 0.7}},
            "headline": {"harmonic_mean": 0.4},
        }
        (run / "eval" / "results.json").write_text(json.dumps({"metrics": metrics}))
        (run / "metrics.jsonl").write_text(
            json.dumps({"step": 1, "val_perplexity": ppl + 5})
            + "\n"
            + json.dumps({"step": 2, "val_perplexity": ppl})
            + "\n"
        )
    lines = []
    with mock.patch("builtins.print", lines.append):
        quality_table_main([f"tiny MAE={tmp_path}/mae-*", "--per-seed"])
    table, per_seed = lines[0].split("\n\n")
    row = table.splitlines()[-1]
    assert row.startswith("| tiny MAE | 2 | 60.00 ± 14.14 | 90.00 ± 0.00 | 35.00 ± 7.07 | 35.00 / 55.00 / 75.00 |")
    assert row.endswith("| 11.00 ± 1.41 |") and per_seed == "tiny MAE: genus 1-NN 30.00 / 40.00"
    with pytest.raises(SystemExit):
        quality_table_main([f"none={tmp_path}/nothing-*"])


def test_probe_table_reads_the_training_probe(tmp_path, capsys):
    from probe_table import main as probe_table_main

    run = tmp_path / "run"
    run.mkdir()
    records = [
        {"step": 0, "val_loss": 8.3, "val_perplexity": 4100.0, "unseen_val_perplexity": 4120.0,
         "genus_1nn_accuracy": 0.48, "genus_1nn_accuracy_layer_0": 0.47, "genus_1nn_accuracy_layer_mean": 0.48,
         "top_pc_variance_share": 0.22},
        {"step": 10, "loss": 7.0},
        {"step": 10, "val_perplexity": 30.0, "unseen_val_perplexity": 33.0, "genus_1nn_accuracy": 0.09,
         "genus_1nn_accuracy_layer_0": 0.35, "genus_1nn_accuracy_layer_mean": 0.2, "top_pc_variance_share": 0.6},
        {"step": 20, "val_perplexity": 10.0, "unseen_val_perplexity": 12.5, "genus_1nn_accuracy": 0.3,
         "genus_1nn_accuracy_layer_0": 0.4, "genus_1nn_accuracy_layer_mean": 0.33, "top_pc_variance_share": 0.45},
    ]
    for record in records:  # a 1-block model: its last block is the headline
        if "genus_1nn_accuracy_layer_0" in record:
            record["genus_1nn_accuracy_layer_1"] = record["genus_1nn_accuracy"]
    (run / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    assert probe_table_main([f"tiny MAE={run}", "--curve"]) == 0
    table = capsys.readouterr().out.splitlines()
    assert table[2] == ("| tiny MAE | 20 | – | 48.0 | 48.0 | 9.0 (10) | 30.0 | 40.0 | 33.0 | 0.45 | 10.0 | 12.5 | "
                        "0:48.0 10:9.0 20:30.0 |")  # no summary.json (an unfinished run): no parameter count
    # a layer-average model: its headline is the layer mean, the "last" columns still read the last block
    for record in records:
        if "genus_1nn_accuracy_layer_0" in record:
            record["genus_1nn_accuracy"] = record["genus_1nn_accuracy_layer_mean"]
    (run / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    (run / "summary.json").write_text(json.dumps({"global_step": 20, "parameters": 702_345}))
    assert probe_table_main([f"small={run}", "--plot", str(tmp_path / "curves.png")]) == 0
    assert capsys.readouterr().out.splitlines()[2] == (
        "| small | 20 | 0.70 M | 48.0 | 48.0 | 9.0 (10) | 30.0 | 40.0 | 33.0 | 0.45 | 10.0 | 12.5 |")
    assert (tmp_path / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_untrained_model_is_the_runs_starting_point(tmp_path, capsys):
    from safetensors.torch import load_file
    from untrained_model import main as untrained_main

    from barcodemae.inference import load_encoder

    argv = ["--preset", "small", "--seed", "3"]
    assert untrained_main([*argv, "--output", str(tmp_path / "a")]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert (summary["objective"], summary["pooled_layers"], summary["seed"]) == ("mlm", "mean", 3)
    assert untrained_main([*argv, "--output", str(tmp_path / "b")]) == 0
    assert untrained_main(["--preset", "small", "--seed", "4", "--output", str(tmp_path / "c")]) == 0
    weights = {name: load_file(tmp_path / name / "model.safetensors") for name in "abc"}
    key = "barcodemae.embeddings.word_embeddings.weight"
    assert torch.equal(weights["a"][key], weights["b"][key]) and not torch.equal(weights["a"][key], weights["c"][key])
    encoder, _ = load_encoder(tmp_path / "a")
    assert encoder.config.pooled_layers == "mean" and encoder.config.hidden_size == 64
    capsys.readouterr()
    assert untrained_main([*argv, "--output", str(tmp_path / "a")]) == 2
    assert "not empty" in capsys.readouterr().err


def test_identify_calls_reports_each_query_split(kmer_profile_model, fixture_csv, tmp_path, capsys):
    from identify_calls import main as identify_calls_main

    output = tmp_path / "calls"
    assert identify_calls_main(["--model", str(kmer_profile_model), "--data", str(fixture_csv), "--output",
                                str(output), "--no-progress"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report == json.loads((output / "identify_calls.json").read_text())
    fixture = pd.read_csv(fixture_csv)
    for split in ("test", "test_unseen"):
        assert report[split]["num_queries"] == (fixture["split"] == split).sum()
    both = report["test+test_unseen"]
    assert both["num_queries"] == report["test"]["num_queries"] + report["test_unseen"]["num_queries"]
    shares = [both[f"{level}_call_share"] for level in ("species", "genus", "none")]
    assert sum(shares) == pytest.approx(1.0)
    assert report["call_thresholds"]["species"] >= report["call_thresholds"]["genus"]


def test_kmer_ceiling_scores_counts_projections_and_principal_components(fixture_csv):
    from collapse_diagnostics import kmer_ceiling

    from barcodemae.eval.metrics import one_nn_accuracy
    from barcodemae.inference import KmerFrequencyEmbedder

    result = kmer_ceiling(fixture_csv, widths=(8,))
    frame = pd.read_csv(fixture_csv)
    assert (
        result["keys"] == (frame["split"] == "train").sum()
        and result["queries"] == (frame["split"] == "val_unseen").sum()
    )
    assert len(result["genus_1nn_random_projection_8"]) == 3
    values = [result["genus_1nn_pca_8"], *result["genus_1nn_random_projection_8"],
              result["genus_1nn_counts_k6_stride1"], result["genus_1nn_counts_k4_stride1"]]
    assert all(0 <= value <= 1 for value in values)
    from barcodemae.data import load_bioscan5m  # the counts row is the 1-NN of the non-overlapping 6-mer counts

    keys, queries = load_bioscan5m(fixture_csv, "train"), load_bioscan5m(fixture_csv, "val_unseen")
    embedder = KmerFrequencyEmbedder(6, stride=6)
    expected = one_nn_accuracy(embedder(list(keys["dna_barcode"])), np.asarray(keys["genus"], dtype=object),
                               embedder(list(queries["dna_barcode"])), np.asarray(queries["genus"], dtype=object))
    assert result["genus_1nn_counts_k6_stride6"] == pytest.approx(expected["accuracy"])


def test_probe_selection_benchmark_compares_warm_start_with_fitting_from_scratch(kmer4_model_folder, fixture_csv,
                                                                                 tmp_path, capsys):
    from bench_probe_selection import main as probe_selection_main

    output = tmp_path / "probe_selection.json"
    assert probe_selection_main(["--model", str(kmer4_model_folder), "--data", str(fixture_csv),
                                 "--output", str(output)]) == 0
    report = json.loads(output.read_text())
    assert report == json.loads(capsys.readouterr().out)
    warm, cold = report["warm_start"], report["from_scratch"]
    assert set(warm["held_out_accuracy"]) == set(cold["held_out_accuracy"]) == {"0.1", "1.0", "10.0", "100.0",
                                                                               "1000.0"}
    assert 0 < warm["loss_evaluations"] < cold["loss_evaluations"] and warm["seconds"] > 0
    assert report["num_fit"] + report["num_held_out"] == 48  # the fixture's train split


def test_shortlist_recall_grows_with_the_shortlist_and_is_whole_at_full_depth(fixture_csv, capsys):
    from shortlist_recall import main as recall_main

    assert recall_main(["--data", str(fixture_csv), "--queries", "10", "--deep", "12", "--shortlists",
                        "1,4,12"]) == 0
    report = json.loads(capsys.readouterr().out.split("\n| N |")[0])
    assert report["queries"] == 10 and report["references"] == 48 and report["deep"] == 12
    recalls = [row["recall"] for row in report["rows"]]
    assert recalls == sorted(recalls) and recalls[-1] == 1.0  # the full depth holds the best hit by definition
    for row in report["rows"]:
        shares = [row[f"{level}_call_share"] for level in ("species", "genus", "family", "order", "none")]
        assert sum(shares) == pytest.approx(1.0, abs=1e-3)
    assert report["rows"][0]["top_hit_genus_accuracy"] == report["embedding_top1_genus_accuracy"]  # N = 1



def test_screen_sweep_screening_the_whole_library_makes_the_top_hit_independent_of_the_embedding(fixture_csv,
                                                                                                  capsys):
    """With ``--candidates`` the whole library (48 references) every query is scored against every reference, so
    5-mer and 3-mer embeddings (different neighbours) give the same top hits."""
    from screen_sweep import main as sweep_main
    from screen_sweep import measure, parse_settings

    assert parse_settings("20:500,50") == [(20, 500), (50, 0)]
    reports = [measure(fixture_csv, model=None, kmer=kmer, query_split="val_unseen", reference_split="train",
                       queries=None, settings=parse_settings(settings), thresholds="98,95,90,85", seed=0)
               for kmer, settings in ((5, "2:0,4:48"), (3, "4:48"))]
    nearest_only, whole_5mer = reports[0]["rows"]
    (whole_3mer,) = reports[1]["rows"]
    assert (whole_5mer["align"], whole_5mer["candidates"], reports[0]["references"]) == (4, 48, 48)
    for key in ("top_hit_genus_accuracy", "top_hit_species_accuracy", "species_call_share", "genus_call_share"):
        assert whole_5mer[key] == whole_3mer[key], key
    for row in (nearest_only, whole_5mer, whole_3mer):
        shares = [row[f"{level}_call_share"] for level in ("species", "genus", "family", "order", "none")]
        assert sum(shares) == pytest.approx(1.0, abs=1e-3)
    assert sweep_main(["--data", str(fixture_csv), "--settings", "2:0"]) == 0
    assert capsys.readouterr().out.splitlines()[-1].startswith("| 2 | – |")


def test_screen_sweep_model_share_mixes_the_two_cosines(monkeypatch):
    """``--model-share W``: the cosine of two retrieval vectors is W x the model's cosine + (1 - W) x the k-mer
    profiles'; without it the model's unit rows alone; a share outside [0, 1] is refused."""
    import screen_sweep

    rng = np.random.default_rng(0)
    model_rows, kmer_rows = rng.normal(size=(5, 8)), rng.random(size=(5, 16))
    monkeypatch.setattr(screen_sweep, "embed",
                        lambda model, barcodes, kmer, frames=None: model_rows if model else kmer_rows)

    def cosines(rows: np.ndarray) -> np.ndarray:
        unit = rows / np.linalg.norm(rows, axis=1, keepdims=True)
        return unit @ unit.T

    mixed = screen_sweep.retrieval_vectors(Path("m"), ["A"] * 5, 5, None, 0.25)
    np.testing.assert_allclose(mixed @ mixed.T, 0.25 * cosines(model_rows) + 0.75 * cosines(kmer_rows), atol=1e-6)
    alone = screen_sweep.retrieval_vectors(Path("m"), ["A"] * 5, 5, None, None)
    np.testing.assert_allclose(alone @ alone.T, cosines(model_rows), atol=1e-6)
    with pytest.raises(ValueError, match="model-share"):
        screen_sweep.retrieval_vectors(Path("m"), ["A"] * 5, 5, None, 1.5)


def test_bench_screen_kernels_agree_with_local_scores(fixture_csv, capsys):
    """Every Smith-Waterman kernel the bench times computes local_scores' score; the diagonal screen is timed too."""
    from bench_screen import main as screen_main

    report = screen_main(["--data", str(fixture_csv), "--queries", "3", "--candidates", "10", "--repeats", "1"])
    capsys.readouterr()
    kernels = {row["kernel"] for row in report["rows"]}
    assert {"local_scores (parasail sw_striped_profile_16)", "parasail sw_scan_profile_16",
            "diagonal_scores (anchored ungapped segment)"} <= kernels
    exact = [row for row in report["rows"] if not row["kernel"].startswith("diagonal")]
    assert all(row["score_equal_share"] == 1.0 and row["best_kept_share"] == 1.0 for row in exact)
    assert all(row["pairs"] == 30 and 0.0 <= row["best_kept_share"] <= 1.0 for row in report["rows"])
