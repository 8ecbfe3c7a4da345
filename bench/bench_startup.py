"""Start-up time of the command-line entry points: how long `--help` takes, as a new user first meets them.

Why: `barcodemae --help` is the first thing a new user runs; when building the argument parser imports torch,
transformers and datasets, every `--help` (and every typo) costs seconds. Each command below is run as a fresh
subprocess (nothing cached in this process), `--warmup` times untimed (the OS file cache fills) and then `--runs`
times timed; the report gives the median, p10 and p90 wall time of each, with the 1-minute load average before and
after (a busy machine inflates every number: compare rows of one run). Run from the repository root, in the
environment where the package is installed::

    python bench/bench_startup.py                  # 7 runs of each command
    python bench/bench_startup.py --runs 15 --output bench/results/startup.json
    python bench/bench_startup.py --identify kmer_index/ queries.fasta --only "barcodemae identify query"
    python bench/bench_startup.py --qc reads.fasta --only "barcodemae qc"

This script imports nothing heavy itself, so it can also be run before the package's dependencies load quickly.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]


def commands(identify: tuple[str, str] | None = None, qc: str | None = None,
             scratch: Path | None = None) -> dict[str, list[str]]:
    """The measured commands by name; `barcodemae` is the installed console script next to this Python.
    ``identify``: ``(index, queries)`` adds ``barcodemae identify query`` of them, ``qc``: a barcode file adds
    ``barcodemae qc`` of it (the translation check, no model); their outputs go to ``scratch``."""
    script = shutil.which("barcodemae", path=str(Path(sys.executable).parent)) or shutil.which("barcodemae")
    barcodemae = [script] if script else [sys.executable, "-m", "barcodemae.cli"]
    return {
        "barcodemae --help": [*barcodemae, "--help"],
        "barcodemae embed --help": [*barcodemae, "embed", "--help"],
        "barcodemae --version": [*barcodemae, "--version"],
        "python train.py --help": [sys.executable, "train.py", "--help"],
        "python train.py --preset small --help": [sys.executable, "train.py", "--preset", "small", "--help"],
        "python eval/run.py --help": [sys.executable, "eval/run.py", "--help"],
        "python -c pass (interpreter alone)": [sys.executable, "-c", "pass"],
        **({"barcodemae identify query": [*barcodemae, "identify", "query", "--index", identify[0], "--input",
                                          identify[1], "--output", str(scratch / "ids.csv"), "--no-progress"]}
           if identify else {}),
        **({"barcodemae qc": [*barcodemae, "qc", "--input", qc, "--output", str(scratch / "qc.csv"), "--no-progress"]}
           if qc else {}),
    }


def wall_times(command: list[str], runs: int, warmup: int) -> list[float]:
    """Seconds of each of ``runs`` timed runs of ``command`` (after ``warmup`` untimed ones); a failing command
    raises, so a broken `--help` is not timed as a fast one."""
    times = []
    for index in range(warmup + runs):
        start = time.perf_counter()
        done = subprocess.run(command, check=False, cwd=REPO_ROOT, capture_output=True, text=True)
        elapsed = time.perf_counter() - start
        if done.returncode != 0:
            raise SystemExit(f"{' '.join(command)}: exit status {done.returncode}\n{done.stderr[-2000:]}")
        if index >= warmup:
            times.append(elapsed)
    return times


def summarise(times: list[float]) -> dict:
    ordered = sorted(times)
    return {
        "median_s": round(statistics.median(times), 3),
        "p10_s": round(ordered[int(0.1 * (len(ordered) - 1))], 3),
        "p90_s": round(ordered[round(0.9 * (len(ordered) - 1))], 3),
        "runs": len(times),
    }


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7, help="timed runs per command (default 7)")
    parser.add_argument("--warmup", type=int, default=1, help="untimed runs per command first (default 1)")
    parser.add_argument("--only", nargs="*", default=None, help="names of the commands to time (default all)")
    parser.add_argument("--output", type=Path, default=None, help="also write the JSON here")
    parser.add_argument("--identify", nargs=2, metavar=("INDEX", "QUERIES"), default=None,
                        help="also time `barcodemae identify query` of QUERIES against INDEX (a k-mer index: the "
                        "start-up of identifying without a model)")
    parser.add_argument("--qc", metavar="READS", default=None,
                        help="also time `barcodemae qc` of READS (a barcode file) without a model")
    args = parser.parse_args(argv)
    scratch = tempfile.TemporaryDirectory(prefix="bench_startup_")  # outputs, removed however this ends
    selected = {name: command for name, command in commands(args.identify, args.qc, Path(scratch.name)).items()
                if args.only is None or name in args.only}
    report: dict = {
        "machine": {"cpu": platform.processor() or platform.machine(), "cpus": os.cpu_count(),
                    "python": platform.python_version(), "load_average_1min_before": round(os.getloadavg()[0], 2)},
        "commands": {name: {"command": " ".join(command), **summarise(wall_times(command, args.runs, args.warmup))}
                     for name, command in selected.items()},
    }
    report["machine"]["load_average_1min_after"] = round(os.getloadavg()[0], 2)
    scratch.cleanup()
    text = json.dumps(report, indent=2)
    print(text)
    if args.output:
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(text + "\n")
    return report


if __name__ == "__main__":
    main()
