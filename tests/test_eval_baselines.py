"""The kmer-lda yardstick: a genus LDA on k-mer frequencies, fitted on the train keys only."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from sklearn.discriminant_analysis import LinearDiscriminantAnalysis

from barcodemae.eval import baselines, run_evaluation
from barcodemae.eval.baselines import fit_genus_lda, genus_lda_embeddings
from barcodemae.eval.run import _labelled, load_eval_splits
from barcodemae.inference import KmerFrequencyEmbedder


def genus_frequencies(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Frequency-like rows (120, 16) of 5 genera whose mean composition differs, and their genus labels."""
    rng = np.random.default_rng(seed)
    genus = np.repeat(np.array([f"g{i}" for i in range(5)], dtype=object), 24)
    profiles = rng.dirichlet(np.ones(16), size=5)
    counts = rng.poisson(200 * profiles[np.repeat(np.arange(5), 24)]) + 1
    return (counts / counts.sum(axis=1, keepdims=True)).astype(np.float32), genus


@pytest.mark.parametrize("solver", ["svd", "eigen"])
def test_rows_outside_the_fit_do_not_change_the_projection(solver):
    """Replacing every non-fit row by noise changes only those rows' embeddings: the LDA never saw them."""
    frequencies, genus = genus_frequencies()
    fit_rows = np.arange(0, 120, 2)
    embeddings, info = genus_lda_embeddings(frequencies, genus, fit_rows, solver=solver)
    tampered = frequencies.copy()
    tampered[1::2] = np.random.default_rng(1).random((60, 16))
    again, _ = genus_lda_embeddings(tampered, genus, fit_rows, solver=solver)
    np.testing.assert_array_equal(again[fit_rows], embeddings[fit_rows])
    assert not np.allclose(again[1::2], embeddings[1::2])
    assert embeddings.shape == (120, 4) and embeddings.dtype == np.float32  # min(5 genera - 1, 16 features)
    assert info == {"solver": solver, "shrinkage": "auto" if solver == "eigen" else None, "num_keys": 60,
                    "num_genera": 5, "num_features": 16, "n_components": 4}


def test_lda_separates_genera_that_raw_frequencies_blur():
    """Two faint informative features (the genera on a circle) among 14 loud noisy ones: the LDA projection finds
    them, cosine on the raw vectors does not."""
    from barcodemae.eval.metrics import one_nn_accuracy

    rng = np.random.default_rng(2)
    genus = rng.integers(0, 3, 300)
    x = rng.normal(size=(300, 16)) * 3 + 10
    angle = 2 * np.pi * genus / 3
    x[:, 0], x[:, 1] = np.cos(angle) + rng.normal(size=300) * 0.05, np.sin(angle) + rng.normal(size=300) * 0.05
    embeddings, _ = genus_lda_embeddings(x, genus, np.arange(200), solver="svd")
    raw = one_nn_accuracy(x[:200], genus[:200], x[200:], genus[200:])["accuracy"]
    projected = one_nn_accuracy(embeddings[:200], genus[:200], embeddings[200:], genus[200:])["accuracy"]
    assert raw < 0.6 and projected == 1.0


def test_bad_fits_are_refused():
    frequencies, genus = genus_frequencies()
    with pytest.raises(ValueError, match="at least 2 genera"):
        fit_genus_lda(frequencies[:24], genus[:24], solver="svd")
    with pytest.raises(ValueError, match="LDA solver must be one of"):
        fit_genus_lda(frequencies, genus, solver="lsqr")


@pytest.mark.parametrize("queries", ["test", "validation"])
def test_kmer_lda_is_fitted_on_the_train_keys_only(queries, demo_csv: Path, tmp_path: Path, monkeypatch):
    """End to end: the rows handed to LinearDiscriminantAnalysis.fit are exactly the 4-mer frequencies of the train
    records with a genus (no test, test_unseen, val or val_unseen row), and results.json says so."""
    seen: list[np.ndarray] = []

    class RecordingLDA(LinearDiscriminantAnalysis):
        def fit(self, X, y):
            seen.append(np.array(X))
            return super().fit(X, y)

    monkeypatch.setattr(baselines, "LinearDiscriminantAnalysis", RecordingLDA)
    results = run_evaluation(
        baseline="kmer-lda", data=demo_csv, output_dir=tmp_path, queries=queries, reducer="pca", n_components=8,
        probe_c=1.0, progress=False, plots=False,
    )
    frame, _ = load_eval_splits(demo_csv, queries=queries)
    keys = _labelled(frame, "train", "genus")
    expected = KmerFrequencyEmbedder(4)(frame["dna_barcode"].iloc[keys].tolist())
    assert len(seen) == 1
    np.testing.assert_array_equal(seen[0], expected)
    model = results["model"]
    assert model["kind"] == "kmer_lda" and model["k"] == 4
    genera = frame["genus"].iloc[keys].nunique()
    assert model["lda"] == {"fitted_on": "train", "kmer_k": 4, "solver": "svd", "shrinkage": None,
                            "num_keys": len(keys), "num_genera": genera, "num_features": 256,
                            "n_components": genera - 1}
    assert results["settings"]["embedding_dim"] == genera - 1 and "lda_fit_s" in results["timings"]
    report = (tmp_path / "report.md").read_text()
    assert f"fitted on {len(keys):,} train keys of {genera} genera only" in report
