"""Barcode BPE: the BarcodeMAE authors' reference vocabularies and the project's own BPE training."""

from __future__ import annotations

import csv
import itertools
import json

import numpy as np
import pytest
from tokenizers import Tokenizer
from transformers import AutoTokenizer

from barcodemae.cli import main as cli_main
from barcodemae.tokenization import BarcodeTokenizer, InvalidBarcodeError
from barcodemae.tokenization.bpe import read_csv_column, train_bpe_tokenizer

REFERENCE_SIZES = (128, 256, 512, 4096)
IUPAC = set("ACGTRYSWKMBDHVN")


@pytest.fixture(scope="module")
def barcodes(fixture_csv) -> list[str]:
    with open(fixture_csv, newline="") as handle:
        return [row["dna_barcode"] for row in csv.DictReader(handle)]


@pytest.fixture(scope="module")
def trained(barcodes) -> BarcodeTokenizer:
    return train_bpe_tokenizer(barcodes, vocab_size=160, min_frequency=2, show_progress=False)


def reference(shared_data, size: int) -> BarcodeTokenizer:
    return BarcodeTokenizer.from_tokenizer_file(
        shared_data / "reference_tokenizers" / f"bpe_barcode_{size}" / "tokenizer.json"
    )


def assert_tiles_the_barcode(tokenizer: BarcodeTokenizer, barcodes: list[str]) -> np.ndarray:
    """Tokens decode to the cleaned barcode and their spans tile it without gaps; returns tokens per barcode."""
    encoded = tokenizer(barcodes, padding=True, return_tensors="np")
    ids, mask = encoded["input_ids"], encoded["attention_mask"]
    starts, ends = tokenizer.nucleotide_spans(ids)
    for row, barcode in enumerate(barcodes):
        sequence = barcode[:660]
        real = starts[row] >= 0
        assert tokenizer.decode(ids[row]) == sequence
        assert starts[row][real][0] == 0 and ends[row][real][-1] == len(sequence)
        assert np.array_equal(starts[row][real][1:], ends[row][real][:-1])
    return mask.sum(axis=1) - 2


# --------------------------------------------------------------------------------------- reference files
@pytest.mark.parametrize("size", REFERENCE_SIZES)
def test_reference_bpe_keeps_the_files_ids_and_tiles_fixture_barcodes(shared_data, barcodes, size):
    tokenizer = reference(shared_data, size)
    assert len(tokenizer) == size and tokenizer.scheme == "bpe"
    ids = (
        tokenizer.unk_token_id, tokenizer.cls_token_id, tokenizer.sep_token_id, tokenizer.pad_token_id,
        tokenizer.mask_token_id,
    )
    assert ids == (0, 1, 2, 3, 4)
    plain = [b for b in barcodes if set(b) <= set("ACGT")]
    encoded = tokenizer(plain[:3])["input_ids"]
    assert all(row[0] == 1 and row[-1] == 2 and 0 not in row for row in encoded)
    assert_tiles_the_barcode(tokenizer, plain[:40])


def test_bigger_reference_vocabularies_give_shorter_sequences(shared_data, barcodes):
    mean_tokens = [
        reference(shared_data, size)(barcodes[:50], padding=True, return_tensors="np")["attention_mask"].sum(1).mean()
        for size in REFERENCE_SIZES
    ]
    assert all(a > b for a, b in itertools.pairwise(mean_tokens))
    assert mean_tokens[-1] < 660 / 4  # a 4096-token barcode BPE averages well over 4 bases per token


def test_reference_bpe_maps_ambiguity_codes_to_one_unk_per_base(shared_data):
    tokenizer = reference(shared_data, 256)
    ids = np.array(tokenizer("ACGTACGTNRACGTACGT")["input_ids"])
    assert (ids == tokenizer.unk_token_id).sum() == 2
    starts, ends = tokenizer.nucleotide_spans(ids)
    unk = ids == tokenizer.unk_token_id
    assert starts[unk].tolist() == [8, 9] and ends[unk].tolist() == [9, 10]
    assert tokenizer.decode(ids) == "ACGTACGTNNACGTACGT"


def test_reference_bpe_round_trips_through_autotokenizer(shared_data, barcodes, tmp_path):
    tokenizer = reference(shared_data, 512)
    tokenizer.save_pretrained(tmp_path)
    loaded = AutoTokenizer.from_pretrained(tmp_path)
    assert type(loaded) is BarcodeTokenizer and loaded.scheme == "bpe" and loaded.pad_token_id == 3
    assert loaded(barcodes[:8])["input_ids"] == tokenizer(barcodes[:8])["input_ids"]


def test_a_plain_tokenizer_folder_spec_loads_as_the_bpe_it_holds(shared_data, barcodes, tmp_path):
    """The authors' folders (PreTrainedTokenizerFast configs) must not be taken for the default 6-mers."""
    folder = shared_data / "reference_tokenizers" / "bpe_barcode_4096"
    from_folder = BarcodeTokenizer.from_spec(str(folder))
    from_file = BarcodeTokenizer.from_spec(str(folder / "tokenizer.json"))
    assert from_folder.describe() == from_file.describe() and from_folder.describe()["scheme"] == "bpe"
    assert from_folder.model_config_kwargs()["max_position_embeddings"] == 662  # not the folder's 1e30
    assert from_folder(barcodes[:3])["input_ids"] == from_file(barcodes[:3])["input_ids"]
    saved = tmp_path / "kmer4"
    BarcodeTokenizer.kmer(4).save_pretrained(saved)  # this class's own folders still load from their config
    assert BarcodeTokenizer.from_spec(str(saved)).describe() == BarcodeTokenizer.kmer(4).describe()
    with pytest.raises(ValueError, match="neither a saved BarcodeTokenizer folder nor a folder with a tokenizer.json"):
        BarcodeTokenizer.from_spec(str(tmp_path))
    with pytest.raises(ValueError, match="does not say the barcode scheme"):
        BarcodeTokenizer.from_pretrained(str(folder))  # directly: refused, never read as 6-mers


def test_file_without_special_tokens_is_rejected(tmp_path):
    from tokenizers.models import WordLevel

    Tokenizer(WordLevel({"A": 0, "[UNK]": 1}, unk_token="[UNK]")).save(str(tmp_path / "tokenizer.json"))
    with pytest.raises(ValueError, match=r"lacks special token\(s\) \['\[PAD\]', '\[CLS\]', '\[SEP\]', '\[MASK\]'\]"):
        BarcodeTokenizer.from_tokenizer_file(tmp_path / "tokenizer.json")


def test_bpe_file_with_non_nucleotide_tokens_is_rejected(tmp_path):
    from tokenizers.models import WordLevel

    vocab = {t: i for i, t in enumerate(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "A", "ĠAC", "the"])}
    Tokenizer(WordLevel(vocab, unk_token="[UNK]")).save(str(tmp_path / "tokenizer.json"))
    with pytest.raises(ValueError, match=r"2 vocabulary token\(s\) are not runs of IUPAC letters"):
        BarcodeTokenizer.from_tokenizer_file(tmp_path / "tokenizer.json")


# ---------------------------------------------------------------------------------------------- training
def test_trained_bpe_vocabulary(trained):
    vocab = trained.get_vocab()
    assert len(trained) == 160
    assert [vocab[t] for t in ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")] == [0, 1, 2, 3, 4]
    assert IUPAC <= set(vocab)
    assert all(set(token) <= IUPAC for token in vocab if not token.startswith("["))
    assert max(len(token) for token in vocab if not token.startswith("[")) > 4  # merges learned long motifs
    assert trained.training_tally == {"used": 200, "truncated": 5, "rejected": 0, "reasons": {}, "examples": []}


def test_trained_bpe_tiles_barcodes_including_ambiguity_codes(trained, barcodes):
    tokens = assert_tiles_the_barcode(trained, barcodes[:60])
    assert tokens.max() < 660 / 2
    ids = trained("ACGTRYACGTNACGT")["input_ids"]
    assert trained.unk_token_id not in ids and trained.decode(ids) == "ACGTRYACGTNACGT"


def test_training_is_deterministic(trained, barcodes):
    again = train_bpe_tokenizer(barcodes, vocab_size=160, min_frequency=2, show_progress=False)
    assert again.get_vocab() == trained.get_vocab()


def test_trained_tokenizer_json_alone_handles_raw_dna(trained, tmp_path, barcodes):
    trained.save_pretrained(tmp_path)
    backend = Tokenizer.from_file(str(tmp_path / "tokenizer.json"))
    raw = barcodes[0][:300].lower()[:100] + "--" + barcodes[0][100:300]
    assert backend.encode(raw).ids == trained(barcodes[0][:300])["input_ids"]


def test_training_rejects_bad_barcodes_or_counts_them(barcodes):
    corpus = barcodes[:20] + ["ACGT-XX", "", "NNNN"]
    with pytest.raises(InvalidBarcodeError, match=r"record 'sequence 20': non-IUPAC"):
        train_bpe_tokenizer(corpus, vocab_size=64, show_progress=False)
    tokenizer = train_bpe_tokenizer(corpus, vocab_size=64, show_progress=False, skip_invalid=True)
    tally = tokenizer.training_tally
    assert (tally["used"], tally["rejected"]) == (20, 3)
    assert sum(tally["reasons"].values()) == 3 and len(tally["examples"]) == 3
    with pytest.raises(ValueError, match="no usable barcodes"):
        train_bpe_tokenizer(["", "XX"], vocab_size=64, show_progress=False, skip_invalid=True)


@pytest.mark.parametrize(("kwargs", "message"), [({"vocab_size": 20}, "vocab_size must be at least 21"),
                                                 ({"min_frequency": 0}, "min_frequency must be >= 1")])
def test_training_argument_errors(kwargs, message):
    with pytest.raises(ValueError, match=message):
        train_bpe_tokenizer(["ACGT"], **kwargs)


# --------------------------------------------------------------------------------------------------- CLI
def test_cli_trains_on_one_split_and_writes_a_loadable_folder(fixture_csv, tmp_path, capsys):
    output = tmp_path / "bpe"
    cli_main(["train-bpe", "--data", str(fixture_csv), "--split", "train", "--vocab-size", "96",
              "--output", str(output)])
    summary = json.loads(capsys.readouterr().out)
    n_train = sum(1 for _ in read_csv_column(fixture_csv, splits=["train"]))
    assert summary["used"] == n_train > 0 and summary["vocab_size"] == 96 and summary["rejected"] == 0
    assert json.loads((output / "bpe_training.json").read_text()) == summary
    loaded = AutoTokenizer.from_pretrained(output)
    assert loaded.scheme == "bpe" and len(loaded) == 96


def test_csv_reader_names_a_missing_column(fixture_csv):
    with pytest.raises(ValueError, match="no column 'sequence'"):
        next(read_csv_column(fixture_csv, column="sequence"))


@pytest.fixture(scope="module")
def trained_folder(trained, tmp_path_factory) -> str:
    folder = tmp_path_factory.mktemp("trained_bpe")
    trained.save_pretrained(folder)
    return str(folder)


@pytest.mark.parametrize("call", [{}, {"padding": True, "return_tensors": "pt"}, {"truncation": True, "max_length": 9}])
@pytest.mark.parametrize("which", ["reference", "trained"])
def test_bpe_vectorised_path_matches_the_backend(shared_data, trained_folder, barcodes, which, call):
    from test_tokenizer import assert_paths_agree

    if which == "reference":
        assert_paths_agree(lambda: reference(shared_data, 512), call, barcodes)
    else:
        assert_paths_agree(lambda: BarcodeTokenizer.from_pretrained(trained_folder), call, barcodes)


def test_cli_reads_a_bold_tsv_and_reports_what_the_reader_rejected(shared_data, tmp_path, capsys):
    tsv = shared_data / "bold_public_tsv" / "BOLD_Public.21-Jun-2024.curated.NL.tsv"
    cli_main(["train-bpe", "--data", str(tsv), "--vocab-size", "64", "--output", str(tmp_path / "bpe")])
    summary = json.loads(capsys.readouterr().out)
    assert summary["used"] > 100 and summary["rejected"] == 0 and summary["vocab_size"] == 64
    assert "rejected" in summary["reader_report"] and str(tsv) in summary["reader_report"]
