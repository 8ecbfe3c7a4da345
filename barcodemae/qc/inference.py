"""Running a fine-tuned ENBED error detector or read corrector on plain reads, in length-sorted batches.

Why here: ``eval/qc.py`` (scoring on injected errors) and ``barcodemae qc`` (checking a user's reads) run the same
models the same way; one implementation keeps their predictions identical. Both functions take the reads as
written (no cleaning, trimming or truncation, see :mod:`barcodemae.qc.token_labels`), batch them longest first so
padding stays small, run under ``torch.inference_mode`` on the model's device, and return results in input order.

Prediction rules (those of ``eval/qc.py``): a base's label is the arg-max of its four logits, a deletion is
predicted where its probability exceeds 0.5 (logit > 0); the read's ``error_score`` is the model's, and a read
is flagged (:func:`barcodemae.qc.saved_choices.flag_reads`) when its ``-clean_log_probability`` exceeds a
threshold: the same order as ``error_score`` without its rounding to 1 for long reads.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from barcodemae.inference import length_batches

from .token_labels import encode_reads, read_predictions


@dataclass(frozen=True, eq=False)  # numpy fields
class ErrorPredictions:
    """A detector's predictions for ``n`` reads, in input order."""

    base_labels: list[np.ndarray]
    """Per read, ``(L,)`` int8 predicted label of each base (``barcodemae.qc.BASE_LABELS``)."""
    deletions: list[np.ndarray]
    """Per read, ``(L + 1,)`` bool: a base is missing right before base ``i`` (``i = L``: at the read's end)."""
    clean_log_probability: np.ndarray
    """``(n,)`` float64 log-probability that the read has no error (the model's, before any rounding)."""

    @property
    def error_score(self) -> np.ndarray:
        """``(n,)`` float64 probability that the read has any error, ``1 - exp(clean_log_probability)``."""
        return -np.expm1(self.clean_log_probability)


def _model_inputs(
    reads: Sequence[str], tokenizer: Any, device: torch.device, record_ids: Sequence[str] | None
) -> dict[str, torch.Tensor]:
    input_ids, attention_mask = encode_reads(reads, tokenizer, record_ids)
    return {"input_ids": torch.from_numpy(input_ids).to(device),
            "attention_mask": torch.from_numpy(attention_mask).to(device)}


@torch.inference_mode()
def detect_errors(
    model: Any,
    reads: Sequence[str],
    tokenizer: Any,
    *,
    batch_size: int = 64,
    record_ids: Sequence[str] | None = None,
) -> ErrorPredictions:
    """Per-base labels, deletions and per-read error scores of an ``EnbedForErrorDetection`` for ``reads``
    (uppercase IUPAC letters; ``record_ids`` name a read that is not in errors)."""
    lengths = np.fromiter(map(len, reads), dtype=np.int64, count=len(reads))
    labels: list[np.ndarray] = [np.zeros(0, np.int8)] * len(reads)
    deletions: list[np.ndarray] = [np.zeros(1, bool)] * len(reads)
    clean_log_probability = np.zeros(len(reads), dtype=np.float64)
    for rows in length_batches(lengths, batch_size):
        out = model(**_model_inputs([reads[i] for i in rows], tokenizer, model.device,
                                    None if record_ids is None else [record_ids[i] for i in rows]))
        batch_labels, batch_deletions = read_predictions(
            out.base_logits.argmax(-1).cpu().numpy(), (out.deletion_logits > 0).cpu().numpy(), lengths[rows]
        )
        for row, label, deletion in zip(rows.tolist(), batch_labels, batch_deletions, strict=True):
            labels[row], deletions[row] = label, deletion
        clean_log_probability[rows] = out.clean_log_probability.double().cpu().numpy()
    return ErrorPredictions(labels, deletions, clean_log_probability)


@torch.inference_mode()
def generate_corrections(
    model: Any,
    reads: Sequence[str],
    tokenizer: Any,
    *,
    num_beams: int,
    batch_size: int,
    max_extra_bases: int = 16,
) -> list[str]:
    """The corrected barcode of each read by an ``EnbedForConditionalGeneration`` fine-tuned for correction:
    generation (greedy for ``num_beams=1``, else beam search) up to the batch's longest read +
    ``max_extra_bases`` tokens, cut at the first ``[SEP]``; only single-letter tokens (bases, IUPAC codes, ``N``)
    are kept, so sentinels and special tokens never reach the output."""
    letters = np.zeros(len(tokenizer), dtype=np.uint8)
    for token, index in tokenizer.get_vocab().items():
        if len(token) == 1:
            letters[index] = ord(token)
    corrected = [""] * len(reads)
    for rows in length_batches([len(read) for read in reads], batch_size):
        chunk = [reads[i] for i in rows]
        generated = model.generate(
            **_model_inputs(chunk, tokenizer, model.device, None),
            max_new_tokens=max(map(len, chunk)) + max_extra_bases, num_beams=num_beams, do_sample=False,
        )[:, 1:].cpu().numpy()  # drop the decoder start
        ended = np.cumsum(generated == tokenizer.sep_token_id, axis=1) > 0
        codes = np.where(ended | (generated >= len(letters)), 0, letters[generated.clip(max=len(letters) - 1)])
        for row, text in zip(rows.tolist(), codes, strict=True):
            corrected[row] = text[text > 0].tobytes().decode("ascii")
    return corrected


__all__ = [
    "ErrorPredictions",
    "detect_errors",
    "generate_corrections",
]
