"""Barcode quality control (issue #15): injected sequencing errors with exact labels, the translation-check
baseline, the metrics that compare an error detector with it, the token-level labels of a character-level
detector (``token_batch`` / ``read_predictions``) and the detector's / read corrector's inference on plain reads
(``detect_errors`` / ``generate_corrections``). Checking a whole file (``barcodemae qc``) is
:func:`barcodemae.qc.check_files.check_file`, imported from its module (it loads models).

The names of ``__all__`` load on first use (module ``__getattr__``). Why: ``barcodemae qc --help`` imports
:mod:`barcodemae.qc.read_checks`, and this file runs first; importing the detector's torch code here cost seconds.

Typical use::

    from barcodemae.qc import ErrorRates, base_level_metrics, check_translation, inject_errors, record_auroc

    reads = inject_errors(barcodes, ErrorRates(substitution=0.005, clean_fraction=0.5), seed=0)
    check = check_translation([read.read for read in reads])
    report = base_level_metrics(reads, check.base_predictions)     # per-type P/R/F1; compare on .detection
    auroc = record_auroc(check.score, [read.has_errors for read in reads])
"""

from __future__ import annotations

from barcodemae.lazy_names import lazy_names

_SUBMODULES = {
    "BASE_LABELS": ".error_injection",
    "CORRECT": ".error_injection",
    "ERROR_KINDS": ".error_injection",
    "INSERTED": ".error_injection",
    "N_BASE": ".error_injection",
    "SUBSTITUTED": ".error_injection",
    "CorruptedRead": ".error_injection",
    "ErrorEvent": ".error_injection",
    "ErrorRates": ".error_injection",
    "LabelBatch": ".error_injection",
    "corrupt_read": ".error_injection",
    "event_units": ".error_injection",
    "inject_errors": ".error_injection",
    "pad_labels": ".error_injection",
    "undo_events": ".error_injection",
    "ErrorPredictions": ".inference",
    "detect_errors": ".inference",
    "generate_corrections": ".inference",
    "LABEL_CLASSES": ".metrics",
    "PRF": ".metrics",
    "BaseLevelReport": ".metrics",
    "base_level_metrics": ".metrics",
    "best_threshold": ".metrics",
    "precision_recall_f1": ".metrics",
    "record_auroc": ".metrics",
    "record_truth": ".metrics",
    "verdict_metrics": ".metrics",
    "READ_CORRECTION_TASK": ".saved_choices",
    "VERDICT_THRESHOLD_KEY": ".saved_choices",
    "clean_nll_threshold": ".saved_choices",
    "flag_reads": ".saved_choices",
    "IGNORE_INDEX": ".token_labels",
    "TokenBatch": ".token_labels",
    "encode_reads": ".token_labels",
    "read_predictions": ".token_labels",
    "token_batch": ".token_labels",
    "CODON_ORDER": ".translation",
    "STOP_CODONS": ".translation",
    "TABLE_5": ".translation",
    "TranslationCheck": ".translation",
    "best_frame": ".translation",
    "best_frames": ".translation",
    "check_translation": ".translation",
    "stop_codon_positions": ".translation",
    "translate": ".translation",
}
"""Public name -> the submodule that defines it (relative to this package)."""

__getattr__, __dir__ = lazy_names(__name__, _SUBMODULES)

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
    "VERDICT_THRESHOLD_KEY",
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
