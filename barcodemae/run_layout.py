"""Every path of a ``train.py`` output folder, named once for all its writers and readers.

    <output_dir>/
      run.json                which run owns the folder, and which of these entries it wrote
      .train.lock             held by the live training job
      training_args.json      the resolved arguments (preset + flags)
      metrics.jsonl           one JSON object per log / validation event (step-keyed)
      checkpoints/step_N/     accelerator.save_state + trainer_state.json (resumable); step_N.tmp while written
      npmi/                   the NPMI table counted for PMI-based masking (reloaded on resume)
      best_model/             the best step's weights (--load_best_model_at_end); best_model.tmp while written
      final_model/            save_pretrained model + tokenizer + label_vocab.json (AutoModel-loadable),
                              and npmi_table.safetensors when PMI-based masking was used
      eval/results.json       evaluation of final_model/ (with eval/run.py's report and plots)
      summary.json            steps, parameters, last log line, final_model/'s step and evaluation
      data/                   the simulated dataset, when no --data was given
      barcodemae/             TensorBoard logs (--report_to)

Why one place: the training loop, checkpoints, the best-model tracker, the run record, ``barcodemae export``,
``--init_from`` and the benchmarks all find these files by name; spelled in each of them, a renamed folder would
be written under one name and looked for under another. The names are module constants for code that only needs a
name (the run record's list of a run's files, an export searching parent folders); :class:`RunLayout` joins them to
one folder. Top-level, not in :mod:`barcodemae.training`: the evaluation suite and the export read it without
importing the training loop.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

RUN_FILE = "run.json"
LOCK_FILE = ".train.lock"
TRAINING_ARGS_FILE = "training_args.json"
METRICS_FILE = "metrics.jsonl"
SUMMARY_FILE = "summary.json"
CHECKPOINTS_DIR = "checkpoints"
NPMI_DIR = "npmi"
BEST_MODEL_DIR = "best_model"
FINAL_MODEL_DIR = "final_model"
EVAL_DIR = "eval"
RESULTS_FILE = "results.json"
"""The evaluation's results: ``eval/run.py`` writes it into its ``--output`` (a run's ``eval/``), an exported model
folder carries a copy."""
SIMULATED_DATA_DIR = "data"
TRACKER_PROJECT = "barcodemae"
"""The project name given to accelerate's trackers, so also the folder TensorBoard writes into."""
STAGING_SUFFIX = ".tmp"
"""Added to a folder's name while it is written, then renamed away: a folder with it was never completed."""
BEST_MODEL_STAGING_DIR = BEST_MODEL_DIR + STAGING_SUFFIX
CHECKPOINT_PREFIX = "step_"
CHECKPOINT_NAME = re.compile(rf"^{CHECKPOINT_PREFIX}(\d+)$")


@dataclass(frozen=True)
class RunLayout:
    """The paths of one run folder (``root``: ``--output_dir``)."""

    root: Path

    def __post_init__(self) -> None:
        object.__setattr__(self, "root", Path(self.root))  # accept a str, as --output_dir is one

    @classmethod
    def of_checkpoint(cls, checkpoint: Path) -> RunLayout:
        """The run folder holding ``checkpoints/step_N`` (links resolved)."""
        return cls(checkpoint.resolve().parent.parent)

    @property
    def run_record(self) -> Path:
        return self.root / RUN_FILE

    @property
    def lock(self) -> Path:
        return self.root / LOCK_FILE

    @property
    def training_args(self) -> Path:
        return self.root / TRAINING_ARGS_FILE

    @property
    def metrics(self) -> Path:
        return self.root / METRICS_FILE

    @property
    def summary(self) -> Path:
        return self.root / SUMMARY_FILE

    @property
    def checkpoints(self) -> Path:
        return self.root / CHECKPOINTS_DIR

    def checkpoint(self, step: int) -> Path:
        """``checkpoints/step_N``: the complete checkpoint of optimiser step ``step``."""
        return self.checkpoints / f"{CHECKPOINT_PREFIX}{step}"

    def checkpoint_staging(self, step: int) -> Path:
        """``checkpoints/step_N.tmp``: that checkpoint while it is written."""
        return self.checkpoints / f"{CHECKPOINT_PREFIX}{step}{STAGING_SUFFIX}"

    @staticmethod
    def checkpoint_step(folder: Path) -> int | None:
        """The step of a complete checkpoint folder's name (``None``: not one, e.g. a ``.tmp`` folder)."""
        match = CHECKPOINT_NAME.match(folder.name)
        return int(match.group(1)) if match else None

    @property
    def npmi(self) -> Path:
        return self.root / NPMI_DIR

    @property
    def best_model(self) -> Path:
        return self.root / BEST_MODEL_DIR

    @property
    def best_model_staging(self) -> Path:
        return self.root / BEST_MODEL_STAGING_DIR

    @property
    def final_model(self) -> Path:
        return self.root / FINAL_MODEL_DIR

    @property
    def eval(self) -> Path:
        return self.root / EVAL_DIR

    @property
    def eval_results(self) -> Path:
        return self.eval / RESULTS_FILE

    @property
    def simulated_data(self) -> Path:
        return self.root / SIMULATED_DATA_DIR


__all__ = [
    "BEST_MODEL_DIR",
    "BEST_MODEL_STAGING_DIR",
    "CHECKPOINTS_DIR",
    "EVAL_DIR",
    "FINAL_MODEL_DIR",
    "LOCK_FILE",
    "METRICS_FILE",
    "NPMI_DIR",
    "RESULTS_FILE",
    "RUN_FILE",
    "SIMULATED_DATA_DIR",
    "STAGING_SUFFIX",
    "SUMMARY_FILE",
    "TRACKER_PROJECT",
    "TRAINING_ARGS_FILE",
    "RunLayout",
]
