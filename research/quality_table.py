"""Markdown table of evaluation results over seeds: mean ± standard deviation per model (docs/results.md's tables).

    python research/quality_table.py "tiny MAE=runs/q/mae-*" "tiny MLM=runs/q/mlm-*" "4-mer=runs/q/kmer"

Each ``LABEL=GLOB`` names one row; the glob matches training output folders (holding ``eval/results.json`` and
``metrics.jsonl``, whose last ``val_perplexity`` is reported) or evaluation folders (``results.json``). Every
number comes from those files; nothing is computed here except the mean and the sample standard deviation.
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


def render(rows: list[tuple[str, list[dict[str, float]]]]) -> str:
    names = [name for name, _ in COLUMNS] + ["val. perplexity"]
    lines = ["| model | runs | " + " | ".join(names) + " |", "|---|---:|" + "---:|" * len(names)]
    for label, runs in rows:
        cells = [summarise([run[name] for run in runs]) if all(name in run for run in runs) else "–" for name in names]
        lines.append(f"| {label} | {len(runs)} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("rows", nargs="+", metavar="LABEL=GLOB", help="a table row: its label and its run folders")
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
    print(render(rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
