"""Train a byte-pair-encoding tokenizer on DNA barcodes (DNABERT-2 style) and save it as a tokenizer folder.

Design
------
* Every training sequence goes through the shared cleaning policy (:func:`clean_barcode`, truncated to
  ``max_bp``), so BPE learns merges on exactly the strings the tokenizer will later see.
* BPE runs over the raw nucleotide letters: no byte-level pre-tokenizer (barcodes are ASCII letters, so bytes add
  nothing) and no pre-tokenizer at all — a barcode has no word boundaries, so each barcode is one "word" and
  merges may span any position, as in DNABERT-2.
* The initial alphabet is ACGT plus every IUPAC ambiguity code, so an ``N`` or ``R`` inside a barcode is its own
  one-base token rather than ``[UNK]``; every token is then a run of bases, and ``nucleotide_spans`` is exact.
* Special tokens take ids ``[PAD]=0 [UNK]=1 [CLS]=2 [SEP]=3 [MASK]=4`` like the k-mer and character tokenizers.

Training on a barcode file (CSV, FASTA or BOLD TSV, through the package's readers) is ``barcodemae train-bpe``
(:mod:`barcodemae.bpe_files`): this package may not import :mod:`barcodemae.data`, whose readers use its cleaning
policy. :func:`read_csv_column` is a dependency-free reader of one CSV column used by the benchmark.
"""

from __future__ import annotations

import csv
import gzip
import io
import logging
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from tokenizers import Tokenizer, trainers
from tokenizers.models import BPE

from .auto_tokenizer import BarcodeTokenizer  # registered, so a trained tokenizer saves its auto_map
from .sequence_cleaning import (
    DEFAULT_MAX_LENGTH,
    IUPAC_LETTERS,
    InvalidBarcodeError,
    clean_barcode,
)
from .tokenization_barcodemae import SPECIAL_TOKENS, _with_special_tokens, dna_normalizer

logger = logging.getLogger(__name__)

MIN_VOCAB_SIZE = len(SPECIAL_TOKENS) + len(IUPAC_LETTERS) + 1


@dataclass
class CleaningTally:
    """What happened to the training sequences, so skipped records are counted, not silently lost."""

    used: int = 0
    truncated: int = 0
    rejected: int = 0
    reasons: Counter = field(default_factory=Counter)
    examples: list[str] = field(default_factory=list)

    def as_dict(self) -> dict:
        return {
            "used": self.used,
            "truncated": self.truncated,
            "rejected": self.rejected,
            "reasons": dict(self.reasons),
            "examples": self.examples,
        }


def cleaned_sequences(
    sequences: Iterable[str], *, max_bp: int, skip_invalid: bool, tally: CleaningTally
) -> Iterator[str]:
    """Yield cleaned barcodes; on a bad one raise (default) or count it in ``tally`` and go on."""
    for index, raw in enumerate(sequences):
        try:
            cleaned = clean_barcode(raw, record_id=f"sequence {index}", max_length=max_bp)
        except InvalidBarcodeError as error:
            if not skip_invalid:
                raise
            tally.rejected += 1
            tally.reasons[error.reason.split(":")[0].split(" (")[0]] += 1
            if len(tally.examples) < 5:
                tally.examples.append(str(error))
            continue
        tally.used += 1
        tally.truncated += cleaned.truncated_bases > 0
        yield cleaned.sequence


def train_bpe_tokenizer(
    sequences: Iterable[str],
    vocab_size: int = 4096,
    min_frequency: int = 2,
    *,
    max_bp: int = DEFAULT_MAX_LENGTH,
    max_token_length: int | None = None,
    skip_invalid: bool = False,
    length: int | None = None,
    show_progress: bool = True,
) -> BarcodeTokenizer:
    """Train a barcode BPE with the ``tokenizers`` BpeTrainer over any iterable of barcodes (streamed once).

    Args:
        sequences: raw barcodes (a list, a generator over a CSV, a ``datasets`` column...).
        vocab_size: final vocabulary size including the 5 special tokens and the 15 IUPAC letters.
        min_frequency: a pair must occur this often to be merged.
        max_bp: barcodes are truncated to this many bases before training (and by the tokenizer afterwards).
        max_token_length: optional cap on the bases in one token.
        skip_invalid: count and skip bad barcodes instead of raising on the first one; the tally is logged and
            kept on the returned tokenizer as ``training_tally`` (a dict).
        length: number of sequences, if known, for the progress bar.

    Returns a :class:`BarcodeTokenizer` with ``scheme="bpe"``; ``save_pretrained`` writes a folder that loads
    with ``AutoTokenizer.from_pretrained(folder, trust_remote_code=True)``.
    """
    if vocab_size < MIN_VOCAB_SIZE:
        raise ValueError(
            f"vocab_size must be at least {MIN_VOCAB_SIZE} (5 special tokens + 15 IUPAC letters + 1 merge), "
            f"got {vocab_size}"
        )
    if min_frequency < 1:
        raise ValueError(f"min_frequency must be >= 1, got {min_frequency}")
    backend = Tokenizer(BPE(unk_token="[UNK]", fuse_unk=False))
    backend.normalizer = dna_normalizer()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=min_frequency,
        special_tokens=list(SPECIAL_TOKENS),
        initial_alphabet=list(IUPAC_LETTERS),
        limit_alphabet=len(IUPAC_LETTERS),
        max_token_length=max_token_length,
        show_progress=show_progress,
    )
    tally = CleaningTally()
    backend.train_from_iterator(
        cleaned_sequences(sequences, max_bp=max_bp, skip_invalid=skip_invalid, tally=tally),
        trainer=trainer,
        length=length,
    )
    if tally.used == 0:
        raise ValueError(f"no usable barcodes to train BPE on ({tally.rejected} rejected: {dict(tally.reasons)})")
    if tally.rejected:
        logger.warning("BPE training skipped %d invalid barcode(s): %s", tally.rejected, dict(tally.reasons))
    _with_special_tokens(backend)
    tokenizer = BarcodeTokenizer(tokenizer_object=backend, scheme="bpe", max_bp=max_bp)
    tokenizer.training_tally = tally.as_dict()
    return tokenizer


def read_csv_column(
    path: str | Path, column: str = "dna_barcode", splits: Sequence[str] | None = None
) -> Iterator[str]:
    """Stream one column of a (optionally gzipped) BIOSCAN-5M-style CSV, optionally keeping only some ``split``
    values."""
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as raw, io.TextIOWrapper(raw, encoding="utf-8", newline="") as handle:
        reader = csv.DictReader(handle)
        fields = reader.fieldnames or []
        if column not in fields:
            raise ValueError(f"{path}: no column {column!r} (columns: {fields})")
        if splits and "split" not in fields:
            raise ValueError(f"{path}: --split given but the file has no 'split' column")
        wanted = set(splits or ())
        for row in reader:
            if not wanted or row["split"] in wanted:
                yield row[column]
