"""Sequencing errors injected into real barcodes at known positions: training data and ground truth for barcode
quality control (issue #15).

Why: real barcodes carry no labels of their read errors, so an error detector is trained and evaluated on clean
barcodes corrupted with errors whose positions are recorded exactly. Each read gets

* ``base_labels`` ``(len(read),)`` int8: :data:`CORRECT`, :data:`SUBSTITUTED`, :data:`INSERTED` or :data:`N_BASE`;
* ``deletion_after`` ``(len(read) + 1,)`` bool: boundary ``i`` (between ``read[i - 1]`` and ``read[i]``; 0 = before
  the first base) is where a base of the original is missing;
* ``events``: one :class:`ErrorEvent` per error (kind, read position, original position, bases), from which the
  original is rebuilt exactly (:func:`undo_events`) and per-kind metrics are computed.

Error kinds (:data:`ERROR_KINDS`) and their rates (:class:`ErrorRates`):

* ``substitution`` (per base): the base becomes another of ACGT;
* ``insertion`` (per boundary): a random base is inserted;
* ``deletion`` (per base): the base is dropped;
* ``homopolymer`` (per run of >= 3 identical bases, the unit that slips in sequencing): the run gains or loses one
  base, with equal odds. By convention the slip is at the run's 3' end: a lengthened run's last base is the
  inserted one, a shortened run misses its last base. Its base-level labels are an insertion or a deletion; its
  event kind stays ``homopolymer``;
* ``n_run`` (per base, the start of a run): 1 to ``n_run_max_length`` bases become ``N``.

Each original base carries at most one event, so every read base has one label and the events invert exactly:
homopolymer slips claim their run (and the boundaries around and inside it) first, then ``N`` runs claim theirs
the same way, then the remaining bases are deleted or substituted, then insertions go to free boundaries, except
those next to a deleted base (an insertion beside a deletion would read as a substitution). Only ``A``, ``C``,
``G`` and ``T`` are corrupted; other letters of the original (an ``N`` already there) are kept and labelled
correct. Rates are therefore honoured on the bases still free for an event (the shortfall is of the order of the
product of two rates). An indel next to an identical base could equally sit one base over; its label stays where
it was injected.

Each read is built on arrays of ``2 * L + 1`` slots (an insertion slot before every base and after the last, then
the base's slot), each holding zero or one output byte, so positions in the read follow from one cumulative sum.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from typing import NamedTuple

import numpy as np

ERROR_KINDS: tuple[str, ...] = ("substitution", "insertion", "deletion", "homopolymer", "n_run")

CORRECT, SUBSTITUTED, INSERTED, N_BASE = 0, 1, 2, 3
BASE_LABELS: tuple[str, ...] = ("correct", "substituted", "inserted", "n")
"""Names of the values of ``base_labels``, by value."""

_KIND_INDEX = {kind: index for index, kind in enumerate(ERROR_KINDS)}
_ACGT = np.frombuffer(b"ACGT", dtype=np.uint8)
_N = ord("N")
_BASE_INDEX = np.full(256, 4, dtype=np.uint8)  # A C G T -> 0..3, anything else 4 (never corrupted)
_BASE_INDEX[_ACGT] = np.arange(4, dtype=np.uint8)


@dataclass(frozen=True)
class ErrorRates:
    """Error rates of :func:`corrupt_read` / :func:`inject_errors` (see the module docstring for the units).

    The defaults give a few errors per 658 bp read, about half of the reads untouched.
    """

    substitution: float = 0.004
    """Per base."""
    insertion: float = 0.001
    """Per boundary (``L + 1`` of them)."""
    deletion: float = 0.001
    """Per base."""
    homopolymer: float = 0.02
    """Per homopolymer run of >= 3 identical bases."""
    n_run: float = 0.0005
    """Per base: an ``N`` run starts here."""
    n_run_max_length: int = 5
    """``N`` runs are 1 to this many bases long (uniform), cut short at the read's end or a claimed base."""
    clean_fraction: float = 0.5
    """Share of the reads of :func:`inject_errors` left untouched, so record-level verdicts have negatives."""

    def __post_init__(self) -> None:
        for field in fields(self):
            value = getattr(self, field.name)
            if field.name == "n_run_max_length":
                if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                    raise ValueError(f"n_run_max_length must be an integer >= 1, got {value!r}")
            elif (isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value)
                  or not 0.0 <= value <= 1.0):
                raise ValueError(f"the {field.name} rate must be a number in [0, 1], got {value!r}")
        if self.substitution + self.deletion > 1.0:
            raise ValueError(
                f"substitution + deletion must not exceed 1 (one draw decides a base's fate), got "
                f"{self.substitution} + {self.deletion}"
            )


class ErrorEvent(NamedTuple):
    """One injected error: ``read[read_position : read_position + len(read_bases)]`` was
    ``original[original_position : original_position + len(original_bases)]``.

    An insertion has ``original_bases == ""`` and ``original_position`` = the original base it precedes (``L`` at
    the end); a deletion has ``read_bases == ""`` and ``read_position`` = its boundary in ``deletion_after``.
    """

    kind: str
    read_position: int
    original_position: int
    original_bases: str
    read_bases: str


@dataclass(frozen=True, eq=False)  # numpy fields: == between two reads would be ambiguous
class CorruptedRead:
    """A read with injected errors and their exact positions (shapes in the module docstring)."""

    read: str
    original: str
    base_labels: np.ndarray
    """``(len(read),)`` int8, values of :data:`BASE_LABELS`."""
    deletion_after: np.ndarray
    """``(len(read) + 1,)`` bool: a base of the original is missing at this boundary."""
    events: tuple[ErrorEvent, ...]
    """Sorted by read position, then original position."""

    @property
    def has_errors(self) -> bool:
        """The record-level truth: at least one error was injected."""
        return bool(self.events)

    @classmethod
    def untouched(cls, sequence: str) -> CorruptedRead:
        """A read equal to its original: all labels correct, no events."""
        return cls(sequence, sequence, np.zeros(len(sequence), np.int8), np.zeros(len(sequence) + 1, bool), ())


def corrupt_read(original: str, rates: ErrorRates, rng: np.random.Generator) -> CorruptedRead:
    """One read of ``original`` with errors at ``rates`` (``rates.clean_fraction`` is a batch property, unused)."""
    source = np.frombuffer(original.encode("ascii"), dtype=np.uint8)
    length = len(source)
    base_index = _BASE_INDEX[source]
    free_base = base_index < 4
    free_boundary = np.ones(length + 1, dtype=bool)
    base_out = source.copy()  # output byte of each base's slot, 0 = deleted
    base_kind = np.full(length, -1, dtype=np.int8)  # index into ERROR_KINDS, -1 = none
    insert_out = np.zeros(length + 1, dtype=np.uint8)  # output byte of each insertion slot, 0 = none
    insert_kind = np.full(length + 1, -1, dtype=np.int8)

    # homopolymer slips: one base more or less at the 3' end of a run of >= 3 identical bases
    starts, ends = _homopolymer_runs(source, free_base)
    slips = rng.random(len(starts)) < rates.homopolymer
    lengthen = rng.random(len(starts)) < 0.5
    for start, end, longer in zip(starts[slips], ends[slips], lengthen[slips], strict=True):
        free_base[start:end] = False
        free_boundary[start : end + 1] = False
        if longer:
            insert_out[end] = source[end - 1]
            insert_kind[end] = _KIND_INDEX["homopolymer"]
        else:
            base_out[end - 1] = 0
            base_kind[end - 1] = _KIND_INDEX["homopolymer"]

    # N runs: few per read, each cut short at a base already claimed
    run_starts = np.flatnonzero(rng.random(length) < rates.n_run)
    run_lengths = rng.integers(1, rates.n_run_max_length + 1, size=len(run_starts))
    for start, run_length in zip(run_starts, run_lengths, strict=True):
        window = free_base[start : start + run_length]
        stop = start + (int(np.argmin(window)) if not window.all() else len(window))
        if stop > start:
            free_base[start:stop] = False
            free_boundary[start : stop + 1] = False
            base_out[start:stop] = _N
            base_kind[start:stop] = _KIND_INDEX["n_run"]

    # deletions and substitutions share one draw per base; insertions avoid boundaries next to a deletion
    draw = rng.random(length)
    shift = rng.integers(1, 4, size=length)
    deleted = free_base & (draw < rates.deletion)
    substituted = free_base & ~deleted & (draw < rates.deletion + rates.substitution)
    base_out[deleted] = 0
    base_kind[deleted] = _KIND_INDEX["deletion"]
    base_out[substituted] = _ACGT[(base_index[substituted] + shift[substituted]) % 4]
    base_kind[substituted] = _KIND_INDEX["substitution"]
    missing = base_out == 0
    free_boundary &= ~np.concatenate([[False], missing]) & ~np.concatenate([missing, [False]])
    inserted = free_boundary & (rng.random(length + 1) < rates.insertion)
    insert_out[inserted] = _ACGT[rng.integers(0, 4, size=int(inserted.sum()))]
    insert_kind[inserted] = _KIND_INDEX["insertion"]
    return _assemble(original, base_out, base_kind, insert_out, insert_kind)


def _homopolymer_runs(source: np.ndarray, eligible: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Starts and (exclusive) ends of the runs of >= 3 identical eligible bases."""
    if not len(source):
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    boundary = np.flatnonzero(np.diff(source.astype(np.int16)) != 0) + 1
    starts = np.concatenate([[0], boundary]).astype(np.int64)
    ends = np.concatenate([boundary, [len(source)]]).astype(np.int64)
    keep = (ends - starts >= 3) & eligible[starts]
    return starts[keep], ends[keep]


def _assemble(
    original: str, base_out: np.ndarray, base_kind: np.ndarray, insert_out: np.ndarray, insert_kind: np.ndarray
) -> CorruptedRead:
    """The read, its labels and its events from the per-slot outputs chosen by :func:`corrupt_read`."""
    length = len(base_out)
    slots = np.zeros(2 * length + 1, dtype=np.uint8)
    slots[0::2], slots[1::2] = insert_out, base_out
    present = slots != 0
    before = np.cumsum(present) - present  # output bytes before each slot: read position / deletion boundary
    labels = np.zeros(2 * length + 1, dtype=np.int8)
    labels[0::2][insert_out != 0] = INSERTED
    labels[1::2][base_kind == _KIND_INDEX["substitution"]] = SUBSTITUTED
    labels[1::2][base_kind == _KIND_INDEX["n_run"]] = N_BASE
    deletion_after = np.zeros(int(present.sum()) + 1, dtype=bool)
    base_position = before[1::2]
    deletion_after[base_position[base_out == 0]] = True

    events = [ErrorEvent(ERROR_KINDS[insert_kind[boundary]], int(before[2 * boundary]), int(boundary), "",
                         chr(insert_out[boundary])) for boundary in np.flatnonzero(insert_kind >= 0)]
    is_n = base_kind == _KIND_INDEX["n_run"]
    edges = np.flatnonzero(np.diff(np.concatenate([[0], is_n.astype(np.int8), [0]])))
    for start, stop in zip(edges[0::2], edges[1::2], strict=True):  # one event per N run (adjacent runs merge)
        events.append(ErrorEvent("n_run", int(base_position[start]), int(start), original[start:stop],
                                 "N" * int(stop - start)))
    for base in np.flatnonzero((base_kind >= 0) & ~is_n):
        events.append(ErrorEvent(ERROR_KINDS[base_kind[base]], int(base_position[base]), int(base), original[base],
                                 chr(base_out[base]) if base_out[base] else ""))
    events.sort(key=lambda event: (event.read_position, event.original_position))
    read = slots[present].tobytes().decode("ascii")
    return CorruptedRead(read, original, labels[present], deletion_after, tuple(events))


def undo_events(read: str, events: tuple[ErrorEvent, ...] | list[ErrorEvent]) -> str:
    """The original of ``read``: every event reverted, right to left (later read positions first; at one read
    position, the later original position first), so earlier positions stay valid."""
    for event in sorted(events, key=lambda e: (e.read_position, e.original_position), reverse=True):
        stop = event.read_position + len(event.read_bases)
        if read[event.read_position : stop] != event.read_bases:
            raise ValueError(f"event {event} does not match the read ({read[event.read_position : stop]!r} there)")
        read = read[: event.read_position] + event.original_bases + read[stop:]
    return read


def inject_errors(
    sequences: list[str], rates: ErrorRates, seed: int | np.random.Generator = 0
) -> list[CorruptedRead]:
    """Corrupt a list of barcodes, leaving exactly ``round(clean_fraction * n)`` of them (chosen at random)
    untouched; the others get :func:`corrupt_read`. Same seed, same sequences: same output."""
    rng = np.random.default_rng(seed)
    clean = np.zeros(len(sequences), dtype=bool)
    clean[rng.permutation(len(sequences))[: round(rates.clean_fraction * len(sequences))]] = True
    return [CorruptedRead.untouched(sequence) if untouched else corrupt_read(sequence, rates, rng)
            for sequence, untouched in zip(sequences, clean, strict=True)]


def event_units(read: CorruptedRead) -> tuple[np.ndarray, np.ndarray]:
    """Which event each labelled unit belongs to, for per-kind metrics.

    Returns ``base_kind`` ``(len(read),)`` and ``boundary_kind`` ``(len(read) + 1,)`` int8: an index into
    :data:`ERROR_KINDS`, -1 for none. A unit is attributed to the event at its read position, so a homopolymer
    slip's inserted base (label :data:`INSERTED`) or missing base (a ``deletion_after`` boundary) counts as
    ``homopolymer``, not as ``insertion`` / ``deletion``.
    """
    base_kind = np.full(len(read.read), -1, dtype=np.int8)
    boundary_kind = np.full(len(read.read) + 1, -1, dtype=np.int8)
    for event in read.events:
        if event.read_bases:
            base_kind[event.read_position : event.read_position + len(event.read_bases)] = _KIND_INDEX[event.kind]
        else:
            boundary_kind[event.read_position] = _KIND_INDEX[event.kind]
    return base_kind, boundary_kind


@dataclass(frozen=True, eq=False)  # numpy fields
class LabelBatch:
    """Padded labels of ``n`` reads, ``W`` = the padded length."""

    base_labels: np.ndarray
    """``(n, W)`` int8, ``ignore_index`` beyond each read."""
    deletion_after: np.ndarray
    """``(n, W + 1)`` bool, False beyond each read's last boundary."""
    base_mask: np.ndarray
    """``(n, W)`` bool, True on a read's bases."""
    boundary_mask: np.ndarray
    """``(n, W + 1)`` bool, True on a read's ``len(read) + 1`` boundaries."""
    has_errors: np.ndarray
    """``(n,)`` bool record-level truth."""


def pad_labels(reads: list[CorruptedRead], length: int | None = None, ignore_index: int = -100) -> LabelBatch:
    """Stack the labels of ``reads`` into arrays of width ``length`` (default: the longest read).

    ``ignore_index`` fills padding of ``base_labels`` (-100 is what ``torch.nn.CrossEntropyLoss`` skips; it must
    fit in int8).
    """
    lengths = np.array([len(read.read) for read in reads], dtype=np.int64)
    width = int(lengths.max(initial=0)) if length is None else length
    if len(reads) and width < lengths.max():
        raise ValueError(f"length {width} is shorter than the longest read ({int(lengths.max())} bases)")
    if not -128 <= ignore_index <= 127:
        raise ValueError(f"ignore_index must fit in int8, got {ignore_index}")
    base_mask = np.arange(width)[None, :] < lengths[:, None]
    boundary_mask = np.arange(width + 1)[None, :] <= lengths[:, None]
    base_labels = np.full((len(reads), width), ignore_index, dtype=np.int8)
    deletion_after = np.zeros((len(reads), width + 1), dtype=bool)
    if reads:
        base_labels[base_mask] = np.concatenate([read.base_labels for read in reads])
        deletion_after[boundary_mask] = np.concatenate([read.deletion_after for read in reads])
    return LabelBatch(base_labels, deletion_after, base_mask, boundary_mask,
                      np.array([read.has_errors for read in reads], dtype=bool))


__all__ = [
    "BASE_LABELS",
    "CORRECT",
    "ERROR_KINDS",
    "INSERTED",
    "N_BASE",
    "SUBSTITUTED",
    "CorruptedRead",
    "ErrorEvent",
    "ErrorRates",
    "LabelBatch",
    "corrupt_read",
    "event_units",
    "inject_errors",
    "pad_labels",
    "undo_events",
]
