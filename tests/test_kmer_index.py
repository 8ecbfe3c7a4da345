"""`identify build --kmer K`: a reference index of k-mer frequency profiles, built and queried without a model."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from barcodemae.checksums import VERIFIED, write_checksums
from barcodemae.cli import main
from barcodemae.data import load_barcodes
from barcodemae.diagonal_screen import anchor_shifts
from barcodemae.inference import KmerFrequencyEmbedder
from conftest import count_file_hashes, edit_keeping_size_and_mtime, settle


def build(fixture_csv: Path, output: Path, *extra: str) -> list[str]:
    return ["identify", "build", "--reference", str(fixture_csv), "--split", "train", "--output", str(output),
            "--no-progress", *extra]


def query(index_dir: Path, fixture_csv: Path, output: Path, *extra: str) -> list[str]:
    return ["identify", "query", "--index", str(index_dir), "--input", str(fixture_csv), "--output", str(output),
            "--no-progress", *extra]


def test_kmer_index_identifies_without_a_model(fixture_csv: Path, tmp_path, capsys) -> None:
    index_dir = tmp_path / "index"
    assert main(build(fixture_csv, index_dir, "--kmer", "4")) == 0
    info = json.loads((index_dir / "index.json").read_text())
    assert info["embedder"] == {"kind": "kmer", "k": 4, "stride": 1, "fingerprint": "kmer:k=4:stride=1"}
    assert info["hidden_size"] == 256 and info["num_references"] == 48
    # the stored vectors are the cleaned references' 4-mer profiles, unit-norm, in file order
    profiles = KmerFrequencyEmbedder(4)(load_barcodes(fixture_csv, split="train")["dna_barcode"])
    np.testing.assert_allclose(np.load(index_dir / "embeddings.npy"),
                               profiles / np.linalg.norm(profiles, axis=1, keepdims=True), atol=1e-6)
    # the references' places on the anchor, for the diagonal screen: the anchor is one of them, placed at 0
    barcodes = np.load(index_dir / "sequences.npy")
    shifts = np.load(index_dir / "anchor_shifts.npy")
    assert shifts.shape == (48,) and info["screen_anchor"].encode() in barcodes.tolist()
    assert shifts[barcodes.tolist().index(info["screen_anchor"].encode())] == 0
    assert shifts.tolist() == anchor_shifts(barcodes, info["screen_anchor"]).tolist()
    fixture = pd.read_csv(fixture_csv)

    output = tmp_path / "ids.csv"
    capsys.readouterr()
    assert main(query(index_dir, fixture_csv, output, "--top-k", "1")) == 0
    summary = json.loads(capsys.readouterr().out)
    result = pd.read_csv(output).merge(fixture[["processid", "split"]], left_on="query_id", right_on="processid")
    assert summary["num_queries"] == len(result) == len(fixture)
    test = result[result["split"] == "test"]  # species in the reference: the nearest profile names the genus
    assert (test["top_genus"] == test["true_genus"]).all(), test[["processid", "true_genus", "top_genus"]]
    own = result[result["split"] == "train"]
    np.testing.assert_allclose(own["top_similarity"], 1.0, atol=1e-5)
    assert main(query(index_dir, fixture_csv, tmp_path / "same.csv", "--top-k", "1", "--kmer", "4")) == 0
    pd.testing.assert_frame_equal(pd.read_csv(tmp_path / "same.csv"), pd.read_csv(output))


def test_kmer_index_refuses_a_model_or_another_k(kmer_profile_model: Path, fixture_csv: Path, tmp_path,
                                                 capsys) -> None:
    kmer_index, model_index = tmp_path / "kmer", tmp_path / "model"
    assert main(build(fixture_csv, kmer_index, "--kmer", "4")) == 0
    assert main(build(fixture_csv, model_index, "--model", str(kmer_profile_model))) == 0
    capsys.readouterr()
    refusals = [
        (query(kmer_index, fixture_csv, tmp_path / "a.csv", "--model", str(kmer_profile_model)),
         (f"{kmer_profile_model}: not the 4-mer profiles the index {kmer_index} was built with; 4-mer profiles "
          "need no --model")),
        (query(kmer_index, fixture_csv, tmp_path / "b.csv", "--kmer", "5"),
         f"5-mer profiles: not the 4-mer profiles the index {kmer_index} was built with"),
        (query(model_index, fixture_csv, tmp_path / "c.csv", "--kmer", "4"),
         f"4-mer profiles: not the model the index {model_index} was built with"),
        (query(kmer_index, fixture_csv, tmp_path / "d.csv", "--nprobe", "4"),
         f"{kmer_index}: --nprobe applies to an index built with --ivf"),
    ]
    for command, message in refusals:
        assert main(command) == 2, command
        error = capsys.readouterr().err
        assert message in error and error.count("\n") == 1, error
        assert not Path(command[command.index("--output") + 1]).exists()
    for extra in (["--kmer", "4", "--model", str(kmer_profile_model)], []):  # exactly one embedder
        with pytest.raises(SystemExit) as exit_code:
            main(build(fixture_csv, tmp_path / "e", *extra))
        assert exit_code.value.code == 2
    assert main(build(fixture_csv, tmp_path / "f", "--kmer", "9")) == 2
    assert "k must be in 1..8" in capsys.readouterr().err


def kill_on_third_shard(monkeypatch) -> list[int]:
    """Make the k-mer embedder raise ``KeyboardInterrupt`` (a simulated kill) when asked for its third shard; returns
    the list of the shard sizes it was asked for, which the test may clear to count a resume's."""
    real = KmerFrequencyEmbedder.__call__
    calls: list[int] = []

    def killed_on_third_shard(self, sequences, **kwargs):
        calls.append(len(sequences))
        if len(calls) == 3:
            raise KeyboardInterrupt("simulated kill")
        return real(self, sequences, **kwargs)

    monkeypatch.setattr(KmerFrequencyEmbedder, "__call__", killed_on_third_shard)
    return calls


def test_kmer_index_is_the_same_in_one_shard_or_many_and_resumes(fixture_csv: Path, tmp_path, monkeypatch,
                                                                 capsys) -> None:
    """A build killed in its third shard resumes from the two saved ones, and gives the index a build in one shard
    gives; resuming with another k is refused (the shards hold other vectors)."""
    whole = tmp_path / "whole"
    assert main(build(fixture_csv, whole, "--kmer", "4")) == 0  # 48 references: one shard of 16,384
    calls = kill_on_third_shard(monkeypatch)
    sharded = tmp_path / "sharded"
    with pytest.raises(KeyboardInterrupt):
        main(build(fixture_csv, sharded, "--kmer", "4", "--shard-size", "20"))
    assert sorted(json.loads((sharded / "parts" / "manifest.json").read_text())["done"]) == [0, 1]
    capsys.readouterr()
    assert main(build(fixture_csv, sharded, "--kmer", "5", "--shard-size", "20", "--resume")) == 2
    assert "cannot resume, the run differs from the stored one in ['embedder']" in capsys.readouterr().err
    calls.clear()
    assert main(build(fixture_csv, sharded, "--kmer", "4", "--shard-size", "20", "--resume")) == 0
    assert calls == [8]  # only the third shard (48 = 20 + 20 + 8) is embedded again
    assert not (sharded / "parts").exists()
    np.testing.assert_array_equal(np.load(sharded / "embeddings.npy"), np.load(whole / "embeddings.npy"))
    assert json.loads((sharded / "index.json").read_text()) == json.loads((whole / "index.json").read_text())


def test_a_build_hashes_its_reference_once_and_its_resume_still_refuses_a_changed_one(fixture_csv: Path, tmp_path,
                                                                                     monkeypatch, capsys) -> None:
    """The reference's SHA-256 is the resume identity and the cache key of both reads (references, calibration):
    computed once per build. A file changed between a killed build and its resume, keeping its size, its mtime and
    every train record, is still refused."""
    reference = tmp_path / "reference.csv"
    reference.write_bytes(fixture_csv.read_bytes())
    original = reference.read_bytes()
    counts = count_file_hashes(monkeypatch)
    kill_on_third_shard(monkeypatch)
    index_dir = tmp_path / "index"
    args = build(reference, index_dir, "--kmer", "4", "--shard-size", "20", "--calibration-split", "val+val_unseen")
    with pytest.raises(KeyboardInterrupt):
        main(args)
    assert counts == Counter({"reference.csv": 1})
    counts.clear()

    barcode = pd.read_csv(reference).query("split == 'test'")["dna_barcode"].iloc[0].encode()  # no train record
    edit_keeping_size_and_mtime(reference, barcode, (b"C" if barcode[:1] != b"C" else b"G") + barcode[1:])
    capsys.readouterr()
    assert main([*args, "--resume"]) == 2
    assert "cannot resume, the run differs from the stored one in ['reference']" in capsys.readouterr().err
    assert counts == Counter({"reference.csv": 1})
    counts.clear()

    reference.write_bytes(original)
    assert main([*args, "--resume"]) == 0
    assert json.loads((index_dir / "index.json").read_text())["calibration"]["num_queries"] == 38
    assert counts["reference.csv"] == 1

def test_kmer_index_calibrates_and_postprocesses_like_a_model_index(fixture_csv: Path, tmp_path, capsys) -> None:
    index_dir = tmp_path / "index"
    assert main(build(fixture_csv, index_dir, "--kmer", "4", "--postprocess", "center",
                      "--calibration-split", "val+val_unseen")) == 0
    info = json.loads((index_dir / "index.json").read_text())
    assert info["postprocess"] == "center" and (index_dir / "postprocess.safetensors").is_file()
    assert info["calibration"]["split"] == "val+val_unseen" and info["calibration"]["num_queries"] == 38
    assert {"species", "genus"} <= set(info["call_thresholds"])
    capsys.readouterr()
    assert main(query(index_dir, fixture_csv, tmp_path / "ids.csv", "--split", "test", "--align", "0")) == 0
    summary = json.loads(capsys.readouterr().out)
    assert sum(summary["call_levels"].values()) == summary["num_queries"] == 42
    result = pd.read_csv(tmp_path / "ids.csv")
    assert set(result["call_level"]) <= {"species", "genus", "none"}


def test_ivf_index_is_checksummed_and_answers_like_the_exact_one(fixture_csv: Path, tmp_path, capsys) -> None:
    pytest.importorskip("faiss")
    exact, ivf = tmp_path / "exact", tmp_path / "ivf"
    assert main(build(fixture_csv, exact, "--kmer", "4")) == 0
    assert main(build(fixture_csv, ivf, "--kmer", "4", "--ivf")) == 0
    info = json.loads((ivf / "index.json").read_text())
    assert info["ivf_lists"] == 1  # 48 references: one cell, so the IVF search is exhaustive
    assert "ivf.faiss" in json.loads((ivf / "checksums.json").read_text())
    for index_dir, extra in ((exact, ()), (ivf, ("--nprobe", "1"))):
        output = tmp_path / f"{index_dir.name}.csv"
        assert main(query(index_dir, fixture_csv, output, "--top-k", "3", "--align", "0", *extra)) == 0
    found, expected = pd.read_csv(tmp_path / "ivf.csv"), pd.read_csv(tmp_path / "exact.csv")
    similarities = [f"neighbor{j}_similarity" for j in (1, 2, 3)]
    np.testing.assert_allclose(found[similarities], expected[similarities], atol=1e-5)
    assert (found["vote_genus"] == expected["vote_genus"]).all()
    capsys.readouterr()
    (ivf / "ivf.faiss").write_bytes(b"not a faiss index")
    write_checksums(ivf)  # a file the checksums vouch for is still read as what it must be
    assert main(query(ivf, fixture_csv, tmp_path / "x.csv")) == 2
    assert "ivf.faiss: unreadable faiss index" in capsys.readouterr().err


def test_an_index_built_before_the_embedder_entry_still_answers(kmer_profile_model: Path, fixture_csv: Path,
                                                                tmp_path) -> None:
    """index.json of earlier versions names its model at the top level (model_dir, model_fingerprint)."""
    index_dir = tmp_path / "index"
    assert main(build(fixture_csv, index_dir, "--model", str(kmer_profile_model))) == 0
    assert main(query(index_dir, fixture_csv, tmp_path / "new.csv")) == 0
    info = json.loads((index_dir / "index.json").read_text())
    embedder = info.pop("embedder")
    info |= {"model_dir": embedder["model_dir"], "model_fingerprint": embedder["fingerprint"]}
    (index_dir / "index.json").write_text(json.dumps(info))
    write_checksums(index_dir)
    assert main(query(index_dir, fixture_csv, tmp_path / "old.csv")) == 0
    pd.testing.assert_frame_equal(pd.read_csv(tmp_path / "old.csv"), pd.read_csv(tmp_path / "new.csv"))


def test_a_query_hashes_each_index_file_at_most_once_and_refuses_changed_vectors(fixture_csv: Path, tmp_path,
                                                                                  monkeypatch, capsys) -> None:
    """A million references are gigabytes of vectors: a query hashed them at every load. Now a file is hashed at
    most once per load, and only when it changed since it was last verified; changed vectors are still refused."""
    index_dir = tmp_path / "index"
    counts = count_file_hashes(monkeypatch)

    def hashed() -> Counter:
        """Index files hashed since the last call."""
        found = Counter({name: n for name, n in counts.items() if (index_dir / name).exists()})
        counts.clear()
        return found

    assert main(build(fixture_csv, index_dir, "--kmer", "4")) == 0
    files = set(json.loads((index_dir / "checksums.json").read_text()))
    assert files >= {"embeddings.npy", "sequences.npy", "references.parquet", "index.json"}
    assert max(hashed().values()) <= 2  # its checksums, and at most once more by the build's own load
    settle(*(index_dir / name for name in files))  # as an index is at its users' queries: written a while ago
    ids = tmp_path / "ids.csv"
    assert main(query(index_dir, fixture_csv, ids)) == 0
    assert hashed() == Counter(files)  # each file once: the old mtimes are not the ones recorded
    assert main(query(index_dir, fixture_csv, ids)) == 0
    assert hashed() == Counter()  # nothing changed since: nothing hashed
    (index_dir / VERIFIED).unlink()
    assert main(query(index_dir, fixture_csv, ids)) == 0
    assert hashed() == Counter(files)
    assert "not listed in checksums.json" not in capsys.readouterr().err

    vectors = index_dir / "embeddings.npy"
    last = vectors.read_bytes()[-4:]  # a number of the vectors changed in place, keeping size and mtime
    edit_keeping_size_and_mtime(vectors, last, np.float32(np.frombuffer(last, np.float32)[0] + 0.5).tobytes())
    assert main(query(index_dir, fixture_csv, tmp_path / "changed.csv")) == 2
    assert "embeddings.npy: content differs from checksums.json" in capsys.readouterr().err
    assert hashed() == Counter({"embeddings.npy": 1})
    assert not (tmp_path / "changed.csv").exists()
