"""``metrics.jsonl``: the run's step-keyed log, written by the training loop and read by resume and the reports.

Why one reader: a run killed mid-write (SIGKILL, out of memory, a lost node) leaves a torn last line, and a report
read while a run is writing can see one too. That line is an interrupted append, not damage, so every reader drops
it with a warning naming the file; an unreadable line *before* the last one cannot come from an interrupted
append, so it is reported as corruption (file and line) instead of being silently skipped.
"""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from accelerate import Accelerator
    from tqdm.auto import tqdm

logger = logging.getLogger(__name__)


def read_metrics(path: str | Path) -> list[dict[str, Any]]:
    """The records of a ``metrics.jsonl``, in file order; blank lines are skipped.

    A torn (unparseable) last line is dropped with a warning; any other line that is not a JSON object raises
    ``ValueError`` naming the file and the line number.
    """
    path = Path(path)
    numbered = [(number, line) for number, line in enumerate(path.read_text().splitlines(), 1) if line.strip()]
    records = []
    for number, line in numbered:
        try:
            record = json.loads(line)
        except json.JSONDecodeError as error:
            problem = str(error)
        else:
            if isinstance(record, dict):
                records.append(record)
                continue
            problem = f"a JSON {type(record).__name__}, not an object"
        if number == numbered[-1][0]:
            logger.warning("%s: line %d is a torn last record (%s; a run stopped mid-write); ignoring it",
                           path, number, problem)
            break
        raise ValueError(f"{path}: line {number} is not a metrics record ({problem}); the file is corrupt, not just "
                         "cut short by a stopped run")
    return records


class MetricsLog:
    """``metrics.jsonl`` + console + accelerate trackers, written by the main process only."""

    def __init__(self, accelerator: Accelerator, path: Path, progress: tqdm) -> None:
        self.accelerator = accelerator
        self.path = path
        self.progress = progress

    def truncate_after(self, step: int) -> None:
        """Drop lines logged after ``step`` by a killed run (and a torn last line), so a resumed curve has no
        duplicates and its first append starts on a line of its own."""
        if not self.accelerator.is_main_process or not self.path.is_file():
            return
        kept = [record for record in read_metrics(self.path) if record["step"] <= step]
        self.path.write_text("".join(json.dumps(record) + "\n" for record in kept))

    def write(self, record: dict[str, Any]) -> None:
        if not self.accelerator.is_main_process:
            return
        with self.path.open("a") as handle:
            handle.write(json.dumps(record) + "\n")
        shown = " ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in record.items())
        self.progress.write(shown, file=sys.stderr)  # with the progress bar; stdout is the final JSON's
        self.accelerator.log({k: v for k, v in record.items() if k != "step"}, step=record["step"])
