"""Species / genus / no-call thresholds of `barcodemae identify`: exact fit, measurement, and the CLI round trip."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from barcodemae.call_levels import CallThresholds, call_report, fit_call_thresholds
from barcodemae.cli import main


def net_correct(thresholds: tuple[float, float], similarity, species_ok, genus_ok) -> int:
    species, genus = thresholds
    levels = np.where(similarity >= species, 1, np.where(similarity >= genus, 2, 0))
    return int(((levels == 1) * np.where(species_ok, 1, -1) + (levels == 2) * np.where(genus_ok, 1, -1)).sum())


def test_thresholds_separate_species_matches_genus_matches_and_strangers():
    similarity = np.array([0.99, 0.98, 0.97, 0.90, 0.88, 0.86, 0.50, 0.45])
    species_ok = np.array([1, 1, 1, 0, 0, 0, 0, 0], bool)  # same species in the library
    genus_ok = np.array([1, 1, 1, 1, 1, 1, 0, 0], bool)    # unseen species of a known genus, then strangers
    fitted = fit_call_thresholds(similarity, species_ok, genus_ok)
    assert 0.90 < fitted.species <= 0.97 and 0.50 < fitted.genus <= 0.86
    assert fitted.levels(similarity).tolist() == ["species"] * 3 + ["genus"] * 3 + ["none"] * 2
    assert fitted.calibration_score == pytest.approx(6 / 8) and fitted.num_calibration_queries == 8
    report = call_report(fitted.levels(similarity), {"species": species_ok, "genus": genus_ok})
    assert report == {"num_queries": 8, "species_call_share": 3 / 8, "species_call_precision": 1.0,
                      "genus_call_share": 3 / 8, "genus_call_precision": 1.0, "none_call_share": 2 / 8}


def test_fit_is_the_best_species_then_genus_threshold_by_brute_force():
    rng = np.random.default_rng(0)
    for _ in range(200):
        n = int(rng.integers(1, 14))
        similarity = rng.choice([0.2, 0.5, 0.7, 0.9, 0.95, 0.99], n)  # ties included
        species_ok = rng.random(n) < similarity - 0.2
        genus_ok = species_ok | (rng.random(n) < similarity)
        fitted = fit_call_thresholds(similarity, species_ok, genus_ok)
        candidates = [*np.unique(similarity), 2.0]
        best_species = max(net_correct((t, t), similarity, species_ok, genus_ok) for t in candidates)
        assert net_correct((fitted.species,) * 2, similarity, species_ok, genus_ok) == best_species  # first, alone
        best = max(net_correct((fitted.species, t), similarity, species_ok, genus_ok)
                   for t in [*candidates, fitted.species] if t <= fitted.species)  # the last: no genus call
        assert net_correct((fitted.species, fitted.genus), similarity, species_ok, genus_ok) == best
        assert fitted.calibration_score * n == pytest.approx(best)


def test_species_is_named_where_it_is_more_often_right_than_wrong():
    """A species call is judged by the species: a genus call would score as well, but says less."""
    similarity = np.array([0.99, 0.98, 0.97, 0.96, 0.80])
    species_ok = np.array([1, 1, 0, 1, 0], bool)  # 3 of the 4 closest matches name the right species
    genus_ok = np.ones(5, bool)
    fitted = fit_call_thresholds(similarity, species_ok, genus_ok)
    assert fitted.levels(similarity).tolist() == ["species"] * 4 + ["genus"]


def test_all_wrong_calibration_calls_nothing_and_bad_input_is_refused():
    fitted = fit_call_thresholds(np.array([0.9, 0.8]), np.zeros(2, bool), np.zeros(2, bool))
    assert fitted.levels(np.array([0.9, 0.8])).tolist() == ["none", "none"]
    with pytest.raises(ValueError, match="at least one"):
        fit_call_thresholds(np.array([]), np.array([], bool), np.array([], bool))
    with pytest.raises(ValueError, match="equal length"):
        fit_call_thresholds(np.array([0.5, 0.6]), np.array([True]), np.array([True, False]))
    with pytest.raises(ValueError, match="must not be below"):
        CallThresholds(species=0.5, genus=0.9)
    assert CallThresholds.from_dict(fitted.to_dict()) == fitted


def test_calibrated_index_gives_every_query_a_call_level(kmer_profile_model: Path, fixture_csv: Path, tmp_path,
                                                          capsys) -> None:
    index_dir = tmp_path / "index"
    assert main(["identify", "build", "--model", str(kmer_profile_model), "--reference", str(fixture_csv),
                 "--split", "train", "--calibration-split", "val+val_unseen", "--output", str(index_dir),
                 "--no-progress"]) == 0
    info = json.loads(capsys.readouterr().out)
    fixture = pd.read_csv(fixture_csv)
    calibration = fixture[fixture["split"].isin(["val", "val_unseen"])].dropna(subset=["genus", "species"])
    thresholds = CallThresholds.from_dict(info["call_thresholds"])
    assert thresholds.num_calibration_queries == info["calibration"]["num_queries"] == len(calibration)
    assert info["calibration"]["split"] == "val+val_unseen" and info["calibration"]["top_k"] == 5
    assert json.loads((index_dir / "index.json").read_text())["call_thresholds"] == info["call_thresholds"]

    output = tmp_path / "calls.csv"
    assert main(["identify", "query", "--index", str(index_dir), "--input", str(fixture_csv), "--output",
                 str(output), "--split", "test+test_unseen", "--align", "0", "--no-progress"]) == 0
    captured = capsys.readouterr()
    summary = json.loads(captured.out)
    result = pd.read_csv(output)
    assert len(result) == fixture["split"].isin(["test", "test_unseen"]).sum() == summary["num_queries"]
    counts = result["call_level"].value_counts()
    assert summary["call_levels"] == {level: int(counts.get(level, 0))
                                      for level in ("species", "genus", "family", "order", "none")}
    assert f"calls: species {summary['call_levels']['species']:,}" in captured.err and str(output) in captured.err
    assert set(result["call_level"]) <= {"species", "genus", "none"}
    similarity = result["top_similarity"].to_numpy()  # as written to the CSV: compare away from the thresholds
    clear = (np.abs(similarity - thresholds.species) > 1e-6) & (np.abs(similarity - thresholds.genus) > 1e-6)
    assert (result["call_level"] == thresholds.levels(similarity))[clear].all()
    species = result["call_level"] == "species"
    genus = result["call_level"] == "genus"
    assert (result.loc[species, "called_taxon"] == result.loc[species, "vote_species"]).all()
    assert (result.loc[genus, "called_taxon"] == result.loc[genus, "vote_genus"]).all()
    assert result.loc[result["call_level"] == "none", "called_taxon"].isna().all()
    rule = {"species": f"calibrated_similarity>={thresholds.species:.4f}",
            "genus": f"calibrated_similarity>={thresholds.genus:.4f}",
            "none": f"calibrated_similarity<{thresholds.genus:.4f}"}
    assert (result["call_rule"] == result["call_level"].map(rule)).all()
    shares = [summary["calls"][f"{level}_call_share"] for level in ("species", "genus", "none")]
    assert sum(shares) == pytest.approx(1.0, abs=1e-3)


def test_calibration_split_must_be_disjoint_and_labelled(kmer_profile_model: Path, fixture_csv: Path, tmp_path,
                                                          capsys) -> None:
    common = ["identify", "build", "--model", str(kmer_profile_model), "--reference", str(fixture_csv),
              "--split", "train", "--no-progress"]
    assert main([*common, "--calibration-split", "train+val", "--output", str(tmp_path / "a")]) == 2
    assert "shares records with the references" in capsys.readouterr().err
    assert not (tmp_path / "a" / "index.json").exists()
    unlabelled = pd.read_csv(fixture_csv)
    unlabelled.loc[unlabelled["split"] == "val", "species"] = None
    unlabelled.to_csv(tmp_path / "unlabelled.csv", index=False)
    common[common.index(str(fixture_csv))] = str(tmp_path / "unlabelled.csv")
    assert main([*common, "--calibration-split", "val", "--output", str(tmp_path / "b")]) == 2
    assert "no record with a genus and a species" in capsys.readouterr().err
