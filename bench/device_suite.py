"""The prepared GPU suite: every device measurement in one unattended command that fits a short device window.

    python bench/device_suite.py --output bench/results/device            # on the GPU machine, <= 9 minutes
    python bench/device_suite.py --dry-run --output /tmp/suite            # every stage at toy sizes on a CPU
    python bench/device_suite.py --recipe small --output bench/results/device-small   # issue #12's recipe at paper size
    python bench/device_suite.py --recipe barcodemae-plus --output bench/results/device-plus  # + taxonomy term

Stages, each a subprocess with its own time cap (a slow or hanging stage is stopped and reported, the rest go on)
and all under one overall deadline; the caps add up to no more than the deadline (checked before anything runs), so
a slow early stage cannot starve the later ones. The dry run has neither: it checks that every stage runs and
reports, not how long it takes on a CPU shared with other work.

1. ``step_time``: one optimisation step, bf16 autocast + SDPA, paper size (768 wide, 6+6 layers, 112 tokens =
   660 bp, mask 0.5, batch 128): BarcodeMAE vs BarcodeBERT 6 and 12 layers vs the BERT-classes reference
   (``bench_pretraining.py``); then ``step_time_compiled``: the same for MAE and MLM-6 under ``torch.compile``.
2. ``embedding``: barcodes/s, peak memory and FLOP/s share of the device's measured bf16 matmul peak, and the
   extrapolated time for the 5.15M BIOSCAN-5M barcodes (``bench_embedding.py``).
3. ``enbed_attention``: ENBED's encoder time and memory from 660 bp to 16 kbp, LongT5 local / transient-global vs
   full attention (``bench_enbed_attention.py``).
4. ``pretrain_mae`` / ``pretrain_mlm``: paper-size pretraining on ``dev.csv.gz`` with equal wall-clock: each gets
   as many steps as its measured step time allows in ``--pretrain-seconds``; ``train.py``'s probe gives the genus
   1-NN on ``val_unseen`` of the untrained (step 0) and the trained encoder, and the perplexities. ``--recipe
   small`` trains the same paper-size models with ``--preset small``'s run choices (random start shift, the
   view-contrastive term, its pooling: the CPU recipe of issue #12, tested at scale); with the term a step encodes
   two views of each barcode, so it gets half the steps of the step time measured without it. ``--recipe
   barcodemae-plus`` adds BarcodeMAE+'s taxonomy term (genus cross-entropy on the [CLS] state, class-balanced
   batches, weight warmed up over the stage's first 5/35, embedded by [CLS]).
5. ``multi_gpu``: a 2-process ``accelerate launch`` of ``train.py`` when the machine has 2+ GPUs (skipped and said
   so otherwise; the dry run uses 2 CPU processes).

Writes ``suite.json`` (every stage's status, seconds and numbers) and ``suite.md`` (a summary table) in
``--output``. Nothing is hard-coded: a stage that did not run says why.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from barcodemae.run_layout import RunLayout
from barcodemae.training.arguments import load_preset
from barcodemae.training.arguments import views_per_barcode as encoded_views
from barcodemae.training.metrics_log import read_metrics

REPO = Path(__file__).resolve().parents[1]
BENCH = REPO / "bench"
DEV_DATA = REPO.parent / "shared" / "data" / "bold_coi" / "dev.csv.gz"
DEMO_DATA = REPO.parent / "shared" / "data" / "bold_coi" / "demo.csv.gz"
RECIPE_RUN_CHOICES = {
    "paper": (),
    "small": ("max_start_shift", "contrastive_weight", "pooled_layers"),
    "barcodemae-plus": ("taxonomy_loss", "taxonomy_weight", "taxonomy_on", "representation",
                        "taxonomy_classes_per_batch", "taxonomy_per_class"),
}
"""What a ``--recipe`` takes from the preset of its name on top of the paper presets: its training choices, not its
architecture (``small``: issue #12's CPU recipe; ``barcodemae-plus``: the taxonomy term of issue #28)."""
TAXONOMY_WARMUP_FRACTION = 5 / 35
"""BarcodeMAE+ warms the taxonomy weight up over 5 of its 35 epochs; a stage of N steps over the same share."""
MIN_STAGE_SECONDS = 5
"""A stage left less time than this under the deadline is skipped rather than started to be stopped at once."""


@dataclass
class Stage:
    """One measurement: a command, its time cap (``None``: uncapped, the dry run), and what it produced."""

    name: str
    command: list[str]
    cap_s: float | None
    env: dict[str, str] = field(default_factory=dict)
    result_file: Path | None = None
    status: str = "pending"
    seconds: float = 0.0
    result: Any = None
    detail: str = ""


def run_stage(stage: Stage, deadline: float | None, log_dir: Path,
              clock: Callable[[], float] = time.monotonic) -> Stage:
    """Run ``stage`` for at most its cap and never past ``deadline`` (``None``: no limit); record status, time,
    output. ``clock`` is the deadline's clock, replaceable so that tests check the limits without waiting."""
    left = None if deadline is None else deadline - clock()
    budget = min((limit for limit in (stage.cap_s, left) if limit is not None), default=None)
    if budget is not None and budget < MIN_STAGE_SECONDS:
        stage.status, stage.detail = "skipped", "no time left under the suite's deadline"
        return stage
    log = log_dir / f"{stage.name}.log"
    started = clock()
    with log.open("w") as handle:
        try:
            done = subprocess.run(stage.command, cwd=REPO, env={**os.environ, **stage.env}, stdout=handle,
                                  stderr=subprocess.STDOUT, timeout=budget, check=False)
            stage.status = "ok" if done.returncode == 0 else f"failed (exit {done.returncode})"
        except subprocess.TimeoutExpired:
            stage.status = (f"stopped at its {budget:.0f} s cap" if budget == stage.cap_s
                            else f"stopped at the suite's deadline ({budget:.0f} s left)")
    stage.seconds = clock() - started
    if stage.result_file is not None and stage.result_file.is_file():
        stage.result = json.loads(stage.result_file.read_text())
    if not stage.status.startswith("ok"):
        stage.detail = "; ".join(log.read_text().strip().splitlines()[-3:])[-500:]
    return stage


def stage_caps(args: argparse.Namespace) -> dict[str, float]:
    """Each stage's time cap in the real run, in the order the stages run: a stop for a hanging stage with room for
    a slow one (start-up, CUDA initialisation, compilation); the pretraining stages get their training time plus
    the overhead of data loading and the probes."""
    pretrain = args.pretrain_seconds + args.pretrain_overhead_seconds
    return {"step_time": 60, "step_time_compiled": 90, "embedding": 45, "enbed_attention": 60,
            "pretrain_mae": pretrain, "pretrain_mlm": pretrain, "multi_gpu": 45}


def caps_over_deadline(args: argparse.Namespace) -> str | None:
    """Why the real run's caps do not fit its deadline, or ``None`` when they do: caps adding up to more than the
    deadline let a slow early stage take the time of the last ones, which are then skipped."""
    caps = stage_caps(args)
    total = sum(caps.values())
    if total <= args.budget_seconds:
        return None
    listed = ", ".join(f"{name} {cap:.0f}" for name, cap in caps.items())
    return (f"the stages' time caps add up to {total:.0f} s ({listed}), more than --budget-seconds "
            f"{args.budget_seconds:.0f}; lower --pretrain-seconds or raise --budget-seconds")


def stage_cap(name: str, args: argparse.Namespace) -> float | None:
    """``name``'s time cap: ``None`` in a dry run, which checks that each stage runs, not how fast on a CPU."""
    return None if args.dry_run else stage_caps(args)[name]


def step_seconds(stage: Stage, variant: str) -> float | None:
    """Median step time of ``variant`` in a step-time stage's JSON, if it ran."""
    rows = (stage.result or {}).get("main", {}).get("rows", [])
    return next((row["median_s"] for row in rows if row["variant"] == variant), None)


def recipe_run_choices(recipe: str) -> dict[str, Any]:
    """What a ``--recipe`` sets on top of the paper presets (:data:`RECIPE_RUN_CHOICES`, read from its preset)."""
    if not RECIPE_RUN_CHOICES[recipe]:
        return {}
    preset = load_preset(recipe)
    return {key: preset[key] for key in RECIPE_RUN_CHOICES[recipe]}


def recipe_flags(recipe: str) -> list[str]:
    """``train.py`` flags of a ``--recipe``'s run choices."""
    return [flag for key, value in recipe_run_choices(recipe).items() for flag in (f"--{key}", str(value))]


def views_per_barcode(recipe: str) -> int:
    """Encoder passes per barcode of a training step of ``recipe`` (two when a term compares views)."""
    choices = recipe_run_choices(recipe)
    return encoded_views(float(choices.get("contrastive_weight", 0)), str(choices.get("taxonomy_loss", "none")))


def pretrain_stage(name: str, objective: str, steps: int, args: argparse.Namespace, out: Path) -> Stage:
    """``train.py`` for ``steps`` steps with the probe at step 0 and at the end (``metrics.jsonl``)."""
    run_dir = out / name
    size = (["--preset", "tiny", "--contrastive_weight", "0", "--per_device_batch_size", "16",
             "--max_val_samples", "64", "--max_probe_keys", "128"]
            if args.dry_run else ["--preset", "barcodemae" if objective == "mae" else "barcodebert",
                                  "--per_device_batch_size", "128", "--max_probe_keys", "2000"])
    command = [sys.executable, str(REPO / "train.py"), *size, *recipe_flags(args.recipe), "--objective", objective,
               "--data", str(args.data),
               "--max_steps", str(steps), "--eval_steps", str(steps), "--save_steps", str(steps),
               "--logging_steps", str(max(1, steps // 10)), "--evaluate", "false", "--output_dir", str(run_dir),
               "--overwrite_output_dir", "true", "--seed", "0"]
    if "taxonomy_loss" in recipe_run_choices(args.recipe):
        command += ["--taxonomy_warmup_steps", str(max(1, round(steps * TAXONOMY_WARMUP_FRACTION)))]
        if args.dry_run:  # the dry run's 16-barcode batches hold 4 genera x 2, as the GPU's 128 hold 16 x 4
            command += ["--taxonomy_classes_per_batch", "4", "--taxonomy_per_class", "2"]
    return Stage(name, command, cap_s=stage_cap(name, args))


def read_pretraining(stage: Stage, out: Path) -> dict[str, Any] | None:
    """Untrained and trained probe numbers and perplexities from a pretraining stage's ``metrics.jsonl``."""
    path = RunLayout(out / stage.name).metrics
    if not path.is_file():
        return None
    records = read_metrics(path)  # a stage stopped at its cap may leave a torn last line
    probes = [r for r in records if "genus_1nn_accuracy" in r]
    logs = [r for r in records if "loss" in r]
    if not probes:
        return None
    keep = ("step", "genus_1nn_accuracy", "genus_1nn_accuracy_layer_mean", "top_pc_variance_share",
            "val_perplexity", "unseen_val_perplexity")
    return {
        "untrained": {k: probes[0].get(k) for k in keep},
        "trained": {k: probes[-1].get(k) for k in keep},
        "steps": logs[-1]["step"] if logs else 0,
        "samples_per_second": logs[-1].get("samples_per_second") if logs else None,
    }


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--output", type=Path, required=True, help="folder for suite.json, suite.md and logs")
    parser.add_argument("--dry-run", action="store_true",
                        help="every stage at toy sizes on the CPU, without time caps or deadline")
    parser.add_argument("--budget-seconds", type=float, default=540, help="overall deadline (default 9 minutes)")
    parser.add_argument("--pretrain-seconds", type=float, default=80, help="training wall-clock per objective")
    parser.add_argument("--pretrain-overhead-seconds", type=float, default=40, help="data loading and probes")
    parser.add_argument("--data", type=Path, default=None, help="pretraining CSV (default dev.csv.gz; demo in dry run)")
    parser.add_argument("--recipe", choices=tuple(RECIPE_RUN_CHOICES), default="paper",
                        help="pretraining stages: the papers' presets as published, with the small preset's run "
                             "choices (start shift, view-contrastive term, pooling), or with BarcodeMAE+'s taxonomy "
                             "term (barcodemae-plus: genus cross-entropy on [CLS], class-balanced batches)")
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not args.dry_run and (problem := caps_over_deadline(args)):
        parser.error(problem)
    args.data = args.data or (DEMO_DATA if args.dry_run else DEV_DATA)
    out = args.output.resolve()
    logs = out / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    # Read before the deadline starts: the caps, which fill the deadline, are the stages' time only.
    gpus = int(subprocess.run([sys.executable, "-c", "import torch; print(torch.cuda.device_count())"],
                              capture_output=True, text=True, check=False).stdout.strip() or 0)
    deadline = None if args.dry_run else time.monotonic() + args.budget_seconds
    device = ["--device", "cpu"] if args.dry_run else ["--device", "cuda", "--dtype", "bfloat16"]
    toy = ["--quick", "--steps", "2", "--warmup", "1"] if args.dry_run else ["--steps", "10", "--warmup", "3"]

    stages: dict[str, Stage] = {}

    def run(stage: Stage) -> Stage:
        stages[stage.name] = run_stage(stage, deadline, logs)
        print(f"[{stage.name}] {stage.status} in {stage.seconds:.0f} s", file=sys.stderr, flush=True)
        return stage

    step = run(Stage("step_time", [sys.executable, str(BENCH / "bench_pretraining.py"), *device, *toy, "--no-scans",
                                   "--output", str(out / "step_time.json")],
                     cap_s=stage_cap("step_time", args), result_file=out / "step_time.json"))
    # The dry run compiles the MAE only, with the fast aot_eager backend: it checks the path, not the speed.
    compiled = ["--variants", "mae", "--compile-backend", "aot_eager"] if args.dry_run else [
        "--variants", "mae,mlm_same_encoder"]
    run(Stage("step_time_compiled", [sys.executable, str(BENCH / "bench_pretraining.py"), *device, *toy, "--no-scans",
                                     "--compile", *compiled, "--output", str(out / "step_time_compiled.json")],
              cap_s=stage_cap("step_time_compiled", args), result_file=out / "step_time_compiled.json"))
    embed_toy = ["--quick", "--steps", "2", "--warmup", "1", "--batch-sizes", "4,16", "--count", "64"]
    run(Stage("embedding", [sys.executable, str(BENCH / "bench_embedding.py"), *device,
                            *(embed_toy if args.dry_run else ["--steps", "5", "--warmup", "2", "--count", "8192"]),
                            "--output", str(out / "embedding.json")],
              cap_s=stage_cap("embedding", args), result_file=out / "embedding.json"))
    attention_toy = ["--quick", "--lengths", "660,1320", "--steps", "1", "--warmup", "0"]
    run(Stage("enbed_attention", [sys.executable, str(BENCH / "bench_enbed_attention.py"), *device,
                                  *(attention_toy if args.dry_run else ["--steps", "5", "--max-seconds", "10"]),
                                  "--output", str(out / "enbed_attention.json")],
              cap_s=stage_cap("enbed_attention", args), result_file=out / "enbed_attention.json"))
    for objective, variant in (("mae", "mae"), ("mlm", "mlm_same_encoder")):
        seconds = step_seconds(step, variant)
        steps = 3 if args.dry_run else (
            max(1, int(args.pretrain_seconds / (seconds * views_per_barcode(args.recipe)))) if seconds else 0)
        stage = pretrain_stage(f"pretrain_{objective}", objective, steps, args, out)
        if steps == 0:
            stage.status, stage.detail = "skipped", f"no step time measured for {variant}"
            stages[stage.name] = stage
            continue
        run(stage)
        stage.result = read_pretraining(stage, out)
    launch = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
              "--num_machines", "1", "--mixed_precision", "no" if args.dry_run else "bf16", "--dynamo_backend", "no",
              str(REPO / "train.py"), "--preset", "tiny", "--data", str(DEMO_DATA), "--max_steps", "4",
              "--eval_steps", "4", "--save_steps", "4", "--evaluate", "false", "--overwrite_output_dir", "true",
              "--output_dir", str(out / "multi_gpu")]
    if gpus >= 2 or args.dry_run:
        env = {"ACCELERATE_USE_CPU": "true", "OMP_NUM_THREADS": "1"} if args.dry_run else {}
        run(Stage("multi_gpu", launch, cap_s=stage_cap("multi_gpu", args), env=env))
    else:
        stages["multi_gpu"] = Stage("multi_gpu", launch, stage_cap("multi_gpu", args), status="skipped",
                                    detail=f"{gpus} GPU(s) on this machine; the 2-process launch needs 2 or more")

    report = {
        "suite": "barcodemae device suite",
        "dry_run": args.dry_run,
        "recipe": args.recipe,
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "machine": {"python": platform.python_version(), "platform": platform.platform()},
        "stages": {name: {"status": s.status, "seconds": round(s.seconds, 1), "cap_s": s.cap_s, "detail": s.detail,
                          "result": s.result} for name, s in stages.items()},
    }
    (out / "suite.json").write_text(json.dumps(report, indent=2, default=str))
    (out / "suite.md").write_text(render_markdown(report))
    print(json.dumps({name: stage["status"] for name, stage in report["stages"].items()}, indent=2))
    return 0


def render_markdown(report: dict[str, Any]) -> str:
    """A short human summary of ``suite.json``."""
    lines = [f"# Device suite ({'dry run' if report['dry_run'] else 'GPU'}), {report['date']}", "",
             f"Pretraining recipe: {report['recipe']}.", "",
             "| stage | status | seconds | headline |", "|---|---|---:|---|"]
    for name, stage in report["stages"].items():
        lines.append(f"| {name} | {stage['status']} | {stage['seconds']} | {headline(name, stage['result'])} |")
    return "\n".join(lines) + "\n"


def headline(name: str, result: Any) -> str:
    """The one or two numbers of a stage worth a table cell."""
    if not result:
        return ""
    if name.startswith("step_time"):
        rows = result.get("main", {}).get("rows", [])
        return ", ".join(f"{row['variant']} {1000 * row['median_s']:.1f} ms/step" for row in rows)
    if name == "embedding":
        best = max(result.get("model_only", []), key=lambda row: row["barcodes_per_s"], default=None)
        extra = result.get("extrapolation_bioscan_5m") or {}
        if best is None:
            return ""
        return (f"{best['barcodes_per_s']:.0f} barcodes/s (batch {best['batch_size']}); 5.15M barcodes in "
                f"{extra.get('end_to_end_hours', float('nan')):.2f} h end to end")
    if name == "enbed_attention":
        slopes = result.get("loglog_slope_longest_two", {})
        longest = {row["variant"]: row for row in result.get("rows", []) if row["status"] == "ok"}
        return "; ".join(f"{variant} to {row['bases']} bp {row['median_s']:.3f} s "
                         f"(slope {slopes.get(variant, float('nan')):.2f})"
                         for variant, row in longest.items())
    if name.startswith("pretrain"):
        before, after = result["untrained"], result["trained"]
        return (f"{result['steps']} steps; genus 1-NN (val_unseen) {before['genus_1nn_accuracy']} -> "
                f"{after['genus_1nn_accuracy']}; val ppl {after['val_perplexity']}")
    return ""


if __name__ == "__main__":
    raise SystemExit(main())
