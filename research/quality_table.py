"""Markdown table of evaluation results over seeds: mean ± standard deviation per model (docs/results.md's tables).

    python research/quality_table.py "tiny MAE=runs/q/mae-*" "tiny MLM=runs/q/mlm-*" "4-mer=runs/q/kmer"

Each ``LABEL=GLOB`` names one row; the glob matches training output folders (holding ``eval/results.json`` and
``metrics.jsonl``, whose last ``val_perplexity`` is reported) or evaluation folders (``results.json``). Every
number comes from those files; nothing is computed here except the mean and the sample standard deviation (the
genus k-NN column: the mean over runs at each k, where the results hold it). ``--per-seed`` adds each row's genus
1-NN run by run, in the glob's sorted order.
"""

from __future__ import annotations

import argparse
import glob
import json
import math
from pathlib import Path
from typing import Any

from barcodemae.run_layout import RESULTS_FILE, RunLayout
from barcodemae.training.metrics_log import read_metrics

KNN_SHOWN = (3, 5, 7)
"""The majority-vote k of the genus k-NN column (``eval/run.py`` reports k = 1, 3, 5, 7)."""
KNN_COLUMN = "genus k=" + " / ".join(map(str, KNN_SHOWN))
COLUMNS = (
    ("species probe", ("closed_world_species", "linear_probe", "accuracy")),
    ("species 1-NN", ("closed_world_species", "one_nn", "accuracy")),
    ("genus 1-NN", ("open_world_genus", "one_nn", "accuracy")),
    ("genus 1-NN macro", ("open_world_genus", "one_nn", "macro_accuracy")),
    ("BIN AMI", ("bin_reconstruction", "dna_bin", "ami")),
    ("harmonic mean", ("headline", "harmonic_mean")),
)


def load_run(folder: Path) -> dict[str, float]:
    """The table's numbers (in %) and the last validation perplexity of one run folder."""
    results_file = RunLayout(folder).eval_results
    if not results_file.is_file():
        results_file = folder / RESULTS_FILE
    if not results_file.is_file():
        raise FileNotFoundError(f"{folder}: no eval/results.json or results.json (not a training or evaluation output)")
    metrics = json.loads(results_file.read_text())["metrics"]
    row: dict[str, float] = {}
    for name, path in COLUMNS:
        value: Any = metrics
        for key in path:
            value = value[key]
        row[name] = 100.0 * float(value)
    knn = metrics["open_world_genus"].get("knn", {})  # older results hold no k-NN
    for k in KNN_SHOWN:
        if str(k) in knn:
            row[f"genus k={k}"] = 100.0 * float(knn[str(k)]["accuracy"])
    log = RunLayout(folder).metrics
    if log.is_file():
        perplexities = [r["val_perplexity"] for r in read_metrics(log) if "val_perplexity" in r]
        if perplexities:
            row["val. perplexity"] = float(perplexities[-1])
    return row


def summarise(values: list[float]) -> str:
    """``mean ± sd`` (sample standard deviation), or the value alone for one run."""
    mean = sum(values) / len(values)
    if len(values) == 1:
        return f"{mean:.2f}"
    sd = math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1))
    return f"{mean:.2f} ± {sd:.2f}"


def knn_cell(runs: list[dict[str, float]]) -> str:
    """``a / b / c``: the mean genus accuracy over runs at each k of :data:`KNN_SHOWN` (``–`` where a run lacks it)."""
    names = [f"genus k={k}" for k in KNN_SHOWN]
    if not all(name in run for run in runs for name in names):
        return "–"
    return " / ".join(f"{sum(run[name] for run in runs) / len(runs):.2f}" for name in names)


def render(rows: list[tuple[str, list[dict[str, float]]]], per_seed: bool = False) -> str:
    names = [name for name, _ in COLUMNS] + ["val. perplexity"]
    shown = [*names[:3], KNN_COLUMN, *names[3:]]  # the k-NN cell after genus 1-NN
    lines = ["| model | runs | " + " | ".join(shown) + " |", "|---|---:|" + "---:|" * len(shown)]
    for label, runs in rows:
        cells = [summarise([run[name] for run in runs]) if all(name in run for run in runs) else "–" for name in names]
        lines.append(f"| {label} | {len(runs)} | " + " | ".join([*cells[:3], knn_cell(runs), *cells[3:]]) + " |")
    if per_seed:
        lines.append("")
        lines += [f"{label}: genus 1-NN " + " / ".join(f"{run['genus 1-NN']:.2f}" for run in runs)
                  for label, runs in rows]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("rows", nargs="+", metavar="LABEL=GLOB", help="a table row: its label and its run folders")
    parser.add_argument("--per-seed", action="store_true", help="also list each row's genus 1-NN run by run")
    args = parser.parse_args(argv)
    rows = []
    for spec in args.rows:
        label, sep, pattern = spec.partition("=")
        if not sep:
            parser.error(f"{spec!r}: expected LABEL=GLOB")
        folders = sorted(Path(p) for p in glob.glob(pattern))
        if not folders:
            parser.error(f"{spec!r}: no folder matches {pattern!r}")
        rows.append((label, [load_run(folder) for folder in folders]))
    print(render(rows, per_seed=args.per_seed))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
