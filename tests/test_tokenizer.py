"""k-mer (non-overlapping and overlapping) and character tokenizers: layout, special tokens, coordinates, I/O."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import torch
from tokenizers import Tokenizer
from transformers import AutoTokenizer, set_seed

from barcodemae import BarcodeMAEConfig
from barcodemae.tokenization import BarcodeTokenizer, InvalidBarcodeError

SPECIALS = {"[PAD]": 0, "[UNK]": 1, "[CLS]": 2, "[SEP]": 3, "[MASK]": 4}


@pytest.fixture(scope="module")
def barcodes(fixture_csv) -> list[str]:
    with open(fixture_csv, newline="") as handle:
        return [row["dna_barcode"] for row in csv.DictReader(handle)]


@pytest.fixture(scope="module")
def kmer6() -> BarcodeTokenizer:
    return BarcodeTokenizer.kmer()


# ----------------------------------------------------------------------------------------------- vocabulary
@pytest.mark.parametrize(("k", "stride"), [(6, None), (4, 1), (3, 2)])
def test_kmer_vocabulary_and_special_ids(k, stride):
    tokenizer = BarcodeTokenizer.kmer(k, stride)
    assert len(tokenizer) == 4**k + 5
    assert {t: tokenizer.convert_tokens_to_ids(t) for t in SPECIALS} == SPECIALS
    assert tokenizer.convert_ids_to_tokens(5) == "A" * k
    assert tokenizer.stride == (k if stride is None else stride)


def test_char_vocabulary_holds_every_iupac_letter():
    tokenizer = BarcodeTokenizer.char()
    assert len(tokenizer) == 5 + 15
    ids = tokenizer("ACGTRYSWKMBDHVNA", add_special_tokens=False)["input_ids"]  # flanking N would be trimmed
    assert tokenizer.unk_token_id not in ids and len(set(ids)) == 15


@pytest.mark.parametrize(("k", "stride"), [(0, None), (9, None), (6, 7), (6, 0)])
def test_invalid_kmer_settings_are_rejected(k, stride):
    with pytest.raises(ValueError, match="must be in"):
        BarcodeTokenizer.kmer(k, stride)


# -------------------------------------------------------------------------------------------------- layout
def test_non_overlapping_kmers_frame_the_sequence_and_drop_the_tail(kmer6):
    encoded = kmer6("acgtac-GTTTAA.ccg")
    tokens = kmer6.convert_ids_to_tokens(encoded["input_ids"])
    assert tokens == ["[CLS]", "ACGTAC", "GTTTAA", "[SEP]"]
    assert encoded["attention_mask"] == [1, 1, 1, 1]


def test_overlapping_kmers_every_stride_bases():
    sequence = "ACGTACGTTTAAC"
    tokens = BarcodeTokenizer.kmer(6, 1).tokenize(sequence)
    assert tokens == [sequence[i : i + 6] for i in range(len(sequence) - 5)]
    tokens = BarcodeTokenizer.kmer(4, 3).tokenize(sequence)
    assert tokens == ["ACGT", "TACG", "GTTT", "TAAC"]


def test_kmers_with_ambiguity_codes_become_unk_but_chars_keep_them(kmer6):
    ids = kmer6("ACGTACNCGTACGTACGT", add_special_tokens=False)["input_ids"]
    assert ids[0] != kmer6.unk_token_id and ids[1] == kmer6.unk_token_id and ids[2] != kmer6.unk_token_id
    assert kmer6.decode(ids) == "ACGTACNNNNNNGTACGT"  # an [UNK] k-mer keeps its width as N
    assert BarcodeTokenizer.kmer(3, 1).decode(BarcodeTokenizer.kmer(3, 1)("ACGRACG")["input_ids"]) == "ACGNNNG"
    assert BarcodeTokenizer.char().tokenize("ACNRT") == ["A", "C", "N", "R", "T"]


@pytest.mark.parametrize("make", [lambda: BarcodeTokenizer.kmer(), lambda: BarcodeTokenizer.kmer(6, 1),
                                  lambda: BarcodeTokenizer.kmer(4, 2), BarcodeTokenizer.char])
def test_decode_rebuilds_the_covered_bases(make, barcodes):
    tokenizer = make()
    plain = [b for b in barcodes if set(b) <= set("ACGT")][:20]
    encoded = tokenizer(plain)
    for barcode, ids in zip(plain, encoded["input_ids"]):
        sequence = barcode[:660]
        n = len(ids) - 2
        covered = tokenizer.k + (n - 1) * tokenizer.stride
        assert tokenizer.decode(ids, skip_special_tokens=True) == sequence[:covered]
        assert len(sequence) - covered < tokenizer.k  # only the incomplete tail is dropped
        assert tokenizer.decode([ids[1]]) == sequence[: tokenizer.k]


# -------------------------------------------------------------------------------------- reading frame
def test_explicit_frame_offset_skips_leading_bases(kmer6):
    assert kmer6.tokenize("ACGTACGTTTAACG", frame_offset=2) == ["GTACGT", "TTAACG"]
    with pytest.raises(ValueError, match=r"frame_offset must be in \[0, k=6\)"):
        kmer6("ACGTACGTTTAACG", frame_offset=6)


def test_random_frame_offset_is_seeded_and_covers_every_frame(barcodes):
    tokenizer = BarcodeTokenizer.kmer(random_frame_offset=True)
    batch = barcodes[:64]

    def first_bases():
        offsets = tokenizer(batch, padding=True, return_offsets_mapping=True, return_tensors="np")["offset_mapping"]
        return offsets[:, 1, 0]

    set_seed(3)
    first = first_bases()
    set_seed(3)
    assert np.array_equal(first, first_bases())
    assert set(first.tolist()) == set(range(6))
    evaluation = BarcodeTokenizer.kmer()(batch, padding=True, return_offsets_mapping=True, return_tensors="np")
    evaluation = evaluation["offset_mapping"]
    assert (evaluation[:, 1, 0] == 0).all()


def test_frame_offset_per_barcode_equals_one_call_per_frame(barcodes):
    tokenizer = BarcodeTokenizer.kmer(k=6)
    batch = barcodes[:12]
    offsets = np.arange(len(batch)) % 6
    together = tokenizer(batch, frame_offset=offsets)["input_ids"]
    assert together == [tokenizer(b, frame_offset=int(o))["input_ids"] for b, o in zip(batch, offsets)]
    backend = tokenizer(batch, frame_offset=offsets, return_special_tokens_mask=True)["input_ids"]  # backend path
    assert backend == together
    with pytest.raises(ValueError, match=r"one offset or one per barcode \(12\), got 3"):
        tokenizer(batch, frame_offset=[0, 1, 2])
    with pytest.raises(ValueError, match=r"frame_offset must be in \[0, k=6\), got -1"):
        tokenizer(batch, frame_offset=np.r_[offsets[:-1], -1])


def test_min_barcode_length_covers_every_drawn_reading_frame():
    assert BarcodeTokenizer.kmer(k=6).min_barcode_length(random_frames=True) == 11  # 5 skipped + one 6-mer
    assert BarcodeTokenizer.kmer(k=6).min_barcode_length(random_frames=False) == 6
    assert BarcodeTokenizer.kmer(k=4, stride=1).min_barcode_length(random_frames=True) == 7  # frames drawn too
    assert BarcodeTokenizer.char().min_barcode_length(random_frames=True) == 1


def test_draw_frame_offsets_is_uniform_and_keeps_one_kmer():
    tokenizer = BarcodeTokenizer.kmer(k=6)
    offsets = tokenizer.draw_frame_offsets(["A" * 658] * 6000, np.random.default_rng(0))
    assert np.bincount(offsets, minlength=6).min() > 900  # every frame, about 1000 times each
    short = tokenizer.draw_frame_offsets(["ACGTAC", "ACGTACG", "ACGTACGT"] * 200, np.random.default_rng(0))
    assert short.reshape(-1, 3).max(axis=0).tolist() == [0, 1, 2]  # capped at length - k
    encoded = tokenizer(
        ["ACGTACGT"] * 20, frame_offset=tokenizer.draw_frame_offsets(["ACGTACGT"] * 20, np.random.default_rng(1))
    )
    assert all(len(ids) == 3 for ids in encoded["input_ids"])  # [CLS] one 6-mer [SEP] in every drawn frame
    char = BarcodeTokenizer.char()
    rng = np.random.default_rng(5)
    assert not char.draw_frame_offsets(["A" * 30, "C" * 40], rng).any()
    assert rng.integers(1 << 30) == np.random.default_rng(5).integers(1 << 30)  # a single frame draws nothing


def test_sequence_shorter_than_k_after_offset_names_the_input(kmer6):
    with pytest.raises(InvalidBarcodeError, match=r"'input 1'.*shorter than k=6"):
        kmer6(["ACGTACGTAC", "ACGTAC"], frame_offset=1)


# --------------------------------------------------------------------------------------- bad input
def test_one_bad_record_in_a_batch_names_its_index(kmer6):
    with pytest.raises(InvalidBarcodeError, match=r"record 'input 2': non-IUPAC character\(s\) 'JX'"):
        kmer6(["ACGTACGTAC", "ACGTACGTAC", "ACGJXACGT"])
    with pytest.raises(InvalidBarcodeError, match=r"record 'input 1': empty sequence"):
        kmer6(["ACGTACGTAC", ""])
    with pytest.raises(TypeError, match="string or a list of strings"):
        kmer6(12345)
    with pytest.raises(ValueError, match="whole barcodes"):
        kmer6([["ACGTAC"]], is_split_into_words=True)


# -------------------------------------------------------------------------- truncation, padding, pairs
def test_max_bp_truncation_and_model_max_length(kmer6, barcodes):
    longest = max(barcodes, key=len)
    assert len(longest) > 660
    assert kmer6.model_max_length == 112
    assert len(kmer6(longest)["input_ids"]) == 112
    assert BarcodeTokenizer.kmer(6, 1).model_max_length == 657
    assert BarcodeTokenizer.char().model_max_length == 662
    assert len(BarcodeTokenizer.char(max_bp=100)(longest)["input_ids"]) == 102
    truncated = kmer6(longest, truncation=True, max_length=20)["input_ids"]
    assert len(truncated) == 20 and truncated[-1] == kmer6.sep_token_id


def test_padding_and_tensors(kmer6, barcodes):
    batch = [barcodes[0][:60], barcodes[1][:120]]
    encoded = kmer6(batch, padding=True, return_tensors="pt")
    assert encoded["input_ids"].shape == (2, 22)
    assert (encoded["input_ids"][0, 12:] == kmer6.pad_token_id).all()
    assert encoded["attention_mask"].sum(dim=1).tolist() == [12, 22]
    assert kmer6(batch, padding="max_length", return_tensors="pt")["input_ids"].shape == (2, 112)


def test_pairs_as_two_arguments_and_as_a_list_of_tuples(kmer6):
    a, b = "ACGTACGTTTAA", "CCCCCCGGGGGG"
    single = kmer6(a, b)["input_ids"]
    assert kmer6.convert_ids_to_tokens(single) == ["[CLS]", "ACGTAC", "GTTTAA", "[SEP]", "CCCCCC", "GGGGGG", "[SEP]"]
    assert kmer6([(a, b)])["input_ids"] == [single] == kmer6([a], [b])["input_ids"]
    with pytest.raises(InvalidBarcodeError, match="'input 0'"):
        kmer6([(a, "ACGTQ")])


# -------------------------------------------------------------------------------- nucleotide coordinates
@pytest.mark.parametrize(("k", "stride"), [(6, 6), (6, 1), (4, 2)])
def test_offsets_and_spans_are_base_coordinates(k, stride):
    tokenizer = BarcodeTokenizer.kmer(k, stride)
    sequence = "ACGTACGTTTAACGGTACGATC"
    encoded = tokenizer([sequence, sequence[:12]], padding=True, return_offsets_mapping=True, frame_offset=1)
    offsets = encoded["offset_mapping"][0]
    assert offsets[0] == (0, 0) and offsets[-1] == (0, 0)
    for (start, end), token in zip(offsets[1:-1], tokenizer.convert_ids_to_tokens(encoded["input_ids"][0])[1:-1]):
        assert sequence[start:end] == token and end - start == k
    starts, _ = tokenizer.nucleotide_spans(np.array(encoded["input_ids"]))
    assert np.array_equal(starts[0, 1:-1] + 1, [o[0] for o in offsets[1:-1]])
    assert (starts[1][np.array(encoded["attention_mask"][1]) == 0] == -1).all()


def test_unk_kmers_still_occupy_their_bases(kmer6):
    ids = np.array(kmer6("ACGTACNNNNNNGGGGGG")["input_ids"])
    assert kmer6.unk_token_id in ids
    starts, ends = kmer6.nucleotide_spans(ids)
    assert starts.tolist() == [-1, 0, 6, 12, -1] and ends.tolist() == [-1, 6, 12, 18, -1]


def test_offsets_as_tensors_and_pairs_refused(kmer6):
    encoded = kmer6(["ACGTACGTTTAA"], return_offsets_mapping=True, return_tensors="pt")
    assert isinstance(encoded["offset_mapping"], torch.Tensor)
    assert encoded["offset_mapping"].tolist() == [[[0, 0], [0, 6], [6, 12], [0, 0]]]
    with pytest.raises(ValueError, match="not supported for barcode pairs"):
        kmer6("ACGTACGTTTAA", "ACGTACGTTTAA", return_offsets_mapping=True)


# ------------------------------------------------------------------------------------- config, save/load
@pytest.mark.parametrize("make", [BarcodeTokenizer.kmer, lambda: BarcodeTokenizer.kmer(6, 1), BarcodeTokenizer.char])
def test_model_config_kwargs_build_a_matching_config(make):
    tokenizer = make()
    kwargs = tokenizer.model_config_kwargs()
    config = BarcodeMAEConfig(**kwargs)
    assert config.vocab_size == len(tokenizer)
    assert config.max_position_embeddings >= tokenizer.model_max_length
    assert (config.tokenizer_scheme, config.kmer_size, config.kmer_stride) == (
        tokenizer.scheme, tokenizer.k, tokenizer.stride
    )
    assert config.pad_token_id == tokenizer.pad_token_id and config.mask_token_id == tokenizer.mask_token_id
    assert tokenizer.cls_token_id in config.special_token_ids and tokenizer.unk_token_id not in config.special_token_ids


def test_summary_puts_the_description_into_words():
    assert BarcodeTokenizer.kmer().summary() == "6-mers, non-overlapping, vocabulary 4,101"
    assert BarcodeTokenizer.kmer(4, 1).summary() == "4-mers, overlapping (stride 1), vocabulary 261"
    assert BarcodeTokenizer.char().summary().startswith("one token per base, vocabulary ")
    config_fields = BarcodeTokenizer.kmer(4, 2).model_config_kwargs()
    assert (config_fields["kmer_size"], config_fields["kmer_stride"], config_fields["vocab_size"]) == (4, 2, 261)


@pytest.mark.parametrize("make", [BarcodeTokenizer.kmer, lambda: BarcodeTokenizer.kmer(4, 1), BarcodeTokenizer.char])
def test_save_and_autotokenizer_round_trip(make, tmp_path, barcodes):
    tokenizer = make()
    tokenizer.save_pretrained(tmp_path)
    loaded = AutoTokenizer.from_pretrained(tmp_path)
    assert type(loaded) is BarcodeTokenizer
    assert loaded.describe() == tokenizer.describe()
    assert loaded(barcodes[:8])["input_ids"] == tokenizer(barcodes[:8])["input_ids"]


def test_random_frame_offset_is_not_saved(tmp_path):
    BarcodeTokenizer.kmer(random_frame_offset=True).save_pretrained(tmp_path)
    assert "random_frame_offset" not in json.loads((tmp_path / "tokenizer_config.json").read_text())
    assert AutoTokenizer.from_pretrained(tmp_path).random_frame_offset is False


@pytest.mark.parametrize("make", [BarcodeTokenizer.kmer, BarcodeTokenizer.char])
def test_tokenizer_json_alone_accepts_raw_dna(make, tmp_path, barcodes):
    """Plain ``tokenizers`` on the saved file: lower case, gaps and RNA letters give the class's ids."""
    tokenizer = make()
    tokenizer.save_pretrained(tmp_path)
    backend = Tokenizer.from_file(str(tmp_path / "tokenizer.json"))
    for barcode in barcodes[:10]:
        raw = barcode[:600].lower().replace("t", "u")
        raw = raw[:50] + "--" + raw[50:300] + " ." + raw[300:]
        assert backend.encode(raw).ids == tokenizer(barcode[:600])["input_ids"]
    assert backend.encode("ACGTACGTT").tokens == (["[CLS]", "ACGTAC", "[SEP]"] if tokenizer.scheme == "kmer"
                                                  else ["[CLS]", *"ACGTACGTT", "[SEP]"])


# ------------------------------------------------------------------------- vectorised path == backend path
CALLS = [
    {},
    {"padding": True},
    {"padding": True, "return_tensors": "pt"},
    {"padding": "max_length", "max_length": 700, "return_tensors": "np"},
    {"truncation": True, "max_length": 17, "padding": True},
    {"truncation": True, "max_length": 2},
    {"add_special_tokens": False, "padding": True, "pad_to_multiple_of": 8},
    {"padding": True, "padding_side": "left", "return_attention_mask": True},
    {"padding": True, "return_attention_mask": False, "frame_offset": 1},
]


@pytest.mark.parametrize("call", CALLS, ids=lambda c: ",".join(f"{k}={v}" for k, v in c.items()) or "default")
@pytest.mark.parametrize("make", [BarcodeTokenizer.kmer, lambda: BarcodeTokenizer.kmer(6, 1),
                                  lambda: BarcodeTokenizer.kmer(4, 3), BarcodeTokenizer.char])
def test_vectorised_path_matches_the_backend(make, call, barcodes):
    assert_paths_agree(make, call, barcodes)


def assert_paths_agree(make, call, barcodes):
    """Same ids, masks and types from the vectorised path as from ``tokenizers`` (real barcodes, ambiguity codes)."""
    fast, slow = make(), make()
    slow.use_fast_path = False
    if fast.k == 1:
        call = {key: value for key, value in call.items() if key != "frame_offset"}
    batch = barcodes[:12] + ["ACGTRYACGTNNACGTAC", barcodes[40][:50]]
    expected, actual = slow(batch, **call), fast(batch, **call)
    assert fast._fast_encoder() is not None
    assert set(actual) == set(expected)
    for key in expected:
        got, want = actual[key], expected[key]
        assert type(got) is type(want)
        assert (got.tolist() if hasattr(got, "tolist") else got) == (want.tolist() if hasattr(want, "tolist") else want)
    single_fast, single_slow = fast(barcodes[3], **call), slow(barcodes[3], **call)
    assert str(single_fast["input_ids"]) == str(single_slow["input_ids"])


def test_hand_written_kmer_vocabulary_falls_back_to_the_backend(tmp_path):
    from tokenizers.models import WordLevel

    from barcodemae.tokenization.tokenization_barcodemae import (
        SPECIAL_TOKENS,
        _with_special_tokens,
    )

    vocab = {t: i for i, t in enumerate(SPECIAL_TOKENS + ["TT", "AA", "CC", "GG"])}
    backend = Tokenizer(WordLevel(vocab, unk_token="[UNK]"))
    from tokenizers import Regex, pre_tokenizers

    backend.pre_tokenizer = pre_tokenizers.Split(Regex(".{2}"), behavior="isolated")
    tokenizer = BarcodeTokenizer(tokenizer_object=_with_special_tokens(backend), scheme="kmer", k=2)
    assert tokenizer._fast_encoder() is None
    assert tokenizer.tokenize("AATTCA") == ["AA", "TT", "[UNK]"]
