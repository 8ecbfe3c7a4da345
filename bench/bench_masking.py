"""Benchmark: NPMI table build on dev.csv.gz, and collator cost per batch vs a tiny model's training step.

Run from the repository root:  /work/venv/bin/python bench/bench_masking.py [--csv PATH] [--batch-size 256]
Prints one JSON object with measured seconds (median of --repeats runs for per-batch numbers).
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from functools import partial

import numpy as np
import pandas as pd
import torch

from barcodemae import BarcodeMAEConfig, BarcodeMAEForPreTraining, BarcodeTokenizer
from barcodemae.masking import STRATEGIES, BarcodeMaskingCollator, NPMITable, count_ngrams


def train_step(model: BarcodeMAEForPreTraining, optimizer: torch.optim.Optimizer, batch: dict) -> None:
    """One optimiser step of the MAE on a collated batch (the cost the collator is compared with)."""
    optimizer.zero_grad()
    model(**batch).loss.backward()
    optimizer.step()


TINY_MODEL = {
    "hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 4, "intermediate_size": 64,
    "decoder_hidden_size": 32, "decoder_num_hidden_layers": 1, "decoder_num_attention_heads": 4,
    "decoder_intermediate_size": 64,
}


def median_seconds(fn, repeats: int) -> float:
    fn()  # warm-up (lazy tables, allocator)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def bench_npmi(csv: str) -> tuple[dict, NPMITable]:
    start = time.perf_counter()
    sequences = pd.read_csv(csv, usecols=["dna_barcode"])["dna_barcode"].tolist()
    read_s = time.perf_counter() - start
    start = time.perf_counter()
    corpus = count_ngrams(sequences, max_n=10, progress=False)
    count_s = time.perf_counter() - start
    start = time.perf_counter()
    table = NPMITable.from_counts(corpus, min_n=2, max_n=10)
    score_s = time.perf_counter() - start
    start = time.perf_counter()
    NPMITable.from_counts(corpus, min_n=2, max_n=10, max_piece=2)
    score_piece2_s = time.perf_counter() - start
    result = {
        "csv": csv,
        "n_sequences": corpus.n_sequences,
        "n_rejected": corpus.n_rejected,
        "n_bases": corpus.totals[1],
        "read_csv_s": round(read_s, 3),
        "count_ngrams_s": round(count_s, 3),
        "bases_per_s": round(corpus.totals[1] / count_s),
        "score_npmi_s": round(score_s, 3),
        "score_npmi_max_piece2_s": round(score_piece2_s, 3),
        "min_count": table.min_count,
        "scored_ngrams": {n: len(v) for n, v in table.npmi.items()},
        "top_6mers": table.top(6, 5),
    }
    return result, table


def bench_collators(
    sequences: list[str], table: NPMITable, batch_size: int, repeats: int, model_step_for: set[str]
) -> dict:
    out = {}
    for name, tokenizer in (
        ("kmer6_stride6", BarcodeTokenizer.kmer(6)),
        ("kmer6_stride1", BarcodeTokenizer.kmer(6, stride=1)),
        ("char", BarcodeTokenizer.char()),
    ):
        features = [{"input_ids": ids} for ids in tokenizer(sequences[:batch_size])["input_ids"]]
        row = {"tokens_per_row": max(len(f["input_ids"]) for f in features)}
        for strategy in STRATEGIES:
            collator = BarcodeMaskingCollator(tokenizer, strategy, mask_ratio=0.5, npmi_table=table)
            row[f"{strategy}_ms"] = round(1000 * median_seconds(partial(collator, features), repeats), 2)
        if name not in model_step_for:
            out[name] = row
            continue
        config = BarcodeMAEConfig(**{**TINY_MODEL, **tokenizer.model_config_kwargs()}, pretraining_objective="mae")
        model = BarcodeMAEForPreTraining(config)
        optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
        batch = BarcodeMaskingCollator(tokenizer, "random", mask_ratio=0.5)(features)

        step = partial(train_step, model, optimizer, batch)
        row["tiny_mae_train_step_ms"] = round(1000 * median_seconds(step, repeats), 2)
        out[name] = row
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--csv", default="../shared/data/bold_coi/dev.csv.gz")
    parser.add_argument("--batch-csv", default="../shared/data/bold_coi/demo.csv.gz")
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--model-step-for", default="kmer6_stride6",
                        help="comma-separated tokenizers to time a tiny-model training step for "
                             "(660-token rows are slow on CPU)")
    args = parser.parse_args()
    torch.manual_seed(0)
    npmi, table = bench_npmi(args.csv)
    sequences = pd.read_csv(args.batch_csv, usecols=["dna_barcode"])["dna_barcode"].tolist()
    report = {
        "machine": {"python": platform.python_version(), "torch": torch.__version__, "threads": torch.get_num_threads(),
                    "numpy": np.__version__},
        "npmi_build": npmi,
        "collator_per_batch": {"batch_size": args.batch_size, "mask_ratio": 0.5,
                               **bench_collators(sequences, table, args.batch_size, args.repeats,
                                                 set(args.model_step_for.split(",")))},
    }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
