"""`barcodemae identify`: blocked cosine top-k, rank-wise vote, and the right genus for species in the reference."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from barcodemae import BarcodeMAEConfig, BarcodeMAEModel, BarcodeTokenizer, index_search
from barcodemae.cli import main
from barcodemae.identify import ReferenceIndex, identify, majority_vote
from conftest import tiny_config_kwargs


def test_majority_vote_counts_then_similarity_then_nearest() -> None:
    labels = np.array([
        [0, 1, 1, 2, 0],     # 0 and 1 have two votes; 1 has the larger summed similarity (0.8 + 0.7)
        [3, 4, -1, -1, -1],  # one vote each, equal similarity: the nearer neighbour (3) wins
        [-1, -1, -1, -1, -1],  # no neighbour has a label
        [5, 6, 6, 6, 5],     # clear majority for 6 although 5 is nearest
    ])
    similarities = np.array([
        [0.9, 0.8, 0.7, 0.6, 0.1],
        [0.5, 0.5, 0.4, 0.3, 0.2],
        [0.9, 0.8, 0.7, 0.6, 0.5],
        [0.99, 0.6, 0.5, 0.4, 0.3],
    ])
    winner, votes = majority_vote(labels, similarities)
    assert winner.tolist() == [1, 3, -1, 6]
    assert votes.tolist() == [2, 1, 0, 3]


def test_blocked_search_equals_brute_force(monkeypatch) -> None:
    rng = np.random.default_rng(0)
    references = rng.normal(size=(103, 16)).astype(np.float32)
    references /= np.linalg.norm(references, axis=1, keepdims=True)
    queries = rng.normal(size=(21, 16)).astype(np.float32) * 3.0
    monkeypatch.setattr(index_search, "REFERENCE_BLOCK", 10)
    index = ReferenceIndex(references, pa.table({"processid": [f"r{i}" for i in range(103)]}), {})
    found, similarity = index.search(queries, top_k=4, query_block=8)
    brute = (queries / np.linalg.norm(queries, axis=1, keepdims=True)) @ references.T
    expected = np.argsort(-brute, axis=1)[:, :4]
    np.testing.assert_array_equal(found, expected)
    np.testing.assert_allclose(similarity, np.take_along_axis(brute, expected, axis=1), atol=1e-5)
    with pytest.raises(ValueError, match=r"queries must be \(n, 16\)"):
        index.search(queries[:, :8])


def test_identify_table_columns_and_missing_labels() -> None:
    references = np.eye(3, dtype=np.float32)
    table = pa.table({"processid": ["a", "b", "c"], "genus": ["G1", "G1", None], "species": ["s1", "s2", None],
                      "dna_bin": [None, None, None]})
    result = identify(ReferenceIndex(references, table, {}), np.array([[0.0, 0.1, 1.0]], np.float32), ["q"], top_k=2)
    row = result.iloc[0]
    assert row["neighbor1_processid"] == "c" and row["neighbor2_processid"] == "b"
    assert row["predicted_genus"] == "G1" and row["genus_votes"] == 1  # c has no genus: it does not vote
    assert row["predicted_species"] == "s2"
    assert row["predicted_dna_bin"] is None and row["dna_bin_votes"] == 0
    assert row["neighbor1_genus"] is None and row["neighbor2_genus"] == "G1"


def test_identify_cli_names_the_genus_of_species_in_the_reference(kmer_profile_model: Path, fixture_csv: Path,
                                                                  tmp_path, capsys) -> None:
    index_dir = tmp_path / "index"
    assert main(["identify", "build", "--model", str(kmer_profile_model), "--reference", str(fixture_csv),
                 "--split", "train", "--output", str(index_dir), "--no-progress"]) == 0
    info = json.loads(capsys.readouterr().out)
    fixture = pd.read_csv(fixture_csv)
    train = fixture[fixture["split"] == "train"]
    assert info["num_references"] == len(train) == 48
    embeddings = np.load(index_dir / "embeddings.npy")
    np.testing.assert_allclose(np.linalg.norm(embeddings, axis=1), 1.0, atol=1e-5)

    output = tmp_path / "ids.csv"
    assert main(["identify", "query", "--index", str(index_dir), "--input", str(fixture_csv), "--top-k", "1",
                 "--output", str(output), "--no-progress"]) == 0
    summary = json.loads(capsys.readouterr().out)
    result = pd.read_csv(output).merge(fixture[["processid", "split"]], on="processid")
    assert len(result) == len(fixture) == summary["num_queries"]
    # test specimens: their species is in the reference, so the nearest reference must carry the right genus
    test = result[result["split"] == "test"]
    assert len(test) == 42
    assert (test["predicted_genus"] == test["true_genus"]).all(), test[["processid", "true_genus", "predicted_genus"]]
    # a reference barcode finds itself (or an identical barcode) at cosine similarity 1
    own = result[result["split"] == "train"]
    np.testing.assert_allclose(own["top1_similarity"], 1.0, atol=1e-5)
    assert (own["predicted_species"] == own["true_species"]).all()

    voted = tmp_path / "voted.csv"
    assert main(["identify", "query", "--index", str(index_dir), "--input", str(fixture_csv), "--top-k", "3",
                 "--output", str(voted), "--no-progress"]) == 0
    table = pd.read_csv(voted)
    assert {"neighbor3_processid", "neighbor3_similarity", "neighbor3_genus", "genus_agreement"} <= set(table)
    assert (table["neighbor1_similarity"] >= table["neighbor2_similarity"]).all()
    assert set(table["genus_votes"]) <= {1, 2, 3}


def test_query_refuses_another_model(kmer_profile_model: Path, fixture_csv: Path, tmp_path, capsys) -> None:
    index_dir = tmp_path / "index"
    assert main(["identify", "build", "--model", str(kmer_profile_model), "--reference", str(fixture_csv),
                 "--split", "train", "--output", str(index_dir), "--no-progress"]) == 0
    other = tmp_path / "other"
    tokenizer = BarcodeTokenizer.kmer()
    BarcodeMAEModel(BarcodeMAEConfig(**tiny_config_kwargs(), vocab_size=len(tokenizer))).save_pretrained(other)
    tokenizer.save_pretrained(other)
    code = main(["identify", "query", "--index", str(index_dir), "--input", str(fixture_csv), "--model", str(other),
                 "--output", str(tmp_path / "x.csv")])
    assert code == 2
    assert "not the model the index" in capsys.readouterr().err
    assert main(["identify", "query", "--index", str(tmp_path), "--input", str(fixture_csv),
                 "--output", str(tmp_path / "y.csv")]) == 2
    assert "not a reference index" in capsys.readouterr().err


def test_build_resume_refuses_a_reference_whose_records_changed(kmer_profile_model: Path, fixture_csv: Path,
                                                                tmp_path, monkeypatch, capsys) -> None:
    """Same path, same size, same record count, other barcodes (the issue's case): resuming would mix two
    references. The index identity holds the file's size and SHA-256 and a hash of the cleaned records."""
    import barcodemae.inference as embeddings_api

    reference = tmp_path / "reference.csv"
    table = pd.read_csv(fixture_csv)
    table.to_csv(reference, index=False)
    real = embeddings_api.embed_barcodes

    def killed(*args, **kwargs):
        raise KeyboardInterrupt("simulated kill")

    monkeypatch.setattr(embeddings_api, "embed_barcodes", killed)
    index_dir = tmp_path / "index"
    args = ["identify", "build", "--model", str(kmer_profile_model), "--reference", str(reference),
            "--split", "train", "--output", str(index_dir), "--shard-size", "16", "--no-progress"]
    with pytest.raises(KeyboardInterrupt):
        main(args)
    monkeypatch.setattr(embeddings_api, "embed_barcodes", real)
    manifest = json.loads((index_dir / "parts" / "manifest.json").read_text())["identity"]
    assert manifest["reference"]["size"] == reference.stat().st_size and len(manifest["records"]) == 64
    changed = table.copy()
    train = changed["split"] == "train"
    changed.loc[train, "dna_barcode"] = changed.loc[train, "dna_barcode"].str.replace("A", "G", n=1)
    changed.to_csv(reference, index=False)
    assert reference.stat().st_size == manifest["reference"]["size"]
    assert main([*args, "--resume"]) == 2
    assert "cannot resume" in capsys.readouterr().err


# ------------------------------------------------------------------------------------ index integrity (issue #26)
def _index_bytes(index_dir: Path, edit) -> None:
    """Rewrite ``embeddings.npy`` through ``edit(matrix)`` keeping its size (a bit flip, a NaN row)."""
    matrix = np.load(index_dir / "embeddings.npy")
    edit(matrix)
    np.save(index_dir / "embeddings.npy", matrix)


def test_a_nan_row_never_becomes_every_querys_neighbour(kmer_profile_model: Path, fixture_csv: Path, tmp_path,
                                                        capsys) -> None:
    """The review's case: one NaN reference row made every query's nearest neighbour, genus accuracy 1.0 -> 0.0,
    exit 0. Now the index's checksums catch the edit, and a finite check catches NaN however it got there."""
    from barcodemae.checksums import write_checksums

    index_dir = tmp_path / "index"
    assert main(["identify", "build", "--model", str(kmer_profile_model), "--reference", str(fixture_csv),
                 "--split", "train", "--output", str(index_dir), "--no-progress"]) == 0
    assert json.loads((index_dir / "index.json").read_text())["checksums"] == "checksums.json"
    first = pq.read_table(index_dir / "references.parquet").column("processid")[0].as_py()
    _index_bytes(index_dir, lambda matrix: matrix.__setitem__(0, np.nan))
    query = ["identify", "query", "--index", str(index_dir), "--input", str(fixture_csv), "--output",
             str(tmp_path / "q.csv"), "--no-progress"]
    capsys.readouterr()
    assert main(query) == 2
    assert "embeddings.npy: content differs from checksums.json" in capsys.readouterr().err
    write_checksums(index_dir)  # a NaN the checksums vouch for (e.g. made by the model) is still refused
    assert main(query) == 2
    assert f"embeddings.npy holds NaN/inf for record '{first}'" in capsys.readouterr().err
    assert not (tmp_path / "q.csv").exists()


def test_index_checksums_and_unreadable_files_are_named(kmer_profile_model: Path, fixture_csv: Path,
                                                        tmp_path, caplog) -> None:
    index_dir = tmp_path / "index"
    assert main(["identify", "build", "--model", str(kmer_profile_model), "--reference", str(fixture_csv),
                 "--split", "train", "--output", str(index_dir), "--no-progress"]) == 0
    (index_dir / "notes.txt").write_text("a user's notes beside the index")  # tolerated, with a warning
    ReferenceIndex.load(index_dir)
    assert "notes.txt not listed in checksums.json" in caplog.text
    (index_dir / "checksums.json").unlink()
    with pytest.raises(ValueError, match=r"checksums.json: missing, but .*index was written with checksums"):
        ReferenceIndex.load(index_dir)
    (index_dir / "index.json").write_text('{"truncated')
    with pytest.raises(ValueError, match=r"index.json: not valid JSON"):
        ReferenceIndex.load(index_dir)


def test_query_vectors_with_nan_are_refused_by_id() -> None:
    index = ReferenceIndex(np.eye(3, dtype=np.float32), pa.table({"processid": ["a", "b", "c"]}), {})
    queries = np.array([[1.0, 0.0, 0.0], [np.nan, 0.0, 0.0]], np.float32)
    with pytest.raises(ValueError, match=r"the query embeddings hold NaN/inf for record 'q2'"):
        identify(index, queries, ["q1", "q2"])


def test_build_and_query_outputs_never_take_files_that_are_not_theirs(kmer_profile_model: Path, fixture_csv: Path,
                                                                      tmp_path, monkeypatch, capsys) -> None:
    """A user's parts/ beside a build, an index's own files as query output, a killed query's half-written table."""
    folder = tmp_path / "mine"
    (folder / "parts").mkdir(parents=True)
    (folder / "parts" / "notes.txt").write_text("not the build's")
    build = ["identify", "build", "--model", str(kmer_profile_model), "--reference", str(fixture_csv), "--split",
             "train", "--no-progress", "--output"]
    assert main([*build, str(folder)]) == 2
    assert "no manifest.json of an unfinished run" in capsys.readouterr().err
    assert (folder / "parts" / "notes.txt").read_text() == "not the build's"
    (folder / "parts" / "notes.txt").unlink()
    (folder / "embeddings.npy").write_bytes(b"a user's matrix")
    assert main([*build, str(folder)]) == 2
    assert "holds embeddings.npy, which building an index would overwrite" in capsys.readouterr().err
    assert (folder / "embeddings.npy").read_bytes() == b"a user's matrix"

    index_dir = tmp_path / "index"
    assert main([*build, str(index_dir)]) == 0
    capsys.readouterr()
    query = ["identify", "query", "--index", str(index_dir), "--input", str(fixture_csv), "--no-progress", "--output"]
    assert main([*query, str(index_dir / "references.csv")]) == 2
    assert "inside the input folder" in capsys.readouterr().err
    ReferenceIndex.load(index_dir)  # untouched

    output = tmp_path / "calls.csv"
    output.write_text("the previous answer\n")

    def killed(*args, **kwargs):
        raise KeyboardInterrupt("killed while writing")

    monkeypatch.setattr(pd.DataFrame, "to_csv", killed)
    with pytest.raises(KeyboardInterrupt):
        main([*query, str(output)])
    assert output.read_text() == "the previous answer\n"  # whole, old; no temporary left behind
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".tmp")) == []


def test_every_index_file_follows_the_umask(kmer_profile_model: Path, fixture_csv: Path, tmp_path, capsys) -> None:
    """A lab shares an index folder: safetensors writes postprocess.safetensors owner-only (0600) whatever the
    umask, so the build widens it to the mode the index's other files get."""
    previous = os.umask(0o022)
    try:
        assert main(["identify", "build", "--model", str(kmer_profile_model), "--reference", str(fixture_csv),
                     "--split", "train", "--output", str(tmp_path / "index"), "--postprocess", "center",
                     "--no-progress"]) == 0
    finally:
        os.umask(previous)
    modes = {path.name: stat.S_IMODE(path.stat().st_mode) for path in (tmp_path / "index").iterdir()}
    assert "postprocess.safetensors" in modes
    assert all(mode & 0o644 == 0o644 for mode in modes.values()), {name: oct(mode) for name, mode in modes.items()}
