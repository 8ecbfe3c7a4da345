"""BIOSCAN-5M CSV loader on the real fixture/demo files and on deliberately malformed CSVs."""

from __future__ import annotations

import csv
import gzip
from collections import Counter
from pathlib import Path

import pytest

from barcodemae.data import (
    RECORD_COLUMNS,
    TAXONOMY_RANKS,
    LabelVocabulary,
    download_bioscan5m,
    load_barcodes,
    load_bioscan5m,
    pipeline,
)
from barcodemae.tokenization.sequence_cleaning import InvalidBarcodeError, clean_barcode
from conftest import edit_keeping_size_and_mtime


def read_rows(path: Path) -> list[dict[str, str]]:
    opener = gzip.open if str(path).endswith(".gz") else open
    with opener(path, "rt", newline="") as handle:
        return list(csv.DictReader(handle))


@pytest.fixture(scope="module")
def cache(tmp_path_factory) -> str:
    return str(tmp_path_factory.mktemp("hf_cache"))


@pytest.fixture(scope="module")
def fixture_rows(fixture_csv) -> list[dict[str, str]]:
    return read_rows(fixture_csv)


def write_csv(path: Path, rows: list[dict[str, str]], columns=RECORD_COLUMNS) -> Path:
    with open(path, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(columns) + ["index_bioscan_1M_insect"], extrasaction="ignore")
        writer.writeheader()
        for row in rows:
            writer.writerow({"index_bioscan_1M_insect": "00012", **row})
    return path


def test_columns_schema_and_split_selection(fixture_csv, fixture_rows, cache):
    dataset, report, vocab = load_bioscan5m(fixture_csv, "train+val", cache_dir=cache, return_report=True)
    assert dataset.column_names == [*RECORD_COLUMNS, *(f"{rank}_label" for rank in (*TAXONOMY_RANKS, "dna_bin"))]
    assert dataset.features["genus_label"].dtype == "int64"
    expected = [row["processid"] for row in fixture_rows if row["split"] in ("train", "val")]
    assert dataset["processid"] == expected
    assert set(dataset["split"]) == {"train", "val"}
    assert report.read == report.kept == len(expected) and report.num_rejected == 0
    for row in dataset.select(range(10)):
        assert vocab.names("genus")[row["genus_label"]] == row["genus"]
        assert vocab.names("species")[row["species_label"]] == row["species"]
        assert vocab.names("dna_bin")[row["dna_bin_label"]] == row["dna_bin"]
        assert vocab.names("order")[row["order_label"]] == row["order"]
    # label_ranks= encodes only the ranks asked for
    fewer = load_bioscan5m(fixture_csv, "train", cache_dir=cache, label_ranks=("family",))
    assert [c for c in fewer.column_names if c.endswith("_label")] == ["family_label"]


def test_barcodes_follow_the_one_cleaning_policy(fixture_csv, fixture_rows, cache):
    dataset = load_bioscan5m(fixture_csv, cache_dir=cache)
    assert len(dataset) == len(fixture_rows)
    assert dataset["dna_barcode"] == [clean_barcode(row["dna_barcode"]).sequence for row in fixture_rows]
    assert max(map(len, dataset["dna_barcode"])) == 660


def test_cache_follows_the_content_not_the_modification_time(tmp_path, fixture_rows, cache):
    """#26 item 10: the csv builder's cache was keyed on path and mtime, so an edit keeping size and mtime
    (``cp -p``, ``rsync -t``, ``touch -r``) loaded the cached, old barcodes."""
    path = write_csv(tmp_path / "edited.csv", fixture_rows[:5])
    before = load_bioscan5m(path, cache_dir=cache)
    old = fixture_rows[0]["dna_barcode"]
    new = old.replace("A", "C", 1)
    edit_keeping_size_and_mtime(path, old.encode(), new.encode())
    after = load_bioscan5m(path, cache_dir=cache)
    assert before["dna_barcode"][0] == clean_barcode(old).sequence != after["dna_barcode"][0]
    assert after["dna_barcode"] == [clean_barcode(new).sequence, *before["dna_barcode"][1:]]


def test_meta_splits(fixture_csv, fixture_rows, cache):
    counts = Counter(row["split"] for row in fixture_rows)
    unseen = load_bioscan5m(fixture_csv, "unseen", cache_dir=cache)
    assert len(unseen) == counts["key_unseen"] + counts["val_unseen"] + counts["test_unseen"]
    seen = load_bioscan5m(fixture_csv, ["train", "val", "test"], cache_dir=cache)
    assert len(seen) == counts["train"] + counts["val"] + counts["test"]


def test_reused_vocabulary_shares_ids_and_marks_unseen_species(fixture_csv, cache, tmp_path):
    train, _, vocab = load_bioscan5m(fixture_csv, "train", cache_dir=cache, return_report=True)
    vocab.save(tmp_path)
    reloaded = LabelVocabulary.load(tmp_path)
    test = load_bioscan5m(fixture_csv, "test", cache_dir=cache, label_vocab=reloaded)
    train_ids = dict(zip(train["species"], train["species_label"]))
    assert any(species in train_ids for species in test["species"])
    for species, label in zip(test["species"], test["species_label"]):
        assert label == train_ids.get(species, -1)
    unseen = load_bioscan5m(fixture_csv, "test_unseen", cache_dir=cache, label_vocab=reloaded)
    assert set(unseen["species_label"]) == {-1}
    assert all(label >= 0 for label in unseen["genus_label"])  # unseen species, seen genus


def test_streaming_matches_in_memory(fixture_csv, cache):
    in_memory, _, vocab = load_bioscan5m(fixture_csv, "pretrain+test", cache_dir=cache, return_report=True)
    stream, report, stream_vocab = load_bioscan5m(
        fixture_csv, "pretrain+test", streaming=True, return_report=True
    )
    assert stream_vocab == vocab
    rows = list(stream)
    assert rows == list(in_memory)
    assert report.kept == report.read == len(in_memory)
    assert len(list(stream)) == len(rows) and report.read == len(rows)  # report restarts per pass


def test_compression_goes_by_content_not_by_name(fixture_csv, tmp_path, cache):
    """A plain-text ``.csv.gz`` was "corrupt gzip" and a gzipped ``.csv`` "not a text file" (FASTA already worked)."""
    plain_named_gz = tmp_path / "plain.csv.gz"
    plain_named_gz.write_bytes(fixture_csv.read_bytes())
    gzipped_named_plain = tmp_path / "gzipped.csv"
    gzipped_named_plain.write_bytes(gzip.compress(fixture_csv.read_bytes()))
    expected = list(load_bioscan5m(fixture_csv, cache_dir=cache))
    for path in (plain_named_gz, gzipped_named_plain):
        assert list(load_bioscan5m(path, cache_dir=cache)) == expected
        assert list(load_bioscan5m(path, streaming=True)) == expected
        assert list(load_barcodes(path, cache_dir=cache)) == expected


def test_truncation_and_length_options(fixture_csv, fixture_rows, cache):
    full_lengths = [len(clean_barcode(row["dna_barcode"], max_length=None).sequence) for row in fixture_rows]
    dataset, report, _ = load_bioscan5m(fixture_csv, max_length=500, cache_dir=cache, return_report=True)
    assert max(map(len, dataset["dna_barcode"])) == 500
    assert report.truncated == sum(length > 500 for length in full_lengths)
    assert report.truncated_bases == sum(max(0, length - 500) for length in full_lengths)
    untruncated = load_bioscan5m(fixture_csv, max_length=None, cache_dir=cache)
    assert list(map(len, untruncated["dna_barcode"])) == full_lengths
    short, report, _ = load_bioscan5m(fixture_csv, min_length=640, cache_dir=cache, return_report=True)
    assert len(short) == sum(length >= 640 for length in full_lengths)
    assert report.rejected_by_reason["too_short"] == len(fixture_rows) - len(short)


def test_drop_duplicates_keeps_first_of_each_barcode(tmp_path, fixture_rows, cache):
    rows = [dict(row) for row in fixture_rows[:20]]
    rows.append({**rows[3], "processid": "DUP-1", "dna_barcode": rows[3]["dna_barcode"].lower()})
    rows.append({**rows[5], "processid": "DUP-2", "dna_barcode": "NN" + rows[5]["dna_barcode"] + "NNN"})
    path = write_csv(tmp_path / "dups.csv", rows)
    for streaming in (False, True):
        dataset, report, _ = load_bioscan5m(
            path, drop_duplicates=True, streaming=streaming, cache_dir=cache, return_report=True
        )
        ids = [row["processid"] for row in dataset]
        assert "DUP-1" not in ids and "DUP-2" not in ids and len(ids) == 20
        assert report.duplicates_dropped == 2
    assert len(load_bioscan5m(path, cache_dir=cache)) == 22


def malformed_rows(template: dict[str, str]) -> list[dict[str, str]]:
    good = template["dna_barcode"][:400]
    return [
        {**template, "processid": "OK-lower-gaps", "dna_barcode": "  " + good[:200].lower() + "--.." + good[200:]},
        {**template, "processid": "BAD-X", "dna_barcode": good[:100] + "X*" + good[100:]},
        {**template, "processid": "BAD-empty", "dna_barcode": ""},
        {**template, "processid": "BAD-allN", "dna_barcode": "NNNNNNNN"},
        {**template, "processid": "OK-long", "dna_barcode": good + good},
        {**template, "processid": "OK-Ns", "dna_barcode": "NNN" + good + "N", "species": "None", "dna_bin": ""},
        {**template, "processid": "OK-lower-gaps", "dna_barcode": good},
    ]


def test_malformed_records_are_counted_and_named(tmp_path, fixture_rows, cache):
    path = write_csv(tmp_path / "bad.csv", malformed_rows(fixture_rows[0]))
    dataset, report, _ = load_barcodes(path, cache_dir=cache, return_report=True)
    assert dataset["processid"] == ["OK-lower-gaps", "OK-long", "OK-Ns", "OK-lower-gaps"]
    assert dataset.data.column("processid").to_pylist() == dataset["processid"]  # no hidden indices mapping
    assert report.read == 7 and report.kept == 4
    assert report.rejected_by_reason == {"non_iupac": 1, "missing": 1, "all_n": 1}  # empty CSV cell = missing
    rejected = dict(report.rejected)
    assert set(rejected) == {"BAD-X", "BAD-empty", "BAD-allN"}
    assert "'*X'" in rejected["BAD-X"] and "position 100" in rejected["BAD-X"]
    assert report.duplicate_ids == ["OK-lower-gaps"]
    assert report.truncated == 1 and report.truncated_bases == 140
    assert report.trimmed == 1 and report.trimmed_bases == 4
    assert "BAD-X" in report.summary()
    row = dataset[2]
    assert row["species"] is None and row["dna_bin"] is None
    assert row["species_label"] == -1 and row["dna_bin_label"] == -1
    assert dataset[0]["dna_barcode"] == dataset[3]["dna_barcode"]  # lower case, spaces and gaps removed


def test_strict_mode_raises_naming_the_record(tmp_path, fixture_rows, cache):
    path = write_csv(tmp_path / "bad.csv", malformed_rows(fixture_rows[0]))
    with pytest.raises(InvalidBarcodeError, match="BAD-X"):
        load_bioscan5m(path, strict=True, cache_dir=cache)
    with pytest.raises(InvalidBarcodeError, match="BAD-X"):
        list(load_bioscan5m(path, strict=True, streaming=True))
    only_duplicates = [row for row in malformed_rows(fixture_rows[0]) if row["processid"].startswith("OK")]
    path = write_csv(tmp_path / "dup_ids.csv", only_duplicates)
    with pytest.raises(ValueError, match="OK-lower-gaps.*duplicate record id"):
        load_bioscan5m(path, strict=True, cache_dir=cache)


def test_missing_columns_and_unknown_splits(tmp_path, fixture_csv, fixture_rows):
    columns = [name for name in RECORD_COLUMNS if name not in ("dna_bin", "species")]
    path = write_csv(tmp_path / "cols.csv", fixture_rows[:3], columns=columns)
    with pytest.raises(ValueError, match=r"missing column\(s\): species, dna_bin"):
        load_bioscan5m(path)
    with pytest.raises(ValueError, match="unknown BIOSCAN-5M split"):
        load_bioscan5m(fixture_csv, "training")
    with pytest.raises(FileNotFoundError, match="nope.csv"):
        load_bioscan5m(tmp_path / "nope.csv")


def test_demo_gz_in_memory_with_workers_and_streaming(demo_csv, cache, monkeypatch):
    monkeypatch.setattr(pipeline, "CLEAN_BATCH_SIZE", 1000)
    rows = read_rows(demo_csv)
    dataset, report, vocab = load_bioscan5m(demo_csv, num_proc=2, cache_dir=cache, return_report=True)
    assert len(dataset) == report.kept == len(rows) == 5116
    assert vocab.num_labels("genus") == len({row["genus"] for row in rows if row["genus"]})
    assert vocab.num_labels("species") == len({row["species"] for row in rows if row["species"]})
    assert report.truncated == sum(len(row["dna_barcode"]) > 660 for row in rows)
    unique, unique_report, _ = load_bioscan5m(
        demo_csv, drop_duplicates=True, num_proc=2, cache_dir=cache, return_report=True
    )
    assert 0 < unique_report.duplicates_dropped == len(rows) - len(unique)
    assert len(set(unique["dna_barcode"])) == len(unique)
    assert unique.data.column("processid").to_pylist() == unique["processid"]
    stream = load_bioscan5m(demo_csv, "test_unseen", streaming=True, label_vocab=vocab)
    streamed = list(stream)
    assert len(streamed) == sum(row["split"] == "test_unseen" for row in rows)
    assert {row["processid"]: row["genus_label"] for row in streamed} == {
        row["processid"]: row["genus_label"] for row in dataset if row["split"] == "test_unseen"
    }


def test_download_without_optional_dependency_says_what_to_install(monkeypatch, tmp_path):
    monkeypatch.setitem(__import__("sys").modules, "bioscan_dataset", None)
    with pytest.raises(ImportError, match="pip install bioscan-dataset"):
        download_bioscan5m(tmp_path)


def test_split_with_no_rows_gives_empty_dataset_with_schema(fixture_csv, fixture_rows, cache):
    assert not any(row["split"] == "other_heldout" for row in fixture_rows)
    dataset, report, vocab = load_bioscan5m(fixture_csv, "other_heldout", cache_dir=cache, return_report=True)
    assert len(dataset) == 0 and report.read == 0 and vocab.num_labels("genus") == 0
    assert dataset.column_names == [*RECORD_COLUMNS, *(f"{rank}_label" for rank in (*TAXONOMY_RANKS, "dna_bin"))]
    assert list(load_bioscan5m(fixture_csv, "other_heldout", streaming=True)) == []


def test_empty_and_multi_line_ids_are_rejected_up_front(tmp_path, fixture_rows, cache):
    """A quoted CSV field may hold a line break; such an id (or an empty one) would shift or break every id
    written one per line after it, so cleaning rejects the record with its reason, in both loading modes."""
    rows = [dict(row) for row in fixture_rows[:4]]
    rows[1]["processid"] = ""
    rows[2]["processid"] = "SPLIT\nID"
    path = write_csv(tmp_path / "bad_ids.csv", rows)
    for streaming in (False, True):
        dataset, report, _ = load_bioscan5m(path, streaming=streaming, cache_dir=cache, return_report=True)
        assert [row["processid"] for row in dataset] == [rows[0]["processid"], rows[3]["processid"]]
        assert report.rejected_by_reason == {"bad_id": 2}
        assert [reason.split(" ")[:3] for _, reason in report.rejected] == [["record", "id", "is"]] + [
            ["record", "id", "contains"]]
