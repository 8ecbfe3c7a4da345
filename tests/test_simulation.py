"""The embedded default dataset: BIOSCAN-5M format, split semantics, COI-like mutation structure."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from barcodemae.simulation import (
    BIOSCAN5M_COLUMNS,
    SimulationConfig,
    mutate,
    simulate_barcodes,
    site_weights,
    write_simulated_dataset,
)
from barcodemae.tokenization import clean_barcode


@pytest.fixture(scope="module")
def table() -> pd.DataFrame:
    return simulate_barcodes(num_genera=30, seed=3)


def test_columns_and_bioscan_split_names(table, fixture_csv):
    assert list(table.columns) == list(BIOSCAN5M_COLUMNS)
    real_header = pd.read_csv(fixture_csv, nrows=0).columns.tolist()
    assert list(BIOSCAN5M_COLUMNS) == real_header[: len(BIOSCAN5M_COLUMNS)]
    assert set(table["split"]) == {
        "pretrain", "train", "val", "test", "key_unseen", "val_unseen", "test_unseen", "other_heldout"
    }
    assert table["processid"].is_unique


def test_split_semantics(table):
    species_of = lambda *splits: set(table.loc[table["split"].isin(splits), "species"].dropna())
    genera_of = lambda *splits: set(table.loc[table["split"].isin(splits), "genus"])
    train_species, train_genera = species_of("train"), genera_of("train")
    assert species_of("val", "test") <= train_species  # every val/test species occurs in train
    unseen = species_of("key_unseen", "val_unseen", "test_unseen")
    assert unseen and not unseen & train_species  # unseen species never in train ...
    assert genera_of("key_unseen", "val_unseen", "test_unseen") <= train_genera  # ... but their genus is
    assert genera_of("other_heldout") and not genera_of("other_heldout") & train_genera
    assert table.loc[table["split"] == "pretrain", "species"].isna().all()  # unlabelled use
    # Records of one species with an identical barcode never straddle two splits.
    labelled = table.dropna(subset=["species"])
    assert (labelled.groupby(["species", "dna_barcode"])["split"].nunique() == 1).all()


def test_barcodes_are_valid_coi_like(table):
    lengths = table["dna_barcode"].str.len()
    assert lengths.median() == 658 and lengths.min() >= 500 and lengths.max() <= 661
    cleaned = [clean_barcode(s, record_id=i, max_length=1000) for i, s in zip(table["processid"], table["dna_barcode"])]
    assert all(c.sequence == s for c, s in zip(cleaned, table["dna_barcode"]))
    has_n = table["dna_barcode"].str.contains("N")
    assert 0 < has_n.mean() < 0.2  # rare ambiguous bases
    assert (lengths % 3 != 658 % 3).any()  # rare single-base indels shift the length off the codon grid


def test_seeded_and_reproducible():
    a, b = simulate_barcodes(num_genera=5, seed=1), simulate_barcodes(num_genera=5, seed=1)
    pd.testing.assert_frame_equal(a, b)
    assert not simulate_barcodes(num_genera=5, seed=2)["dna_barcode"].equals(a["dna_barcode"])


def test_third_codon_positions_mutate_most():
    rng = np.random.default_rng(0)
    weights = site_weights(660, (0.25, 0.1, 2.65))
    parent = rng.integers(0, 4, size=(1, 660)).astype(np.uint8).repeat(2000, axis=0)
    changed = (mutate(parent, 0.05, weights, rng) != parent).mean(axis=0).reshape(-1, 3).mean(axis=0)
    # A substitution never keeps the base, so the change rate is exactly rate x codon weight (weights mean 1).
    np.testing.assert_allclose(changed, 0.05 * np.array([0.25, 0.1, 2.65]), rtol=0.1)


def test_taxonomy_nesting_gives_learnable_structure(table):
    """Barcodes of one genus are closer to each other than to other genera (k-mer 1-NN finds the genus)."""
    keys = table[table["split"] == "train"]
    queries = table[table["split"] == "test_unseen"]

    def profile(sequences):
        """Normalised 3-mer counts (ambiguous k-mers skipped), vectorised per barcode."""
        lookup = np.full(256, -1)
        lookup[np.frombuffer(b"ACGT", np.uint8)] = np.arange(4)
        out = np.zeros((len(sequences), 64))
        for row, s in enumerate(sequences):
            codes = lookup[np.frombuffer(s.encode(), np.uint8)]
            windows = np.lib.stride_tricks.sliding_window_view(codes, 3)
            valid = (windows >= 0).all(axis=1)
            out[row] = np.bincount(windows[valid] @ np.array([16, 4, 1]), minlength=64)
        return out / np.linalg.norm(out, axis=1, keepdims=True)

    nearest = (profile(queries["dna_barcode"].tolist()) @ profile(keys["dna_barcode"].tolist()).T).argmax(axis=1)
    accuracy = (keys["genus"].to_numpy()[nearest] == queries["genus"].to_numpy()).mean()
    assert accuracy > 10 / table["genus"].nunique()  # far above chance (1/30)


def test_write_and_bad_config(tmp_path):
    path = write_simulated_dataset(tmp_path / "sim.csv.gz", num_genera=4, seed=0)
    assert len(pd.read_csv(path)) > 0
    with pytest.raises(ValueError, match="num_genera"):
        SimulationConfig(num_genera=1)
    with pytest.raises(ValueError, match="length"):
        simulate_barcodes(length=100)
