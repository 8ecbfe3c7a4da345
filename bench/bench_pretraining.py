"""Pretraining step throughput: BarcodeMAE (mae) vs BarcodeBERT (mlm) vs the plain-transformers BERT reference.

One full optimisation step (forward, backward, AdamW step) is timed on identical synthetic batches of full-length
barcodes (default 112 tokens = 660 bp / 6 + [CLS] + [SEP]) with identical masks. Variants:

- ``mae``            our BarcodeMAEForPreTraining, encoder --layers + decoder --decoder-layers (encoder sees only
                     visible tokens);
- ``mlm_same_encoder`` our model in mlm mode with the same --layers encoder and no decoder (size (a));
- ``mlm_equal_depth``  mlm with --layers + --decoder-layers encoder layers, BarcodeBERT-style (size (b));
- ``bert_reference`` the original BarcodeMAE arrangement from transformers' BertModel + BertForTokenClassification
                     (bench/bert_reference.py), same widths and depths as ``mae``.

It then scales ``mae``/``mlm_same_encoder``/``bert_reference`` over mask ratios and sequence lengths. Prints one
JSON object (also written to --output). Examples:

    python bench/bench_pretraining.py --quick                       # CPU smoke run, small shapes
    python bench/bench_pretraining.py --device cuda --dtype bfloat16 --output bench/results/pretraining_h100.json
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
from bert_reference import BertReferenceMAE
from flops import head_flops, layers_flops
from timing import DTYPES, emit_report, machine_info, peak_memory_mib, reset_peak_memory, time_steps

from modeling_barcodemae import BarcodeMAEConfig, BarcodeMAEForPreTraining
from modeling_barcodemae.modeling_barcodemae import random_token_mask

VOCAB_SIZE = 4101  # 4**6 k-mers + 5 special tokens: the default 6-mer tokenizer
FIRST_KMER_ID = 5
MAIN_VARIANTS = ("mae", "mlm_same_encoder", "mlm_equal_depth", "bert_reference")
SCALING_VARIANTS = ("mae", "mlm_same_encoder", "bert_reference")


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--dtype", choices=tuple(DTYPES), default="float32",
                        help="bfloat16 = autocast mixed precision with float32 master weights, as in training")
    parser.add_argument("--hidden", type=int, default=768)
    parser.add_argument("--layers", type=int, default=6, help="encoder layers")
    parser.add_argument("--decoder-layers", type=int, default=6)
    parser.add_argument("--heads", type=int, default=None, help="attention heads (default hidden // 64)")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--seq-len", type=int, default=112, help="tokens per barcode incl. [CLS]/[SEP]")
    parser.add_argument("--mask-ratio", type=float, default=0.5)
    parser.add_argument("--mask-ratios", default="0.15,0.3,0.5,0.75", help="comma list for the mask-ratio scan")
    parser.add_argument("--seq-lens", default="58,112,222", help="comma list for the sequence-length scan")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--no-scans", action="store_true", help="only the main comparison")
    parser.add_argument("--variants", default=",".join(MAIN_VARIANTS), help="comma list for the main comparison")
    parser.add_argument("--compile", action="store_true", help="torch.compile each model (compile time excluded)")
    parser.add_argument("--compile-backend", default="inductor", help="torch.compile backend (aot_eager: CPU smoke)")
    parser.add_argument("--quick", action="store_true", help="small shapes for a CPU smoke run")
    parser.add_argument("--output", type=Path, default=None, help="also write the JSON here")
    if parser.parse_known_args()[0].quick:  # small defaults; options given explicitly still win
        parser.set_defaults(hidden=128, layers=2, decoder_layers=2, batch_size=16, steps=5, warmup=2,
                            mask_ratios="0.15,0.5,0.75", seq_lens="58,112")
    args = parser.parse_args()
    args.heads = args.heads or max(1, args.hidden // 64)
    return args


def our_model(args: argparse.Namespace, objective: str, layers: int, mask_ratio: float) -> BarcodeMAEForPreTraining:
    config = BarcodeMAEConfig(
        vocab_size=VOCAB_SIZE, hidden_size=args.hidden, num_hidden_layers=layers, num_attention_heads=args.heads,
        intermediate_size=4 * args.hidden, decoder_hidden_size=args.hidden,
        decoder_num_hidden_layers=args.decoder_layers, decoder_num_attention_heads=args.heads,
        decoder_intermediate_size=4 * args.hidden, mask_ratio=mask_ratio, pretraining_objective=objective,
    )
    config._attn_implementation = "sdpa"
    return BarcodeMAEForPreTraining(config)


def build(args: argparse.Namespace, variant: str, mask_ratio: float) -> torch.nn.Module:
    """The model for one variant, in train mode."""
    if variant == "mae":
        model = our_model(args, "mae", args.layers, mask_ratio)
    elif variant == "mlm_same_encoder":
        model = our_model(args, "mlm", args.layers, mask_ratio)
    elif variant == "mlm_equal_depth":
        model = our_model(args, "mlm", args.layers + args.decoder_layers, mask_ratio)
    elif variant == "bert_reference":
        model = BertReferenceMAE(VOCAB_SIZE, args.hidden, args.layers, args.decoder_layers, args.heads, 4 * args.hidden)
    else:
        raise ValueError(f"unknown variant {variant!r}")
    return model.train()


def synthetic_batch(batch_size: int, seq_len: int, mask_ratio: float, device: torch.device, seed: int = 0) -> dict:
    """Full-length barcodes ([CLS] k-mers [SEP]) and an exact-budget uniform mask over the k-mer positions."""
    generator = torch.Generator().manual_seed(seed)
    input_ids = torch.randint(FIRST_KMER_ID, VOCAB_SIZE, (batch_size, seq_len), generator=generator)
    input_ids[:, 0], input_ids[:, -1] = 2, 3
    attention_mask = torch.ones_like(input_ids)
    maskable = torch.ones_like(input_ids, dtype=torch.bool)
    maskable[:, [0, -1]] = False
    masked = random_token_mask(maskable, mask_ratio, generator=generator)
    return {k: v.to(device) for k, v in
            {"input_ids": input_ids, "attention_mask": attention_mask, "masked_positions": masked}.items()}


def step_flops(args: argparse.Namespace, variant: str, mask_ratio: float, seq_len: int) -> float:
    """Analytic matmul FLOPs of one training step (3 x forward) for the whole batch; see bench/flops.py.

    The MAE encoder runs over the visible tokens only; decoders run over the full length. Our models run the
    vocabulary head on the masked tokens only; the reference (like BertForTokenClassification) on every token.
    """
    inner = 4 * args.hidden
    maskable = seq_len - 2
    masked = round(mask_ratio * maskable)
    visible = seq_len - masked
    if variant in ("mae", "bert_reference"):
        head = (head_flops(masked, args.hidden, VOCAB_SIZE, transform=True) if variant == "mae"
                else head_flops(seq_len, args.hidden, VOCAB_SIZE, transform=False))
        forward = (layers_flops(args.layers, visible, args.hidden, inner)
                   + layers_flops(args.decoder_layers, seq_len, args.hidden, inner) + head)
    else:
        depth = args.layers + (args.decoder_layers if variant == "mlm_equal_depth" else 0)
        forward = layers_flops(depth, seq_len, args.hidden, inner) + head_flops(masked, args.hidden, VOCAB_SIZE, True)
    return 3 * forward * args.batch_size


def measure_step(args: argparse.Namespace, variant: str, mask_ratio: float, seq_len: int) -> dict:
    """Median seconds of one forward+backward+AdamW step, as barcodes/s and tokens/s, with peak memory."""
    device = torch.device(args.device)
    torch.manual_seed(0)
    model = build(args, variant, mask_ratio).to(device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4, fused=device.type == "cuda")
    batch = synthetic_batch(args.batch_size, seq_len, mask_ratio, device)
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=args.dtype == "bfloat16")

    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        with autocast:
            if variant == "bert_reference":
                loss, _ = model(batch["input_ids"], batch["attention_mask"], batch["masked_positions"])
            else:
                loss = model(**batch).loss
        loss.backward()
        optimizer.step()

    if getattr(args, "compile", False):  # namespaces built by hand (tests) may leave it out
        model = torch.compile(model, backend=args.compile_backend)
    step()  # allocate optimizer state (and compile) before the memory window and the timed steps
    reset_peak_memory(device)
    timing = time_steps(step, device, args.steps, args.warmup)
    result = {
        "variant": variant, "mask_ratio": mask_ratio, "seq_len": seq_len,
        "parameters_m": sum(p.numel() for p in model.parameters()) / 1e6,
        **timing,
        "barcodes_per_s": args.batch_size / timing["median_s"],
        "tokens_per_s": args.batch_size * seq_len / timing["median_s"],
        "analytic_tflops_per_step": step_flops(args, variant, mask_ratio, seq_len) / 1e12,
        "achieved_tflops_per_s": step_flops(args, variant, mask_ratio, seq_len) / 1e12 / timing["median_s"],
        **peak_memory_mib(device),
    }
    return result


def speedups(rows: list[dict]) -> dict:
    """Step-time ratios (how many times faster ``mae`` is) against each baseline, plus the issue's targets."""
    time_of = {row["variant"]: row["median_s"] for row in rows}
    flops_of = {row["variant"]: row["analytic_tflops_per_step"] for row in rows}
    if "mae" not in time_of:
        return {}
    mae = time_of["mae"]
    out = {f"mae_vs_{name}": time_of[name] / mae for name in time_of if name != "mae"}
    out |= {
        f"analytic_flop_ratio_{name}_over_mae": flops_of[name] / flops_of["mae"] for name in flops_of if name != "mae"
    }
    if "mlm_same_encoder" in time_of:
        out["target_mae_1.5x_mlm_same_encoder_met"] = out["mae_vs_mlm_same_encoder"] >= 1.5
    if "mlm_equal_depth" in time_of:
        out["target_mae_1.5x_mlm_equal_depth_met"] = out["mae_vs_mlm_equal_depth"] >= 1.5
    if "bert_reference" in time_of:
        out["target_not_slower_than_reference_met"] = out["mae_vs_bert_reference"] >= 1.0
    return out


def main() -> None:
    args = parse_args()
    device = torch.device(args.device)
    report = {
        "benchmark": "pretraining_step",
        "machine": machine_info(device),
        "settings": {key: (str(value) if isinstance(value, Path) else value) for key, value in vars(args).items()},
        "step": "forward + backward + AdamW step, synthetic full-length barcodes, identical masks per variant",
    }
    variants = [v for v in args.variants.split(",") if v]
    unknown = sorted(set(variants) - set(MAIN_VARIANTS))
    if unknown:
        raise SystemExit(f"unknown --variants {unknown}; choose from {MAIN_VARIANTS}")
    main_rows = [measure_step(args, v, args.mask_ratio, args.seq_len) for v in variants]
    report["main"] = {"rows": main_rows, "speedups": speedups(main_rows)}
    if not args.no_scans:
        by_ratio = {}
        for ratio in (float(r) for r in args.mask_ratios.split(",")):
            rows = [measure_step(args, v, ratio, args.seq_len) for v in SCALING_VARIANTS]
            by_ratio[str(ratio)] = {"rows": rows, "speedups": speedups(rows)}
        report["mask_ratio_scan"] = by_ratio
        by_length = {}
        for length in (int(n) for n in args.seq_lens.split(",")):
            rows = [measure_step(args, v, args.mask_ratio, length) for v in SCALING_VARIANTS]
            by_length[str(length)] = {"rows": rows, "speedups": speedups(rows)}
        report["seq_len_scan"] = by_length
    emit_report(report, args.output)


if __name__ == "__main__":
    main()
