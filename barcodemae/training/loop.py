"""The pretraining loop behind ``train.py`` (accelerate: 1 CPU, 1 GPU, multi-GPU, multi-node, DeepSpeed/FSDP).

:func:`train_in_run_folder` reads as the run's stages: the run folder (:mod:`.open_run_folder`), data, masking
and the batch stream (:mod:`.builders`), validation (:class:`~.validation.RunValidation`), model and optimiser,
resume (:mod:`.trainer_state`), the optimiser steps (:mod:`.optimizer_step`), each logged (:mod:`.step_log`),
validated and checkpointed (:mod:`.checkpoints`) at its interval, and the exported model (:mod:`.final_model`).
As in MAE's ``main_pretrain.py`` and ``engine_pretrain.py``, the run's setup and what one step computes are apart.
The output folder's files are named in :mod:`barcodemae.run_layout`.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import Any

from accelerate import Accelerator
from accelerate.utils import set_seed
from tqdm.auto import tqdm

from barcodemae.masking.curriculum import CMGEMSCurriculum, MaskingCurriculum
from barcodemae.optim import learning_rate_schedule
from barcodemae.run_layout import TRACKER_PROJECT, RunLayout
from barcodemae.tokenization import BarcodeTokenizer

from .accelerator_setup import available_trackers, resolve_mixed_precision
from .arguments import RUN_CONFIG_ARGUMENTS, TrainingArguments
from .builders import build_masking, build_model, build_optimizer, build_pretraining_stream
from .checkpoints import restore_checkpoint, save_checkpoint
from .data import load_run_data
from .data_identity import data_fingerprint
from .final_model import export_final_model
from .initial_model import load_initial_model
from .metrics_log import MetricsLog
from .open_run_folder import open_run_folder
from .optimizer_step import OptimizerStep
from .run_folder import exclusive_run_folder
from .step_log import StepLog
from .taxonomy import TaxonLabels, pretraining_taxon_labels
from .trainer_state import TrainerState
from .validation import RunValidation

logger = logging.getLogger("barcodemae.train")


def run_training(args: TrainingArguments) -> dict[str, Any]:
    """Train, checkpoint, export and evaluate; returns a summary (steps, last metrics, evaluation).

    Creates the run's ``Accelerator`` and holds its output folder for the job (:func:`exclusive_run_folder`) while
    :func:`train_in_run_folder` runs the stages.
    """
    output_dir = Path(args.output_dir)
    trackers = available_trackers(args.report_to)
    accelerator = Accelerator(
        gradient_accumulation_steps=args.gradient_accumulation_steps,
        mixed_precision=resolve_mixed_precision(args.mixed_precision),
        log_with=trackers,
        project_dir=str(output_dir),
        step_scheduler_with_optimizer=False,  # stepped once per optimiser step, whatever the process count
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

    # ------------------------------------------------------------------ data, masking, validation
    tokenizer = BarcodeTokenizer.from_spec(args.tokenizer)
    with accelerator.main_process_first():  # the main process simulates and caches the table, the others reuse it
        data = load_run_data(args, tokenizer, layout.simulated_data, data_identity)
    pretrain, _ = data.source(args.split, sample_size=args.max_train_samples, seed=args.seed)
    taxa = None if args.taxonomy_loss == "none" else pretraining_taxon_labels(
        data, args.split, args.taxonomy_rank, sample_size=args.max_train_samples, seed=args.seed)
    collator, curriculum, npmi_table = build_masking(
        args, tokenizer, pretrain, layout.npmi, resume=checkpoint is not None, is_main=accelerator.is_main_process
    )
    stream, mask_fn = build_pretraining_stream(
        args, tokenizer, pretrain, collator, accelerator.process_index, accelerator.num_processes,
        taxon_labels=None if taxa is None else taxa.labels,
    )
    steps_per_epoch = max(1, stream.batches_per_epoch // args.gradient_accumulation_steps)
    max_steps = args.max_steps if args.max_steps > 0 else math.ceil(args.num_epochs * steps_per_epoch)
    validate = RunValidation(args, data, tokenizer, mask_fn, accelerator, curriculum)

    # ------------------------------------------------------------------ model and optimisation
    set_seed(args.seed)
    if args.init_from:
        run_config = {attribute: getattr(args, name) for name, attribute in RUN_CONFIG_ARGUMENTS.items()}
        model = load_initial_model(args.init_from, **run_config, taxonomy_num_classes=taxa_count(taxa))
    else:
        model = build_model(args, tokenizer, taxonomy_num_classes=taxa_count(taxa))
    optimizer = build_optimizer(model, args)
    scheduler = learning_rate_schedule(optimizer, args.lr_scheduler, warmup_ratio=args.warmup_ratio,
                                       max_steps=max_steps)
    model, optimizer, scheduler = accelerator.prepare(model, optimizer, scheduler)
    if trackers:
        accelerator.init_trackers(TRACKER_PROJECT, config={k: v for k, v in args.to_dict().items() if v is not None})
    train_step = OptimizerStep(accelerator, model, optimizer, scheduler, args.max_grad_norm,
                               args.gradient_accumulation_steps,
                               taxonomy_warmup_steps=None if taxa is None else args.taxonomy_warmup_steps)

    # ------------------------------------------------------------------ resume
    progress = tqdm(total=max_steps, disable=not accelerator.is_main_process, desc="pretraining", dynamic_ncols=True)
    metrics = MetricsLog(accelerator, layout.metrics, progress)
    state = TrainerState(run_id, data_identity, max_steps, accelerator.num_processes, stream, curriculum, validate.best)
    global_step = 0
    if checkpoint is not None:
        global_step = state.load_state_dict(restore_checkpoint(accelerator, checkpoint))
        metrics.truncate_after(global_step)
        progress.update(global_step)
        logger.info("resumed from %s at step %d (epoch %d, batch %d)", checkpoint, global_step,
                    stream.position.epoch, stream.position.batch)
    parameter_count = sum(p.numel() for p in model.parameters())
    if accelerator.is_main_process:
        logger.info(
            "%d pretraining barcodes, %d steps of %d barcodes (%d per device x %d processes x %d accumulation), "
            "%s parameters",
            len(pretrain), max_steps, stream.global_size * args.gradient_accumulation_steps,
            args.per_device_batch_size, accelerator.num_processes, args.gradient_accumulation_steps,
            f"{parameter_count:,}",
        )

    # ------------------------------------------------------------------ the steps
    model.train()
    step_log = StepLog(stream, scheduler)
    last_record: dict[str, Any] = {}
    if global_step == 0:
        # The untrained baseline (a random encoder's mean-pooled k-mer embeddings already carry k-mer
        # composition), so later probe values can be read against it.
        metrics.write(validate(model, global_step, notify_curriculum=False))
    while global_step < max_steps:
        step = train_step(stream, global_step)
        global_step += 1
        if curriculum is not None:
            curriculum.on_step(global_step, max_steps)
        step_log.add(step)
        progress.update(1)
        progress.set_postfix(step_log.postfix(step))
        step.check_finite(global_step)
        if global_step % args.logging_steps == 0 or global_step == max_steps:
            last_record = step_log.record(global_step, step)
            metrics.write(last_record)
            step_log.restart()
        if global_step % args.eval_steps == 0 or global_step == max_steps:
            metrics.write(validate(model, global_step))
        if global_step % args.save_steps == 0 or global_step == max_steps:
            save_checkpoint(accelerator, layout, global_step, state.state_dict(global_step), args.save_total_limit)
        if args.stop_after_steps is not None and global_step >= args.stop_after_steps:
            progress.close()
            logger.warning("stopping after step %d (--stop_after_steps), as if the job were killed", global_step)
            accelerator.end_training()
            return {"global_step": global_step, "stopped_early": True}
    progress.close()

    # ------------------------------------------------------------------ the exported model
    loop_summary: dict[str, Any] = {
        "global_step": global_step, "max_steps": max_steps, "parameters": parameter_count, "data": str(data.path),
        "last_log": last_record,
        **curriculum_summary(curriculum), **taxonomy_summary(args, taxa),
    }
    summary = export_final_model(
        args, accelerator, model, tokenizer, data, npmi_table, validate.best, metrics, loop_summary
    )
    accelerator.wait_for_everyone()
    accelerator.end_training()
    return summary


def taxa_count(taxa: TaxonLabels | None) -> int:
    """Classes of the ``ce`` taxonomy head (0 without the taxonomy term)."""
    return 0 if taxa is None else taxa.num_classes


def taxonomy_summary(args: TrainingArguments, taxa: TaxonLabels | None) -> dict[str, Any]:
    """How many pretraining rows and taxa carried the taxonomy term's labels, for ``summary.json``."""
    if taxa is None:
        return {}
    return {"taxonomy_labels": {"rank": args.taxonomy_rank, "split": args.split, "rows": len(taxa.labels),
                                "labelled_rows": taxa.num_labelled_rows, "classes": taxa.num_classes}}


def curriculum_summary(curriculum: MaskingCurriculum | None) -> dict[str, Any]:
    """CM-GEMS's switch step for ``summary.json``, with a warning when it never switched (the run then masked with
    the early strategy throughout, which a reader of the results should know)."""
    if not isinstance(curriculum, CMGEMSCurriculum):
        return {}
    if not curriculum.switched:
        logger.warning(
            "--masking cm-gems never switched to %s: validation perplexity fell by at least %g at every "
            "evaluation, so this run masked with %s throughout",
            curriculum.late, curriculum.threshold, curriculum.early,
        )
    return {"curriculum_switch_step": curriculum.switch_step}
