"""The shared barcode cleaning policy: what is normalised, what is kept, and which inputs are rejected (and how)."""

from __future__ import annotations

import csv

import pytest

from barcodemae.tokenization import CleanedBarcode, InvalidBarcodeError, clean_barcode


def test_normalises_case_gaps_whitespace_and_rna():
    assert clean_barcode(" ac-g.t\nu u\tA ").sequence == "ACGTTTA"


def test_trims_flanking_n_and_reports_it():
    cleaned = clean_barcode("NNacgtNNNacgtN")
    assert cleaned == CleanedBarcode("ACGTNNNACGT", truncated_bases=0, trimmed_n=3)


def test_keeps_iupac_ambiguity_codes():
    assert clean_barcode("ACRYSWKMBDHVNT").sequence == "ACRYSWKMBDHVNT"


def test_truncates_to_max_length_and_counts_the_cut():
    cleaned = clean_barcode("A" * 700)
    assert len(cleaned.sequence) == 660 and cleaned.truncated_bases == 40
    assert clean_barcode("ACGT" * 10, max_length=8) == CleanedBarcode("ACGTACGT", truncated_bases=32)
    assert len(clean_barcode("A" * 700, max_length=None).sequence) == 700


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        ("", "empty sequence"),
        ("  -- . ", "empty sequence"),
        ("NNNN", "all N"),
        ("ACGXTZ", "non-IUPAC character(s) 'XZ' (first at position 3)"),
        ("ACG1T", "non-IUPAC character(s) '1'"),
        ("ACGT*", "'*'"),
        (None, "missing sequence"),
        (42, "must be a string, got int"),
    ],
)
def test_bad_input_raises_an_error_naming_the_record(raw, reason):
    with pytest.raises(InvalidBarcodeError, match=r"record 'BOLD-123'") as info:
        clean_barcode(raw, record_id="BOLD-123")
    assert reason in str(info.value)
    assert info.value.record_id == "BOLD-123"
    assert isinstance(info.value, ValueError)


def test_too_short_is_an_error():
    with pytest.raises(InvalidBarcodeError, match="too short: 4 bp < minimum 300 bp"):
        clean_barcode("ACGT", "r1", min_length=300)


def test_message_without_record_id_still_says_what_is_wrong():
    with pytest.raises(InvalidBarcodeError, match=r"^barcode: empty sequence$"):
        clean_barcode("")


def test_fixture_barcodes_are_fixed_points(fixture_csv):
    """The shared data was cleaned with the same policy, so cleaning must not change it (beyond the 660 bp cut)."""
    with open(fixture_csv, newline="") as handle:
        barcodes = [row["dna_barcode"] for row in csv.DictReader(handle)]
    assert len(barcodes) == 200
    for barcode in barcodes:
        cleaned = clean_barcode(barcode)
        assert cleaned.sequence == barcode[:660]
        assert cleaned.trimmed_n == 0
        assert cleaned.truncated_bases == max(0, len(barcode) - 660)


def test_raw_bold_tsv_records_all_clean_and_long_ones_are_counted(shared_data):
    """Real BOLD ``nucraw`` strings: every record either cleans or fails with InvalidBarcodeError, none is lost."""
    path = shared_data / "bold_public_tsv" / "BOLD_Public.18-Dec-2023.sample1000.tsv"
    with open(path, newline="") as handle:
        rows = list(csv.DictReader(handle, delimiter="\t"))
    cleaned, rejected = [], []
    for row in rows:
        try:
            cleaned.append(clean_barcode(row["nucraw"], row["processid"]))
        except InvalidBarcodeError as error:
            assert row["processid"] in str(error)
            rejected.append(error)
    assert len(cleaned) + len(rejected) == len(rows) == 999
    assert sum(c.truncated_bases > 0 for c in cleaned) > 0
    assert all(set(c.sequence) <= set("ACGTRYSWKMBDHVN") for c in cleaned)
    assert all(len(c.sequence) <= 660 and c.sequence[0] != "N" != c.sequence[-1] for c in cleaned)


def test_truncation_ending_in_n_is_trimmed_so_cleaning_is_idempotent():
    raw = "A" * 658 + "NN" + "C" * 30
    once = clean_barcode(raw)
    assert once.sequence == "A" * 658
    assert once.truncated_bases == 30 and once.trimmed_n == 2
    assert clean_barcode(once.sequence).sequence == once.sequence


def test_invalid_barcode_error_survives_pickling():
    import pickle

    error = pickle.loads(pickle.dumps(InvalidBarcodeError("BOLD:1", "empty sequence")))
    assert error.record_id == "BOLD:1" and error.reason == "empty sequence"
    assert str(error) == "record 'BOLD:1': empty sequence"
