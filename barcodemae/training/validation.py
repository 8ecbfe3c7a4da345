"""Periodic validation: masked-token loss/perplexity on fixed masks, and the open-world 1-NN genus probe;
:class:`RunValidation` is what a run measures at every ``--eval_steps``.

Fixed masks (drawn once from the validation seed) make successive perplexities comparable, which the CM-GEMS
curriculum relies on. Validation runs under ``torch.random.fork_rng`` with a fixed seed, so it neither consumes
nor depends on the training RNG stream: resumed and uninterrupted runs stay identical.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from accelerate import Accelerator

from barcodemae.eval.metrics import one_nn_accuracy
from barcodemae.eval.postprocess import top_pc_variance_share
from barcodemae.inference import LAYER_MEAN, embed_barcode_layers, pooled_layer
from barcodemae.masking.curriculum import MaskingCurriculum
from barcodemae.run_layout import FINAL_MODEL_DIR, RunLayout
from barcodemae.tokenization import BarcodeTokenizer

from .accelerator_setup import parameters_are_sharded
from .arguments import TrainingArguments
from .batches import BarcodeSource, GlobalBatchStream, target_count
from .best_model import BestModelTracker, check_selection_split
from .builders import pretrained_encoder
from .data import TrainingData

logger = logging.getLogger(__name__)


def pretraining_output(model, batch: dict[str, torch.Tensor], num_items_in_batch: float = 1, **extra: float):
    """The model's pretraining output on a :class:`GlobalBatchStream` batch (every entry is a model input).

    The cross-entropy over the targets (``reconstruction_loss``: masked tokens, or ENBED's decoder labels) is
    summed and divided by ``num_items_in_batch`` (default 1: the sum), for exact normalisation across micro-batches
    and devices; :func:`target_count` is its token count. A batch with several views per barcode carries their
    ``barcode_ids`` (the contrastive term), a taxonomy run's its ``taxon_labels``; ``extra``: further forward
    arguments (the taxonomy term's ``taxonomy_weight_scale``).
    """
    return model(**batch, num_items_in_batch=num_items_in_batch, **extra)


def fixed_validation_batches(stream: GlobalBatchStream) -> list[dict[str, torch.Tensor]]:
    """All of a (non-shuffled, frame-0, ``drop_last=False``) stream's non-empty local slices, built once."""
    slices = (stream.local_slice(stream.global_batch(0, b)) for b in range(stream.batches_per_epoch))
    return [batch for batch in slices if batch is not None]


@torch.no_grad()
def validation_loss(
    accelerator, model, batches: list[dict[str, torch.Tensor]], seed: int, prefix: str = "val"
) -> dict[str, float]:
    """Masked-token loss and perplexity over the fixed batches, summed over all processes.

    Returns ``<prefix>_loss`` and ``<prefix>_perplexity`` (``val_*`` on seen species, ``unseen_val_*`` on the
    probe's unseen-species queries: a gap between the two is memorisation of the pretraining species).
    """
    model.eval()
    total = torch.zeros(2, dtype=torch.float64, device=accelerator.device)
    devices = [accelerator.device] if accelerator.device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        for batch in batches:
            output = pretraining_output(model, {k: v.to(accelerator.device) for k, v in batch.items()})
            count = torch.tensor(float(target_count(batch)), dtype=torch.float64, device=accelerator.device)
            total += torch.stack([output.reconstruction_loss.double(), count])
    total = accelerator.reduce(total, reduction="sum")
    model.train()
    loss = float(total[0] / total[1].clamp(min=1))
    return {f"{prefix}_loss": loss, f"{prefix}_perplexity": math.exp(min(loss, 50.0))}


class GenusProbe:
    """Open-world genus 1-NN: unseen-species queries against labelled keys of seen species (BIOSCAN protocol).

    Besides the headline ``genus_1nn_accuracy`` (the model's own embedding, ``config.pooled_layers``: what
    ``final_model/`` is scored on),
    it reports the accuracy of every hidden state (``genus_1nn_accuracy_layer_<i>``, 0 = embeddings) and of their
    average (``genus_1nn_accuracy_layer_mean``), and the share of the keys' variance on their first principal
    component (``top_pc_variance_share``): where pretraining helps or hurts, layer by layer, and whether the
    embeddings collapse onto one direction.
    """

    def __init__(
        self, keys: BarcodeSource, key_genus: np.ndarray, queries: BarcodeSource, query_genus: np.ndarray, limit: int,
        seed: int,
    ):
        rng = np.random.default_rng(seed)
        self.key_index = np.sort(rng.permutation(len(keys))[:limit])
        self.query_index = np.sort(rng.permutation(len(queries))[:limit])
        self.keys = keys.take(self.key_index)
        self.queries = queries.take(self.query_index)
        self.key_genus = np.asarray(key_genus)[self.key_index]
        self.query_genus = np.asarray(query_genus)[self.query_index]

    def __call__(self, encoder, tokenizer, device: torch.device, batch_size: int = 128) -> dict[str, float]:
        """Embed keys and queries with the evaluation suite's embedding loop (the model's own pooling and reading
        frames), so the periodic probe and the final evaluation score the same vectors; the encoder is left in
        training mode."""
        layers = [*range(encoder.config.num_hidden_layers + 1), LAYER_MEAN]
        embed = {"layers": layers, "batch_size": batch_size, "device": device, "progress": False}
        try:
            keys = embed_barcode_layers(encoder, tokenizer, self.keys, **embed)
            queries = embed_barcode_layers(encoder, tokenizer, self.queries, **embed)
        finally:
            encoder.train()
        record: dict[str, float] = {}
        for layer, key_vectors, query_vectors in zip(layers, keys, queries):
            accuracy = one_nn_accuracy(key_vectors, self.key_genus, query_vectors, self.query_genus, device=device)
            record[f"genus_1nn_accuracy_layer_{layer}"] = accuracy["accuracy"]
        own = len(layers) - 1 if pooled_layer(encoder) == LAYER_MEAN else len(layers) - 2  # average, or last block
        return {
            "genus_1nn_accuracy": record[f"genus_1nn_accuracy_layer_{layers[own]}"],
            **record,
            "top_pc_variance_share": top_pc_variance_share(keys[own]),
        }


def broadcast_record_value(accelerator: Accelerator, record: dict[str, Any], metric: str) -> float | None:
    """``record[metric]`` of the main process on every process (the genus probe runs on the main one only)."""
    value = torch.tensor([float(record.get(metric, math.nan))], dtype=torch.float64, device=accelerator.device)
    if accelerator.num_processes > 1:
        from accelerate.utils import broadcast

        value = broadcast(value, from_process=0)
    number = float(value.item())
    return None if math.isnan(number) else number


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


__all__ = [
    "GenusProbe",
    "RunValidation",
    "broadcast_record_value",
    "fixed_validation_batches",
    "pretraining_output",
    "validation_loss",
]
