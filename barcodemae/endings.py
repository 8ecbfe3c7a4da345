"""The last lines of every long command: what it wrote where, its headline numbers and the command to run next.

Why: a run of minutes or hours used to end in a JSON dump (``train.py``: some 190 lines of it) that named none of
the files it wrote. Every long command (``train.py``, ``eval/run.py``, ``eval/qc.py``, ``barcodemae embed``,
``identify build`` / ``query``, ``qc``, ``export``) now ends with an :class:`Ending` on **stderr**, the human's
channel, with the logs and progress bars; **stdout** keeps the one JSON object that scripts and tests read. The
endings are composed here, from that same JSON summary and the command's arguments, so every command ends alike.

Only the files that exist are named (a run without plots names none), so an ending never points at nothing.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from barcodemae.cli_options import DEFAULT_ALIGN
from barcodemae.run_layout import RESULTS_FILE, RunLayout

REAL_DATA_RECIPE = "docs/training.md#real-data"
"""Where a run on the simulated default data sends its reader for a model of real specimens."""
HEADLINE_NAMES = {
    "closed_world_species_accuracy": "species probe",
    "open_world_genus_accuracy": "genus 1-NN",
    "bin_reconstruction_ami": "BIN AMI",
    "harmonic_mean": "harmonic mean",
}
"""The evaluation's four headline numbers (``results.json``'s ``metrics.headline``), as the README's tables name
them."""
QUERY_NAMES = {"test": "test / test_unseen", "validation": "val / val_unseen"}


@dataclass
class Ending:
    """A command's closing summary: a first line saying what ran, the files written (labelled; only those that
    exist are shown), one line of headline numbers, notes, and the next command."""

    title: str
    written: list[tuple[str, str | Path]] = field(default_factory=list)
    numbers: str | None = None
    notes: list[str] = field(default_factory=list)
    next_command: str | None = None

    def files(self) -> list[tuple[str, Path]]:
        """The written files that exist, with their labels."""
        return [(label, Path(path)) for label, path in self.written if Path(path).exists()]

    def render(self) -> str:
        lines = [self.title]
        files = self.files()
        width = max((len(label) for label, _ in files), default=0)
        previous = None
        for label, path in files:
            shown = f"{path}/" if path.is_dir() else str(path)
            lines.append(f"  {label if label != previous else '':<{width}}  {shown}")
            previous = label
        if self.numbers:
            lines.append(f"  {self.numbers}")
        lines.extend(f"  note: {note}" for note in self.notes)
        if self.next_command:
            lines.append(f"  next: {self.next_command}")
        return "\n".join(lines)


def print_ending(ending: Ending, stream: TextIO | None = None) -> None:
    """Write ``ending`` to stderr (or ``stream``) after whatever stdout holds, so that it is the last thing shown."""
    sys.stdout.flush()
    stream = stream or sys.stderr
    stream.write(f"\n{ending.render()}\n")
    stream.flush()


def percent(value: Any) -> str:
    return "n/a" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{100 * value:.2f}%"


def headline_numbers(headline: Mapping[str, Any], queries: str = "test") -> str:
    """``species probe 96.18%, genus 1-NN 90.27%, ...`` on the query splits named."""
    shown = ", ".join(f"{name} {percent(headline.get(key))}" for key, name in HEADLINE_NAMES.items())
    return f"{QUERY_NAMES.get(queries, queries)}: {shown}"


def evaluation_files(folder: Path, results: Mapping[str, Any]) -> list[tuple[str, Path]]:
    """The report, ``results.json`` and the plots of an evaluation written into ``folder``."""
    plots = results.get("plots") or {}
    return [("report", folder / "report.md"), ("results", folder / RESULTS_FILE),
            *(("plots", folder / name) for name in plots.values() if str(name).endswith(".png"))]


def training_ending(summary: Mapping[str, Any], *, output_dir: str | Path, data: str | Path | None,
                    objective: str) -> Ending:
    """``train.py``'s ending. ``summary``: what :func:`~barcodemae.training.loop.run_training` returned (its
    ``data`` is the table trained on); ``data``: ``--data`` (``None``: the simulated default data, which the ending
    says, with the real-data recipe)."""
    layout = RunLayout(output_dir)
    record = [("run record", layout.summary), ("run record", layout.metrics), ("run record", layout.checkpoints)]
    if summary.get("stopped_early"):
        return Ending(
            f"train.py stopped after step {summary['global_step']} (--stop_after_steps), as if killed",
            written=record,
            next_command="the same command plus --resume_from_checkpoint latest (continues from the last checkpoint)",
        )
    reference = Path(summary["data"])
    evaluation = summary.get("evaluation")
    ending = Ending(
        f"train.py finished: {summary['global_step']} optimiser steps, {summary.get('parameters', 0):,} parameters",
        written=[("model", layout.final_model),
                 *(evaluation_files(layout.eval, evaluation) if evaluation else []), *record],
        numbers=None if not evaluation else headline_numbers(evaluation["metrics"]["headline"],
                                                                 evaluation.get("settings", {}).get("queries", "test")),
    )
    if data is None:
        ending.written.append(("simulated data", reference))
        ending.notes.append(
            "the data were simulated barcodes (barcodemae/simulation.py): this model demonstrates the pipeline and is "
            f"not meant for real specimens; to train one on real barcodes: {REAL_DATA_RECIPE}"
        )
    final = layout.final_model
    if objective == "enbed":
        ending.next_command = f"python eval/qc.py --model {final} --data {reference} --output {layout.root / 'qc'}"
    elif not evaluation:
        ending.next_command = f"python eval/run.py --model {final} --data {reference} --output {layout.eval}"
    elif data is None:
        ending.next_command = ("python train.py --preset small --data my_barcodes.csv --output_dir runs/small   "
                               f"(a BIOSCAN-5M-format CSV; {REAL_DATA_RECIPE})")
    else:
        ending.next_command = (f"barcodemae identify build --model {final} --reference {reference} --split train "
                               f"--output {layout.root / 'ref_index'}")
    return ending


def evaluation_ending(results: Mapping[str, Any], *, output_dir: str | Path, model: str | None, data: str | Path,
                      baseline: str | None = None, prog: str | None = None) -> Ending:
    """``eval/run.py``'s ending: report, results and plots, the four headline numbers, and using the model next.

    ``prog``: the command that ran when it was not the script (``barcodemae evaluate``), named by the title and by a
    next command that evaluates again.
    """
    folder = Path(output_dir)
    evaluated = model if baseline is None else results.get("model", {}).get("name", baseline)
    next_command = (
        f"barcodemae identify build --model {model} --reference {data} --split train --output ref_index"
        if baseline is None else
        f"{prog or 'python eval/run.py'} --model runs/barcodemae-tiny/final_model --data {data} --output "
        f"{folder.parent / 'eval_model'}   (a model against this baseline)"
    )
    return Ending(f"{prog or 'eval/run.py'} finished: {evaluated} on {data}", written=evaluation_files(folder, results),
                  numbers=headline_numbers(results["metrics"]["headline"],
                                           results.get("settings", {}).get("queries", "test")),
                  next_command=next_command)


def embed_ending(summary: Mapping[str, Any], *, model: str) -> Ending:
    """``barcodemae embed``'s ending: the embeddings (and a ``.npy``'s id and manifest files), the cleaning report,
    records embedded and rejected."""
    output = Path(summary["output"])
    beside = [output.with_name(output.name + suffix) for suffix in (".ids.txt", ".json")] if output.suffix == ".npy" \
        else []
    return Ending(
        f"barcodemae embed finished: {summary['num_records']:,} records embedded, {summary['num_rejected']:,} "
        f"rejected",
        written=[("embeddings", output), *(("embeddings", path) for path in beside),
                 ("rejected records", summary["report_path"])],
        numbers=f"{summary['num_records']:,} embeddings of width {summary['hidden_size']}",
        next_command=(f"barcodemae identify build --model {model} --reference my_references.csv --output ref_index   "
                      "(to name such specimens against labelled references)"),
    )


def index_ending(summary: Mapping[str, Any]) -> Ending:
    """``barcodemae identify build``'s ending: the index folder, references kept and rejected, call thresholds."""
    index = Path(summary["index"])
    thresholds = summary.get("call_thresholds")
    notes = [] if thresholds else [
        ("queries are called by percent identity (identify query --align, the default); add --calibration-split "
         "(e.g. val+val_unseen) to fit similarity thresholds that call without alignment (--align 0)")]
    return Ending(
        f"barcodemae identify build finished: {summary['num_references']:,} references, "
        f"{summary['num_rejected']:,} rejected",
        written=[("index", index)],
        numbers=None if not thresholds else
        f"call thresholds: species >= {thresholds['species']:.4f}, genus >= {thresholds['genus']:.4f}",
        notes=notes,
        next_command=f"barcodemae identify query --index {index} --input my_barcodes.fasta --output ids.csv",
    )


def query_ending(summary: Mapping[str, Any], *, input_path: str) -> Ending:
    """``barcodemae identify query``'s ending: the tables, the calls per level with the share of no calls, and the
    accuracies of labelled queries (the top hit's and the neighbours' vote)."""
    output = Path(summary["output"])
    levels = summary.get("call_levels") or {}
    numbers = [f"{summary['num_queries']:,} queries"]
    if levels:
        numbers.append("calls: " + ", ".join(f"{'no call' if level == 'none' else level} {count:,}"
                                             for level, count in levels.items())
                       + f" ({percent(summary.get('no_call_share'))} no call)")
    numbers.extend(f"{source} {rank} accuracy {percent(summary[f'{key}_{rank}_accuracy'])}"
                   for key, source in (("top", "top hit"), ("vote", "vote")) for rank in ("genus", "species")
                   if f"{key}_{rank}_accuracy" in summary)
    notes = []
    if summary.get("uncalibrated"):
        notes.append(f"no query got a call: --align 0 and an index without calibration; align (--align "
                     f"{DEFAULT_ALIGN}) for percent-identity calls, or rebuild the index with --calibration-split; the "
                     "vote_* columns are neighbour votes, not identifications")
    return Ending(
        "barcodemae identify query finished",
        written=[("identifications", output), *((("hits", summary["hits"]),) if summary.get("hits") else ()),
                 ("rejected queries", f"{output}.cleaning_report.json")],
        numbers="; ".join(numbers),
        notes=notes,
        next_command=f"barcodemae qc --input {input_path} --output {output.with_suffix('')}.qc.csv   "
                     "(check the reads for sequencing errors)",
    )


def qc_ending(summary: Mapping[str, Any], *, input_path: str) -> Ending:
    """``barcodemae qc``'s ending: the verdict table and the count per verdict."""
    output = Path(summary["output"])
    verdicts = ", ".join(f"{verdict} {summary[verdict]:,}" for verdict in ("clean", "has_errors", "rejected")
                         if verdict in summary)
    next_command = (
        f"barcodemae qc --model runs/qc/qc_model --input {input_path} --output {output}   "
        "(adds an ENBED error detector, made by eval/qc.py: docs/enbed_qc.md)"
        if summary.get("model") is None else
        f"barcodemae embed --model runs/barcodemae-tiny/final_model --input {input_path} --output reads.parquet"
    )
    return Ending(f"barcodemae qc finished: {summary['num_records']:,} reads checked", written=[("verdicts", output)],
                  numbers=verdicts, next_command=next_command)


def export_ending(summary: Mapping[str, Any]) -> Ending:
    """``barcodemae export``'s ending: the folder (and where it was pushed) and using it next."""
    output = Path(summary["output"])
    pushed = summary.get("pushed_to")
    return Ending(
        f"barcodemae export finished: {len(summary.get('files', []))} files",
        written=[("model folder", output), ("model card", output / "README.md")],
        notes=[f"pushed to the Hub repository {pushed}"] if pushed else [],
        next_command=f"barcodemae embed --model {output} --input my_barcodes.fasta --output my_barcodes.parquet",
    )


def qc_evaluation_ending(results: Mapping[str, Any], *, output_dir: str | Path) -> Ending:
    """``eval/qc.py``'s ending: results and the fine-tuned folders, the detector's read verdicts against the
    translation check's."""
    folder = Path(output_dir)
    detection = results.get("detection", {})

    def verdicts(method: str) -> str:
        scored = detection.get(method, {})
        return (f"verdict F1 {percent(scored.get('verdict', {}).get('f1'))}, "
                f"AUROC {percent(scored.get('record_auroc'))}")

    return Ending(
        "eval/qc.py finished",
        written=[("results", folder / "results.json"), ("error detector", folder / "qc_model"),
                 ("read corrector", folder / "correction_model")],
        numbers=f"detector: {verdicts('model')}; translation check: {verdicts('translation_baseline')}",
        next_command=f"barcodemae qc --model {folder / 'qc_model'} --input reads.fasta --output verdicts.csv",
    )


__all__ = [
    "Ending",
    "embed_ending",
    "evaluation_ending",
    "export_ending",
    "index_ending",
    "print_ending",
    "qc_ending",
    "qc_evaluation_ending",
    "query_ending",
    "training_ending",
]
