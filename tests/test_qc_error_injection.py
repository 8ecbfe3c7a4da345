"""Injected sequencing errors: exact positions (the events invert to the original), labels that agree with the
events, rates and the clean share honoured, reproducibility, validation and padding."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from barcodemae.qc import (
    ERROR_KINDS,
    INSERTED,
    N_BASE,
    SUBSTITUTED,
    CorruptedRead,
    ErrorRates,
    corrupt_read,
    event_units,
    inject_errors,
    pad_labels,
    undo_events,
)

NO_ERRORS = {"substitution": 0.0, "insertion": 0.0, "deletion": 0.0, "homopolymer": 0.0, "n_run": 0.0,
             "clean_fraction": 0.0}


def only(**rates: float) -> ErrorRates:
    """Rates with every error kind off except the given ones."""
    return ErrorRates(**{**NO_ERRORS, **rates})


def random_barcodes(rng: np.random.Generator, count: int, length: int) -> list[str]:
    return [bytes(row).decode() for row in rng.choice(np.frombuffer(b"ACGT", np.uint8), size=(count, length))]


def labels_from_events(read: CorruptedRead) -> tuple[np.ndarray, np.ndarray]:
    """The base labels and deletion boundaries the events imply, rebuilt one event at a time."""
    labels = np.zeros(len(read.read), dtype=np.int8)
    deletions = np.zeros(len(read.read) + 1, dtype=bool)
    for event in read.events:
        if not event.read_bases:
            deletions[event.read_position] = True
        elif not event.original_bases:
            labels[event.read_position] = INSERTED
        else:
            value = N_BASE if event.kind == "n_run" else SUBSTITUTED
            labels[event.read_position : event.read_position + len(event.read_bases)] = value
    return labels, deletions


def test_events_invert_exactly_and_agree_with_labels_on_many_random_reads():
    rng = np.random.default_rng(7)
    rates = ErrorRates(substitution=0.08, insertion=0.08, deletion=0.08, homopolymer=0.5, n_run=0.05,
                       n_run_max_length=4, clean_fraction=0.0)
    seen = {"first_base": 0, "last_boundary": 0, "adjacent": 0, "same_position": 0}
    seen_kinds: set[str] = set()
    for _ in range(2000):
        # a skewed alphabet makes homopolymer runs common; an occasional N in the original is never corrupted
        original = "".join(rng.choice(list("AAAACGTTN"), size=int(rng.integers(0, 50))))
        read = corrupt_read(original, rates, rng)
        assert read.original == original
        assert undo_events(read.read, read.events) == original
        assert read.base_labels.dtype == np.int8 and read.base_labels.shape == (len(read.read),)
        assert read.deletion_after.dtype == bool and read.deletion_after.shape == (len(read.read) + 1,)
        labels, deletions = labels_from_events(read)
        np.testing.assert_array_equal(read.base_labels, labels)
        np.testing.assert_array_equal(read.deletion_after, deletions)
        for event in read.events:
            assert event.original_bases == original[event.original_position :][: len(event.original_bases)]
            assert event.read_bases == read.read[event.read_position :][: len(event.read_bases)]
            assert "N" not in event.original_bases  # an N of the original is kept
            if event.kind == "substitution":
                assert event.read_bases != event.original_bases
            seen_kinds.add(event.kind)
        positions = [event.read_position for event in read.events]
        seen["first_base"] += any(event.original_position == 0 for event in read.events)
        seen["last_boundary"] += any(event.read_position == len(read.read) for event in read.events)
        seen["adjacent"] += any(b - a == 1 for a, b in itertools.pairwise(positions))
        seen["same_position"] += any(b == a for a, b in itertools.pairwise(positions))
    assert seen_kinds == set(ERROR_KINDS)
    assert all(count > 20 for count in seen.values()), seen  # the property was checked on edge cases too


def test_homopolymer_slip_lengthens_or_shortens_the_run_at_its_3_prime_end():
    original = "ACGTTTTTACG"
    outcomes = set()
    for seed in range(20):
        read = corrupt_read(original, only(homopolymer=1.0), np.random.default_rng(seed))
        (event,) = read.events
        assert event.kind == "homopolymer"
        if read.read == "ACGTTTTTTACG":
            assert event.read_bases == "T" and read.base_labels.tolist() == [0] * 8 + [INSERTED] + [0] * 3
            assert not read.deletion_after.any()
        else:
            assert read.read == "ACGTTTTACG" and event.original_bases == "T"
            assert np.flatnonzero(read.deletion_after).tolist() == [7] and not read.base_labels.any()
        outcomes.add(read.read)
    assert len(outcomes) == 2
    base_kind, boundary_kind = event_units(read)
    assert {int(k) for k in base_kind} | {int(k) for k in boundary_kind} == {-1, ERROR_KINDS.index("homopolymer")}


def test_runs_shorter_than_three_and_non_acgt_letters_are_never_corrupted():
    rng = np.random.default_rng(0)
    assert not corrupt_read("ACCAGGTAAC", only(homopolymer=1.0), rng).events
    read = corrupt_read("NNNNRYNN", only(substitution=0.5, deletion=0.5, n_run=1.0), rng)
    assert read.read == "NNNNRYNN" and not read.events and not read.base_labels.any()


@pytest.mark.parametrize(("kind", "rate"), [("substitution", 0.01), ("insertion", 0.01), ("deletion", 0.01)])
def test_per_base_rates_are_honoured(kind, rate):
    barcodes = random_barcodes(np.random.default_rng(1), 400, 658)
    reads = inject_errors(barcodes, only(**{kind: rate}), seed=2)
    count = sum(event.kind == kind for read in reads for event in read.events)
    expected = rate * 400 * (658 + (kind == "insertion"))
    assert abs(count - expected) < 4 * np.sqrt(expected), (count, expected)  # 2,632 expected, sd about 51


def test_homopolymer_rate_is_per_run_and_n_runs_have_the_configured_lengths():
    barcodes = random_barcodes(np.random.default_rng(3), 400, 658)
    runs = sum(len(run) >= 3 for barcode in barcodes for run in _runs(barcode))
    reads = inject_errors(barcodes, only(homopolymer=0.2), seed=4)
    slips = sum(len(read.events) for read in reads)
    assert abs(slips - 0.2 * runs) < 4 * np.sqrt(0.2 * 0.8 * runs)

    reads = inject_errors(barcodes, only(n_run=0.002, n_run_max_length=3), seed=5)
    lengths = np.array([len(event.read_bases) for read in reads for event in read.events])
    expected = 0.002 * 400 * 658
    assert abs(len(lengths) - expected) < 5 * np.sqrt(expected)  # adjacent runs merge: slightly fewer events
    assert set(lengths.tolist()) <= {1, 2, 3, 4, 5, 6} and 1.9 < lengths.mean() < 2.2


def test_combined_rates_stay_close_to_the_configured_ones():
    barcodes = random_barcodes(np.random.default_rng(6), 300, 658)
    rates = ErrorRates(substitution=0.02, insertion=0.005, deletion=0.01, homopolymer=0.1, n_run=0.002,
                       clean_fraction=0.0)
    reads = inject_errors(barcodes, rates, seed=7)
    kinds = [event.kind for read in reads for event in read.events]
    for kind in ("substitution", "deletion"):  # a few bases are claimed by homopolymer slips and N runs first
        measured = kinds.count(kind) / (300 * 658)
        assert 0.85 * getattr(rates, kind) < measured < 1.05 * getattr(rates, kind), (kind, measured)


def test_clean_fraction_leaves_exactly_that_share_untouched():
    barcodes = random_barcodes(np.random.default_rng(8), 1000, 100)
    reads = inject_errors(barcodes, only(substitution=0.2, clean_fraction=0.3), seed=9)
    untouched = [read.read == read.original and not read.events for read in reads]
    assert sum(untouched) == 300
    assert sum(read.has_errors for read in reads) == 700  # at 20% per base every other read has errors
    assert all(not read.base_labels.any() and not read.deletion_after.any()
               for read, clean in zip(reads, untouched) if clean)


def test_the_same_seed_gives_the_same_reads_and_another_seed_different_ones():
    barcodes = random_barcodes(np.random.default_rng(10), 50, 200)
    first, again = inject_errors(barcodes, ErrorRates(), seed=11), inject_errors(barcodes, ErrorRates(), seed=11)
    assert [(r.read, r.events) for r in first] == [(r.read, r.events) for r in again]
    assert all(np.array_equal(a.base_labels, b.base_labels) for a, b in zip(first, again))
    other = inject_errors(barcodes, ErrorRates(), seed=12)
    assert [r.read for r in first] != [r.read for r in other]
    generator = inject_errors(barcodes, ErrorRates(), seed=np.random.default_rng(11))
    assert [r.read for r in generator] == [r.read for r in first]


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"substitution": -0.1}, "substitution rate"),
    ({"insertion": 1.5}, "insertion rate"),
    ({"deletion": float("nan")}, "deletion rate"),
    ({"homopolymer": "0.1"}, "homopolymer rate"),
    ({"clean_fraction": 1.2}, "clean_fraction rate"),
    ({"n_run": True}, "n_run rate"),
    ({"n_run_max_length": 0}, "n_run_max_length"),
    ({"n_run_max_length": 2.5}, "n_run_max_length"),
    ({"substitution": 0.6, "deletion": 0.5}, "substitution \\+ deletion"),
])
def test_invalid_rates_are_rejected_with_the_field_named(kwargs, message):
    with pytest.raises(ValueError, match=message):
        ErrorRates(**kwargs)


def test_undo_events_rejects_events_that_do_not_match_the_read():
    read = corrupt_read("ACGTACGTAC", only(substitution=1.0), np.random.default_rng(0))
    with pytest.raises(ValueError, match="does not match"):
        undo_events("A" + read.read[1:] if read.read[0] != "A" else "C" + read.read[1:], read.events)


def test_pad_labels_stacks_reads_with_masks_and_ignore_index():
    reads = [CorruptedRead.untouched("ACG"),
             corrupt_read("ACGTACGT", only(substitution=1.0), np.random.default_rng(0)),
             corrupt_read("ACGTA", only(deletion=1.0), np.random.default_rng(0))]
    assert reads[2].read == "" and reads[2].deletion_after.tolist() == [True]
    batch = pad_labels(reads)
    assert batch.base_labels.shape == (3, 8) and batch.deletion_after.shape == (3, 9)
    assert batch.base_labels[0].tolist() == [0, 0, 0] + [-100] * 5
    assert batch.base_labels[1].tolist() == [SUBSTITUTED] * 8
    assert batch.base_mask.sum(axis=1).tolist() == [3, 8, 0]
    assert batch.boundary_mask.sum(axis=1).tolist() == [4, 9, 1]
    assert batch.deletion_after[2].tolist() == [True] + [False] * 8
    assert batch.has_errors.tolist() == [False, True, True]
    assert pad_labels(reads, length=10, ignore_index=-1).base_labels[1, 8:].tolist() == [-1, -1]
    with pytest.raises(ValueError, match="shorter than the longest read"):
        pad_labels(reads, length=5)
    with pytest.raises(ValueError, match="int8"):
        pad_labels(reads, ignore_index=-1000)


def _runs(sequence: str) -> list[str]:
    runs, start = [], 0
    for index in range(1, len(sequence) + 1):
        if index == len(sequence) or sequence[index] != sequence[start]:
            runs.append(sequence[start:index])
            start = index
    return runs
