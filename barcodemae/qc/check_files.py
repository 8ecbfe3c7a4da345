"""Check every read of a barcode file for sequencing errors (``barcodemae qc``).

Why: a BOLD or eDNA lab wants to know, before submitting or using its reads, which ones carry a wrong, extra,
unreadable or missing base and where. :func:`check_file` runs the model-free translation check
(:mod:`barcodemae.qc.read_checks`: stop codons in the best reading frame, ambiguous bases, length) on every record
of a FASTA / CSV / TSV file (optionally gzipped; read as every command reads it,
:func:`barcodemae.data.open_barcode_file`) and, given a fine-tuned ENBED detector (an
``EnbedForErrorDetection`` folder, ``qc_model/`` of ``eval/qc.py``), runs it too. It writes one row per input
record, in input order, to a CSV (``.csv``) or TSV (``.tsv``), optionally gzipped (``.gz``):

``id``
    the record id (FASTA: the header's id, :mod:`barcodemae.data.fasta_headers`; a table: its id column,
    ``processid`` or an alias, :mod:`barcodemae.data.tables`).
``length``
    bases of the read as checked (see below).
``verdict``
    ``has_errors`` when at least one check flags the read, else ``clean``; ``rejected`` for a record that cannot
    be checked.
``verdict_by``
    the checks that flag the read, ``;``-separated, in the order ``stop_codons``, ``ambiguous_bases``, ``length``
    (:mod:`~barcodemae.qc.read_checks`), ``detector`` (empty when ``clean`` or ``rejected``).
``frame``
    1, 2 or 3: the base at which the read's best forward reading frame (fewest stop codons) starts its first codon.
``stop_codons``
    ``;``-separated 1-based first bases of the stop codons (``TAA`` / ``TAG``, invertebrate mitochondrial code)
    in that frame.
``ambiguous_bases``
    ``;``-separated 1-based positions of the bases that are not ``A``, ``C``, ``G`` or ``T``.

With a detector (``model_dir``), before ``problem``:

``error_score``
    the detector's probability that the read has at least one error. The detector flags the read when it exceeds
    the threshold (``threshold``, else the one ``eval/qc.py`` chose on validation reads and saved in the folder's
    config, else 0.5).
``substitutions`` / ``insertions`` / ``n_bases``
    ``;``-separated 1-based positions of the bases predicted substituted, inserted or an unreadable ``N``.
``deletions``
    ``;``-separated 1-based positions ``p``: a base is missing right before base ``p`` (``length + 1``: at the end).
``corrected`` (only with a correction model)
    the correction model's read for ``has_errors`` records (greedy, or beam search with ``num_beams > 1``); a
    ``clean`` read is copied unchanged, without being generated (generation is the slow part).

and last:

``problem``
    why a ``rejected`` record could not be checked (empty otherwise).

The detector's positions are its per-base arg-max labels and its deletions of probability > 0.5 (the rules of
``eval/qc.py``, :mod:`barcodemae.qc.inference`); its flag compares the per-read ``error_score`` with the
threshold (in log space, :func:`~barcodemae.qc.saved_choices.flag_reads`: long reads' scores lie within float
rounding of 1), so a read with many small error probabilities can be flagged without listed positions.

Rejected records stay in the output (verdict ``rejected`` plus ``problem``) rather than in a separate report, so
the output has exactly one row per input record and can be joined back to it by row or id. A record is rejected
when its sequence is missing or empty, contains a letter outside IUPAC (``ACGT`` + ``RYSWKMBDHVN``), or (BOLD TSV)
belongs to another marker than COI-5P.

The read as checked is the record's sequence upper-cased, with whitespace and alignment gaps (``-``, ``.``)
removed and ``U`` read as ``T``, as everywhere in the package; unlike the training cleaning it is neither
N-trimmed nor truncated (terminal ``N`` runs are errors to report, and LongT5's relative positions take any
length), so positions are those of the read as written, less its gaps.

The file is read in chunks of ``chunk_size`` records, and a detector runs on each chunk in length-sorted batches
(little padding) under ``torch.inference_mode``; rows are written in input order chunk by chunk into ``<output>.tmp``,
renamed to ``output`` at the end. Memory stays bounded by one chunk however large the file.

Models are loaded through the installed classes (never a folder's copied code): the detector must be an
``EnbedForErrorDetection`` folder and the correction model an ``EnbedForConditionalGeneration`` one, each with its
character tokenizer.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import logging
import math
import os
from collections import Counter
from collections.abc import Iterator, Sequence
from itertools import islice
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from tqdm.auto import tqdm

from barcodemae.data.barcode_files import BarcodeFile, open_barcode_file
from barcodemae.data.input_errors import reading
from barcodemae.data.splits import resolve_splits
from barcodemae.errors import check_output_file
from barcodemae.tokenization.sequence_cleaning import IUPAC_LETTERS, non_iupac_letters, normalise_letters

from .error_injection import INSERTED, N_BASE, SUBSTITUTED
from .read_checks import CHECKS, DEFAULT_MIN_LENGTH, check_reads_without_model
from .saved_choices import READ_CORRECTION_TASK

if TYPE_CHECKING:  # the learned checks load torch and transformers, so only when a folder is given
    from .read_models import ErrorDetector, ReadCorrector

logger = logging.getLogger(__name__)

OUTPUT_DELIMITERS = {".csv": ",", ".tsv": "\t"}
"""Output formats by suffix (before an optional ``.gz``)."""
COLUMNS: tuple[str, ...] = ("id", "length", "verdict", "verdict_by", "frame", "stop_codons", "ambiguous_bases",
                            "problem")
"""Output columns; :data:`DETECTOR_COLUMNS` (and ``corrected``) go before ``problem`` when models are given."""
DETECTOR_COLUMNS: tuple[str, ...] = ("error_score", "substitutions", "insertions", "n_bases", "deletions")
DETECTOR_CHECK = "detector"
"""The ``verdict_by`` name of the learned detector, after the model-free :data:`CHECKS`."""
VERDICTS: tuple[str, ...] = ("clean", "has_errors", "rejected")
DETECTOR_HINT = ("fine-tune one from an ENBED pretraining folder with `python eval/qc.py --model <ENBED folder> "
                 "--data <barcodes.csv> --output <dir>` and pass <dir>/qc_model")
CORRECTOR_HINT = ("fine-tune one with `python eval/qc.py --model <ENBED folder> --data <barcodes.csv> --output <dir> "
                  "--correction-steps 2000` and pass <dir>/correction_model")


# -------------------------------------------------------------------------------------------------------- models
def _model_config(model_dir: str | Path, architecture: str, role: str, hint: str) -> dict[str, Any]:
    """``config.json`` of a model folder whose architecture is ``architecture``, with a tokenizer; else an error
    saying what the folder is and how to make the right one (``hint``)."""
    folder = Path(model_dir)
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder}: no such model folder")
    config_path = folder / "config.json"
    if not config_path.is_file():
        raise ValueError(f"{folder}: not a model folder (no config.json); {hint}")
    config = json.loads(config_path.read_text())
    architectures = config.get("architectures") or []
    if architecture not in architectures:
        found = ", ".join(architectures) or f"model_type {config.get('model_type')!r}"
        raise ValueError(f"{folder}: not an ENBED {role} ({architecture}), its config.json names {found}; {hint}")
    if not (folder / "tokenizer.json").is_file():
        raise ValueError(f"{folder}: no tokenizer.json next to the model; eval/qc.py saves the character "
                         "tokenizer with it (BarcodeTokenizer.char().save_pretrained(folder))")
    return config


def check_detector_folder(model_dir: str | Path) -> None:
    """Refuse a folder that is not an ``EnbedForErrorDetection`` with its tokenizer, saying how to make one."""
    _model_config(model_dir, "EnbedForErrorDetection", "error detector", DETECTOR_HINT)


def check_corrector_folder(model_dir: str | Path) -> None:
    """Refuse a folder that is not an ``EnbedForConditionalGeneration`` with its tokenizer; warn when its config
    does not say it was fine-tuned for correction (an ENBED pretraining folder has the same architecture)."""
    config = _model_config(model_dir, "EnbedForConditionalGeneration", "read-correction model", CORRECTOR_HINT)
    if config.get("finetuning_task") != READ_CORRECTION_TASK:
        logger.warning("%s: config.json does not say the model was fine-tuned for read correction (finetuning_task "
                       "%r); an ENBED pretraining folder generates no corrected reads. To make one: %s",
                       model_dir, READ_CORRECTION_TASK, CORRECTOR_HINT)


# ------------------------------------------------------------------------------------------------------- records
def iter_raw_records(path: str | Path, *, split: str = "all") -> Iterator[tuple[str, str | None, str | None]]:
    """``(id, sequence as written, problem)`` of every record of a barcode file, in file order.

    The file is read as every command reads it (:func:`barcodemae.data.open_barcode_file`: FASTA, a BIOSCAN-5M
    CSV, a BOLD TSV, any CSV/TSV with an id and a sequence column). ``problem`` is set by the reader (a BOLD record
    of another marker), else ``None``. ``split`` selects BIOSCAN-5M partitions (:func:`barcodemae.data.resolve_splits`)
    of a file with a split column. The file, its format and a table's columns are checked at once, before any record
    is read.
    """
    source = open_barcode_file(path, split=split)
    logger.info("%s: reading as %s", source.path, source.description)
    return _records(source, None if split == "all" else resolve_splits(split))


def _records(source: BarcodeFile, splits: Sequence[str] | None) -> Iterator[tuple[str, str | None, str | None]]:
    with reading(source.path):
        for record, reject in source.records(splits):
            yield record.processid, record.dna_barcode, reject


def prepare_read(sequence: str | None) -> tuple[str, str | None]:
    """The read as checked (module docstring) and ``None``, or ``(read, problem)`` when it cannot be checked."""
    if sequence is None:
        return "", "missing sequence"
    read = normalise_letters(sequence)
    if not read:
        return "", "empty sequence"
    bad = non_iupac_letters(read)
    if bad is not None:
        first, letters = bad
        return read, f"non-IUPAC character(s) {letters!r} (first at base {first + 1}); allowed: {IUPAC_LETTERS}"
    return read, None


def positions(mask: np.ndarray) -> str:
    """``;``-joined 1-based positions of the true entries of ``mask`` (``""`` when none)."""
    return ";".join(map(str, (np.flatnonzero(mask) + 1).tolist()))


# --------------------------------------------------------------------------------------------------------- check
def check_reads(
    records: Sequence[tuple[str, str | None, str | None]],
    *,
    min_length: int = DEFAULT_MIN_LENGTH,
    detector: ErrorDetector | None = None,
    corrector: ReadCorrector | None = None,
    num_beams: int = 1,
    batch_size: int = 64,
) -> list[dict[str, Any]]:
    """The output rows (module docstring) of ``(id, sequence, problem)`` records, in their order: the model-free
    checks of every read, then the detector's (flagging a read by its threshold,
    :meth:`~barcodemae.qc.read_models.ErrorDetector.predict`) when one is given, then the corrector's reads of the
    flagged ones."""
    prepared = []
    for _, sequence, reader_problem in records:
        read, problem = prepare_read(sequence)
        prepared.append((read, reader_problem or problem))
    checkable = [i for i, (_, problem) in enumerate(prepared) if problem is None]
    reads = [prepared[i][0] for i in checkable]
    ids = [records[i][0] for i in checkable]
    checks = check_reads_without_model(reads, min_length=min_length)
    flagged_by = [list(check.flagged_by) for check in checks]
    detector_columns: list[dict[str, str]] = [{} for _ in reads]
    if detector is not None:
        predictions, flagged = detector.predict(reads, ids, batch_size)
        for j in np.flatnonzero(flagged).tolist():
            flagged_by[j].append(DETECTOR_CHECK)
        for j, labels in enumerate(predictions.base_labels):
            detector_columns[j] = {
                "error_score": f"{predictions.error_score[j]:.6f}",
                "substitutions": positions(labels == SUBSTITUTED), "insertions": positions(labels == INSERTED),
                "n_bases": positions(labels == N_BASE), "deletions": positions(predictions.deletions[j]),
            }
    corrected = list(reads)
    to_correct = [j for j, flags in enumerate(flagged_by) if flags]
    if corrector is not None and to_correct:
        outputs = corrector.correct([reads[j] for j in to_correct], num_beams=num_beams, batch_size=batch_size)
        for j, output in zip(to_correct, outputs, strict=True):
            corrected[j] = output

    rows: list[dict[str, Any]] = [
        {"id": record_id, "length": len(prepared[i][0]), "verdict": "rejected", "problem": prepared[i][1]}
        for i, (record_id, _, _) in enumerate(records)
    ]
    for j, i in enumerate(checkable):
        rows[i] = {
            "id": ids[j], "length": len(reads[j]), "verdict": "has_errors" if flagged_by[j] else "clean",
            "verdict_by": ";".join(flagged_by[j]), **checks[j].columns(), **detector_columns[j],
            **({"corrected": corrected[j]} if corrector is not None else {}),
        }
    return rows


def _open_output(path: Path, compress: bool) -> io.TextIOBase:
    if compress:
        return io.TextIOWrapper(gzip.open(path, "wb"), encoding="utf-8", newline="")
    return open(path, "w", encoding="utf-8", newline="")


def check_file(
    input_path: str | Path,
    output_path: str | Path,
    *,
    model_dir: str | Path | None = None,
    correction_model: str | Path | None = None,
    min_length: int = DEFAULT_MIN_LENGTH,
    batch_size: int = 64,
    device: str | None = None,
    threshold: float | None = None,
    num_beams: int = 1,
    split: str = "all",
    chunk_size: int = 16_384,
    progress: bool = True,
) -> dict[str, Any]:
    """Check every record of ``input_path`` into ``output_path`` (the module docstring has the columns): the
    model-free checks, and the detector in ``model_dir`` when given. Returns a summary: output path, record count,
    count per verdict, count of reads each check flagged (``flagged_by``), the length minimum, and with a detector
    its threshold (and the correction model when given).

    ``min_length``: bases below which the ``length`` check flags a read (0: off). ``device``: torch device (default
    CUDA when available, else CPU). ``threshold``: ``error_score`` above which the detector flags a read (``None``:
    the detector config's ``verdict_clean_nll_threshold``, chosen by ``eval/qc.py`` on validation reads, else 0.5).
    ``num_beams``: beams of the correction (1 = greedy). ``split``: BIOSCAN splits of a CSV.
    """
    if threshold is not None and model_dir is None:
        raise ValueError("threshold is the detector's error-score threshold: give the detector folder (--model) too")
    if threshold is not None and not 0 <= threshold <= 1:
        raise ValueError(f"threshold must be a probability in [0, 1], got {threshold}")
    if batch_size < 1 or num_beams < 1 or chunk_size < 1:
        raise ValueError(f"batch_size, num_beams and chunk_size must be positive, got {batch_size}, {num_beams}, "
                         f"{chunk_size}")
    if min_length < 0:
        raise ValueError(f"min_length must be >= 0 bases (0 turns the length check off), got {min_length}")
    records = iter_raw_records(input_path, split=split)
    output = Path(output_path)
    check_output_file(output, inputs=(input_path,))
    suffix = output.suffixes[-2] if output.name.endswith(".gz") and len(output.suffixes) > 1 else output.suffix
    if suffix not in OUTPUT_DELIMITERS:
        raise ValueError(f"{output}: output must end in one of {tuple(OUTPUT_DELIMITERS)} (optionally .gz)")
    if model_dir is not None:
        check_detector_folder(model_dir)
    if correction_model is not None:
        check_corrector_folder(correction_model)
    detector = corrector = None
    if model_dir is not None or correction_model is not None:
        from .read_models import load_corrector, load_detector  # torch and transformers: only for the learned checks

        if model_dir is not None:
            detector = load_detector(model_dir, device, threshold)
        if correction_model is not None:
            corrector = load_corrector(correction_model, device)

    columns = [*COLUMNS[:-1], *(DETECTOR_COLUMNS if detector is not None else ()),
               *(["corrected"] if corrector is not None else []), COLUMNS[-1]]
    verdicts: Counter[str] = Counter()
    flag_counts: Counter[str] = Counter()
    temporary = output.with_name(output.name + ".tmp")
    try:
        with (
            _open_output(temporary, compress=output.name.endswith(".gz")) as handle,
            tqdm(unit="read", desc="qc", disable=not progress) as bar,
        ):
            writer = csv.DictWriter(handle, columns, delimiter=OUTPUT_DELIMITERS[suffix], restval="")
            writer.writeheader()
            while chunk := list(islice(records, chunk_size)):
                rows = check_reads(chunk, min_length=min_length, detector=detector, corrector=corrector,
                                   num_beams=num_beams, batch_size=batch_size)
                writer.writerows(rows)
                verdicts.update(row["verdict"] for row in rows)
                flag_counts.update(check for row in rows if row.get("verdict_by")
                                   for check in row["verdict_by"].split(";"))
                bar.update(len(rows))
        if not verdicts:
            raise ValueError(f"{input_path}: no records to check")
        os.replace(temporary, output)
    finally:
        temporary.unlink(missing_ok=True)
    if verdicts["rejected"]:
        logger.warning("%s: %d record(s) could not be checked (verdict 'rejected', see the problem column of %s)",
                       input_path, verdicts["rejected"], output)
    checks = [*CHECKS, *([DETECTOR_CHECK] if detector is not None else [])]
    summary: dict[str, Any] = {"output": str(output), "model": None if model_dir is None else str(model_dir),
                               "num_records": sum(verdicts.values()),
                               **{verdict: verdicts[verdict] for verdict in VERDICTS},
                               "flagged_by": {check: flag_counts[check] for check in checks},
                               "min_length": min_length}
    if detector is not None:
        summary.update(threshold=-math.expm1(-detector.clean_nll_limit), clean_nll_threshold=detector.clean_nll_limit)
    if corrector is not None:
        summary["correction_model"] = str(correction_model)
    return summary


__all__ = [
    "COLUMNS",
    "DETECTOR_CHECK",
    "DETECTOR_COLUMNS",
    "OUTPUT_DELIMITERS",
    "VERDICTS",
    "check_corrector_folder",
    "check_detector_folder",
    "check_file",
    "check_reads",
    "iter_raw_records",
    "positions",
    "prepare_read",
]
