"""The translation check: table 5 codons, stop positions, the best frame (the same choice as the old
``codon_phase`` of research/collapse_diagnostics.py), batch results, and that an indel in a real barcode is caught."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from barcodemae.qc import (
    STOP_CODONS,
    TABLE_5,
    best_frame,
    best_frames,
    check_translation,
    stop_codon_positions,
    translate,
)


@pytest.fixture(scope="module")
def barcodes(fixture_csv) -> list[str]:
    if not fixture_csv.is_file():
        pytest.skip(f"fixture barcodes not found at {fixture_csv}")
    return list(pd.read_csv(fixture_csv)["dna_barcode"].dropna())


def codon_phase_reference(barcode: str) -> int:
    """The frame choice research/collapse_diagnostics.py made before it used best_frame (kept here as the oracle)."""
    stops = ("TAA", "TAG")
    return min(range(3), key=lambda f: sum(barcode[i : i + 3] in stops for i in range(f, len(barcode) - 2, 3)))


def test_table_5_differs_from_the_standard_code_where_it_should():
    assert len(TABLE_5) == 64 and STOP_CODONS == ("TAA", "TAG")
    assert translate("TGAAGAAGGATAATG") == "WSSMM"  # TGA=W, AGA/AGG=S, ATA=M (stop, R, R, I in the standard code)
    assert translate("TTTAAAGGGCCCTAATAG") == "FKGP**"
    assert translate("tgg") == "W"  # lowercase bases are read as uppercase


def test_ambiguous_codons_translate_to_x_and_are_never_stops():
    assert translate("TNATARTRG") == "XXX"
    assert stop_codon_positions("TNATARTRG", 0).size == 0
    assert translate("ACGTA", 0) == "T" and translate("AC") == "" and translate("ACGT", 2) == ""


def test_stop_codon_positions_are_base_offsets_of_whole_codons_in_the_frame():
    sequence = "ATAAGTAGC"  # frame 0: ATA AGT AGC; frame 1: TAA GTA; frame 2: AAG TAG
    assert stop_codon_positions(sequence, 0).tolist() == []
    assert stop_codon_positions(sequence, 1).tolist() == [1]
    assert stop_codon_positions(sequence, 2).tolist() == [5]
    assert stop_codon_positions("TA", 0).tolist() == []
    with pytest.raises(ValueError, match="frame must be 0, 1 or 2"):
        stop_codon_positions(sequence, 3)
    with pytest.raises(ValueError, match="frame must be 0, 1 or 2"):
        translate(sequence, -1)


def test_best_frame_has_the_fewest_stops_and_ties_go_to_the_lowest_offset():
    assert best_frame("TAAATAG") == 2  # frame 0: TAA ATA (1 stop); frame 1: AAA TAG (1); frame 2: AAT (0)
    assert best_frame("TAATAA") == 1  # frame 0: two stops; frames 1 and 2: none, the lower offset wins
    assert best_frame("CTAGTAAT") == 0  # frame 1: two stops; frames 0 and 2: none
    assert best_frame("AAAAAA") == 0 and best_frame("") == 0 and best_frame("TA") == 0


def test_best_frames_match_the_old_codon_phase_on_real_and_random_barcodes(barcodes):
    rng = np.random.default_rng(0)
    random_reads = ["".join(rng.choice(list("ACGTN"), size=int(rng.integers(0, 40)))) for _ in range(500)]
    for sequences in (barcodes, random_reads):
        expected = [codon_phase_reference(sequence) for sequence in sequences]
        assert best_frames(sequences).tolist() == expected
        assert [best_frame(sequence) for sequence in sequences[:50]] == expected[:50]


def test_check_translation_marks_stop_codons_and_n_bases_per_read():
    reads = ["ATGTAAGGN", "AAAAAA", "", "CCCTAGCCTAACC", "NA"]
    check = check_translation(reads)
    assert check.frame.tolist() == [1, 0, 0, 1, 0]
    assert check.num_stops.tolist() == [0, 0, 0, 0, 0]
    assert check.has_n.tolist() == [True, False, False, False, True]
    assert check.base_predictions[0].tolist() == [0] * 8 + [3]
    assert [len(p) for p in check.base_predictions] == [len(read) for read in reads]
    forced = check_translation(["CTAAATAGCTAGTAAT", "TAATAGTGA"])  # stops in every frame of the first read
    assert forced.frame.tolist() == [1, 1] and forced.num_stops.tolist() == [1, 0]  # frame 1: C TAA ATA GCT ...
    assert forced.base_predictions[0].tolist() == [0, 1, 1, 1] + [0] * 12
    assert forced.has_errors.tolist() == [True, False]
    assert forced.score.tolist() == [1.0, 0.0]
    assert check.score.tolist() == [1.0, 0.0, 0.0, 0.0, 1.0]


def test_batch_check_agrees_with_the_per_read_functions():
    rng = np.random.default_rng(1)
    reads = ["".join(rng.choice(list("AACGTTTN"), size=int(rng.integers(0, 80)))) for _ in range(300)]
    check = check_translation(reads)
    for index, read in enumerate(reads):
        frame = best_frame(read)
        stops = stop_codon_positions(read, frame)
        assert check.frame[index] == frame and check.num_stops[index] == len(stops)
        expected = np.zeros(len(read), dtype=np.int8)
        for start in stops:
            expected[start : start + 3] = 1
        expected[[base == "N" for base in read]] = 3
        np.testing.assert_array_equal(check.base_predictions[index], expected)
        assert translate(read, frame).count("*") == len(stops)


def test_a_single_inserted_or_deleted_base_creates_stops_downstream_in_the_original_frame(barcodes):
    check = check_translation(barcodes)
    clean = [barcode for barcode, stops, n in zip(barcodes, check.num_stops, check.has_n) if not stops and not n]
    assert len(clean) > 100  # nearly all real barcodes have an open frame
    inserted = []
    for barcode in clean:
        frame, at = best_frame(barcode), len(barcode) // 2
        inserted.append(barcode[:at] + "A" + barcode[at:])
        for read in (inserted[-1], barcode[:at] + barcode[at + 1 :]):
            stops = stop_codon_positions(read, frame)
            assert len(stops) and stops.min() >= at - 2, (barcode, stops)  # from the codon holding the indel on
    assert check_translation(inserted).has_errors.all()  # no frame of the whole read stays open
