"""Identification benchmark (issue #29): ``barcodemae identify`` and the field's tools side by side, same cores.

    nice -n 10 python bench/bench_alignment.py --model runs/untrained/small-42 --max-queries 300 \\
        --output alignment.json

Two tasks on a BIOSCAN-format CSV (default dev), the references being its ``train`` barcodes:

- ``unseen-genus``: the genus of each ``test_unseen`` barcode, whose species is absent from the library;
- ``seen-species``: the species of each ``test`` barcode, whose species is in it.

Rows (``identification_methods.registered_methods``): the 4-mer cosine top hit, ``barcodemae identify`` with each
``--model`` (its identity-calls row reads the same index and query run as its top-hit row, so both show one time),
VSEARCH ``--usearch_global`` with its default heuristics and exhaustive, BLAST+ ``blastn`` as megablast and as ``-task
blastn``, and SINTAX (``vsearch --sintax``, cutoff 0.8). Every method reads the same cleaned barcodes: the references
as one FASTA with SINTAX headers (BLAST: ``>processid``), the queries as ``>processid``. A program not on ``PATH``
skips its rows with the way to install it; this script installs nothing.

Columns: accuracy (a no call counts as wrong), macro accuracy (the mean over the true taxa of their accuracy), the
share of no calls, the precision of calls (right among those called), queries/s of the query phase (the query
command's wall clock, start-up and loading the built reference included), the seconds to build the reference (BLAST
database, VSEARCH UDB, embedding index), the peak memory (``timing.command_memory_method``; the in-process 4-mer row:
this process's own peak) and the threads every program is pinned to (``--threads``; ``makeblastdb`` and VSEARCH's UDB
build are single-threaded). ``--max-queries N`` draws N queries per task (seeded) so that slow tools can run on a
subsample. Prints a Markdown table per task; ``--output`` gets the JSON with every number, the exact command
lines and the tool versions.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from identification_methods import (
    INSTALL_HINTS,
    SINTAX_LETTERS,
    IdentificationMethod,
    Phase,
    QuerySet,
    ReferenceLibrary,
    registered_methods,
    write_fasta,
    write_sintax_fasta,
)

from barcodemae.data import load_bioscan5m
from barcodemae.eval.metrics import classification_scores

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "bold_coi" / "dev.csv.gz"
KEY_SPLIT = "train"
NO_CALL = "<no call>"
"""Stands for a missing call when scoring: equal to no taxon, so it is wrong wherever it stands."""
VERSION_FLAGS = {"vsearch": "--version", "blastn": "-version", "makeblastdb": "-version", "barcodemae": "--version"}
THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "RAYON_NUM_THREADS")
"""Environment variables that pin the threads of torch (OpenMP, MKL) and the tokenizers (Rayon) in a program."""


@dataclass(frozen=True)
class Task:
    """Which queries are named at which rank."""

    name: str
    query_split: str
    rank: str
    description: str


TASKS = (
    Task("unseen-genus", "test_unseen", "genus", "genus of `test_unseen` barcodes (species absent from the library)"),
    Task("seen-species", "test", "species", "species of `test` barcodes (species in the library)"),
)


def load_split(data: Path, split: str) -> pd.DataFrame:
    """Cleaned ``processid``, ``dna_barcode`` and rank columns (those SINTAX headers carry) of one split."""
    columns = ["processid", "dna_barcode", *SINTAX_LETTERS]
    return load_bioscan5m(data, split).select_columns(columns).to_pandas()


def draw_queries(records: pd.DataFrame, rank: str, limit: int | None, seed: int) -> pd.DataFrame:
    """The records named at ``rank``; at most ``limit`` of them, drawn with ``seed`` (kept in file order)."""
    named = records[records[rank].notna()].reset_index(drop=True)
    if limit is None or len(named) <= limit:
        return named
    return named.iloc[np.sort(np.random.default_rng(seed).permutation(len(named))[:limit])].reset_index(drop=True)


def score_calls(truth: pd.Series, called: pd.Series) -> dict[str, float | None]:
    """``accuracy`` and ``macro_accuracy`` (no call = wrong), ``no_call_share`` and ``call_precision`` (right among
    the called; ``None`` when nothing was called) of the calls ``called`` (missing: no call) against ``truth``."""
    missing = called.isna().to_numpy()
    filled = np.where(missing, NO_CALL, called.astype(object).to_numpy())
    right = filled == truth.to_numpy()
    return {
        **classification_scores(truth.to_numpy(dtype=object), filled),
        "no_call_share": float(missing.mean()),
        "call_precision": float(right[~missing].mean()) if (~missing).any() else None,
    }


def skip_reason(method: IdentificationMethod) -> str | None:
    """Why ``method`` cannot run here (a program it needs is not on ``PATH``), or ``None``."""
    missing = [tool for tool in method.tools if shutil.which(tool) is None]
    if not missing:
        return None
    return "; ".join(f"{tool} not on PATH ({INSTALL_HINTS[tool]})" for tool in missing)


def tool_version(tool: str) -> str:
    """The line of what its version flag prints that starts with the program's name and a version number
    (``vsearch v2.22.1_linux_x86_64, ...``, ``blastn: 2.12.0+``), else the first line."""
    result = subprocess.run([tool, VERSION_FLAGS[tool]], capture_output=True, text=True, check=False)
    lines = [line.strip() for line in (result.stdout + result.stderr).splitlines() if line.strip()]
    versioned = re.compile(rf"{re.escape(tool)}\W*v?\d", re.IGNORECASE)
    return next((line for line in lines if versioned.match(line)), lines[0] if lines else "unknown")


def result_row(method: IdentificationMethod, task: Task, queries: pd.DataFrame, calls: pd.DataFrame, built: Phase,
               answered: Phase, threads: int) -> dict[str, Any]:
    """One row of the report: the scores of ``calls`` on ``task`` and the measurements of both phases."""
    called = calls[task.rank].reindex(queries["processid"])  # a query the method left out: no call
    peaks = [phase.peak_memory_mib for phase in (built, answered) if phase.peak_memory_mib is not None]
    return {
        "task": task.name, "key": method.key, "method": method.label, "queries": len(queries),
        **score_calls(queries[task.rank], called),
        "query_s": round(answered.seconds, 3),
        "queries_per_s": round(len(queries) / answered.seconds, 2),
        "reference_build_s": round(built.seconds, 3),
        "peak_memory_mib": round(max(peaks), 1) if peaks else None,
        "build_peak_memory_mib": built.peak_memory_mib, "query_peak_memory_mib": answered.peak_memory_mib,
        "memory_method": answered.memory_method, "threads": threads,
        "commands": {"build": list(built.commands), "query": list(answered.commands)},
    }


def percent(value: float | None) -> str:
    return "–" if value is None else f"{100 * value:.2f}"


TABLE_HEADER = (
    "| method | queries | accuracy | macro | no call | precision of calls | queries/s | reference build (s) "
    "| peak memory (MiB) | threads |\n|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
)


def markdown_tables(report: dict[str, Any]) -> str:
    """One Markdown table per task (the rows of the report), percentages for the scores."""
    lines = []
    for task in report["tasks"]:
        used, available = task["queries_used"], task["queries_available"]
        heading = (f"**{task['name']}**: {task['description']}; {used:,} of {available:,} queries, "
                   f"{report['references']:,} `{KEY_SPLIT}` references, {report['threads']} threads")
        lines += [heading, "", TABLE_HEADER]
        for row in (row for row in report["rows"] if row["task"] == task["name"]):
            memory = "–" if row["peak_memory_mib"] is None else f"{row['peak_memory_mib']:,.0f}"
            in_process = "" if row["commands"]["query"] else " (in-process)"
            lines.append(
                f"| {row['method']} | {row['queries']:,} | {percent(row['accuracy'])} | "
                f"{percent(row['macro_accuracy'])} | {percent(row['no_call_share'])} | "
                f"{percent(row['call_precision'])} | {row['queries_per_s']:,.1f} | {row['reference_build_s']:,.1f} | "
                f"{memory}{in_process} | {row['threads']} |"
            )
        lines.append("")
    if report["skipped"]:
        lines += [f"Skipped: {method}: {reason}" for method, reason in report["skipped"].items()] + [""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA,
                        help=f"BIOSCAN-format CSV with {KEY_SPLIT}, test and test_unseen splits")
    parser.add_argument("--model", type=Path, action="append", default=[],
                        help="model folder for a `barcodemae identify` row (repeatable)")
    parser.add_argument("--methods", default=None,
                        help="comma-separated row keys to run (default: all; see the JSON's `key`)")
    parser.add_argument("--max-queries", type=int, default=None, help="queries drawn per task (default: all)")
    parser.add_argument("--threads", type=int, default=2, help="threads of every program (default 2)")
    parser.add_argument("--seed", type=int, default=0, help="query draw and SINTAX's --randseed")
    parser.add_argument("--batch-size", type=int, default=256, help="barcodes per forward pass of identify")
    parser.add_argument("--output", type=Path, required=True, help="the JSON report")
    args = parser.parse_args(argv)
    env = {**os.environ, **dict.fromkeys(THREAD_VARIABLES, str(args.threads))}
    torch.set_num_threads(args.threads)
    methods = registered_methods(args.threads, env, args.seed, args.model, args.batch_size)
    if args.methods is not None:
        chosen, known = set(args.methods.split(",")), {method.key for method in methods}
        if chosen - known:
            parser.error(f"--methods: unknown {sorted(chosen - known)}; known: {', '.join(sorted(known))}")
        methods = [method for method in methods if method.key in chosen]

    records = load_split(args.data, KEY_SPLIT)
    task_queries = {}
    tasks = []
    for task in TASKS:
        available = load_split(args.data, task.query_split)
        task_queries[task.name] = draw_queries(available, task.rank, args.max_queries, args.seed)
        tasks.append({"name": task.name, "description": task.description, "query_split": task.query_split,
                      "rank": task.rank, "queries_available": int(available[task.rank].notna().sum()),
                      "queries_used": len(task_queries[task.name])})
    rows, skipped, versions = [], {}, {}
    with tempfile.TemporaryDirectory() as temporary:
        work = Path(temporary)
        library = ReferenceLibrary(records, write_fasta(records, work / "references.fasta"),
                                   write_sintax_fasta(records, work / "references.sintax.fasta"))
        query_sets = {name: QuerySet(frame, write_fasta(frame, work / f"{name}.fasta"))
                      for name, frame in task_queries.items()}
        for number, method in enumerate(methods):
            reason = skip_reason(method)
            if reason is not None:
                skipped[method.label] = reason
                continue
            versions.update({tool: tool_version(tool) for tool in method.tools if tool not in versions})
            folder = work / f"method{number}"
            folder.mkdir()
            built = method.build(library, folder)
            for task in TASKS:
                queries = query_sets[task.name]
                calls, answered = method.query(library, queries, folder, task.name)
                rows.append(result_row(method, task, queries.records, calls, built, answered, args.threads))
    report = {
        "benchmark": "identification: barcodemae identify and the field's tools side by side (issue #29)",
        "data": str(args.data), "key_split": KEY_SPLIT, "references": len(records), "threads": args.threads,
        "seed": args.seed, "max_queries": args.max_queries,
        "thread_environment": list(THREAD_VARIABLES), "tool_versions": versions, "tasks": tasks, "rows": rows,
        "skipped": skipped,
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(report, indent=2) + "\n")
    print(markdown_tables(report))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
