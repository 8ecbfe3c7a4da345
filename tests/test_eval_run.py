"""The embedding loop, the k-mer baseline and the end-to-end evaluation on the real fixture/demo data."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from barcodemae import BarcodeTokenizer
from barcodemae.eval import run_evaluation
from barcodemae.eval.run import EvaluationSettings, load_eval_splits
from barcodemae.inference import KmerFrequencyEmbedder, embed_barcode_layers, embed_barcodes, load_encoder
from conftest import REPO_ROOT

BARCODES = ["ACGTACGTAAGGTTCA" * 3, "ACGTTTGCA", "ACGGGTTACCAGTNNA" * 6, "TTRACGTACGTA", "GGGCCCAAATTT" * 2]


def test_embeddings_keep_input_order_and_equal_pooler_output(kmer4_model_folder: Path):
    model, tokenizer = load_encoder(kmer4_model_folder)
    vectors = embed_barcodes(model, tokenizer, BARCODES, batch_size=2, device="cpu", progress=False)
    with torch.no_grad():  # one unsorted batch straight through the model
        reference = model(**tokenizer(BARCODES, padding=True, return_tensors="pt")).pooler_output.numpy()
    assert vectors.dtype == np.float32 and vectors.shape == (len(BARCODES), model.config.hidden_size)
    np.testing.assert_allclose(vectors, reference, atol=1e-5)


@pytest.mark.parametrize(("representation", "pooled_layers"), [("cls", "last"), ("tokens", "last"), ("cls", "mean")])
def test_the_models_own_representation_is_the_default_embedding(tmp_path: Path, representation, pooled_layers):
    """Issue #28: a model trained on its [CLS] state (BarcodeMAE+) is embedded, identified and evaluated on it, as
    ``pooler_output`` gives it, unless a pooling is asked for."""
    from barcodemae import BarcodeMAEConfig, BarcodeMAEModel
    from barcodemae.inference import model_pooling
    from conftest import tiny_config_kwargs

    tokenizer = BarcodeTokenizer.kmer(k=4)
    config = BarcodeMAEConfig(**tiny_config_kwargs(), vocab_size=len(tokenizer), representation=representation,
                              pooled_layers=pooled_layers)
    BarcodeMAEModel(config).save_pretrained(tmp_path)
    tokenizer.save_pretrained(tmp_path)
    model, tokenizer = load_encoder(tmp_path)
    assert model_pooling(model) == {"cls": "cls", "tokens": "tokens"}[representation]
    vectors = embed_barcodes(model, tokenizer, BARCODES, batch_size=2, device="cpu", progress=False)
    with torch.no_grad():
        reference = model(**tokenizer(BARCODES, padding=True, return_tensors="pt")).pooler_output.numpy()
    np.testing.assert_allclose(vectors, reference, atol=1e-5)
    mean = embed_barcodes(model, tokenizer, BARCODES, pooling="mean", device="cpu", progress=False)
    assert not np.allclose(mean, reference, atol=1e-3)  # asking for a pooling still overrides the model's


def test_layer_and_pooling_options(kmer4_model_folder: Path):
    model, tokenizer = load_encoder(kmer4_model_folder)
    batch = tokenizer(BARCODES, padding=True, return_tensors="pt")
    with torch.no_grad():
        states = model(**batch, output_hidden_states=True).hidden_states
    mask = batch["attention_mask"].bool()
    first_layer_max = states[1].masked_fill(~mask[..., None], -torch.inf).amax(dim=1).numpy()
    got = embed_barcodes(model, tokenizer, BARCODES, layer=1, pooling="max", device="cpu", progress=False)
    np.testing.assert_allclose(got, first_layer_max, atol=1e-5)
    cls = embed_barcodes(model, tokenizer, BARCODES, pooling="cls", device="cpu", progress=False)
    np.testing.assert_allclose(cls, model(**batch).last_hidden_state[:, 0].detach().numpy(), atol=1e-5)
    with pytest.raises(ValueError, match="pooling"):
        embed_barcodes(model, tokenizer, BARCODES, pooling="median", progress=False)
    with pytest.raises(ValueError, match="layer must be in"):
        embed_barcodes(model, tokenizer, BARCODES, layer=7, progress=False)
    with pytest.raises(ValueError, match="integer or 'mean'"):
        embed_barcodes(model, tokenizer, BARCODES, layer="last", progress=False)
    # layer="mean": every hidden state averaged, then pooled; all layers from one pass equal one call per layer
    every = embed_barcode_layers(model, tokenizer, BARCODES, layers=[0, 1, 2, -1, "mean"], device="cpu", progress=False)
    for index, layer in enumerate([0, 1, 2, -1]):
        np.testing.assert_allclose(
            every[index], embed_barcodes(model, tokenizer, BARCODES, layer=layer, progress=False)
        )
    np.testing.assert_allclose(every[4], every[:3].mean(axis=0), atol=1e-5)
    np.testing.assert_allclose(every[4], embed_barcodes(model, tokenizer, BARCODES, layer="mean", progress=False))
    unframed = BarcodeTokenizer.kmer(k=4, framing="none")
    with pytest.raises(ValueError, match="framing='none'"):
        embed_barcodes(model, unframed, BARCODES, pooling="cls", progress=False)


def test_default_layer_is_the_models_own_embedding(kmer4_model_folder: Path, tmp_path: Path):
    """layer=None follows config.pooled_layers: the layer average for a model saved with "mean", and it is
    pooler_output; a model saved with "last" (or any non-BarcodeMAE encoder) pools the last block."""
    model, tokenizer = load_encoder(kmer4_model_folder)
    last = embed_barcodes(model, tokenizer, BARCODES, progress=False)
    np.testing.assert_allclose(last, embed_barcodes(model, tokenizer, BARCODES, layer=-1, progress=False))
    model.config.pooled_layers = "mean"
    model.save_pretrained(tmp_path / "mean")
    tokenizer.save_pretrained(tmp_path / "mean")
    averaged, tokenizer = load_encoder(tmp_path / "mean")
    assert averaged.config.pooled_layers == "mean"
    got = embed_barcodes(averaged, tokenizer, BARCODES, progress=False)
    np.testing.assert_allclose(got, embed_barcodes(averaged, tokenizer, BARCODES, layer="mean", progress=False))
    with torch.no_grad():
        pooler = averaged(**tokenizer(BARCODES, padding=True, return_tensors="pt")).pooler_output.numpy()
    np.testing.assert_allclose(got, pooler, atol=1e-5)
    assert not np.allclose(got, last, atol=1e-3)


def test_all_reading_frames_average_the_barcode_read_from_each_of_its_first_k_bases(
    kmer4_model_folder: Path, tmp_path: Path
):
    """frames="all" is the mean of the barcode's embeddings read from base 1, 2, ..., k (a barcode too short for a
    frame repeats its last one), whatever the batching; a model saved with pooled_frames="all" embeds so by
    default; a tokenizer that cannot be asked for a frame is refused rather than given frame 0 alone."""
    from barcodemae.inference import reading_frames

    model, tokenizer = load_encoder(kmer4_model_folder)
    every = embed_barcodes(model, tokenizer, BARCODES, frames="all", batch_size=5, progress=False)
    short = "ACGTAC"  # 6 bp, k = 4: frames 0, 1, 2 and 2 again
    per_frame = [
        embed_barcodes(model, tokenizer, [barcode[offset:] for barcode in BARCODES] + [short[min(offset, 2):]],
                       progress=False)
        for offset in range(tokenizer.k)
    ]
    np.testing.assert_allclose(np.mean(per_frame, axis=0)[:-1], every, atol=1e-5)
    np.testing.assert_allclose(
        np.mean(per_frame, axis=0)[-1:], embed_barcodes(model, tokenizer, [short], frames="all", progress=False),
        atol=1e-5,
    )
    assert not np.allclose(every, per_frame[0][:-1], atol=1e-3)
    model.config.pooled_frames = "all"
    model.save_pretrained(tmp_path)
    tokenizer.save_pretrained(tmp_path)
    framed, tokenizer = load_encoder(tmp_path)
    assert framed.config.pooled_frames == "all"
    np.testing.assert_allclose(embed_barcodes(framed, tokenizer, BARCODES, progress=False), every, atol=1e-5)
    np.testing.assert_allclose(embed_barcodes(framed, tokenizer, BARCODES, frames="first", progress=False),
                               per_frame[0][:-1], atol=1e-5)
    assert reading_frames(BarcodeTokenizer.char(), "all") == 1
    with pytest.raises(ValueError, match="frames='all' needs a BarcodeMAE tokenizer"):
        reading_frames(object(), "all")


@pytest.mark.parametrize("setting", [{"frames": "all"}, {"pooling": "cls"}, {"layer": 0}])
def test_the_kmer_baseline_refuses_embedding_settings_it_cannot_honour(fixture_csv: Path, tmp_path: Path, setting):
    """k-mer counts have no reading frame, pooling or layer to choose: asking for one is an error, not ignored."""
    name, value = next(iter(setting.items()))
    with pytest.raises(ValueError, match=f"the k-mer baseline, .* does not take {name}={value!r}"):
        run_evaluation(data=fixture_csv, output_dir=tmp_path / "out", baseline="kmer", **setting)
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("stride", [1, 3])
def test_kmer_frequencies_match_direct_counting(stride):
    embedder = KmerFrequencyEmbedder(k=3, chunk_size=2, stride=stride)  # chunks smaller than the input
    got = embed_barcodes(embedder, None, BARCODES, progress=False)
    assert got.shape == (len(BARCODES), 64)
    index = {a + b + c: i for i, (a, b, c) in enumerate((a, b, c) for a in "ACGT" for b in "ACGT" for c in "ACGT")}
    for row, barcode in zip(got, BARCODES):
        expected = np.zeros(64)
        for start in range(0, len(barcode) - 2, stride):  # stride 3: the non-overlapping 3-mers from the start
            if barcode[start : start + 3] in index:  # k-mers with ambiguity codes are skipped
                expected[index[barcode[start : start + 3]]] += 1
        np.testing.assert_allclose(row, expected / expected.sum(), rtol=1e-6)


def test_load_encoder_errors_name_the_folder(tmp_path: Path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_encoder(tmp_path / "no_such_model")
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="no config.json"):
        load_encoder(tmp_path / "empty")


def test_missing_split_is_a_clear_error(fixture_csv: Path, tmp_path: Path):
    text = fixture_csv.read_text().splitlines()
    without_unseen = [line for line in text if ",test_unseen," not in line]
    assert len(without_unseen) < len(text)
    path = tmp_path / "no_unseen.csv"
    path.write_text("\n".join(without_unseen) + "\n")
    with pytest.raises(ValueError, match="split.*test_unseen missing or empty"):
        load_eval_splits(path)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_eval_splits(tmp_path / "missing.csv")


def test_run_evaluation_on_demo(kmer4_model_folder: Path, demo_csv: Path, tmp_path: Path):
    results = run_evaluation(
        kmer4_model_folder,
        demo_csv,
        tmp_path,
        max_per_split=250,
        reducer="pca",
        n_components=8,
        progress=False,
        batch_size=64,
        probe_c="auto",
    )
    saved = json.loads((tmp_path / "results.json").read_text())
    probe = saved["metrics"]["closed_world_species"]["linear_probe"]
    scores = probe["c_selection"]["held_out_accuracy"]
    assert scores[str(probe["c"])] == max(scores.values()) and saved["settings"]["probe_c"] == "auto"
    expected = EvaluationSettings(max_per_split=250, reducer="pca", n_components=8, batch_size=64, layer=-1,
                                  pooling="mean", frames="first")
    assert saved["settings"] == {**expected.record(), "embedding_dim": 32}  # the model's own layer, pooling, frames
    assert saved["metrics"]["headline"] == pytest.approx(results["metrics"]["headline"])
    assert saved["data"]["split_sizes"] == {"train": 250, "test": 250, "test_unseen": 250}
    assert saved["data"]["split_sizes_before_subsampling"] == {"train": 1346, "test": 779, "test_unseen": 377}
    assert saved["model"]["model_type"] == "barcodemae" and saved["model"]["hidden_size"] == 32
    headline = saved["metrics"]["headline"]
    for name in ("closed_world_species_accuracy", "open_world_genus_accuracy", "bin_reconstruction_ami"):
        assert 0.0 <= headline[name] <= 1.0
    assert headline["harmonic_mean"] <= max(v for k, v in headline.items() if k != "harmonic_mean")
    bins = saved["metrics"]["bin_reconstruction"]
    assert bins["reducer"] == "pca" and {"dna_bin", "species"} <= bins.keys()
    report = (tmp_path / "report.md").read_text()
    assert "## Headline" in report and str(kmer4_model_folder) in report
    assert f"linear probe (C={probe['c']:g} chosen on held-out train)" in report
    if importlib.util.find_spec("matplotlib") is not None:
        assert (tmp_path / saved["plots"]["embedding_2d"]).stat().st_size > 0
        assert (tmp_path / "accuracy_per_genus.png").stat().st_size > 0


def test_validation_queries_never_read_test(demo_csv: Path, tmp_path: Path):
    """``queries="validation"``: the protocol on val / val_unseen with the same train keys, no test record loaded."""
    frame, info = load_eval_splits(demo_csv, queries="validation")
    assert set(frame["split"]) == {"train", "val", "val_unseen"}
    assert info["split_sizes"] == {"train": 1346, "val": 380, "val_unseen": 337}
    results = run_evaluation(
        baseline="kmer", data=demo_csv, output_dir=tmp_path, queries="validation", reducer="pca", n_components=8,
        probe_c=1.0, progress=False, plots=False,
    )
    closed = results["metrics"]["closed_world_species"]["one_nn"]
    open_world = results["metrics"]["open_world_genus"]["one_nn"]
    labelled = frame[frame["genus"].notna() & (frame["genus"] != "")]
    assert open_world["num_queries"] == (labelled["split"] == "val_unseen").sum()
    knn = json.loads((tmp_path / "results.json").read_text())["metrics"]["open_world_genus"]["knn"]
    assert list(knn) == ["1", "3", "5", "7"] and all(0 < scores["accuracy"] <= 1 for scores in knn.values())
    assert knn["1"] == {"accuracy": open_world["accuracy"], "macro_accuracy": open_world["macro_accuracy"]}
    report = (tmp_path / "report.md").read_text()
    assert f"| 5 | {100 * knn['5']['accuracy']:.2f} | {100 * knn['5']['macro_accuracy']:.2f} |" in report
    assert open_world["num_keys"] == (labelled["split"] == "train").sum()
    assert closed["num_queries"] <= 380 and results["settings"]["queries"] == "validation"
    assert results["metrics"]["bin_reconstruction"]["split"] == "val_unseen"
    assert "BIN reconstruction on val_unseen" in report
    with pytest.raises(ValueError, match="queries must be one of"):
        EvaluationSettings(queries="test_unseen")


def test_kmer_baseline_command_line(demo_csv: Path, tmp_path: Path):
    """``python eval/run.py --baseline kmer`` on the demo: 4-mer frequencies identify most test species."""
    command = [
        sys.executable,
        str(REPO_ROOT / "eval" / "run.py"),
        "--baseline",
        "kmer",
        "--data",
        str(demo_csv),
        "--output",
        str(tmp_path),
        "--reducer",
        "pca",
        "--no-plots",
        "--max-per-split",
        "300",
    ]
    finished = subprocess.run(command, capture_output=True, text=True, cwd=tmp_path, timeout=120, check=False)
    assert finished.returncode == 0, finished.stderr[-2000:]
    assert set(json.loads(finished.stdout)) >= {"harmonic_mean"}  # stdout: JSON for scripts; stderr: the ending
    for written in ("report.md", "results.json"):
        assert f"{tmp_path / written}" in finished.stderr
    assert "species probe" in finished.stderr and "next: python eval/run.py --model" in finished.stderr
    results = json.loads((tmp_path / "results.json").read_text())
    assert results["model"]["kind"] == "kmer_frequency" and results["model"]["k"] == 4
    headline = results["metrics"]["headline"]
    # 300 of 1,346 train records: many test species lose their training examples (0.99 with all of them)
    assert headline["closed_world_species_accuracy"] > 0.5  # chance: 1/247
    assert headline["open_world_genus_accuracy"] > 0.4  # 0.68 on the full set, 0.74 on all of demo
    assert "plots" not in results

    unknown = subprocess.run(
        [*command[:2], "--model", str(tmp_path / "nope"), *command[4:]],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=120,
        check=False,
    )
    assert unknown.returncode != 0 and "does not exist" in unknown.stderr


def test_any_huggingface_encoder_folder(tmp_path: Path):
    """A plain BERT folder (no BarcodeMAE code) loads through AutoModel and embeds in the same harness."""
    from transformers import BertConfig, BertModel, BertTokenizerFast

    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *"ACGTN", *(f"##{base}" for base in "ACGTN")]
    (tmp_path / "vocab.txt").write_text("\n".join(vocab) + "\n")
    tokenizer = BertTokenizerFast(vocab_file=str(tmp_path / "vocab.txt"), do_lower_case=False)
    config = BertConfig(
        vocab_size=len(vocab),
        hidden_size=24,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=48,
        max_position_embeddings=64,
    )
    folder = tmp_path / "bert"
    BertModel(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    model, loaded_tokenizer = load_encoder(folder)
    assert type(model).__name__ == "BertModel"
    long_barcode = "ACGT" * 40  # 160 bases: truncated to the 64 positions of this model
    vectors = embed_barcodes(model, loaded_tokenizer, ["ACGTTGCA", long_barcode, "GGCA"], batch_size=2, progress=False)
    assert vectors.shape == (3, 24) and np.isfinite(vectors).all()
    batch = loaded_tokenizer(["ACGTTGCA"], return_tensors="pt")
    with torch.no_grad():
        direct = model(**batch).last_hidden_state.mean(dim=1).numpy()
    np.testing.assert_allclose(vectors[:1], direct, atol=1e-5)


def test_command_line_with_a_kmer4_model_folder_writes_plots(
    kmer4_model_folder: Path, fixture_csv: Path, tmp_path: Path
):
    """``python eval/run.py --model DIR`` on the fixture: results, report and both PNG plots."""
    pytest.importorskip("matplotlib")
    output = tmp_path / "out"
    finished = subprocess.run(
        [
            sys.executable,
            str(REPO_ROOT / "eval" / "run.py"),
            "--model",
            str(kmer4_model_folder),
            "--data",
            str(fixture_csv),
            "--output",
            str(output),
            "--reducer",
            "pca",
            "--batch-size",
            "16",
        ],
        capture_output=True,
        text=True,
        cwd=REPO_ROOT,
        timeout=120,
        check=False,
    )
    assert finished.returncode == 0, finished.stderr[-2000:]
    results = json.loads((output / "results.json").read_text())
    assert results["model"]["name"] == str(kmer4_model_folder)
    assert results["settings"]["embedding_dim"] == 32
    plots = sorted(name for name in results["plots"].values() if name.endswith(".png"))
    assert plots == ["accuracy_per_genus.png", "pca_test_unseen_genus.png"]
    assert all((output / name).stat().st_size > 1000 for name in plots)
    assert "harmonic" in (output / "report.md").read_text().lower()


@pytest.mark.parametrize("value", ["0", "-1", "strong"])
def test_probe_c_flag_takes_a_positive_number_or_auto(value, capsys):
    from barcodemae.eval.run import build_parser

    parser = build_parser()
    assert (
        parser.parse_args(["--baseline", "kmer", "--data", "x", "--output", "o", "--probe-c", "auto"]).probe_c
        == "auto"
    )
    assert parser.parse_args(["--baseline", "kmer", "--data", "x", "--output", "o", "--probe-c", "10"]).probe_c == 10.0
    with pytest.raises(SystemExit):
        parser.parse_args(["--baseline", "kmer", "--data", "x", "--output", "o", "--probe-c", value])
    assert "must be a positive number or 'auto'" in capsys.readouterr().err


def test_flags_keyword_arguments_and_record_are_one_settings_object(tmp_path: Path):
    from barcodemae.eval.run import build_parser

    args = build_parser().parse_args(["--baseline", "kmer", "--data", "d.csv", "--output", "o", "--finetune-lr", "0.01",
                                      "--no-plots", "--probe-c", "10", "--layer", "mean", "--kmer-k", "5",
                                      "--knn-k", "1", "4", "--lda-solver", "eigen"])
    settings = EvaluationSettings.from_args(args)
    assert (settings.finetune_learning_rate, settings.plots, settings.probe_c, settings.layer, settings.kmer_k) == (
        0.01, False, 10.0, "mean", 5)
    assert (settings.knn_k, settings.lda_solver) == ((1, 4), "eigen")
    assert "plots" not in settings.record() and settings.record()["finetune_learning_rate"] == 0.01
    assert settings.record()["knn_k"] == [1, 4]  # as results.json reads it back
    with pytest.raises(ValueError, match="knn_k must be positive integers"):
        EvaluationSettings(knn_k=(0, 3))
    with pytest.raises(ValueError, match="lda_solver must be one of"):
        EvaluationSettings(lda_solver="lsqr")
    with pytest.raises(TypeError, match="unknown settings"):
        run_evaluation(data=tmp_path / "x.csv", output_dir=tmp_path, baseline="kmer", reduce="pca")
    with pytest.raises(ValueError, match="pooling must be one of"):
        EvaluationSettings(pooling="median")


def test_flag_defaults_are_the_settings_defaults():
    """eval/run.py's flags take their defaults from EvaluationSettings, the one place they are written."""
    from barcodemae.eval.run import EvaluationSettings, build_parser

    args = build_parser().parse_args(["--baseline", "kmer", "--data", "d.csv", "--output", "o"])
    assert EvaluationSettings.from_args(args) == EvaluationSettings()
    assert "barcodes per forward pass (default 256)" in " ".join(build_parser().format_help().split())


def test_a_single_key_genus_leaves_open_world_undefined_not_perfect(caplog):
    """One genus among the keys names every query correctly by construction: NaN and out of the mean, with a warning."""
    import pandas as pd

    from barcodemae.eval.run import evaluate_embeddings

    rng = np.random.default_rng(0)
    split = ["train"] * 24 + ["test"] * 8 + ["test_unseen"] * 8
    frame = pd.DataFrame({
        "split": split, "genus": ["Aedes"] * 40, "species": [f"Aedes s{i % 4}" for i in range(40)],
        "dna_bin": [f"BOLD:{i % 4}" for i in range(40)],
    })
    metrics, _ = evaluate_embeddings(frame, rng.normal(size=(40, 8)).astype(np.float32), reducer="pca",
                                     n_components=4, probe_c=1.0)
    open_world = metrics["open_world_genus"]["one_nn"]
    assert np.isnan(open_world["accuracy"]) and open_world["undefined"] == "fewer than 2 key genera"
    assert all(np.isnan(scores["accuracy"]) for scores in metrics["open_world_genus"]["knn"].values())
    assert np.isnan(metrics["headline"]["harmonic_mean"])
    assert "open-world genus 1-NN is undefined" in caplog.text


def test_barcodemae_evaluate_is_eval_run(kmer4_model_folder: Path, fixture_csv: Path, tmp_path: Path, capsys):
    """``barcodemae evaluate`` runs eval/run.py: its parser (the usage names the command), its run, its errors."""
    from barcodemae.cli import main
    from barcodemae.eval.run import build_parser

    with pytest.raises(SystemExit) as stop:
        main(["evaluate", "--help"])
    shown = capsys.readouterr().out
    assert stop.value.code == 0 and shown.startswith("usage: barcodemae evaluate [-h] [--model MODEL]")
    assert shown.split("\noptions:\n")[1] == build_parser().format_help().split("\noptions:\n")[1]

    flags = ["--model", str(kmer4_model_folder), "--data", str(fixture_csv), "--reducer", "pca", "--n-components", "8",
             "--no-plots", "--no-progress", "--batch_size", "16"]  # either spelling, as eval/run.py
    assert main(["evaluate", *flags, "--output", str(tmp_path / "cli")]) == 0
    captured = capsys.readouterr()
    printed = json.loads(captured.out)
    assert f"barcodemae evaluate finished: {kmer4_model_folder} on {fixture_csv}" in captured.err  # as the user ran it
    assert "eval/run.py" not in captured.err
    direct = run_evaluation(kmer4_model_folder, fixture_csv, tmp_path / "direct", reducer="pca", n_components=8,
                            plots=False, progress=False, batch_size=16)
    saved = json.loads((tmp_path / "cli" / "results.json").read_text())
    assert saved["settings"] == direct["settings"] and saved["settings"]["batch_size"] == 16
    assert printed == pytest.approx(direct["metrics"]["headline"])

    assert main(["evaluate", "--model", str(tmp_path / "nope"), *flags[2:], "--output", str(tmp_path / "x")]) == 2
    assert capsys.readouterr().err.strip().splitlines()[-1].startswith("barcodemae evaluate: error: ")
