"""``train.py``'s command: parse the arguments, run :func:`~barcodemae.training.loop.run_training`, print the
outcome.

Why apart from the loop: the loop imports torch, transformers, datasets and accelerate, and ``train.py --help`` (or
a mistyped flag) should answer without loading them; they are imported once the arguments are parsed.
"""

from __future__ import annotations

import json
import logging
import os
from typing import Any

from barcodemae.endings import print_ending, training_ending
from barcodemae.errors import report_errors
from barcodemae.run_layout import RunLayout

from .arguments import parse_args


def script_summary(summary: dict[str, Any], output_dir: str) -> dict[str, Any]:
    """``train.py``'s stdout, for scripts: where the run's files are and the evaluation's headline numbers (all of
    the evaluation is in ``eval/results.json``, the run's summary in ``summary.json``)."""
    layout = RunLayout(output_dir)
    shown: dict[str, Any] = {"output_dir": str(layout.root), "global_step": summary["global_step"]}
    if summary.get("stopped_early"):
        return {**shown, "stopped_early": True}
    shown.update(final_model=str(layout.final_model), summary=str(layout.summary))
    if "evaluation" in summary:
        shown.update(results=str(layout.eval_results), headline=summary["evaluation"]["metrics"]["headline"])
    return shown


def main(argv: list[str] | None = None, prog: str | None = None) -> int:
    """``train.py``: a finished run prints :func:`script_summary` on stdout and its ending on stderr
    (:mod:`barcodemae.endings`); expected failures (bad data, a used output folder, a corrupt checkpoint) are one
    line on stderr and exit status 2."""
    # Logging is configured here, never in the library: every process of a distributed run warns, the main one also
    # informs. The launcher's RANK says which process this is (creating accelerate state here would set up the
    # process group before the Accelerator does).
    main_process = int(os.environ.get("RANK", "0")) == 0
    logging.basicConfig(
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        level=logging.INFO if main_process else logging.WARNING,
    )

    def run() -> int:
        args = parse_args(argv, prog)
        from .loop import run_training

        summary = run_training(args)
        if main_process:
            print(json.dumps(script_summary(summary, args.output_dir), indent=2, default=str))
            print_ending(training_ending(summary, output_dir=args.output_dir, data=args.data, objective=args.objective))
        return 0

    return report_errors(prog or "train.py", run)


__all__ = ["main", "script_summary"]
