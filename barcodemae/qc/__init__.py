"""Barcode quality control (issue #15): injected sequencing errors with exact labels and the translation-check
baseline.

Typical use::

    from barcodemae.qc import ErrorRates, check_translation, inject_errors, pad_labels

    reads = inject_errors(barcodes, ErrorRates(substitution=0.005, clean_fraction=0.5), seed=0)
    batch = pad_labels(reads)                                       # (n, W) labels, (n, W + 1) deletions
    check = check_translation([read.read for read in reads])        # the baseline: stop codons and N
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
from .translation import (
    CODON_ORDER,
    STOP_CODONS,
    TABLE_5,
    TranslationCheck,
    best_frame,
    best_frames,
    check_translation,
    stop_codon_positions,
    translate,
)

__all__ = [
    "BASE_LABELS",
    "CODON_ORDER",
    "CORRECT",
    "ERROR_KINDS",
    "INSERTED",
    "N_BASE",
    "STOP_CODONS",
    "SUBSTITUTED",
    "TABLE_5",
    "CorruptedRead",
    "ErrorEvent",
    "ErrorRates",
    "LabelBatch",
    "TranslationCheck",
    "best_frame",
    "best_frames",
    "check_translation",
    "corrupt_read",
    "event_units",
    "inject_errors",
    "pad_labels",
    "stop_codon_positions",
    "translate",
    "undo_events",
]
