"""The pretraining loop behind ``train.py`` (accelerate: 1 CPU, 1 GPU, multi-GPU, multi-node, DeepSpeed/FSDP).

Stages: the run folder (:mod:`.open_run_folder`), data, masking and the batch stream (:mod:`.builders`), validation
(:class:`~.validation.RunValidation`), model and optimiser, the training loop (resumable at every checkpoint), then
the exported model (:mod:`.final_model`). The output folder's files are named in :mod:`barcodemae.run_layout`.

Loss normalisation: each micro-batch contributes its *summed* masked-token cross-entropy divided by the masked
tokens of the whole optimiser step (all micro-batches, all processes), rescaled for accelerate's division by the
accumulation steps and DDP's mean over processes. The gradient is therefore exactly that of one process seeing
the whole global batch, whatever the split of tokens between devices.
"""

from __future__ import annotations

import json
import logging
import math
import os
import sys
import time
from pathlib import Path
from typing import Any

import torch
from accelerate import Accelerator
from accelerate.utils import DistributedType, set_seed
from tqdm.auto import tqdm

from barcodemae.errors import report_errors
from barcodemae.masking.curriculum import CMGEMSCurriculum
from barcodemae.optim import learning_rate_schedule
from barcodemae.run_layout import TRACKER_PROJECT, RunLayout
from barcodemae.tokenization import BarcodeTokenizer

from .accelerator_setup import available_trackers, resolve_mixed_precision
from .arguments import RUN_CONFIG_ARGUMENTS, TrainingArguments
from .builders import build_masking, build_model, build_optimizer, build_pretraining_stream
from .checkpoints import load_checkpoint, save_checkpoint, validate_checkpoint
from .data import load_training_data, prepare_simulated_data
from .data_identity import DATA_FINGERPRINT, data_fingerprint
from .final_model import export_final_model
from .initial_model import load_initial_model
from .metrics_log import MetricsLog
from .open_run_folder import open_run_folder
from .run_folder import exclusive_run_folder
from .validation import RunValidation, pretraining_output

logger = logging.getLogger("barcodemae.train")


def run_training(args: TrainingArguments) -> dict[str, Any]:
    """Train, checkpoint, export and evaluate; returns a summary (steps, last metrics, evaluation).

    Stages: the run folder (:func:`open_run_folder`), data and masking (:func:`build_pretraining_stream`),
    validation (:class:`RunValidation`), model and optimiser, the training loop (resumable at every checkpoint),
    then :func:`export_final_model`.
    """
    output_dir = Path(args.output_dir)
    trackers = available_trackers(args.report_to)
    accelerator = Accelerator(
        gradient_accumulation_steps=args.gradient_accumulation_steps,
        mixed_precision=resolve_mixed_precision(args.mixed_precision),
        log_with=trackers,
        project_dir=str(output_dir),
        step_scheduler_with_optimizer=False,  # stepped once per optimiser step below, whatever the process count
    )
    with exclusive_run_folder(output_dir, accelerator.is_main_process):  # no second job writes here meanwhile
        return train_in_run_folder(args, accelerator, trackers)


def train_in_run_folder(
    args: TrainingArguments, accelerator: Accelerator, trackers: list[str] | None
) -> dict[str, Any]:
    """:func:`run_training` once its folder is held: every stage from the run folder to the exported model."""
    layout = RunLayout(args.output_dir)
    data_identity = data_fingerprint(args.data)  # once: checked on resume, recorded in every checkpoint
    args, checkpoint, run_id = open_run_folder(args, layout, accelerator, data_identity)

    # ------------------------------------------------------------------ data
    tokenizer = BarcodeTokenizer.from_spec(args.tokenizer)
    # One table serves pretraining (random frames), validation and probes (frame 0): the strictest minimum.
    min_length = tokenizer.min_barcode_length(random_frames=args.frame_offset_augmentation)
    with accelerator.main_process_first():
        data_path = (
            Path(args.data) if args.data else prepare_simulated_data(layout.simulated_data, args.simulate_genera,
                                                                     args.seed)
        )
        data = load_training_data(data_path, min_length=min_length)
    pretrain, _ = data.source(args.split, sample_size=args.max_train_samples, seed=args.seed)
    collator, curriculum, npmi_table = build_masking(
        args, tokenizer, pretrain, layout.npmi, resume=checkpoint is not None, is_main=accelerator.is_main_process
    )

    stream, mask_fn = build_pretraining_stream(
        args, tokenizer, pretrain, collator, accelerator.process_index, accelerator.num_processes
    )
    steps_per_epoch = max(1, stream.batches_per_epoch // args.gradient_accumulation_steps)
    max_steps = args.max_steps if args.max_steps > 0 else math.ceil(args.num_epochs * steps_per_epoch)
    validate = RunValidation(args, data, tokenizer, mask_fn, accelerator, curriculum)
    best = validate.best

    # ------------------------------------------------------------------ model and optimisation
    set_seed(args.seed)
    if args.init_from:
        model = load_initial_model(
            args.init_from, **{attribute: getattr(args, name) for name, attribute in RUN_CONFIG_ARGUMENTS.items()}
        )
    else:
        model = build_model(args, tokenizer)
    optimizer = build_optimizer(model, args)
    scheduler = learning_rate_schedule(
        optimizer, args.lr_scheduler, warmup_ratio=args.warmup_ratio, max_steps=max_steps
    )
    model, optimizer, scheduler = accelerator.prepare(model, optimizer, scheduler)
    if trackers:
        accelerator.init_trackers(TRACKER_PROJECT, config={k: v for k, v in args.to_dict().items() if v is not None})

    global_step = 0
    progress = tqdm(total=max_steps, disable=not accelerator.is_main_process, desc="pretraining", dynamic_ncols=True)
    metrics = MetricsLog(accelerator, layout.metrics, progress)
    if checkpoint is not None:
        sharded = accelerator.distributed_type in (DistributedType.DEEPSPEED, DistributedType.FSDP)  # sharded states
        state = validate_checkpoint(checkpoint, accelerator.num_processes, sharded=sharded)
        load_checkpoint(accelerator, checkpoint)
        global_step = int(state["global_step"])
        stream.load_state_dict(state["data_position"])
        if curriculum is not None and state.get("curriculum") is not None:
            curriculum.load_state_dict(state["curriculum"])
        if best is not None:
            best.load_state_dict(state.get("best_model"))
        metrics.truncate_after(global_step)
        progress.update(global_step)
        logger.info(
            "resumed from %s at step %d (epoch %d, batch %d)",
            checkpoint, global_step, stream.position.epoch, stream.position.batch,
        )

    parameter_count = sum(p.numel() for p in model.parameters())
    if accelerator.is_main_process:
        logger.info(
            "%d pretraining barcodes, %d steps of %d barcodes (%d per device x %d processes x %d accumulation), "
            "%s parameters",
            len(pretrain), max_steps, stream.global_size * args.gradient_accumulation_steps,
            args.per_device_batch_size, accelerator.num_processes, args.gradient_accumulation_steps,
            f"{parameter_count:,}",
        )

    def trainer_state() -> dict[str, Any]:
        return {
            "run_id": run_id,
            DATA_FINGERPRINT: data_identity,
            "global_step": global_step,
            "max_steps": max_steps,
            "data_position": stream.state_dict(),
            "curriculum": curriculum.state_dict() if curriculum is not None else None,
            "num_processes": accelerator.num_processes,
            "best_model": best.state_dict() if best is not None else None,
        }

    model.train()
    parameters = [p for p in model.parameters() if p.requires_grad]
    window_start, window_tokens, window_samples = time.perf_counter(), 0, 0
    last_record: dict[str, Any] = {}
    if global_step == 0:
        # The untrained baseline (a random encoder's mean-pooled k-mer embeddings already carry k-mer
        # composition), so later probe values can be read against it.
        metrics.write(validate(model, global_step, notify_curriculum=False))
    while global_step < max_steps:
        micro_batches = [stream.next() for _ in range(args.gradient_accumulation_steps)]
        step_targets = sum(counts["targets"] for _, counts in micro_batches)
        # Every masked token of the optimiser step weighs the same: the model divides its summed loss by the step's
        # targets per process and micro-batch, which accelerate's mean over both turns into the global mean.
        num_items = max(step_targets, 1) / (accelerator.num_processes * args.gradient_accumulation_steps)
        # The masked-token loss summed over the step; the contrastive and composition losses over micro-batch means.
        step_losses = torch.zeros(3, device=accelerator.device, dtype=torch.float64)
        grad_norm = None
        for batch, counts in micro_batches:
            with accelerator.accumulate(model):
                batch = {k: v.to(accelerator.device) for k, v in batch.items()}
                output = pretraining_output(model, batch, num_items_in_batch=num_items)
                accelerator.backward(output.loss)
                if accelerator.sync_gradients:
                    grad_norm = accelerator.clip_grad_norm_(parameters, args.max_grad_norm)
                optimizer.step()
                if accelerator.sync_gradients:
                    scheduler.step()
                optimizer.zero_grad(set_to_none=True)
            step_losses[0] += output.reconstruction_loss.detach().double() * num_items
            if output.contrastive_loss is not None:
                step_losses[1] += output.contrastive_loss.detach().double()
            if output.composition_loss is not None:
                step_losses[2] += output.composition_loss.detach().double()
            window_tokens += counts["tokens"]
            window_samples += stream.global_size
        global_step += 1
        if curriculum is not None:
            curriculum.on_step(global_step, max_steps)
        reconstruction_sum, *term_sums = accelerator.reduce(step_losses, reduction="sum").tolist()
        loss = reconstruction_sum / max(step_targets, 1)
        # The extra terms are micro-batch means: their step value is the mean over micro-batches and processes.
        contrastive_loss, composition_loss = (
            term / (accelerator.num_processes * args.gradient_accumulation_steps) for term in term_sums
        )
        progress.update(1)
        # Tokens per second since the last log line: smoother than one step, and the same count metrics.jsonl logs.
        throughput = window_tokens / (time.perf_counter() - window_start)
        postfix = {"loss": f"{loss:.4f}", "lr": f"{scheduler.get_last_lr()[0]:.2e}", "tok/s": f"{throughput:,.0f}"}
        if stream.views > 1:
            postfix["contrastive"] = f"{contrastive_loss:.4f}"
        if stream.composition_kmer_size:
            postfix["composition"] = f"{composition_loss:.4f}"
        progress.set_postfix(postfix)
        if not math.isfinite(loss + contrastive_loss + composition_loss):
            raise FloatingPointError(
                f"training loss is {loss} at step {global_step}; lower --learning_rate or use bf16/no mixed precision"
            )

        if global_step % args.logging_steps == 0 or global_step == max_steps:
            elapsed = time.perf_counter() - window_start
            last_record = {
                "step": global_step,
                "loss": loss,
                "learning_rate": float(scheduler.get_last_lr()[0]),
                "grad_norm": float(grad_norm) if grad_norm is not None else None,
                "epoch": stream.position.epoch + stream.position.batch / stream.batches_per_epoch,
                "tokens_per_second": window_tokens / elapsed,
                "samples_per_second": window_samples / elapsed,
            }
            if stream.views > 1:
                last_record["contrastive_loss"] = contrastive_loss
            if stream.composition_kmer_size:
                last_record["composition_loss"] = composition_loss
            metrics.write(last_record)
            window_start, window_tokens, window_samples = time.perf_counter(), 0, 0
        if global_step % args.eval_steps == 0 or global_step == max_steps:
            metrics.write(validate(model, global_step))
        if global_step % args.save_steps == 0 or global_step == max_steps:
            save_checkpoint(accelerator, layout, global_step, trainer_state(), args.save_total_limit)
        if args.stop_after_steps is not None and global_step >= args.stop_after_steps:
            progress.close()
            logger.warning("stopping after step %d (--stop_after_steps), as if the job were killed", global_step)
            accelerator.end_training()
            return {"global_step": global_step, "stopped_early": True}
    progress.close()

    loop_summary: dict[str, Any] = {
        "global_step": global_step, "max_steps": max_steps, "parameters": parameter_count, "last_log": last_record,
    }
    if isinstance(curriculum, CMGEMSCurriculum):
        loop_summary["curriculum_switch_step"] = curriculum.switch_step
        if not curriculum.switched:
            logger.warning(
                "--masking cm-gems never switched to %s: validation perplexity fell by at least %g at every "
                "evaluation, so this run masked with %s throughout",
                curriculum.late, curriculum.threshold, curriculum.early,
            )
    summary = export_final_model(args, accelerator, model, tokenizer, data, npmi_table, best, metrics, loop_summary)
    accelerator.wait_for_everyone()
    accelerator.end_training()
    return summary


def main(argv: list[str] | None = None) -> int:
    """``train.py``: expected failures (bad data, a used output folder, a corrupt checkpoint) are one line on
    stderr and exit status 2."""
    from .arguments import parse_args

    # Logging is configured here, never in the library: every process of a distributed run warns, the main one also
    # informs. The launcher's RANK says which process this is (creating accelerate state here would set up the
    # process group before the Accelerator does).
    main_process = int(os.environ.get("RANK", "0")) == 0
    logging.basicConfig(
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        level=logging.INFO if main_process else logging.WARNING,
    )

    def run() -> int:
        summary = run_training(parse_args(argv))
        if "evaluation" in summary:
            print(json.dumps({"evaluation": summary["evaluation"], "final_model": summary["final_model"]}, indent=2,
                             default=str))
        return 0

    return report_errors("train.py", run)


if __name__ == "__main__":
    sys.exit(main())
