"""ENBED encoder cost against sequence length: LongT5 local and transient-global attention vs full attention.

Why: a character-level model reads a 658 bp COI barcode as 660 tokens and a whole mitogenome as ~16,000; full
self-attention grows with the square of that, LongT5's local (a window of ``2 * local_radius + 1`` tokens) and
transient-global (the window plus one summary per ``global_block_size`` tokens) attention linearly in the window
part, while the global part grows with L^2 / block (on a CPU it dominates above ~5,000 tokens: docs/results.md). Each
variant is the same encoder (width, depth, heads, gated-GELU feed-forward, relative position buckets) built from the
same ``LongT5Config``; "full" is the T5 encoder of that config (``T5EncoderModel``: LongT5 without the sparse
attention).

For each length (random A/C/G/T bases, batch ``--batch-size``): median seconds of an ``inference_mode`` forward, peak
memory, and the log-log slope of time against length between the two longest lengths each variant finished (1:
linear, 2: quadratic). A variant that runs out of memory or past ``--max-seconds`` at a length is reported so and
skipped at longer ones.

    python bench/bench_enbed_attention.py --quick                      # CPU, minutes
    python bench/bench_enbed_attention.py --device cuda --dtype bfloat16 --output bench/results/enbed_attention.json
"""

from __future__ import annotations

import argparse
import math
import time
from pathlib import Path

import torch
from timing import DTYPES, emit_report, machine_info, peak_memory_mib, reset_peak_memory, time_steps
from transformers import LongT5EncoderModel, T5Config, T5EncoderModel

from barcodemae.tokenization import BarcodeTokenizer
from modeling_barcodemae import enbed_config

VARIANTS = ("local", "transient-global", "full")


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--dtype", choices=tuple(DTYPES), default="float32")
    parser.add_argument("--hidden", type=int, default=256, help="encoder width (d_model)")
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--heads", type=int, default=4)
    parser.add_argument("--intermediate", type=int, default=512, help="gated feed-forward width")
    parser.add_argument("--local-radius", type=int, default=127)
    parser.add_argument("--global-block-size", type=int, default=16)
    parser.add_argument("--lengths", default="660,1320,2640,5280,10560,16384", help="bases per sequence")
    parser.add_argument("--batch-size", type=int, default=1)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument(
        "--max-seconds", type=float, default=60.0, help="skip longer lengths once a forward exceeds this"
    )
    parser.add_argument("--quick", action="store_true", help="a small encoder and lengths up to 5,280 (CPU check)")
    parser.add_argument("--output", type=Path, default=None)
    args = parser.parse_args()
    if args.quick:
        args.hidden, args.layers, args.heads, args.intermediate = 64, 2, 4, 128
        args.lengths, args.steps = "660,1320,2640,5280", 3
    return args


def build_encoder(variant: str, args: argparse.Namespace) -> torch.nn.Module:
    """The encoder of one attention variant, randomly initialised (cost does not depend on the weights)."""
    config = enbed_config(
        BarcodeTokenizer.char().model_config_kwargs(), 128, hidden_size=args.hidden, num_hidden_layers=args.layers,
        num_decoder_layers=1, num_attention_heads=args.heads, intermediate_size=args.intermediate, dropout=0.0,
        encoder_attention="local" if variant == "full" else variant, local_radius=args.local_radius,
        global_block_size=args.global_block_size,
    )
    if variant == "full":
        return T5EncoderModel(T5Config(**config.to_dict()))
    return LongT5EncoderModel(config)


def time_forward(encoder: torch.nn.Module, ids: torch.Tensor, args: argparse.Namespace) -> dict:
    """Median / p10 / p90 seconds of one encoder forward on ``ids`` ``(batch, tokens)`` (no padding)."""
    mask = torch.ones_like(ids)
    with torch.inference_mode():
        return time_steps(lambda: encoder(input_ids=ids, attention_mask=mask), ids.device, args.steps, args.warmup)


def main() -> None:
    args = parse_args()
    device = torch.device(args.device)
    dtype = DTYPES[args.dtype]
    lengths = [int(x) for x in args.lengths.split(",")]
    generator = torch.Generator().manual_seed(0)
    rows: list[dict] = []
    for variant in VARIANTS:
        torch.manual_seed(0)
        encoder = build_encoder(variant, args).to(device=device, dtype=dtype).eval()
        stopped = ""
        for length in lengths:
            row = {"variant": variant, "bases": length, "tokens": length + 2, "batch_size": args.batch_size}
            if stopped:
                rows.append({**row, "status": f"skipped ({stopped})"})
                continue
            ids = torch.randint(5, 9, (args.batch_size, length + 2), generator=generator).to(device)
            reset_peak_memory(device)
            started = time.perf_counter()
            try:
                timing = time_forward(encoder, ids, args)
            except torch.OutOfMemoryError:
                stopped = f"out of memory at {length} bases"
                rows.append({**row, "status": "out of memory"})
                continue
            rows.append({**row, "status": "ok", **timing, **peak_memory_mib(device),
                         "tokens_per_s": args.batch_size * (length + 2) / timing["median_s"]})
            if timing["median_s"] > args.max_seconds or time.perf_counter() - started > 4 * args.max_seconds:
                stopped = f"a forward took {timing['median_s']:.0f} s at {length} bases"
    slopes = {}
    for variant in VARIANTS:
        done = [r for r in rows if r["variant"] == variant and r["status"] == "ok"]
        if len(done) >= 2:
            a, b = done[-2], done[-1]
            slopes[variant] = math.log(b["median_s"] / a["median_s"]) / math.log(b["tokens"] / a["tokens"])
    emit_report({
        "benchmark": "ENBED encoder cost vs length",
        "machine": machine_info(device),
        "encoder": {"hidden": args.hidden, "layers": args.layers, "heads": args.heads,
                    "intermediate": args.intermediate, "local_radius": args.local_radius,
                    "global_block_size": args.global_block_size, "dtype": args.dtype},
        "rows": rows,
        "loglog_slope_longest_two": slopes,
    }, args.output)


if __name__ == "__main__":
    main()
