"""Evaluation suite: metrics on synthetic embeddings (perfect scores 1.0, random near chance), the embedding loop
(order restored, pooling, layers, any HF encoder), the k-mer baseline, and the one-command run on real data."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from barcodemae.eval.embeddings import KmerFrequencyEmbedder, embed_barcodes, load_encoder
from barcodemae.eval.metrics import (
    bin_reconstruction_ami,
    classification_scores,
    harmonic_mean,
    linear_probe,
    one_nn_accuracy,
)
from barcodemae.eval.run import load_eval_splits, run_evaluation
from conftest import REPO_ROOT, tiny_config_kwargs

NUM_CLASSES = 8


def _one_hot(labels: np.ndarray, noise: float = 0.0, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (np.eye(NUM_CLASSES, dtype=np.float32)[labels] + noise * rng.normal(size=(len(labels), NUM_CLASSES))).astype(
        np.float32
    )


@pytest.fixture(scope="module")
def labels() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(1)
    return rng.integers(0, NUM_CLASSES, 400), rng.integers(0, NUM_CLASSES, 300)


# ---------------------------------------------------------------- metrics: perfect and random embeddings


def test_one_nn_perfect_embedding_scores_one(labels):
    keys, queries = labels
    result = one_nn_accuracy(_one_hot(keys, 0.05), keys, _one_hot(queries, 0.05, seed=2), queries)
    assert result["accuracy"] == 1.0 and result["macro_accuracy"] == 1.0


def test_one_nn_random_embedding_near_chance(labels):
    keys, queries = labels
    rng = np.random.default_rng(3)
    result = one_nn_accuracy(rng.normal(size=(400, 32)), keys, rng.normal(size=(300, 32)), queries)
    assert abs(result["accuracy"] - 1 / NUM_CLASSES) < 0.08
    assert abs(result["macro_accuracy"] - 1 / NUM_CLASSES) < 0.08


def test_one_nn_is_cosine_and_chunking_does_not_change_answer():
    # Key 0 is far but aligned with the query; key 1 is close in L2 but at 90 degrees: cosine picks key 0.
    keys = np.array([[10.0, 0.0], [0.0, 1.0]], dtype=np.float32)
    queries = np.array([[1.0, 0.1], [0.1, 1.0]], dtype=np.float32)
    result = one_nn_accuracy(keys, ["a", "b"], queries, ["a", "b"], return_predictions=True)
    assert list(result["predictions"]) == ["a", "b"]
    rng = np.random.default_rng(4)
    k, q = rng.normal(size=(500, 16)), rng.normal(size=(130, 16))
    y = rng.integers(0, 5, 500)
    small = one_nn_accuracy(k, y, q, y[:130], chunk_size=7, return_predictions=True)
    large = one_nn_accuracy(k, y, q, y[:130], chunk_size=10_000, return_predictions=True)
    np.testing.assert_array_equal(small["predictions"], large["predictions"])
    expected = y[np.argmax((q / np.linalg.norm(q, axis=1, keepdims=True)) @ (k / np.linalg.norm(k, axis=1)[:, None]).T, 1)]
    np.testing.assert_array_equal(small["predictions"], expected)


def test_linear_probe_perfect_and_random(labels):
    train, test = labels
    perfect = linear_probe(_one_hot(train), train, _one_hot(test), test)
    assert perfect["accuracy"] == 1.0 and perfect["macro_accuracy"] == 1.0
    assert perfect["num_classes"] == NUM_CLASSES and perfect["num_train"] == 400
    rng = np.random.default_rng(5)
    chance = linear_probe(rng.normal(size=(400, 16)), train, rng.normal(size=(300, 16)), test)
    assert abs(chance["accuracy"] - 1 / NUM_CLASSES) < 0.08


def test_bin_reconstruction_ami_perfect_and_random(labels):
    y = labels[0]
    # one-hot rotated into 32 dimensions: PCA to 8 components keeps every class apart
    rotation = np.linalg.qr(np.random.default_rng(7).normal(size=(32, 32)))[0][:NUM_CLASSES].astype(np.float32)
    perfect = bin_reconstruction_ami(_one_hot(y, 0.01) @ rotation, y, reducer="pca", n_components=NUM_CLASSES)
    assert perfect["ami"] == pytest.approx(1.0)
    assert perfect["n_clusters"] == NUM_CLASSES and perfect["reducer"] == "pca"
    rng = np.random.default_rng(6)
    random = bin_reconstruction_ami(rng.normal(size=(400, 16)), y, reducer="none")
    assert abs(random["ami"]) < 0.05 and random["reducer"] == "none"


def test_harmonic_mean_and_macro_accuracy():
    assert harmonic_mean([1.0, 1.0, 1.0]) == 1.0
    assert harmonic_mean([0.5, 1.0]) == pytest.approx(2 / 3)
    assert harmonic_mean([0.9, 0.0, 0.8]) == 0.0
    with pytest.raises(ValueError):
        harmonic_mean([])
    # class "a" 3/4 right, class "b" 0/1: accuracy 3/5, macro accuracy (balanced) (0.75 + 0) / 2
    scores = classification_scores(["a", "a", "a", "a", "b"], ["a", "a", "a", "b", "a"])
    assert scores["accuracy"] == pytest.approx(0.6) and scores["macro_accuracy"] == pytest.approx(0.375)


def test_metrics_reject_mismatched_inputs():
    with pytest.raises(ValueError, match="labels"):
        one_nn_accuracy(np.zeros((3, 2)), [0, 1], np.zeros((2, 2)), [0, 1])
    with pytest.raises(ValueError, match="2 classes"):
        linear_probe(np.zeros((3, 2)), [0, 0, 0], np.zeros((2, 2)), [0, 0])


# ---------------------------------------------------------------- embeddings


@pytest.fixture(scope="module")
def tiny_model_dir(tmp_path_factory) -> Path:
    from barcodemae.tokenization import BarcodeTokenizer
    from modeling_barcodemae import BarcodeMAEConfig, BarcodeMAEForPreTraining

    torch.manual_seed(0)
    tokenizer = BarcodeTokenizer.kmer(k=6)
    config = BarcodeMAEConfig.from_tokenizer(tokenizer, **tiny_config_kwargs())
    path = tmp_path_factory.mktemp("tiny_model")
    BarcodeMAEForPreTraining(config).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


SEQUENCES = ["ACGTACGTAAACCCGGGTTT" * 3, "ACGTAC" * 2, "TTTTGGGGCCCCAAAA" * 6, "ACGTNACGTAACGT", "GGGCCCAAATTT" * 2]


def test_embed_barcodes_restores_order_and_matches_single(tiny_model_dir):
    model, tokenizer = load_encoder(tiny_model_dir)
    batched = embed_barcodes(model, tokenizer, SEQUENCES, batch_size=2, progress=False)
    assert batched.shape == (len(SEQUENCES), 32) and batched.dtype == np.float32
    singles = np.concatenate([embed_barcodes(model, tokenizer, [s], progress=False) for s in SEQUENCES])
    np.testing.assert_allclose(batched, singles, atol=1e-5)
    with torch.inference_mode():
        enc = tokenizer(SEQUENCES[:1], return_tensors="pt")
        direct = model(**{k: v for k, v in enc.items() if k in ("input_ids", "attention_mask")}).pooler_output
    np.testing.assert_allclose(batched[:1], direct.numpy(), atol=1e-5)


def test_embed_barcodes_pooling_and_layer_options(tiny_model_dir):
    model, tokenizer = load_encoder(tiny_model_dir)
    mean = embed_barcodes(model, tokenizer, SEQUENCES, progress=False)
    cls = embed_barcodes(model, tokenizer, SEQUENCES, pooling="cls", progress=False)
    first = embed_barcodes(model, tokenizer, SEQUENCES, layer=0, progress=False)
    assert not np.allclose(mean, cls) and not np.allclose(mean, first)
    with pytest.raises(ValueError, match="pooling"):
        embed_barcodes(model, tokenizer, SEQUENCES, pooling="median", progress=False)


def test_load_encoder_plain_hf_bert_folder(tmp_path):
    from transformers import BertConfig, BertModel

    from barcodemae.tokenization import BarcodeTokenizer

    tokenizer = BarcodeTokenizer.kmer(k=4)
    bert = BertModel(BertConfig(vocab_size=len(tokenizer), hidden_size=16, num_hidden_layers=1,
                                num_attention_heads=2, intermediate_size=32, max_position_embeddings=256))
    bert.save_pretrained(tmp_path)
    tokenizer.save_pretrained(tmp_path)
    model, loaded = load_encoder(tmp_path)
    assert type(model).__name__ == "BertModel"
    out = embed_barcodes(model, loaded, SEQUENCES, progress=False)
    assert out.shape == (len(SEQUENCES), 16) and np.isfinite(out).all()


def test_load_encoder_unknown_folder_is_a_clear_error(tmp_path):
    with pytest.raises((OSError, ValueError), match="not_a_model"):
        load_encoder(tmp_path / "not_a_model")


def test_kmer_frequency_embedder_counts():
    embedder = KmerFrequencyEmbedder(k=2)
    out = embed_barcodes(embedder, None, ["AAAA", "ACGT"], progress=False)
    assert out.shape == (2, 16)
    np.testing.assert_allclose(out.sum(axis=1), 1.0, atol=1e-6)
    assert out[0].max() == pytest.approx(1.0)  # AA only
    np.testing.assert_allclose(np.sort(out[1])[-3:], [1 / 3] * 3, atol=1e-6)  # AC, CG, GT


# ---------------------------------------------------------------- one command on real data


def test_missing_split_is_a_clear_error(tmp_path, fixture_csv):
    import pandas as pd

    frame = pd.read_csv(fixture_csv)
    bad = tmp_path / "no_unseen.csv"
    frame[frame["split"] != "test_unseen"].to_csv(bad, index=False)
    with pytest.raises(ValueError, match="test_unseen"):
        load_eval_splits(bad)
    with pytest.raises(FileNotFoundError, match="missing.csv"):
        load_eval_splits(tmp_path / "missing.csv")


def test_run_evaluation_kmer_baseline_on_demo(tmp_path, demo_csv):
    results = run_evaluation(data=demo_csv, output_dir=tmp_path, baseline="kmer", reducer="pca",
                             max_per_split=150, progress=False)
    headline = results["metrics"]["headline"]
    written = json.loads((tmp_path / "results.json").read_text())
    assert written["metrics"]["headline"] == pytest.approx(headline)
    assert (tmp_path / "report.md").read_text().count("|") > 10
    assert written["data"]["split_sizes"] == {"train": 150, "test": 150, "test_unseen": 150}
    # 4-mer profiles carry real signal on COI: far above chance on every task
    assert all(0.0 <= v <= 1.0 for v in headline.values()), headline
    assert results["metrics"]["open_world_genus"]["one_nn"]["accuracy"] > 0.3
    assert results["metrics"]["bin_reconstruction"]["reducer"] == "pca"


def test_cli_runs_with_a_tiny_model_on_fixture(tmp_path, tiny_model_dir, fixture_csv):
    output = tmp_path / "out"
    proc = subprocess.run(
        [sys.executable, str(REPO_ROOT / "eval" / "run.py"), "--model", str(tiny_model_dir), "--data",
         str(fixture_csv), "--output", str(output), "--reducer", "pca", "--batch-size", "16"],
        check=False, capture_output=True, text=True, cwd=REPO_ROOT, timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    results = json.loads((output / "results.json").read_text())
    assert results["model"]["name"] == str(tiny_model_dir)
    assert results["settings"]["embedding_dim"] == 32
    pngs = [name for name in results["plots"].values() if name.endswith(".png")]
    assert sorted(pngs) == ["accuracy_per_genus.png", "pca_test_unseen_genus.png"]
    assert all((output / name).stat().st_size > 1000 for name in pngs)
    assert "harmonic" in (output / "report.md").read_text().lower()
