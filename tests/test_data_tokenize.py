"""tokenize_dataset: cached, batched datasets.map over loaded barcodes, same ids as calling the tokenizer."""

from __future__ import annotations

import pytest

from barcodemae import BarcodeTokenizer
from barcodemae.data import LABEL_RANKS, load_bioscan5m, tokenize_dataset
from barcodemae.tokenization.sequence_cleaning import InvalidBarcodeError


@pytest.fixture(scope="module")
def tokenizer() -> BarcodeTokenizer:
    return BarcodeTokenizer.kmer(k=6)


def test_ids_match_tokenizer_and_cache_is_reused(fixture_csv, tokenizer, tmp_path):
    dataset = load_bioscan5m(fixture_csv, "train+val", cache_dir=str(tmp_path))
    tokenized = tokenize_dataset(dataset, tokenizer)
    assert tokenized.features["input_ids"].feature.dtype == "int32"
    expected = tokenizer(list(dataset["dna_barcode"]), frame_offset=0)["input_ids"]
    assert tokenized["input_ids"] == expected
    assert tokenized["genus_label"] == dataset["genus_label"]
    again = tokenize_dataset(dataset, tokenizer)
    assert again.cache_files == tokenized.cache_files
    parallel = tokenize_dataset(dataset, tokenizer, num_proc=2)  # datasets.map over two worker processes
    assert parallel["input_ids"] == expected
    shifted = tokenize_dataset(dataset, tokenizer, frame_offset=2)
    assert shifted["input_ids"][0] == tokenizer(dataset[0]["dna_barcode"], frame_offset=2)["input_ids"]


def test_minimal_columns_and_streaming(fixture_csv, tokenizer, tmp_path):
    dataset = load_bioscan5m(fixture_csv, "test", cache_dir=str(tmp_path))
    small = tokenize_dataset(dataset, tokenizer, keep_columns=False)
    assert small.column_names == [f"{rank}_label" for rank in LABEL_RANKS] + ["input_ids"]
    stream = tokenize_dataset(load_bioscan5m(fixture_csv, "test", streaming=True), tokenizer, keep_columns=False)
    assert [row["input_ids"] for row in stream] == small["input_ids"]


def test_barcodes_shorter_than_k_are_named_before_mapping(tmp_path, fixture_csv, tokenizer):
    header = fixture_csv.read_text().splitlines()[0]
    row = fixture_csv.read_text().splitlines()[1].split(",")
    row[0], row[header.split(",").index("dna_barcode")] = "TINY-1", "ACGT"
    path = tmp_path / "tiny.csv"
    path.write_text(header + "\n" + ",".join(row) + "\n")
    dataset = load_bioscan5m(path, cache_dir=str(tmp_path))
    with pytest.raises(InvalidBarcodeError, match="TINY-1.*shorter than the tokenizer's k=6"):
        tokenize_dataset(dataset, tokenizer)
