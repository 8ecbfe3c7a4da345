"""Train a barcode BPE tokenizer on a barcode file and save it as a tokenizer folder (``barcodemae train-bpe``).

Why here and not in :mod:`barcodemae.tokenization.bpe`: reading files is :mod:`barcodemae.data`'s job, and the data
readers use the tokenizer's cleaning policy, so the tokenization package must not import them back. This module sits
above both: :func:`barcodemae.data.load_barcodes` streams the records (CSV, FASTA or BOLD TSV; invalid records are
counted and skipped unless ``strict``), :func:`barcodemae.tokenization.train_bpe_tokenizer` learns the merges.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from barcodemae.data import load_barcodes
from barcodemae.tokenization import train_bpe_tokenizer
from barcodemae.tokenization.sequence_cleaning import DEFAULT_MAX_LENGTH

logger = logging.getLogger(__name__)

TRAINING_SUMMARY_FILE = "bpe_training.json"
"""Written into the tokenizer folder: the tokenizer's description, the data and what cleaning did to it."""


def train_bpe_on_file(
    data: str | Path,
    output: str | Path,
    *,
    split: str | Iterable[str] = "all",
    strict: bool = False,
    max_bp: int = DEFAULT_MAX_LENGTH,
    **training: Any,
) -> dict[str, Any]:
    """Train BPE on the barcodes of ``data`` (``split``: CSV rows of these BIOSCAN splits), save the tokenizer folder
    ``output`` with :data:`TRAINING_SUMMARY_FILE`, and return that summary.

    ``max_bp``: barcodes are read and trained on truncated to this many bases; ``training``: the other keywords of
    :func:`~barcodemae.tokenization.train_bpe_tokenizer` (``vocab_size``, ``min_frequency``, ``max_token_length``).
    """
    records, report, _ = load_barcodes(
        data, split=split, streaming=True, max_length=max_bp, strict=strict, return_report=True
    )
    tokenizer = train_bpe_tokenizer((record["dna_barcode"] for record in records), max_bp=max_bp, **training)
    logger.info("%s", report)
    output = Path(output)
    tokenizer.save_pretrained(output)
    summary = {
        **tokenizer.describe(), "data": str(data), "splits": split, **tokenizer.training_tally,
        "reader_report": str(report),
    }
    (output / TRAINING_SUMMARY_FILE).write_text(json.dumps(summary, indent=2) + "\n")
    return summary


__all__ = ["TRAINING_SUMMARY_FILE", "train_bpe_on_file"]
