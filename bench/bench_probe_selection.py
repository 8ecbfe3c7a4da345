"""Benchmark: the species probe's C selection (``eval/run.py --probe-c auto``), warm-started vs fitted from scratch.

    python bench/bench_probe_selection.py --model runs/r/mlm-con1-42/final_model \
        --data ../shared/data/bold_coi/dev.csv.gz --output probe_selection.json

Embeds the ``train`` split once, then selects C over ``PROBE_C_GRID`` twice on the same held-out fifth: as
``select_probe_c`` does it (each C starting from the previous, stronger-penalty solution) and with every C fitted
from scratch (``linear_probe`` per C, how selection worked before). Prints and writes one JSON object: seconds,
loss evaluations (L-BFGS closure calls, which do not depend on how busy the machine is), the chosen C and the
held-out accuracies of each way.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path
from typing import Any
from unittest import mock

import numpy as np
import torch

from barcodemae.data import load_bioscan5m
from barcodemae.eval.metrics import (
    PROBE_C_GRID,
    best_probe_c,
    holdout_keeping_every_class,
    linear_probe,
    select_probe_c,
)
from barcodemae.inference import embed_barcodes, load_encoder

HELD_OUT_FRACTION, SEED = 0.2, 0
"""The held-out split both ways of selecting C are scored on (``select_probe_c``'s defaults)."""


def counting_loss_evaluations(run: Any) -> tuple[Any, int, float]:
    """``run()``'s result, how many times it evaluated the probe's loss, and its seconds."""
    calls = {"count": 0}
    cross_entropy = torch.nn.functional.cross_entropy

    def counted(*args: Any, **kwargs: Any) -> torch.Tensor:
        calls["count"] += 1
        return cross_entropy(*args, **kwargs)

    start = time.perf_counter()
    with mock.patch("torch.nn.functional.cross_entropy", counted):
        result = run()
    return result, calls["count"], time.perf_counter() - start


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", required=True, help="model folder (final_model/ or any encoder folder)")
    parser.add_argument("--data", required=True, type=Path, help="BIOSCAN-5M-format CSV with a train split")
    parser.add_argument("--output", type=Path, help="also write the JSON here")
    args = parser.parse_args(argv)

    model, tokenizer = load_encoder(args.model)
    train = load_bioscan5m(args.data, split="train")
    x = embed_barcodes(model, tokenizer, train["dna_barcode"])
    species = np.asarray(train["species"]).astype(str)

    warm, warm_calls, warm_s = counting_loss_evaluations(
        lambda: select_probe_c(x, species, held_out_fraction=HELD_OUT_FRACTION, seed=SEED))
    held_out = holdout_keeping_every_class(species, HELD_OUT_FRACTION, SEED)
    cold, cold_calls, cold_s = counting_loss_evaluations(lambda: {
        float(c): linear_probe(x[~held_out], species[~held_out], x[held_out], species[held_out], c=c,
                               seed=SEED)["accuracy"]
        for c in PROBE_C_GRID
    })
    report = {
        "model": args.model, "data": str(args.data), "num_fit": warm["num_fit"], "num_held_out": warm["num_held_out"],
        "embedding_dim": int(x.shape[1]), "threads": torch.get_num_threads(), "machine": platform.platform(),
        "warm_start": {"seconds": round(warm_s, 1), "loss_evaluations": warm_calls, "c": warm["c"],
                       "held_out_accuracy": warm["held_out_accuracy"]},
        "from_scratch": {"seconds": round(cold_s, 1), "loss_evaluations": cold_calls,
                         "c": best_probe_c(cold), "held_out_accuracy": {str(c): a for c, a in cold.items()}},
    }
    text = json.dumps(report, indent=2)
    print(text)
    if args.output is not None:
        args.output.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
