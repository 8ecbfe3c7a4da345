"""The pretraining loop behind ``train.py`` (accelerate: 1 CPU, 1 GPU, multi-GPU, multi-node, DeepSpeed/FSDP).

The output folder's files are named in :mod:`barcodemae.run_layout`.

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
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from accelerate import Accelerator
from accelerate.utils import DistributedType, set_seed
from tqdm.auto import tqdm

from barcodemae.errors import check_writable_folder, report_errors
from barcodemae.eval import run_evaluation
from barcodemae.file_modes import apply_umask
from barcodemae.masking.collator import BarcodeMaskingCollator
from barcodemae.masking.curriculum import CMGEMSCurriculum, CMStepCurriculum, MaskingCurriculum
from barcodemae.masking.npmi import TABLE_FILENAME, NPMITable
from barcodemae.masking.span_corruption import SpanCorruptionCollator
from barcodemae.optim import learning_rate_schedule, weight_decay_groups
from barcodemae.run_layout import FINAL_MODEL_DIR, METRICS_FILE, TRACKER_PROJECT, RunLayout
from barcodemae.tokenization import BarcodeTokenizer
from modeling_barcodemae.configuration_barcodemae import BarcodeMAEConfig
from modeling_barcodemae.modeling_barcodemae import BarcodeMAEForPreTraining
from modeling_barcodemae.modeling_enbed import EnbedForConditionalGeneration, enbed_config

from .arguments import (
    ARCHITECTURE_ARGUMENTS,
    ENBED_ARCHITECTURE_ARGUMENTS,
    RUN_CONFIG_ARGUMENTS,
    TrainingArguments,
    save_arguments,
)
from .batches import BarcodeSource, GlobalBatchStream
from .best_model import BestModelTracker, check_selection_split
from .checkpoints import (
    check_resume_arguments,
    checkpoint_run_id,
    load_checkpoint,
    resolve_checkpoint,
    save_checkpoint,
    validate_checkpoint,
)
from .data import TrainingData, load_training_data, prepare_simulated_data
from .data_identity import DATA_FINGERPRINT, check_resume_data, data_fingerprint
from .initial_model import adopt_initial_model, load_initial_model
from .metrics_log import MetricsLog
from .run_folder import (
    adopt_resumed_run,
    check_new_run,
    check_resumed_run,
    exclusive_run_folder,
    planned_artefacts,
    read_run_id,
    start_run,
)
from .validation import GenusProbe, fixed_validation_batches, pretraining_output, validation_loss

logger = logging.getLogger("barcodemae.train")

NPMI_STRATEGIES = ("genemask", "global", "stochastic_global")
NPMI_BUILD_SEQUENCES = 20_000


# ---------------------------------------------------------------------------------------------- builders
def parameters_are_sharded(accelerator: Accelerator) -> bool:
    """Whether each process holds only a shard of the parameters (FSDP, DeepSpeed ZeRO-3).

    Code that runs the unwrapped model on one process (the periodic genus probe) would then see flat shards, or
    hang waiting for an all-gather the other processes never join. ZeRO-1/2 shard only optimiser state.
    """
    if accelerator.distributed_type == DistributedType.FSDP:
        return True
    if accelerator.distributed_type == DistributedType.DEEPSPEED:
        plugin = accelerator.state.deepspeed_plugin
        return plugin is not None and int(plugin.zero_stage) == 3
    return False


def build_model(
    args: TrainingArguments, tokenizer: BarcodeTokenizer
) -> BarcodeMAEForPreTraining | EnbedForConditionalGeneration:
    """A freshly initialised pretraining model: the tokenizer's fields, the architecture flags, this run's choices."""
    if args.objective == "enbed":
        return EnbedForConditionalGeneration(
            enbed_config(
                tokenizer.model_config_kwargs(),
                args.num_sentinels,
                **{keyword: getattr(args, name) for name, keyword in ENBED_ARCHITECTURE_ARGUMENTS.items()},
            )
        )
    config = BarcodeMAEConfig.from_tokenizer(
        tokenizer,
        **{attribute: getattr(args, name) for name, attribute in ARCHITECTURE_ARGUMENTS.items()},
        **{attribute: getattr(args, name) for name, attribute in RUN_CONFIG_ARGUMENTS.items()},
        attention_probs_dropout_prob=args.dropout,
        pretraining_objective=args.objective,
    )
    return BarcodeMAEForPreTraining(config)


def pretrained_encoder(model: BarcodeMAEForPreTraining | EnbedForConditionalGeneration) -> torch.nn.Module:
    """The encoder whose mean-pooled states are the barcode embedding: BarcodeMAE's, or ENBED's LongT5 encoder."""
    return model.get_encoder() if isinstance(model, EnbedForConditionalGeneration) else model.barcodemae


def build_masking(
    args: TrainingArguments, tokenizer, source: BarcodeSource, output_dir: Path | None, resume: bool, is_main: bool
) -> tuple[BarcodeMaskingCollator, MaskingCurriculum | None, NPMITable | None]:
    """Collator (used for its vectorised ``mask_batch``), curriculum and NPMI table for ``--masking``.

    The curriculum is ``None`` unless ``--masking`` names one, the table unless a PMI-based strategy uses one.
    ``output_dir=None`` (benchmarks) neither saves nor reloads a table.
    """
    curriculum: MaskingCurriculum | None = None
    strategy: str | None = args.masking
    if args.masking == "cm-gems":
        curriculum, strategy = CMGEMSCurriculum(), None
    elif args.masking == "cm-step":
        curriculum, strategy = CMStepCurriculum(), None
    names = {strategy} if curriculum is None else {curriculum.early, curriculum.late}
    table = None
    if names & set(NPMI_STRATEGIES):
        table = load_or_build_npmi_table(args, source, output_dir, resume, is_main)
    collator = BarcodeMaskingCollator(
        tokenizer, strategy=strategy, mask_ratio=args.mask_ratio, seed=args.seed, curriculum=curriculum,
        npmi_table=table,
    )
    return collator, curriculum, table


def load_or_build_npmi_table(
    args: TrainingArguments, source: BarcodeSource, output_dir: Path | None, resume: bool, is_main: bool
) -> NPMITable:
    """``--npmi_table``; when resuming, the table the run saved in ``<output_dir>/npmi``; else one counted now.

    Reloading on resume masks with exactly the table the run started with, without counting the corpus again.
    """
    if args.npmi_table:
        return NPMITable.load(args.npmi_table)
    saved = RunLayout(output_dir).npmi if output_dir is not None else None
    if resume and saved is not None and (saved / TABLE_FILENAME).is_file():
        logger.info("resuming with the NPMI table saved in %s", saved)
        return NPMITable.load(saved)
    # Deterministic (counts over the first barcodes), so every process builds the same table.
    table = NPMITable.build(source.take(np.arange(min(len(source), NPMI_BUILD_SEQUENCES))), progress=is_main)
    if is_main and saved is not None:
        table.save(saved)
    return table


def build_optimizer(model: torch.nn.Module, args: TrainingArguments) -> torch.optim.AdamW:
    """AdamW without weight decay on biases, LayerNorms and the MAE mask embedding (standard BERT practice)."""
    groups = weight_decay_groups(model, args.weight_decay)
    return torch.optim.AdamW(groups, lr=args.learning_rate, betas=(args.adam_beta1, args.adam_beta2))


def resolve_mixed_precision(choice: str) -> str:
    """``auto``: bf16 on a GPU that supports it, full precision otherwise (CPU autocast gains little)."""
    if choice != "auto":
        return choice
    return "bf16" if torch.cuda.is_available() and torch.cuda.is_bf16_supported() else "no"


def available_trackers(report_to: str) -> list[str] | None:
    """Trackers requested *and* installed; a missing package is logged, not fatal."""
    if report_to == "none":
        return None
    from accelerate.utils import is_tensorboard_available, is_wandb_available

    installed = {"tensorboard": is_tensorboard_available(), "wandb": is_wandb_available()}
    wanted = list(installed) if report_to == "all" else [name.strip() for name in report_to.split(",")]
    for name in wanted:
        if not installed.get(name, False):
            logger.warning("tracker %r is not installed; logging to %s and the console only", name, METRICS_FILE)
    return [name for name in wanted if installed.get(name, False)] or None


def broadcast_record_value(accelerator: Accelerator, record: dict[str, Any], metric: str) -> float | None:
    """``record[metric]`` of the main process on every process (the genus probe runs on the main one only)."""
    value = torch.tensor([float(record.get(metric, math.nan))], dtype=torch.float64, device=accelerator.device)
    if accelerator.num_processes > 1:
        from accelerate.utils import broadcast

        value = broadcast(value, from_process=0)
    number = float(value.item())
    return None if math.isnan(number) else number


# ---------------------------------------------------------------------------------------------- the job
def open_run_folder(
    args: TrainingArguments, accelerator: Accelerator, data_identity: dict[str, Any] | None
) -> tuple[TrainingArguments, Path | None, str]:
    """The run's folder, before any data is loaded: a new run (refusing another run's files) or a resumed one
    (its checkpoint checked against the arguments, the data's fingerprint ``data_identity`` and the folder's run
    id), ``training_args.json`` written.

    Returns the arguments with ``--init_from``'s architecture and tokenizer adopted, the checkpoint to resume from
    (``None`` for a new run) and the run id.
    """
    layout = RunLayout(args.output_dir)
    output_dir = layout.root
    args = adopt_initial_model(args)  # --init_from fixes architecture and tokenizer before anything is saved
    planned = planned_artefacts(simulated_data=not args.data, tensorboard=args.report_to in ("tensorboard", "all"))
    protected = [Path(args.data)] if args.data else []  # --overwrite_output_dir never deletes the training data
    checkpoint = resumed_run_id = None
    if args.resume_from_checkpoint:
        # Before training_args.json is rewritten with this run's arguments, and before any data is loaded.
        checkpoint = resolve_checkpoint(args.resume_from_checkpoint, layout)
        check_resume_arguments(checkpoint, args)
        check_resume_data(checkpoint, args.data, data_identity)
        resumed_run_id = checkpoint_run_id(checkpoint)
        check_resumed_run(output_dir, checkpoint, resumed_run_id)
    else:
        check_new_run(output_dir, args.overwrite_output_dir, planned, protected)  # every process: an error stops all
    if accelerator.is_main_process:
        check_writable_folder(output_dir)
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        if checkpoint is None:
            start_run(output_dir, args.overwrite_output_dir, planned, protected)
        else:
            adopt_resumed_run(output_dir, checkpoint, resumed_run_id, planned)
        save_arguments(args, layout.training_args)
    accelerator.wait_for_everyone()
    return args, checkpoint, read_run_id(output_dir)


def build_pretraining_stream(
    args: TrainingArguments, tokenizer: BarcodeTokenizer, pretrain: BarcodeSource, collator: BarcodeMaskingCollator,
    accelerator: Accelerator,
) -> tuple[GlobalBatchStream, Callable[..., Any]]:
    """The training batches (this process's rows of each global batch, augmented and masked) and the masking
    function validation batches reuse: ``(input_ids, attention_mask, rng) ->`` the masked tokens (BarcodeMAE /
    BarcodeBERT mask inside the model) or ENBED's span-corrupted inputs."""

    def token_mask(ids, attention, rng):
        return collator.mask_batch(ids, attention, rng=rng)

    spans = None
    if args.objective == "enbed":  # T5 span corruption: each run of masked tokens becomes one sentinel
        spans = SpanCorruptionCollator.from_tokenizer(
            tokenizer, sentinel_count=args.num_sentinels, noise_density=args.mask_ratio,
            mean_span_length=args.mean_span_length, mask_fn=None if args.masking == "random" else token_mask,
        )

    def mask_fn(ids, attention, rng):
        if spans is None:
            return token_mask(ids, attention, rng)
        batch = spans(ids, attention, rng)
        del batch["noise_mask"]  # a diagnostic, not a model input
        return batch

    stream = GlobalBatchStream(
        pretrain, tokenizer, mask_fn, per_device_batch_size=args.per_device_batch_size, seed=args.seed,
        frame_offsets=args.frame_offset_augmentation, max_start_shift=args.max_start_shift,
        substitution_rate=args.substitution_rate, views=args.views_per_barcode,
        composition_kmer_size=args.composition_kmer_size if args.composition_weight > 0 else 0,
        process_index=accelerator.process_index, num_processes=accelerator.num_processes,
    )
    return stream, mask_fn


class RunValidation:
    """What every ``--eval_steps`` measures: masked-token loss on fixed batches of ``--val_split`` and of the
    probe's ``--query_split`` (memorisation shows as a gap), the genus probe, the masking curriculum's
    perplexity signal and ``--load_best_model_at_end``'s tracker (state saved in checkpoints)."""

    def __init__(
        self, args: TrainingArguments, data: TrainingData, tokenizer: BarcodeTokenizer, mask_fn: Callable[..., Any],
        accelerator: Accelerator, curriculum: MaskingCurriculum | None,
    ) -> None:
        self.args, self.tokenizer, self.accelerator, self.curriculum = args, tokenizer, accelerator, curriculum
        self.val_batches = self._fixed_batches(data, tokenizer, mask_fn, args.val_split, args.seed + 1)
        # The probe's unseen-species queries, scored like val: perplexity there vs on val measures memorisation.
        self.unseen_val_batches = (
            self._fixed_batches(data, tokenizer, mask_fn, args.query_split, args.seed + 2) if args.key_split else None
        )
        self.probe = None
        if args.key_split and args.query_split and len(data.rows(args.key_split)) and len(data.rows(args.query_split)):
            keys, key_genus = data.source(args.key_split, require_genus=True)
            queries, query_genus = data.source(args.query_split, require_genus=True)
            if len(keys) and len(queries):
                self.probe = GenusProbe(keys, key_genus, queries, query_genus, args.max_probe_keys, args.seed)
        if self.probe is not None and parameters_are_sharded(accelerator):
            logger.warning(
                "periodic genus probe off: FSDP / DeepSpeed ZeRO-3 shard the parameters across processes, and the "
                "probe embeds with the whole encoder on the main process; %s/ is still evaluated", FINAL_MODEL_DIR
            )
            self.probe = None
        self.best = None
        if args.load_best_model_at_end:
            check_selection_split(args.metric_for_best_model, args.val_split, args.query_split)
            if parameters_are_sharded(accelerator):
                raise ValueError("--load_best_model_at_end is not supported with FSDP / DeepSpeed ZeRO-3 sharding")
            self.best = BestModelTracker(args.metric_for_best_model, RunLayout(args.output_dir))

    def _fixed_batches(
        self, data: TrainingData, tokenizer: BarcodeTokenizer, mask_fn: Callable[..., Any], split: str, seed: int
    ) -> list[dict[str, torch.Tensor]] | None:
        """Fixed global validation batches of per_device x processes barcodes (the training global batch), the
        last one partial: the scored barcodes and their masks do not depend on the process count. ``None`` when
        the split is empty; a process may hold no batch of a small split, and still takes part in the reduce."""
        size = min(len(data.rows(split)), self.args.max_val_samples)
        if not size:
            return None
        source, _ = data.source(split, limit=size)
        val_stream = GlobalBatchStream(
            source, tokenizer, mask_fn, per_device_batch_size=self.args.per_device_batch_size, seed=seed,
            frame_offsets=False, shuffle=False, drop_last=False, process_index=self.accelerator.process_index,
            num_processes=self.accelerator.num_processes,
        )
        return fixed_validation_batches(val_stream)

    def __call__(self, model: torch.nn.Module, global_step: int, notify_curriculum: bool = True) -> dict[str, Any]:
        """The record of step ``global_step`` (every process calls it: the losses are reduced across them)."""
        accelerator, seed = self.accelerator, self.args.seed
        # The unwrapped module: a rank whose share of the last partial batch is empty skips forward passes, which
        # must then involve no DDP collective.
        unwrapped = accelerator.unwrap_model(model)
        record: dict[str, Any] = {"step": global_step}
        if self.val_batches is not None:
            record.update(validation_loss(accelerator, unwrapped, self.val_batches, seed=seed))
            if (
                notify_curriculum
                and self.curriculum is not None
                and self.curriculum.on_evaluate(global_step, record["val_perplexity"])
            ):
                record["curriculum_switched"] = True
        if self.unseen_val_batches is not None:
            record.update(
                validation_loss(accelerator, unwrapped, self.unseen_val_batches, seed=seed, prefix="unseen_val")
            )
        if self.probe is not None:
            # Only the main process embeds; the probe does not touch model parameters or gradients.
            if accelerator.is_main_process:
                record.update(self.probe(pretrained_encoder(unwrapped), self.tokenizer, accelerator.device))
            accelerator.wait_for_everyone()
        if self.best is not None:
            # Every process takes the same decision (the probe's numbers are broadcast), only the main one writes.
            value = broadcast_record_value(accelerator, record, self.best.metric)
            self.best.update(value, global_step, unwrapped, self.tokenizer, write=accelerator.is_main_process)
            record["best_model_step"] = self.best.best_step
            accelerator.wait_for_everyone()
        return record


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
    args, checkpoint, run_id = open_run_folder(args, accelerator, data_identity)

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
        args, tokenizer, pretrain, layout.root, resume=checkpoint is not None, is_main=accelerator.is_main_process
    )

    stream, mask_fn = build_pretraining_stream(args, tokenizer, pretrain, collator, accelerator)
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


def export_final_model(
    args: TrainingArguments, accelerator: Accelerator, model: torch.nn.Module, tokenizer: BarcodeTokenizer,
    data: TrainingData, npmi_table: NPMITable | None, best: BestModelTracker | None, metrics: MetricsLog,
    summary: dict[str, Any],
) -> dict[str, Any]:
    """``final_model/`` (the last step's weights, or the best step's with ``--load_best_model_at_end``) with its
    tokenizer, label vocabulary and NPMI table, its evaluation (``--evaluate``) and ``summary.json``; returns the
    summary (``summary`` holds the loop's ``global_step``, ``max_steps``, ``parameters`` and ``last_log``)."""
    layout = RunLayout(args.output_dir)
    global_step = summary["global_step"]
    final_dir = layout.final_model
    summary = {**summary, "final_model": str(final_dir)}
    if best is not None and best.best_step is not None:
        best.load_best_weights(accelerator.unwrap_model(model))
        summary["final_model_step"] = best.best_step
        summary["best_model"] = best.state_dict()
        logger.info(
            "%s/ holds step %d, the best %s (%.4g); the last step was %d",
            final_dir.name, best.best_step, best.metric, best.best_value, global_step,
        )
        metrics.write({"step": global_step, "final_model_step": best.best_step, f"best_{best.metric}": best.best_value})
    else:
        summary["final_model_step"] = global_step
    # Every process takes part in gathering the weights (FSDP/DeepSpeed ZeRO-3 shard them); the main one writes.
    state_dict = accelerator.get_state_dict(model)
    if accelerator.is_main_process:
        unwrapped = accelerator.unwrap_model(model)
        unwrapped.save_pretrained(final_dir, state_dict=state_dict, safe_serialization=True)
        tokenizer.save_pretrained(final_dir)
        data.label_vocab.save(final_dir)
        if npmi_table is not None:
            npmi_table.save(final_dir)  # the masking statistics the model was trained with travel with it
        apply_umask(final_dir)
        if args.evaluate:
            results = run_evaluation(
                str(final_dir), str(data.path), str(layout.eval), reducer=args.eval_reducer,
                plots=args.eval_plots,
            )
            summary["evaluation"] = results
            # Only the metrics go to metrics.jsonl and the trackers: per-genus accuracies (thousands of genera on
            # BIOSCAN-5M), settings and split sizes stay in eval/results.json.
            metrics.write({"step": global_step, **_flatten(results.get("metrics", results), "eval/metrics/")})
        layout.summary.write_text(json.dumps(summary, indent=2, default=str))
    return summary


def _flatten(results: dict[str, Any], prefix: str = "eval/") -> dict[str, float]:
    """Numeric leaves of a nested results dict as ``eval/a/b`` keys (for metrics.jsonl and trackers)."""
    flat: dict[str, float] = {}
    for key, value in results.items():
        if isinstance(value, dict):
            flat.update(_flatten(value, f"{prefix}{key}/"))
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            flat[f"{prefix}{key}"] = float(value)
    return flat


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
