"""Closed-world fine-tuning: a BarcodeMAE folder becomes a species classifier that learns a separable task."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from barcodemae import BarcodeMAEForPreTraining
from barcodemae.embedding_settings import EmbeddingSettings
from barcodemae.eval import run_evaluation
from barcodemae.eval.finetune import fine_tune_classifier, load_classifier


def _species_barcodes(num_species: int, per_species: int, seed: int) -> tuple[list[str], list[str]]:
    """Barcodes of ``num_species`` random 120 bp ancestors, each copy with 3% point mutations."""
    rng = np.random.default_rng(seed)
    ancestors = rng.integers(0, 4, size=(num_species, 120))
    sequences, labels = [], []
    for index, ancestor in enumerate(ancestors):
        for _ in range(per_species):
            copy = ancestor.copy()
            sites = rng.random(120) < 0.03
            copy[sites] = rng.integers(0, 4, size=int(sites.sum()))
            sequences.append("".join("ACGT"[b] for b in copy))
            labels.append(f"species_{index}")
    return sequences, labels


def test_classifier_loads_encoder_weights_and_a_fresh_head(kmer4_model_folder: Path):
    model, _ = load_classifier(kmer4_model_folder, num_labels=5)
    assert type(model).__name__ == "BarcodeMAEForSequenceClassification" and model.classifier.out_features == 5
    pretrained = BarcodeMAEForPreTraining.from_pretrained(kmer4_model_folder)
    torch.testing.assert_close(
        model.barcodemae.embeddings.word_embeddings.weight, pretrained.barcodemae.embeddings.word_embeddings.weight
    )


def test_fine_tuning_draws_reading_frames_with_the_installed_tokenizer(kmer4_model_folder: Path):
    """The folder's saved tokenizer code is replaced by the installed class, whose rule draws the frames."""
    from barcodemae import BarcodeTokenizer
    from barcodemae.eval.finetune import _reading_frames

    _, tokenizer = load_classifier(kmer4_model_folder, num_labels=2)
    assert isinstance(tokenizer, BarcodeTokenizer)
    frames = _reading_frames(tokenizer, ["ACGT" * 30] * 400 + ["ACGTA"], np.random.default_rng(0))
    assert set(frames[:-1].tolist()) == {0, 1, 2, 3} and frames[-1] <= 1  # 5 bp keep one 4-mer
    assert _reading_frames(object(), ["ACGT"], np.random.default_rng(0)) == 0  # other tokenizers: frame 0


def test_fine_tuning_learns_separable_species(kmer4_model_folder: Path):
    train_x, train_y = _species_barcodes(6, 12, seed=0)
    test_x, test_y = _species_barcodes(6, 4, seed=0)  # same ancestors (same seed), fresh mutations are not
    test_x, test_y = test_x[::3], test_y[::3]
    result = fine_tune_classifier(kmer4_model_folder, train_x, train_y, test_x, test_y, epochs=8, learning_rate=2e-3,
                                  settings=EmbeddingSettings(batch_size=8, progress=False))
    assert result["num_classes"] == 6 and result["steps"] == 8 * 9
    assert result["accuracy"] >= 0.9, result  # chance is 1/6
    assert result["final_epoch_loss"] < np.log(6) / 2


def test_fine_tuning_errors(kmer4_model_folder: Path, tmp_path: Path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_classifier(tmp_path / "missing", num_labels=2)
    with pytest.raises(ValueError, match="one label per barcode"):
        fine_tune_classifier(kmer4_model_folder, ["ACGTACGT"], ["a", "b"], ["ACGTACGT"], ["a"])
    with pytest.raises(ValueError, match="at least 2 classes"):
        fine_tune_classifier(kmer4_model_folder, ["ACGTACGT", "ACGTTTTT"], ["a", "a"], ["ACGTACGT"], ["a"])
    with pytest.raises(ValueError, match="fine-tuning, whose classifier pools one reading frame as its model does, "
                       "does not take pooling='cls': leave pooling, layer, frames unset"):
        fine_tune_classifier(kmer4_model_folder, ["ACGTACGT", "ACGTTTTT"], ["a", "b"], ["ACGTACGT"], ["a"],
                             settings=EmbeddingSettings(pooling="cls"))
    with pytest.raises(ValueError, match="does not take frames='all'"):
        fine_tune_classifier(kmer4_model_folder, ["ACGTACGT", "ACGTTTTT"], ["a", "b"], ["ACGTACGT"], ["a"],
                             settings=EmbeddingSettings(frames="all"))


def test_run_evaluation_reports_fine_tuning(kmer4_model_folder: Path, fixture_csv: Path, tmp_path: Path):
    results = run_evaluation(
        kmer4_model_folder,
        fixture_csv,
        tmp_path,
        reducer="pca",
        n_components=8,
        plots=False,
        progress=False,
        finetune_epochs=1,
        finetune_batch_size=32,
    )
    fine_tune = results["metrics"]["closed_world_species"]["fine_tune"]
    assert fine_tune["epochs"] == 1 and 0.0 <= fine_tune["accuracy"] <= 1.0
    assert json.loads((tmp_path / "results.json").read_text())["settings"]["finetune_epochs"] == 1
    assert "fine-tuned (1 epochs)" in (tmp_path / "report.md").read_text()
    with pytest.raises(ValueError, match="nothing to fine-tune"):
        run_evaluation(data=fixture_csv, output_dir=tmp_path, baseline="kmer", finetune_epochs=1)
