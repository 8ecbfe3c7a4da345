"""QC metrics on hand-made examples with known precision / recall / F1 and AUROC, and end to end on real barcodes
with the translation baseline."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from barcodemae.qc import (
    LABEL_CLASSES,
    CorruptedRead,
    ErrorEvent,
    ErrorRates,
    base_level_metrics,
    best_threshold,
    check_translation,
    clean_nll_threshold,
    flag_reads,
    inject_errors,
    precision_recall_f1,
    record_auroc,
    record_truth,
    undo_events,
    verdict_metrics,
)


@pytest.fixture
def hand_read() -> CorruptedRead:
    """AAACCCGGGT read as ATACCCCGGN: A->T at 1, a homopolymer C after CCC, the G at 7 lost, T->N at 9."""
    events = (
        ErrorEvent("substitution", 1, 1, "A", "T"),
        ErrorEvent("homopolymer", 6, 6, "", "C"),
        ErrorEvent("deletion", 8, 7, "G", ""),
        ErrorEvent("n_run", 9, 9, "T", "N"),
    )
    labels = np.array([0, 1, 0, 0, 0, 0, 2, 0, 0, 3], dtype=np.int8)
    deletions = np.zeros(11, dtype=bool)
    deletions[8] = True
    read = CorruptedRead("ATACCCCGGN", "AAACCCGGGT", labels, deletions, events)
    assert undo_events(read.read, read.events) == read.original
    return read


def test_precision_recall_f1_counts_and_undefined_ratios():
    prf = precision_recall_f1(np.array([1, 1, 0, 0, 1]), np.array([1, 0, 1, 0, 1]))
    assert (prf.true_positives, prf.predicted, prf.support) == (2, 3, 3)
    assert prf.precision == pytest.approx(2 / 3) and prf.recall == pytest.approx(2 / 3)
    assert prf.f1 == pytest.approx(2 / 3)
    nothing = precision_recall_f1(np.zeros(4), np.zeros(4))
    assert math.isnan(nothing.precision) and math.isnan(nothing.recall) and math.isnan(nothing.f1)
    missed = precision_recall_f1(np.array([1, 0]), np.array([0, 0]))
    assert missed.recall == 0.0 and missed.f1 == 0.0 and math.isnan(missed.precision)
    with pytest.raises(ValueError, match="same shape"):
        precision_recall_f1(np.zeros(3), np.zeros(4))


def test_perfect_predictions_score_one_everywhere(hand_read):
    report = base_level_metrics([hand_read], [hand_read.base_labels], [hand_read.deletion_after])
    for name in LABEL_CLASSES:
        prf = report.per_class[name]
        assert (prf.precision, prf.recall, prf.f1) == (1.0, 1.0, 1.0), name
    assert report.overall.f1 == 1.0 and report.detection.f1 == 1.0
    assert report.recall_by_kind == pytest.approx(
        {"substitution": 1.0, "insertion": math.nan, "deletion": 1.0, "homopolymer": 1.0, "n_run": 1.0},
        nan_ok=True)


def test_partial_predictions_give_the_hand_computed_scores(hand_read):
    labels = np.array([0, 1, 2, 0, 0, 0, 0, 0, 0, 3], dtype=np.int8)  # the inserted C is put one base off
    deletions = np.zeros(11, dtype=bool)
    deletions[[3, 8]] = True  # one right, one spurious
    report = base_level_metrics([hand_read], [labels], [deletions])
    assert report.per_class["substitution"].f1 == 1.0 and report.per_class["n"].f1 == 1.0
    insertion = report.per_class["insertion"]
    assert (insertion.true_positives, insertion.predicted, insertion.support) == (0, 1, 1)
    assert insertion.precision == 0.0 and insertion.recall == 0.0 and insertion.f1 == 0.0
    deletion = report.per_class["deletion"]
    assert (deletion.precision, deletion.recall) == (0.5, 1.0) and deletion.f1 == pytest.approx(2 / 3)
    # overall: 3 of 5 predictions right, 3 of 4 errors found, with the right type
    assert (report.overall.precision, report.overall.recall) == (0.6, 0.75)
    assert report.overall.f1 == pytest.approx(2 / 3)
    assert (report.detection.true_positives, report.detection.predicted, report.detection.support) == (3, 5, 4)
    # the homopolymer slip's inserted base counts for homopolymer, not insertion
    assert report.recall_by_kind["homopolymer"] == 0.0 and math.isnan(report.recall_by_kind["insertion"])


def test_wrong_type_counts_for_detection_but_not_per_type(hand_read):
    labels = np.where(hand_read.base_labels > 0, 1, 0).astype(np.int8)  # every error called a substitution
    report = base_level_metrics([hand_read], [labels])  # no deletion predictions at all
    assert report.detection.true_positives == 3 and report.detection.support == 4
    assert report.overall.true_positives == 1
    assert report.per_class["substitution"].precision == pytest.approx(1 / 3)
    assert report.per_class["deletion"].recall == 0.0
    assert report.recall_by_kind["n_run"] == 0.0 and report.recall_by_kind["deletion"] == 0.0


def test_base_level_metrics_rejects_mismatched_predictions(hand_read):
    with pytest.raises(ValueError, match="one prediction per read"):
        base_level_metrics([hand_read], [])
    with pytest.raises(ValueError, match="read 0: predictions must have shapes"):
        base_level_metrics([hand_read], [np.zeros(9, dtype=np.int8)])
    with pytest.raises(ValueError, match="read 0: predictions must have shapes"):
        base_level_metrics([hand_read], [hand_read.base_labels], [np.zeros(10, dtype=bool)])


def test_record_auroc_on_a_hand_example_and_with_one_class():
    assert record_auroc(np.array([0.1, 0.4, 0.35, 0.8]), np.array([False, False, True, True])) == 0.75
    assert record_auroc(np.array([1.0, 1.0, 0.0, 2.0]), np.array([True, False, False, True])) == pytest.approx(0.875)
    with pytest.raises(ValueError, match="all 3 records are clean"):
        record_auroc(np.array([0.1, 0.2, 0.3]), np.zeros(3, dtype=bool))
    with pytest.raises(ValueError, match="all 2 records are erroneous"):
        record_auroc(np.array([0.1, 0.2]), np.ones(2, dtype=bool))
    with pytest.raises(ValueError, match="1-D of the same length"):
        record_auroc(np.array([0.1, 0.2]), np.array([True, False, True]))


def test_best_threshold_maximises_f1_and_never_splits_ties():
    scores = np.array([0.9, 0.8, 0.7, 0.6, 0.1])
    truth = np.array([True, True, False, True, False])
    threshold = best_threshold(scores, truth)  # top 4: P 3/4, R 1 -> F1 0.857 beats top 2 (0.8)
    assert threshold == pytest.approx(0.35)
    assert verdict_metrics(scores > threshold, truth).f1 == pytest.approx(6 / 7)
    tied = np.array([0.5, 0.5, 0.2])  # the two tied reads are flagged together or not at all
    assert best_threshold(tied, np.array([True, False, False])) == pytest.approx(0.35)
    assert best_threshold(np.array([0.3, 0.2]), np.array([True, True])) < 0.2  # flag everything
    with pytest.raises(ValueError, match="at least one error"):
        best_threshold(scores, np.zeros(5, dtype=bool))


def test_flag_reads_compares_in_log_space_where_error_scores_round_to_one():
    log_clean = np.array([-0.1, -1.0, -40.0, -60.0])
    error_score = -np.expm1(log_clean)
    for threshold in (0.0, 0.3, 0.5, 0.9):
        np.testing.assert_array_equal(flag_reads(log_clean, clean_nll_threshold(threshold)), error_score > threshold)
    assert error_score[2] == error_score[3] == 1.0  # indistinguishable as probabilities ...
    np.testing.assert_array_equal(flag_reads(log_clean, 50.0), [False, False, False, True])  # ... not here
    assert clean_nll_threshold(1.0) == float("inf") and not flag_reads(log_clean, clean_nll_threshold(1.0)).any()
    with pytest.raises(ValueError, match="probability"):
        clean_nll_threshold(1.5)


def test_verdict_metrics():
    prf = verdict_metrics(np.array([True, True, False, False]), np.array([True, False, True, False]))
    assert (prf.precision, prf.recall, prf.f1) == (0.5, 0.5, 0.5)


def test_translation_baseline_end_to_end_on_real_barcodes(fixture_csv):
    if not fixture_csv.is_file():
        pytest.skip(f"fixture barcodes not found at {fixture_csv}")
    barcodes = list(pd.read_csv(fixture_csv)["dna_barcode"].dropna())
    reads = inject_errors(barcodes, ErrorRates(clean_fraction=0.5), seed=0)
    check = check_translation([read.read for read in reads])
    truth = record_truth(reads)
    assert 0.45 <= truth.mean() <= 0.5  # half untouched; a corrupted read may draw no error (about 1%)
    report = base_level_metrics(reads, check.base_predictions)
    assert report.recall_by_kind["n_run"] == 1.0  # every injected N is seen
    assert report.per_class["deletion"].recall == 0.0  # the baseline marks codons, never boundaries
    assert 0.0 < report.detection.recall < 1.0
    assert record_auroc(check.score, truth) > 0.7  # indels and N are caught; most substitutions are not
