"""Throughput of the data loaders on real BIOSCAN-format data; prints one JSON object.

    python bench/bench_data.py [--path ../shared/data/bold_coi/dev.csv.gz] [--num-proc 1 2] [--skip-streaming]

Each in-memory run uses a fresh ``datasets`` cache, so it times CSV -> Arrow parsing, cleaning (map) and
labelling; a second call on the same cache (``cached_s``) shows what a re-load costs.
"""

from __future__ import annotations

import argparse
import json
import logging
import platform
import tempfile
import time
from pathlib import Path

import datasets
import pyarrow as pa

from barcodemae.data import RECORD_COLUMNS, clean_table, load_bioscan5m
from barcodemae.data.bioscan5m import iter_csv_batches

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_PATH = REPO_ROOT.parent / "shared" / "data" / "bold_coi" / "dev.csv.gz"


def time_in_memory(path: Path, num_proc: int | None, drop_duplicates: bool) -> dict:
    with tempfile.TemporaryDirectory() as cache:
        start = time.perf_counter()
        dataset, report, vocab = load_bioscan5m(
            path, num_proc=num_proc, cache_dir=cache, drop_duplicates=drop_duplicates, return_report=True
        )
        cold = time.perf_counter() - start
        start = time.perf_counter()
        load_bioscan5m(path, num_proc=num_proc, cache_dir=cache, drop_duplicates=drop_duplicates)
        warm = time.perf_counter() - start
    return {
        "mode": "in_memory",
        "num_proc": num_proc or 1,
        "drop_duplicates": drop_duplicates,
        "rows_read": report.read,
        "rows_kept": len(dataset),
        "duplicates_dropped": report.duplicates_dropped,
        "cold_s": round(cold, 3),
        "rows_per_s": round(report.read / cold),
        "cached_s": round(warm, 3),
        "genera": vocab.num_labels("genus"),
        "species": vocab.num_labels("species"),
    }


def time_streaming(path: Path, batch_size: int | None) -> dict:
    """Streaming load, iterated row by row (``batch_size=None``) or in batches (``.iter(batch_size)``)."""
    start = time.perf_counter()
    stream, report, _ = load_bioscan5m(path, streaming=True, return_report=True)
    setup = time.perf_counter() - start
    if batch_size is None:
        rows = sum(1 for _ in stream)
    else:
        rows = sum(len(batch["processid"]) for batch in stream.iter(batch_size=batch_size))
    total = time.perf_counter() - start
    return {"mode": "streaming", "batch_size": batch_size, "rows": rows, "vocab_pass_s": round(setup, 3),
            "total_s": round(total, 3), "rows_per_s": round(rows / total), "kept": report.kept}


def time_clean_table(path: Path) -> dict:
    """Cleaning alone (the per-record :func:`clean_barcode` part) on Arrow batches already in memory."""
    table = pa.concat_tables(iter_csv_batches(path, RECORD_COLUMNS, None))
    start = time.perf_counter()
    for offset in range(0, table.num_rows, 10_000):
        clean_table(table.slice(offset, 10_000))
    elapsed = time.perf_counter() - start
    return {"mode": "clean_table_only", "rows": table.num_rows, "s": round(elapsed, 3),
            "rows_per_s": round(table.num_rows / elapsed)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--path", type=Path, default=DEFAULT_PATH)
    parser.add_argument("--num-proc", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--skip-streaming", action="store_true")
    args = parser.parse_args()
    logging.getLogger("barcodemae").setLevel(logging.ERROR)
    datasets.disable_progress_bars()

    runs = [time_clean_table(args.path)]
    runs += [time_in_memory(args.path, n, drop_duplicates=False) for n in args.num_proc]
    runs.append(time_in_memory(args.path, args.num_proc[0], drop_duplicates=True))
    if not args.skip_streaming:
        runs += [time_streaming(args.path, 1024), time_streaming(args.path, None)]
    print(json.dumps({
        "benchmark": "barcodemae.data loaders",
        "path": str(args.path),
        "python": platform.python_version(),
        "datasets": datasets.__version__,
        "cpu": platform.processor() or platform.machine(),
        "runs": runs,
    }, indent=2))


if __name__ == "__main__":
    main()
