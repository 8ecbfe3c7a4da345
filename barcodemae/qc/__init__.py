"""Barcode quality control (issue #15): injected sequencing errors with exact labels, for training and evaluating
an error detector.

Typical use::

    from barcodemae.qc import ErrorRates, inject_errors, pad_labels

    reads = inject_errors(barcodes, ErrorRates(substitution=0.005, clean_fraction=0.5), seed=0)
    batch = pad_labels(reads)                                       # (n, W) labels, (n, W + 1) deletions
"""

from .error_injection import (
    BASE_LABELS,
    CORRECT,
    ERROR_KINDS,
    INSERTED,
    N_BASE,
    SUBSTITUTED,
    CorruptedRead,
    ErrorEvent,
    ErrorRates,
    LabelBatch,
    corrupt_read,
    event_units,
    inject_errors,
    pad_labels,
    undo_events,
)

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
