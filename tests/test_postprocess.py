"""Embedding post-processing (centring, PCA-whitening fitted on the keys), the top-PC collapse diagnostic, and
their use by eval/run.py and `barcodemae identify`."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from barcodemae.checksums import write_checksums
from barcodemae.cli import main
from barcodemae.eval.metrics import one_nn_accuracy
from barcodemae.eval.postprocess import EmbeddingPostprocessor, top_pc_variance_share
from barcodemae.eval.run import evaluate_embeddings
from barcodemae.inference import load_encoder


def anisotropic(rng: np.random.Generator, n: int, width: int = 16) -> np.ndarray:
    """Rows whose variance sits mostly on one direction, with an offset shared by all."""
    scales = np.r_[10.0, np.linspace(1.0, 0.5, width - 1)]
    return rng.normal(size=(n, width)) * scales @ np.linalg.qr(rng.normal(size=(width, width)))[0] + 5.0


def test_whitening_gives_the_keys_identity_covariance_and_centring_zero_mean():
    rng = np.random.default_rng(0)
    keys = anisotropic(rng, 2000)
    white = EmbeddingPostprocessor.fit(keys, "whiten").transform(keys)
    np.testing.assert_allclose(white.mean(axis=0), 0.0, atol=1e-4)
    # up to the regulariser: WHITEN_EPSILON x the largest eigenvalue (100) added to the smallest (0.25)
    np.testing.assert_allclose(np.cov(white, rowvar=False), np.eye(16), atol=1e-2)
    centred = EmbeddingPostprocessor.fit(keys, "center").transform(keys)
    np.testing.assert_allclose(centred.mean(axis=0), 0.0, atol=1e-4)
    np.testing.assert_allclose(centred, keys - keys.mean(axis=0), atol=1e-4)
    np.testing.assert_array_equal(EmbeddingPostprocessor.fit(keys, "none").transform(keys), keys.astype(np.float32))


def test_fit_in_blocks_equals_fit_in_one_go_and_saves_round_trip(tmp_path):
    rng = np.random.default_rng(1)
    keys, queries = anisotropic(rng, 300), anisotropic(rng, 20)
    for method in ("center", "whiten"):
        whole = EmbeddingPostprocessor.fit(keys, method)
        blocked = EmbeddingPostprocessor.fit(keys, method, block=7)
        np.testing.assert_allclose(blocked.transform(queries), whole.transform(queries), rtol=1e-4, atol=1e-4)
        whole.save(tmp_path)
        loaded = EmbeddingPostprocessor.load(tmp_path)
        assert loaded.method == method
        np.testing.assert_array_equal(loaded.transform(queries), whole.transform(queries))
    assert EmbeddingPostprocessor.load(tmp_path / "nothing_saved").method == "none"


def test_whitening_restores_the_neighbours_a_dominant_shared_direction_hides():
    """Classes differ only in weak directions; one strong direction with no class information swamps cosine."""
    rng = np.random.default_rng(2)
    centres = rng.normal(size=(10, 16)) * np.r_[0.0, np.ones(15)]  # class signal off the first axis
    labels = np.repeat(np.arange(10), 40)
    noise = rng.normal(size=(400, 16)) * np.r_[500.0, 0.2 * np.ones(15)]
    x = centres[labels] + noise + 300.0
    keys, queries = x[::2], x[1::2]
    raw = one_nn_accuracy(keys, labels[::2], queries, labels[1::2])["accuracy"]
    transform = EmbeddingPostprocessor.fit(keys, "whiten")
    white = one_nn_accuracy(transform.transform(keys), labels[::2], transform.transform(queries), labels[1::2])
    assert raw < 0.5
    assert white["accuracy"] > 0.95
    assert top_pc_variance_share(keys) > 0.9


def test_top_pc_share_of_rank_one_and_isotropic_embeddings():
    rng = np.random.default_rng(3)
    assert top_pc_variance_share(np.outer(rng.normal(size=500), rng.normal(size=32))) == pytest.approx(1.0)
    assert top_pc_variance_share(rng.normal(size=(20_000, 32))) == pytest.approx(1 / 32, rel=0.15)
    with pytest.raises(ValueError, match="at least two"):
        top_pc_variance_share(np.zeros((1, 4)))


def test_bad_methods_and_shapes_are_named():
    with pytest.raises(ValueError, match="postprocess must be one of"):
        EmbeddingPostprocessor.fit(np.zeros((4, 2)), "zca")
    with pytest.raises(ValueError, match="at least two key embeddings"):
        EmbeddingPostprocessor.fit(np.zeros((1, 2)), "whiten")
    with pytest.raises(ValueError, match=r"must be \(N, 2\)"):
        EmbeddingPostprocessor.fit(np.ones((4, 2)) * np.arange(4)[:, None], "center").transform(np.zeros((3, 5)))


def test_evaluation_fits_the_transform_on_train_only():
    """evaluate_embeddings with whiten equals evaluating embeddings whitened by hand with train's statistics."""
    rng = np.random.default_rng(4)
    genera = np.repeat([f"g{i}" for i in range(6)], 20)
    frame = pd.DataFrame({
        "split": np.tile(["train", "train", "test", "test_unseen"], 30),
        "genus": genera, "species": [f"{g} s{i % 2}" for i, g in enumerate(genera)],
        "dna_bin": [f"BIN{i % 12}" for i in range(120)],
    })
    x = anisotropic(rng, 120) + np.repeat(rng.normal(size=(6, 16)), 20, axis=0)
    keys = np.flatnonzero(frame["split"] == "train")
    by_hand = EmbeddingPostprocessor.fit(x[keys], "whiten").transform(x)
    metrics, _ = evaluate_embeddings(frame, x, reducer="none", probe_c=1.0, postprocess="whiten")
    expected, _ = evaluate_embeddings(frame, by_hand, reducer="none", probe_c=1.0)
    assert metrics["headline"] == expected["headline"]
    raw, _ = evaluate_embeddings(frame, x, reducer="none", probe_c=1.0)
    assert raw["headline"] != metrics["headline"]


def test_identify_index_stores_the_transform_and_applies_it_to_queries(kmer_profile_model: Path, fixture_csv: Path,
                                                                        tmp_path, capsys):
    index_dir = tmp_path / "index"
    assert main(["identify", "build", "--model", str(kmer_profile_model), "--reference", str(fixture_csv),
                 "--split", "train", "--output", str(index_dir), "--postprocess", "whiten", "--no-progress"]) == 0
    assert json.loads(capsys.readouterr().out)["postprocess"] == "whiten"
    assert (index_dir / "postprocess.safetensors").is_file()
    fixture = pd.read_csv(fixture_csv)
    model, tokenizer = load_encoder(kmer_profile_model)
    from barcodemae.inference import embed_barcodes

    train = fixture[fixture["split"] == "train"]
    raw = embed_barcodes(model, tokenizer, train["dna_barcode"].tolist(), progress=False)
    expected = EmbeddingPostprocessor.fit(raw, "whiten").transform(raw)
    expected /= np.linalg.norm(expected, axis=1, keepdims=True)
    np.testing.assert_allclose(np.load(index_dir / "embeddings.npy"), expected, atol=1e-4)

    output = tmp_path / "ids.csv"
    assert main(["identify", "query", "--index", str(index_dir), "--input", str(fixture_csv), "--top-k", "1",
                 "--align", "0", "--output", str(output), "--no-progress"]) == 0
    result = pd.read_csv(output).merge(fixture[["processid", "split"]], left_on="query_id", right_on="processid")
    own = result[result["split"] == "train"]  # a reference, transformed like the index, finds itself
    np.testing.assert_allclose(own["top_similarity"], 1.0, atol=1e-4)
    (index_dir / "postprocess.safetensors").unlink()  # index.json and the stored transform must agree
    query = ["identify", "query", "--index", str(index_dir), "--input", str(fixture_csv), "--output",
             str(tmp_path / "x.csv"), "--no-progress"]
    assert main(query) == 2
    assert "postprocess.safetensors: listed in checksums.json but missing" in capsys.readouterr().err
    write_checksums(index_dir)  # checksums that vouch for the change: the stored settings still must agree
    assert main(query) == 2
    assert "post-processing 'whiten'" in capsys.readouterr().err
