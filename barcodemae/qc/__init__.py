"""Barcode quality control (issue #15): injected sequencing errors with exact labels, the translation-check
baseline, the metrics that compare an error detector with it, the token-level labels of a character-level
detector (``token_batch`` / ``read_predictions``) and the detector's / read corrector's inference on plain reads
(``detect_errors`` / ``generate_corrections``). Checking a whole file (``barcodemae qc``) is
:func:`barcodemae.qc.check_files.check_file`, imported from its module (it loads models).

Typical use::

    from barcodemae.qc import ErrorRates, base_level_metrics, check_translation, inject_errors, record_auroc

    reads = inject_errors(barcodes, ErrorRates(substitution=0.005, clean_fraction=0.5), seed=0)
    check = check_translation([read.read for read in reads])
    report = base_level_metrics(reads, check.base_predictions)     # per-type P/R/F1; compare on .detection
    auroc = record_auroc(check.score, [read.has_errors for read in reads])
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
from .inference import (
    READ_CORRECTION_TASK,
    ErrorPredictions,
    clean_nll_threshold,
    detect_errors,
    flag_reads,
    generate_corrections,
)
from .metrics import (
    LABEL_CLASSES,
    PRF,
    BaseLevelReport,
    base_level_metrics,
    best_threshold,
    precision_recall_f1,
    record_auroc,
    record_truth,
    verdict_metrics,
)
from .token_labels import IGNORE_INDEX, TokenBatch, encode_reads, read_predictions, token_batch
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
    "IGNORE_INDEX",
    "INSERTED",
    "LABEL_CLASSES",
    "N_BASE",
    "PRF",
    "READ_CORRECTION_TASK",
    "STOP_CODONS",
    "SUBSTITUTED",
    "TABLE_5",
    "BaseLevelReport",
    "CorruptedRead",
    "ErrorEvent",
    "ErrorPredictions",
    "ErrorRates",
    "LabelBatch",
    "TokenBatch",
    "TranslationCheck",
    "base_level_metrics",
    "best_frame",
    "best_frames",
    "best_threshold",
    "check_translation",
    "clean_nll_threshold",
    "corrupt_read",
    "detect_errors",
    "encode_reads",
    "event_units",
    "flag_reads",
    "generate_corrections",
    "inject_errors",
    "pad_labels",
    "precision_recall_f1",
    "read_predictions",
    "record_auroc",
    "record_truth",
    "stop_codon_positions",
    "token_batch",
    "translate",
    "undo_events",
    "verdict_metrics",
]
