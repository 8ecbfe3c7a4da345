"""`barcodemae identify`: blocked cosine top-k, rank-wise vote, and the right genus for species in the reference."""

from __future__ import annotations

import json
import os
import shutil
import stat
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from barcodemae import BarcodeMAEConfig, BarcodeMAEModel, BarcodeTokenizer, alignment, index_search
from barcodemae.cli import main
from barcodemae.cli_options import DEFAULT_IDENTITY_THRESHOLDS
from barcodemae.embedding_settings import EmbeddingSettings
from barcodemae.identify import ReferenceIndex, identify, majority_vote, save_barcodes
from barcodemae.identity_calls import MIN_QUERY_COVERAGE
from conftest import mutate_bases, tiny_config_kwargs, with_indels


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


def test_candidates_are_screened_and_only_the_best_aligned(caplog) -> None:
    """The reference that aligns best is found among the ``candidates`` nearest even when the embedding ranks it
    last; only the ``align`` best-screened are aligned and reported, ranked by local score. An index without
    stored anchor shifts (built before the screen) computes them, once, and says so."""
    rng = np.random.default_rng(8)
    ancestor = "".join(rng.choice(list("ACGT"), 200))
    query = mutate_bases(rng, ancestor, 0.05)
    unrelated = [mutate_bases(rng, ancestor, 0.25) for _ in range(3)]  # distant relatives, as other orders are
    near = query[:100] + mutate_bases(rng, ancestor[100:], 0.25)  # half the query: a shorter local alignment
    sequences = np.array([*unrelated, near, query], dtype=bytes)  # the exact match last by embedding
    embeddings = np.eye(5, dtype=np.float32)
    table = pa.table({"processid": ["u1", "u2", "u3", "half", "exact"], "genus": ["U", "U", "U", "H", "E"]})
    index = ReferenceIndex(embeddings, table, {}, sequences=sequences)
    by_embedding = np.array([[0.5, 0.4, 0.3, 0.2, 0.1]], np.float32)  # u1 nearest, exact farthest
    screened = identify(index, by_embedding, ["q"], top_k=2, query_sequences=[query], align=2, candidates=5)
    assert screened.hits["hit_id"].tolist() == ["exact", "half"]
    exact, half = screened.hits["score"].tolist()
    assert exact == 200 * alignment.MATCH and 100 * alignment.MATCH <= half < exact
    assert screened.table.loc[0, ["top_identity", "call_level", "called_taxon"]].tolist() == [100, "genus", "E"]
    assert caplog.text.count("built before the diagonal screen") == 1 and index.shifts.shape == (5,)
    assert index.info["screen_anchor"] == unrelated[0]  # all of one length and plain: the first
    nearest_only = identify(index, by_embedding, ["q"], top_k=2, query_sequences=[query], align=2, candidates=0)
    assert set(nearest_only.hits["hit_id"]) == {"u1", "u2"}  # --candidates at most --align: the nearest, aligned
    assert caplog.text.count("built before the diagonal screen") == 1  # placed once


def test_a_read_with_indels_is_screened_by_smith_waterman(caplog) -> None:
    """A read whose indels break every diagonal still finds its source, ranked last by the embedding: its screen is
    weak, so Smith-Waterman screens its candidates instead."""
    rng = np.random.default_rng(4)
    ancestor = "".join(rng.choice(list("ACGT"), 400))
    source = mutate_bases(rng, ancestor, 0.05)
    relatives = [mutate_bases(rng, ancestor, 0.2) for _ in range(4)]
    read = with_indels(rng, source, 16)  # 4% indels
    sequences = np.array([*relatives, source], dtype=bytes)
    table = pa.table({"processid": ["r1", "r2", "r3", "r4", "source"], "genus": ["R", "R", "R", "R", "S"]})
    index = ReferenceIndex(np.eye(5, dtype=np.float32), table, {}, sequences=sequences)
    by_embedding = np.array([[0.5, 0.4, 0.3, 0.2, 0.1]], np.float32)  # the source last
    with caplog.at_level("INFO", logger="barcodemae.identify"):
        found = identify(index, by_embedding, ["read"], top_k=1, query_sequences=[read], align=1, candidates=5)
    assert found.hits["hit_id"].tolist() == ["source"]
    assert "1 of 1 queries screened by Smith-Waterman" in caplog.text


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
    found = identify(ReferenceIndex(references, table, {}), np.array([[0.0, 0.1, 1.0]], np.float32), ["q"], top_k=2)
    assert found.hits is None  # no alignment: the neighbours are listed in the query table, as before
    row = found.table.iloc[0]
    assert row["neighbor1_processid"] == "c" and row["neighbor2_processid"] == "b"
    assert row["vote_genus"] == "G1" and row["vote_genus_count"] == 1  # c has no genus: it does not vote
    assert row["vote_species"] == "s2"
    assert row["vote_dna_bin"] is None and row["vote_dna_bin_count"] == 0
    assert row["neighbor1_genus"] is None and row["neighbor2_genus"] == "G1"
    # no calibration, no alignment: no call, and the row says why; the top hit is shown as a hit, not a call
    assert (row["call_level"], row["called_taxon"], row["call_rule"]) == ("none", None, "uncalibrated")
    assert row["top_hit_id"] == "c" and np.isnan(row["top_identity"])


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
    result = pd.read_csv(output).merge(fixture[["processid", "split"]], left_on="query_id", right_on="processid")
    assert len(result) == len(fixture) == summary["num_queries"]
    assert (result["query_id"] == fixture["processid"]).all()  # input order
    # test specimens: their species is in the reference, so the best-aligning reference must carry the right genus
    test = result[result["split"] == "test"]
    assert len(test) == 42
    assert (test["top_genus"] == test["true_genus"]).all(), test[["query_id", "true_genus", "top_genus"]]
    # a reference barcode finds itself (or an identical barcode) at 100% identity over its whole length
    own = result[result["split"] == "train"]
    assert (own["top_identity"] == 100).all() and (own["top_query_coverage"] == 100).all()
    assert (own["top_species"] == own["true_species"]).all()
    assert summary["top_genus_accuracy"] == summary["vote_genus_accuracy"]  # --top-k 1: the top hit alone votes

    voted = tmp_path / "voted.csv"
    assert main(["identify", "query", "--index", str(index_dir), "--input", str(fixture_csv), "--top-k", "3",
                 "--align", "0", "--output", str(voted), "--no-progress"]) == 0
    table = pd.read_csv(voted)
    assert {"neighbor3_processid", "neighbor3_similarity", "neighbor3_genus", "vote_genus_agreement"} <= set(table)
    assert (table["neighbor1_similarity"] >= table["neighbor2_similarity"]).all()
    assert set(table["vote_genus_count"]) <= {1, 2, 3}


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


def test_an_index_knows_its_model_by_content(kmer_profile_model: Path, fixture_csv: Path, tmp_path, capsys) -> None:
    """A copy of the model elsewhere (new mtimes, as after scp) is the index's model; the folder rewritten in place
    with other weights is not, and a plain query refuses it rather than compare new vectors with old ones; an index
    that recorded the older size-and-mtime fingerprint still answers from its folder."""
    import hashlib

    from barcodemae.checksums import write_checksums

    model = tmp_path / "model"
    shutil.copytree(kmer_profile_model, model)
    index_dir = tmp_path / "index"
    assert main(["identify", "build", "--model", str(model), "--reference", str(fixture_csv), "--split", "train",
                 "--output", str(index_dir), "--no-progress"]) == 0

    def answers(*model_flag: str) -> pd.DataFrame | None:
        output = tmp_path / "ids.csv"
        output.unlink(missing_ok=True)
        code = main(["identify", "query", "--index", str(index_dir), "--input", str(fixture_csv), "--split", "test",
                     "--align", "0", *model_flag, "--output", str(output), "--no-progress"])
        return pd.read_csv(output) if code == 0 else None

    expected = answers()
    copied = tmp_path / "copied"
    shutil.copytree(model, copied, copy_function=shutil.copy)  # contents only: new mtimes
    os.utime(copied / "model.safetensors", ns=(1, 1))
    pd.testing.assert_frame_equal(answers("--model", str(copied)), expected)

    info = json.loads((index_dir / "index.json").read_text())
    weights = (model / "model.safetensors").stat()
    legacy = hashlib.sha256((model / "config.json").read_bytes())
    legacy.update(f"model.safetensors:{weights.st_size}:{weights.st_mtime_ns}".encode())
    info["embedder"]["fingerprint"] = legacy.hexdigest()  # as index.json recorded it before content hashing
    (index_dir / "index.json").write_text(json.dumps(info))
    write_checksums(index_dir)
    pd.testing.assert_frame_equal(answers(), expected)

    BarcodeMAEModel(BarcodeMAEConfig.from_pretrained(model)).save_pretrained(model)  # other weights, same config
    capsys.readouterr()
    assert answers() is None
    assert "not the model the index" in capsys.readouterr().err


def test_an_index_records_its_reading_frames_and_its_queries_embed_in_them(kmer4_model_folder: Path,
                                                                          fixture_csv: Path, tmp_path,
                                                                          capsys) -> None:
    """``identify build --frames first`` on a ``pooled_frames="all"`` model: the index holds frame-0 vectors and
    says so, its queries embed the same way (with or without --model), and other frames asked of them are
    refused; a k-mer index takes no --frames."""
    from barcodemae.index_embedders import index_embedder, requested_embedder
    from barcodemae.inference import embed_barcodes, load_encoder

    model, tokenizer = load_encoder(kmer4_model_folder)
    model.config.pooled_frames = "all"
    framed = tmp_path / "framed"
    model.save_pretrained(framed)
    tokenizer.save_pretrained(framed)
    index_dir = tmp_path / "index"
    assert main(["identify", "build", "--model", str(framed), "--reference", str(fixture_csv), "--split", "train",
                 "--frames", "first", "--output", str(index_dir), "--no-progress"]) == 0
    capsys.readouterr()
    info = json.loads((index_dir / "index.json").read_text())
    assert info["embedder"]["frames"] == "first"
    train = pd.read_csv(fixture_csv).query("split == 'train'")["dna_barcode"].tolist()[:5]
    first = embed_barcodes(model, tokenizer, train, frames="first", progress=False)
    for embedder in (index_embedder(info, index_dir), index_embedder(info, index_dir, model_dir=framed)):
        np.testing.assert_allclose(embedder.embed(train), first, atol=1e-5)
    with pytest.raises(ValueError, match="built with frames='first'; its queries cannot embed with frames='all'"):
        index_embedder(info, index_dir, settings=EmbeddingSettings(frames="all"))
    with pytest.raises(ValueError, match="a model's option; a k-mer index counts every window"):
        requested_embedder(None, 5, EmbeddingSettings(frames="first"))


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


def test_barcodes_are_saved_block_by_block_as_np_save_writes_them(tmp_path) -> None:
    """The index's sequences.npy, written a block at a time so the build never holds the column as Python strings."""
    barcodes = pa.chunked_array([["ACGT", "AC"], ["ACGTNNRA", "G", "TTT"]])
    save_barcodes(barcodes, tmp_path / "blocks.npy", block=2)
    np.save(tmp_path / "whole.npy", np.array(barcodes.to_pylist(), dtype=bytes))
    assert (tmp_path / "blocks.npy").read_bytes() == (tmp_path / "whole.npy").read_bytes()
    assert np.load(tmp_path / "blocks.npy").tolist() == [b"ACGT", b"AC", b"ACGTNNRA", b"G", b"TTT"]


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


# ------------------------------------------------------------------ retrieve, then align (issue #29)
@pytest.fixture(scope="module")
def fixture_index(kmer_profile_model: Path, fixture_csv: Path, tmp_path_factory) -> Path:
    """An index of the fixture's train barcodes, built once for the tests below."""
    index_dir = tmp_path_factory.mktemp("aligned") / "index"
    assert main(["identify", "build", "--model", str(kmer_profile_model), "--reference", str(fixture_csv),
                 "--split", "train", "--output", str(index_dir), "--no-progress"]) == 0
    return index_dir


def query(index_dir: Path, fixture_csv: Path, output: Path, *options: str) -> int:
    return main(["identify", "query", "--index", str(index_dir), "--input", str(fixture_csv), "--output",
                 str(output), "--split", "test+test_unseen", "--no-progress", *options])


def test_the_query_table_starts_with_the_call_and_the_hits_go_beside_it(fixture_index: Path, fixture_csv: Path,
                                                                        tmp_path, capsys) -> None:
    assert query(fixture_index, fixture_csv, tmp_path / "ids.csv", "--top-k", "3") == 0
    captured = capsys.readouterr()
    summary = json.loads(captured.out)
    table, hits = pd.read_csv(tmp_path / "ids.csv"), pd.read_csv(tmp_path / "ids.hits.csv")
    assert list(table.columns[:8]) == ["query_id", "call_level", "called_taxon", "call_rule", "top_identity",
                                       "top_hit_id", "top_genus", "top_species"]
    assert not any(name.startswith(("predicted_", "neighbor")) for name in table.columns)
    fixture = pd.read_csv(fixture_csv)
    in_order = fixture.loc[fixture["split"].isin(["test", "test_unseen"]), "processid"]
    assert table["query_id"].tolist() == in_order.tolist()
    assert summary["hits"] == str(tmp_path / "ids.hits.csv") and str(tmp_path / "ids.hits.csv") in captured.err
    # three hits per query, best first (covering the query, then by local score); the first is the query table's top
    assert len(hits) == 3 * len(table) and hits["hit_rank"].tolist() == [1, 2, 3] * len(table)
    order = hits.assign(uncovered=hits["query_coverage"] < MIN_QUERY_COVERAGE, negative_score=-hits["score"])
    assert order.groupby("query_id", sort=False)[["uncovered", "negative_score"]].apply(
        lambda x: list(x.itertuples(index=False)) == sorted(x.itertuples(index=False))).all()
    first = hits[hits["hit_rank"] == 1].reset_index(drop=True)
    assert (first["hit_id"] == table["top_hit_id"]).all() and (first["identity"] == table["top_identity"]).all()
    assert ((hits["query_end"] - hits["query_start"] + 1) <= hits["aligned_length"]).all()
    # a call is the top hit's taxon at the level its identity reaches, unless the hits at that identity disagree
    plain = table["call_rule"].str.fullmatch(r"identity>=\d+")
    assert plain.sum() > 0.5 * len(table)
    defaults = [float(t) for t in DEFAULT_IDENTITY_THRESHOLDS.split(",")]
    levels = np.select([table["top_identity"] >= t for t in defaults], ["species", "genus", "family", "order"], "none")
    assert (table.loc[plain, "call_level"] == levels[plain]).all()
    for level in ("species", "genus"):
        called = table["call_level"] == level
        assert (table.loc[called & plain, "called_taxon"] == table.loc[called & plain, f"top_{level}"]).all()
    assert table.loc[table["call_level"] == "none", "called_taxon"].isna().all()
    # test specimens have their species in the library, test_unseen ones do not
    test = table.merge(fixture[["processid", "split"]], left_on="query_id", right_on="processid")
    seen, unseen = test[test["split"] == "test"], test[test["split"] == "test_unseen"]
    assert (seen["call_level"] == "species").mean() > 0.8
    species_calls = seen[seen["call_level"] == "species"]
    assert (species_calls["called_taxon"] == species_calls["true_species"]).all()
    assert summary["call_levels"]["species"] == (table["call_level"] == "species").sum()
    assert summary["no_call_share"] == pytest.approx((table["call_level"] == "none").mean(), abs=1e-4)
    assert (unseen["call_level"] != "species").mean() > 0.5


def test_aligning_in_smaller_blocks_writes_the_same_tables(fixture_index: Path, fixture_csv: Path, tmp_path,
                                                          monkeypatch) -> None:
    """Blocks bound the alignment's memory; they never change an answer, down to one query per block."""
    assert query(fixture_index, fixture_csv, tmp_path / "whole.csv") == 0
    for pairs in (1, 100):  # one query (48 hits) per block; two
        monkeypatch.setattr(alignment, "PAIRS_PER_BLOCK", pairs)
        assert query(fixture_index, fixture_csv, tmp_path / f"blocks{pairs}.csv") == 0
        for table in ("{}.csv", "{}.hits.csv"):
            blocked = (tmp_path / table.format(f"blocks{pairs}")).read_bytes()
            assert blocked == (tmp_path / table.format("whole")).read_bytes(), (pairs, table)

def test_tsv_and_blast6_outputs(fixture_index: Path, fixture_csv: Path, tmp_path, capsys) -> None:
    assert query(fixture_index, fixture_csv, tmp_path / "ids.csv", "--top-k", "2") == 0
    assert query(fixture_index, fixture_csv, tmp_path / "ids.tsv", "--top-k", "2") == 0
    assert query(fixture_index, fixture_csv, tmp_path / "ids.b6", "--top-k", "2") == 0
    assert query(fixture_index, fixture_csv, tmp_path / "forced.out", "--top-k", "2", "--format", "blast6") == 0
    capsys.readouterr()
    table = pd.read_csv(tmp_path / "ids.csv")
    pd.testing.assert_frame_equal(pd.read_csv(tmp_path / "ids.tsv", sep="\t"), table)
    pd.testing.assert_frame_equal(pd.read_csv(tmp_path / "ids.hits.tsv", sep="\t"),
                                  pd.read_csv(tmp_path / "ids.hits.csv"))
    blast = pd.read_csv(tmp_path / "ids.b6", sep="\t", header=None)
    assert blast.shape == (len(table), 12)  # one row per query: its top hit, without a header
    assert (tmp_path / "forced.out").read_text() == (tmp_path / "ids.b6").read_text()
    blast.columns = ["qseqid", "sseqid", "pident", "length", "mismatch", "gapopen", "qstart", "qend", "sstart",
                     "send", "evalue", "bitscore"]
    assert (blast["qseqid"] == table["query_id"]).all() and (blast["sseqid"] == table["top_hit_id"]).all()
    assert (blast["pident"] == table["top_identity"]).all() and blast["evalue"].isna().all()
    assert (blast["length"] == table["top_aligned_length"]).all() and (blast["gapopen"] == table["top_gap_opens"]).all()
    hits = pd.read_csv(tmp_path / "ids.hits.b6", sep="\t", header=None)
    assert hits.shape == (2 * len(table), 12)
    assert "NA" in (tmp_path / "ids.b6").read_text().splitlines()[0].split("\t")


def test_align_0_is_the_embedding_search_as_before(fixture_index: Path, fixture_csv: Path, kmer_profile_model: Path,
                                                   tmp_path, capsys, caplog) -> None:
    """``--align 0``: the top-k neighbours by cosine, their vote and the neighbour columns, as ``identify`` gave
    them before alignment (then ``predicted_<rank>``, ``<rank>_votes``, ``top1_similarity``), recomputed here from
    the search and the vote themselves."""
    from barcodemae.inference import embed_barcodes, load_encoder

    assert query(fixture_index, fixture_csv, tmp_path / "ids.csv", "--top-k", "3", "--align", "0") == 0
    assert "no calibration and --align 0: no query gets a call" in caplog.text  # stderr, through logging
    assert "note: no query got a call" in capsys.readouterr().err
    table = pd.read_csv(tmp_path / "ids.csv", keep_default_na=False, na_values=[""])
    assert not (tmp_path / "ids.hits.csv").exists()
    fixture = pd.read_csv(fixture_csv)
    queries = fixture[fixture["split"].isin(["test", "test_unseen"])]
    index = ReferenceIndex.load(fixture_index)
    model, tokenizer = load_encoder(kmer_profile_model)
    vectors = embed_barcodes(model, tokenizer, queries["dna_barcode"].tolist(), progress=False)
    neighbours, similarities = index.search(vectors, top_k=3)
    references = index.references.to_pandas()
    np.testing.assert_allclose(table["top_similarity"], similarities[:, 0], atol=1e-6)
    for j in range(3):
        assert (table[f"neighbor{j + 1}_processid"] == references["processid"].to_numpy()[neighbours[:, j]]).all()
        np.testing.assert_allclose(table[f"neighbor{j + 1}_similarity"], similarities[:, j], atol=1e-6)
    codes, names = pd.factorize(references["genus"])
    winner, votes = majority_vote(codes[neighbours], similarities)
    assert (table["vote_genus"] == names[winner]).all() and (table["vote_genus_count"] == votes).all()
    assert (table["call_level"] == "none").all() and (table["call_rule"] == "uncalibrated").all()
    assert table["top_identity"].isna().all()


def test_query_errors_are_one_line(fixture_index: Path, fixture_csv: Path, tmp_path, capsys) -> None:
    from barcodemae.checksums import write_checksums

    for options, message in ((["--thresholds", "97,98,90,85"], "must not increase from species to genus"),
                             (["--thresholds", "97,95,90,101"], "each must be a percent identity in 0-100"),
                             (["--thresholds", "97,95"], "give four percent identities"),
                             (["--align", "-1"], "--align must be >= 0"),
                             (["--align", "0", "--format", "blast6"], "--format blast6 reports alignments")):
        assert query(fixture_index, fixture_csv, tmp_path / "x.csv", *options) == 2, options
        error = capsys.readouterr().err.strip()
        assert error.startswith("barcodemae identify: error:") and message in error and "\n" not in error
    assert not (tmp_path / "x.csv").exists()
    old = tmp_path / "old_index"  # an index built before alignment: no sequences.npy
    shutil.copytree(fixture_index, old)
    (old / "sequences.npy").unlink()
    write_checksums(old)
    assert query(old, fixture_csv, tmp_path / "x.csv") == 2
    assert "built before alignment" in capsys.readouterr().err and not (tmp_path / "x.csv").exists()
    assert query(old, fixture_csv, tmp_path / "x.csv", "--align", "0") == 0
