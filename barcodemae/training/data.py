"""Where training barcodes come from: a BIOSCAN-5M CSV given by ``--data``, or the embedded simulated default.

The CSV is loaded and cleaned once (``load_bioscan5m``, a memory-mapped, cached Arrow table) with every split;
pretraining, validation, probe keys and probe queries are then index selections of that one table, so label
names mean the same thing everywhere and the file is parsed once.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from barcodemae.data.bioscan5m import load_bioscan5m
from barcodemae.data.report import CleaningReport
from barcodemae.data.splits import resolve_splits
from barcodemae.simulation import write_simulated_dataset
from barcodemae.tokenization import BarcodeTokenizer

from .arguments import TrainingArguments
from .batches import BarcodeSource

logger = logging.getLogger(__name__)

SIMULATED_CSV = "simulated_bioscan5m.csv"


@dataclass
class TrainingData:
    """The loaded table and the row selections the loop needs."""

    path: Path
    dataset: object  # datasets.Dataset with dna_barcode, split, genus, species, ... columns
    label_vocab: object  # barcodemae.data.LabelVocabulary
    report: CleaningReport

    def rows(self, split: str) -> np.ndarray:
        """Row indices whose ``split`` is one of the ``+``-joined names (none for ``''`` or ``none``)."""
        if not split or split == "none":
            return np.zeros(0, dtype=np.int64)
        column = np.asarray(self.dataset.data.column("split").to_numpy(zero_copy_only=False), dtype=object)
        return np.flatnonzero(np.isin(column, resolve_splits(split)))

    def select_rows(
        self, split: str, limit: int | None = None, sample_size: int | None = None, seed: int = 0
    ) -> np.ndarray:
        """Row indices of ``split`` as :meth:`source` reads them (and the taxonomy labels of the same rows).

        ``limit`` keeps the first rows (fixed validation and probe sets); ``sample_size`` keeps a random subset of
        that many rows, drawn with ``seed`` and kept in file order (data-size studies: files are often sorted by
        taxon, so the first rows would be a few genera).
        """
        rows = self.rows(split)[:limit]
        if sample_size is not None:
            if not 0 < sample_size <= len(rows):
                raise ValueError(f"cannot sample {sample_size} barcodes from split {split!r}: it has {len(rows)}")
            rows = np.sort(np.random.default_rng(seed).choice(rows, size=sample_size, replace=False))
        return rows

    def source(
        self,
        split: str,
        require_genus: bool = False,
        limit: int | None = None,
        sample_size: int | None = None,
        seed: int = 0,
    ) -> tuple[BarcodeSource, np.ndarray]:
        """Barcodes of ``split`` and their genus names.

        ``require_genus`` keeps only rows with a genus; the other arguments are :meth:`select_rows`'.
        """
        rows = self.select_rows(split, limit=limit, sample_size=sample_size, seed=seed)
        genus = np.asarray(self.dataset.data.column("genus").to_numpy(zero_copy_only=False), dtype=object)[rows]
        if require_genus:
            keep = np.array([g is not None for g in genus], dtype=bool)
            rows, genus = rows[keep], genus[keep]
        return BarcodeSource(self.dataset.select(rows)), genus


def prepare_simulated_data(folder: Path, num_genera: int, seed: int) -> Path:
    """Write (once) the embedded default dataset into ``folder`` (a run's ``data/``); no file outside the package."""
    path = folder / SIMULATED_CSV
    if not path.is_file():
        write_simulated_dataset(path, num_genera=num_genera, seed=seed)
        logger.info("simulated %s (BIOSCAN-5M format, %d genera)", path, num_genera)
    return path


def load_run_data(
    args: TrainingArguments, tokenizer: BarcodeTokenizer, simulated_folder: Path,
    data_identity: dict[str, Any] | None = None,
) -> TrainingData:
    """A run's table: ``--data``, or the simulated default dataset written (once) into ``simulated_folder``.

    One table serves pretraining (random frames with ``--frame_offset_augmentation``), validation and probes
    (frame 0), so barcodes too short for the strictest of them are rejected up front. ``data_identity``: the run's
    :func:`~barcodemae.training.data_identity.data_fingerprint` (``None`` for the simulated dataset), whose SHA-256
    is the loader's cache key, so a multi-GB ``--data`` file is hashed once per run.
    """
    min_length = tokenizer.min_barcode_length(random_frames=args.frame_offset_augmentation)
    path = Path(args.data) if args.data else prepare_simulated_data(simulated_folder, args.simulate_genera, args.seed)
    return load_training_data(path, min_length=min_length,
                              content_sha256=data_identity["sha256"] if data_identity else None)


def load_training_data(
    path: str | Path, min_length: int = 1, cache_dir: Path | None = None, content_sha256: str | None = None
) -> TrainingData:
    """Load and clean the whole CSV once; rejected records are counted and logged by the loader.

    ``min_length``: the shortest barcode every split's tokenization can handle (see ``min_barcode_length``);
    shorter records are rejected here, with their ids in the cleaning report, rather than failing a batch later.
    ``content_sha256``: the file's SHA-256 when the caller has it (the loader's cache key; hashed otherwise).
    """
    dataset, report, vocab = load_bioscan5m(path, "all", min_length=min_length, return_report=True, cache_dir=cache_dir,
                                            content_sha256=content_sha256)
    too_short = report.rejected_by_reason.get("too_short", 0)
    if too_short:
        logger.warning(
            "%s: rejected %d record(s) shorter than %d bp, too short to tokenize in every reading frame",
            path,
            too_short,
            min_length,
        )
    if len(dataset) == 0:
        raise ValueError(f"{path}: no usable barcodes after cleaning ({report.num_rejected} rejected)")
    return TrainingData(path=Path(path), dataset=dataset, label_vocab=vocab, report=report)


__all__ = ["SIMULATED_CSV", "TrainingData", "load_run_data", "load_training_data", "prepare_simulated_data"]
