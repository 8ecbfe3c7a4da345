"""clean_table (the batched, Arrow path) must agree with clean_barcode (the one policy) on every record, and with
the record stream (clean_records) on which record ids are unusable."""

from __future__ import annotations

import random

import numpy as np
import pyarrow as pa
import pytest

from barcodemae.data import CleaningReport, clean_records, clean_table
from barcodemae.data.cleaning import (
    KEY_COLUMN,
    REASON_COLUMN,
    TRIMMED_COLUMN,
    TRUNCATED_COLUMN,
)
from barcodemae.tokenization.sequence_cleaning import InvalidBarcodeError, clean_barcode

EDGE_CASES = [
    "A", "N", "AN", "NA", "NAN", "R", "ACGT", "acgt", "AC-GT", "AC GT\n", "ACGU", "ACGTX", "", None, "NNNN",
    "RYACGTN", "NACGTR", "ACGT" * 5, "ACGT" * 6, "ACGT" * 6 + "N", "." * 3, "ACG*T", "ÄCGT",
]


def random_barcodes(count: int, seed: int = 0) -> list[str | None]:
    rng = random.Random(seed)
    alphabet = "ACGT" * 20 + "acgtNNRY-. U" + "XJ*1"
    return [
        "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 40))) if rng.random() > 0.02 else None
        for _ in range(count)
    ]


@pytest.mark.parametrize("min_length, max_length", [(1, None), (1, 20), (5, 24), (21, 30)])
def test_clean_table_matches_clean_barcode(min_length, max_length):
    sequences = EDGE_CASES + random_barcodes(3000)
    table = pa.table({"processid": [f"r{i}" for i in range(len(sequences))], "dna_barcode": sequences})
    out = clean_table(table, min_length=min_length, max_length=max_length, with_barcode_key=True)
    got = zip(
        out["dna_barcode"].to_pylist(), out[REASON_COLUMN].to_pylist(),
        out[TRUNCATED_COLUMN].to_pylist(), out[TRIMMED_COLUMN].to_pylist(),
    )
    keys = out[KEY_COLUMN].to_numpy()
    for i, (sequence, reason, truncated, trimmed) in enumerate(got):
        try:
            expected = clean_barcode(sequences[i], f"r{i}", min_length=min_length, max_length=max_length)
        except InvalidBarcodeError as error:
            assert (sequence, reason) == (None, error.reason), sequences[i]
            continue
        assert (sequence, reason, truncated, trimmed) == (
            expected.sequence, None, expected.truncated_bases, expected.trimmed_n
        ), sequences[i]
    cleaned = out["dna_barcode"].to_pylist()
    by_sequence = {}
    for sequence, key in zip(cleaned, keys):
        if sequence is not None:
            assert by_sequence.setdefault(sequence, key) == key
    assert len(set(by_sequence.values())) == len(by_sequence)


def test_clean_table_normalises_names_and_orders_columns():
    table = pa.table({
        "species": ["None", " Apis mellifera ", "", None],
        "dna_barcode": ["ACGT"] * 4,
        "processid": ["a", "b", "c", "d"],
        "extra": [1, 2, 3, 4],
    })
    out = clean_table(table)
    assert out.column_names[:3] == ["processid", "dna_barcode", "species"] and "extra" in out.column_names
    assert out["species"].to_pylist() == [None, "Apis mellifera", None, None]


def test_clean_records_stream_counts_and_dedupes():
    report = CleaningReport()
    rows = [
        {"processid": "a", "dna_barcode": "acgt", "genus": "None"},
        {"processid": "b", "dna_barcode": "NACGTN"},
        {"processid": "c", "dna_barcode": "AXGT"},
        {"processid": "a", "dna_barcode": "GGGG"},
    ]
    out = list(clean_records(rows, report, drop_duplicates=True))
    assert [row["processid"] for row in out] == ["a", "a"]
    assert out[0]["genus"] is None
    assert (report.read, report.kept, report.duplicates_dropped, report.num_rejected) == (4, 2, 1, 1)
    assert report.duplicate_ids == ["a"]
    assert report.read == report.kept + report.num_rejected + report.duplicates_dropped
    with pytest.raises(ValueError, match="'a': duplicate record id"):
        list(clean_records(rows[:1] + rows[3:], CleaningReport(), strict=True))


def test_keys_are_stable_across_calls():
    table = pa.table({"processid": ["x", "y"], "dna_barcode": ["ACGTN", "acgt"]})
    first = clean_table(table, with_barcode_key=True)[KEY_COLUMN].to_numpy()
    second = clean_table(table.slice(1), with_barcode_key=True)[KEY_COLUMN].to_numpy()
    assert first[0] == first[1] == second[0] and first.dtype == np.uint64


LINE_BREAKS = "\n\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029"
"""Every character ``str.splitlines`` breaks a line at: none may survive in an id written one per line."""
BAD_IDS = [None, "", "   ", "a\tb", "a\x00b", "a\x7f", "trailing\n", *(f"a{char}b" for char in LINE_BREAKS)]
GOOD_IDS = ["ABC-123", "a b", " padded ", "é-1", "A|B", "\u00a0"]


def test_unusable_record_ids_are_rejected_alike_by_both_paths():
    ids = BAD_IDS + GOOD_IDS
    table = pa.table({"processid": pa.array(ids, pa.string()), "dna_barcode": ["ACGT"] * len(ids)})
    out = clean_table(table)
    reasons = out[REASON_COLUMN].to_pylist()
    assert [reason is not None for reason in reasons] == [True] * len(BAD_IDS) + [False] * len(GOOD_IDS)
    assert out["dna_barcode"].to_pylist() == [None] * len(BAD_IDS) + ["ACGT"] * len(GOOD_IDS)
    assert reasons[0] == reasons[1] == reasons[2] == "record id is missing or blank"
    assert "'\\n' (U+000A) at position 8" in reasons[6]

    report = CleaningReport()
    kept = list(clean_records(({"processid": i, "dna_barcode": "ACGT"} for i in ids), report))
    assert [row["processid"] for row in kept] == GOOD_IDS
    assert [reason for _, reason in report.rejected] == reasons[:len(BAD_IDS)]
    assert report.rejected_by_reason == {"bad_id": len(BAD_IDS)}
    assert all(record_id.splitlines() == [record_id] for record_id in GOOD_IDS)
    with pytest.raises(InvalidBarcodeError, match=r"record 'a\\nb': record id contains"):
        list(clean_records([{"processid": "a\nb", "dna_barcode": "ACGT"}], CleaningReport(), strict=True))


def test_id_rejection_comes_before_sequence_rejection():
    table = pa.table({"processid": ["", "ok"], "dna_barcode": ["XX", "XX"]})
    reasons = clean_table(table)[REASON_COLUMN].to_pylist()
    assert reasons[0] == "record id is missing or blank" and reasons[1].startswith("non-IUPAC")
