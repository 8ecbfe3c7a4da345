"""Training throughput: batch construction (tokenize in frames + mask) vs a full optimiser step.

    python bench/bench_train.py [--data ../shared/data/bold_coi/demo.csv.gz] [--preset tiny] [--steps 20]

Prints one JSON object. Batch construction must stay far below the step time (it runs on every process).
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import torch

from barcodemae.tokenization import BarcodeTokenizer
from barcodemae.training.arguments import parse_args
from barcodemae.training.batches import BarcodeSource, GlobalBatchStream
from barcodemae.training.builders import build_masking, build_model, build_optimizer
from barcodemae.training.validation import pretraining_output


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="../shared/data/bold_coi/demo.csv.gz")
    parser.add_argument("--preset", default="tiny")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--batch_size", type=int, default=None)
    options = parser.parse_args()

    import pandas as pd

    sequences = pd.read_csv(options.data, usecols=["dna_barcode"])["dna_barcode"].dropna().tolist()
    args = parse_args(
        ["--preset", options.preset]
        + (["--per_device_batch_size", str(options.batch_size)] if options.batch_size else [])
    )
    tokenizer = BarcodeTokenizer.from_spec(args.tokenizer)
    collator, _, _ = build_masking(args, tokenizer, BarcodeSource(sequences), None, resume=False, is_main=False)
    stream = GlobalBatchStream(
        BarcodeSource(sequences), tokenizer, lambda i, a, r: collator.mask_batch(i, a, rng=r),
        per_device_batch_size=args.per_device_batch_size, seed=args.seed, views=args.views_per_barcode,
    )
    start = time.perf_counter()
    batches = [stream.next() for _ in range(options.steps)]
    batch_seconds = (time.perf_counter() - start) / options.steps

    torch.manual_seed(0)
    model = build_model(args, tokenizer)
    optimizer = build_optimizer(model, args)
    model.train()
    step_times = []
    for batch, counts in batches:
        start = time.perf_counter()
        pretraining_output(model, batch, num_items_in_batch=max(counts["targets"], 1)).loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        step_times.append(time.perf_counter() - start)
    step_seconds = float(np.median(step_times[1:] or step_times))
    tokens = float(np.mean([c["tokens"] for _, c in batches]))
    print(json.dumps({
        "preset": options.preset,
        "data": options.data,
        "batch_size": args.per_device_batch_size,
        "torch_threads": torch.get_num_threads(),
        "batch_build_ms": round(batch_seconds * 1e3, 2),
        "train_step_ms_median": round(step_seconds * 1e3, 1),
        "samples_per_second": round(args.per_device_batch_size / step_seconds, 1),
        "tokens_per_second": round(tokens / step_seconds, 0),
        "batch_build_fraction_of_step": round(batch_seconds / (batch_seconds + step_seconds), 4),
        "parameters": sum(p.numel() for p in model.parameters()),
    }))


if __name__ == "__main__":
    main()
