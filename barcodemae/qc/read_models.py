"""The learned checks of ``barcodemae qc``: an ENBED error detector and read corrector, loaded from the folders
``eval/qc.py`` saves (``qc_model/``, ``correction_model/``) and run on a chunk of reads.

Why its own module: it is the part of ``barcodemae qc`` that needs torch and transformers.
:mod:`barcodemae.qc.check_files` imports it only when a folder is given, so the model-free translation check (the
command's default) starts in a fraction of the time.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from barcodemae.devices import resolve_device
from barcodemae.model_folders import from_pretrained_checked
from barcodemae.tokenization import BarcodeTokenizer
from modeling_barcodemae import EnbedForConditionalGeneration, EnbedForErrorDetection

from .inference import ErrorPredictions, detect_errors, generate_corrections
from .saved_choices import DEFAULT_CLEAN_NLL_THRESHOLD, VERDICT_THRESHOLD_KEY, clean_nll_threshold, flag_reads


@dataclass(frozen=True)
class ErrorDetector:
    """A fine-tuned ``EnbedForErrorDetection`` with its tokenizer and the ``-log P(clean)`` above which it flags a
    read (:func:`~barcodemae.qc.saved_choices.flag_reads`)."""

    model: EnbedForErrorDetection
    tokenizer: BarcodeTokenizer
    clean_nll_limit: float

    def predict(self, reads: Sequence[str], record_ids: Sequence[str], batch_size: int
                ) -> tuple[ErrorPredictions, np.ndarray]:
        """The detector's predictions for ``reads`` and ``(n,)`` bool: the reads it flags."""
        predictions = detect_errors(self.model, reads, self.tokenizer, batch_size=batch_size, record_ids=record_ids)
        return predictions, flag_reads(predictions.clean_log_probability, self.clean_nll_limit)


@dataclass(frozen=True)
class ReadCorrector:
    """A ``EnbedForConditionalGeneration`` fine-tuned for read correction, with its tokenizer."""

    model: EnbedForConditionalGeneration
    tokenizer: BarcodeTokenizer

    def correct(self, reads: Sequence[str], num_beams: int, batch_size: int) -> list[str]:
        """The corrected read of each of ``reads``, in their order (greedy for ``num_beams=1``)."""
        return generate_corrections(self.model, reads, self.tokenizer, num_beams=num_beams, batch_size=batch_size)


def load_detector(model_dir: str | Path, device: str | None, threshold: float | None) -> ErrorDetector:
    """The detector in ``model_dir`` on ``device`` (``None``: CUDA when available). Its flag threshold is
    ``threshold`` (an ``error_score``) when given, else the one ``eval/qc.py`` saved in its config, else
    ``error_score > 0.5``. The installed classes load it, never the folder's copied code; safetensors only."""
    model = from_pretrained_checked(EnbedForErrorDetection, model_dir).eval().to(resolve_device(device))
    if threshold is not None:
        limit = clean_nll_threshold(threshold)
    else:
        limit = float(getattr(model.config, VERDICT_THRESHOLD_KEY, DEFAULT_CLEAN_NLL_THRESHOLD))
    return ErrorDetector(model, BarcodeTokenizer.from_pretrained(model_dir), limit)


def load_corrector(model_dir: str | Path, device: str | None) -> ReadCorrector:
    """The read corrector in ``model_dir`` on ``device``, loaded as :func:`load_detector` loads a detector."""
    model = from_pretrained_checked(EnbedForConditionalGeneration, model_dir).eval().to(resolve_device(device))
    return ReadCorrector(model, BarcodeTokenizer.from_pretrained(model_dir))


__all__ = ["ErrorDetector", "ReadCorrector", "load_corrector", "load_detector"]
