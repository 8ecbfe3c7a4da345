"""One optimiser step of pretraining: the forward and backward passes of its micro-batches, gradient clipping, the
optimiser and learning-rate steps, and the step's losses reduced across processes.

Loss normalisation: each micro-batch contributes its *summed* masked-token cross-entropy divided by the masked
tokens of the whole optimiser step (all micro-batches, all processes), rescaled for accelerate's division by the
accumulation steps and DDP's mean over processes. The gradient is therefore exactly that of one process seeing
the whole global batch, whatever the split of tokens between devices.

Why apart from the loop: as MAE's ``engine_pretrain.train_one_epoch`` is apart from ``main_pretrain.py``, what one
step computes can be read (and changed) without the run's setup, logging and checkpointing around it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from accelerate import Accelerator

from modeling_barcodemae.taxonomy_losses import taxonomy_warmup_scale

from .batches import GlobalBatchStream
from .validation import pretraining_output


@dataclass(frozen=True)
class StepResult:
    """What one optimiser step measured; the losses are over its whole global batch (every micro-batch and
    process), as a single process seeing that batch would compute them."""

    loss: float
    """The reconstruction cross-entropy (masked tokens, or ENBED's targets): summed, divided by the targets."""
    contrastive_loss: float
    """The view-contrastive term: the mean of its micro-batch means (0 without the term)."""
    composition_loss: float
    """The k-mer composition term: the mean of its micro-batch means (0 without the term)."""
    taxonomy_loss: float
    """The taxonomy term, unweighted: the mean of its micro-batch means (0 without the term)."""
    grad_norm: torch.Tensor | float | None
    """The gradient norm before clipping, as accelerate returns it (read it only when logged: no device sync per
    step); ``None`` when the step synchronised no gradients."""
    tokens: int
    """Tokens of the step over all processes: the global batches' attended tokens, summed over micro-batches."""
    samples: int
    """Barcodes of the step over all processes: the global batch times the accumulation steps."""

    def check_finite(self, global_step: int) -> None:
        """Stop a diverged run at the step it diverged, rather than train on NaN weights until the end."""
        if not math.isfinite(self.loss + self.contrastive_loss + self.composition_loss + self.taxonomy_loss):
            raise FloatingPointError(
                f"training loss is {self.loss} at step {global_step}; lower --learning_rate or use bf16/no mixed "
                "precision"
            )


class OptimizerStep:
    """Optimiser steps of a prepared (``accelerator.prepare``) model, optimiser and scheduler: each call draws
    ``accumulation_steps`` micro-batches from the stream, trains on them and returns their :class:`StepResult`.

    ``taxonomy_warmup_steps``: ``None`` when the model has no taxonomy term; else the steps over which its weight
    grows from 0 (:func:`taxonomy_warmup_scale` of the steps done, passed to every forward pass).
    """

    def __init__(
        self, accelerator: Accelerator, model: torch.nn.Module, optimizer: torch.optim.Optimizer,
        scheduler: torch.optim.lr_scheduler.LRScheduler, max_grad_norm: float, accumulation_steps: int,
        taxonomy_warmup_steps: int | None = None,
    ) -> None:
        self.accelerator, self.model, self.optimizer, self.scheduler = accelerator, model, optimizer, scheduler
        self.max_grad_norm, self.accumulation_steps = max_grad_norm, accumulation_steps
        self.taxonomy_warmup_steps = taxonomy_warmup_steps
        self.parameters = [p for p in model.parameters() if p.requires_grad]

    def __call__(self, stream: GlobalBatchStream, steps_done: int) -> StepResult:
        """One optimiser step (``steps_done`` before it) on the next ``accumulation_steps`` global micro-batches of
        ``stream``: this process trains on its rows of each (model inputs of ``(per_device_batch_size * views,
        length)``), while the counts that normalise the loss are the global batch's."""
        accelerator, model, micro_steps = self.accelerator, self.model, self.accumulation_steps
        extra = {} if self.taxonomy_warmup_steps is None else {
            "taxonomy_weight_scale": taxonomy_warmup_scale(steps_done, self.taxonomy_warmup_steps)}
        micro_batches = [stream.next() for _ in range(micro_steps)]
        step_targets = sum(counts["targets"] for _, counts in micro_batches)
        # Every masked token of the optimiser step weighs the same: the model divides its summed loss by the step's
        # targets per process and micro-batch, which accelerate's mean over both turns into the global mean.
        num_items = max(step_targets, 1) / (accelerator.num_processes * micro_steps)
        # The masked-token loss summed over the step; the contrastive and composition losses over micro-batch means.
        step_losses = torch.zeros(4, device=accelerator.device, dtype=torch.float64)
        grad_norm = None
        tokens = 0
        for batch, counts in micro_batches:
            with accelerator.accumulate(model):
                batch = {k: v.to(accelerator.device) for k, v in batch.items()}
                output = pretraining_output(model, batch, num_items_in_batch=num_items, **extra)
                accelerator.backward(output.loss)
                if accelerator.sync_gradients:
                    grad_norm = accelerator.clip_grad_norm_(self.parameters, self.max_grad_norm)
                self.optimizer.step()
                if accelerator.sync_gradients:
                    self.scheduler.step()
                self.optimizer.zero_grad(set_to_none=True)
            step_losses[0] += output.reconstruction_loss.detach().double() * num_items
            if output.contrastive_loss is not None:
                step_losses[1] += output.contrastive_loss.detach().double()
            if output.composition_loss is not None:
                step_losses[2] += output.composition_loss.detach().double()
            if getattr(output, "taxonomy_loss", None) is not None:  # ENBED's output has no such field
                step_losses[3] += output.taxonomy_loss.detach().double()
            tokens += counts["tokens"]
        reconstruction_sum, *term_sums = accelerator.reduce(step_losses, reduction="sum").tolist()
        # The extra terms are micro-batch means: their step value is the mean over micro-batches and processes.
        contrastive_loss, composition_loss, taxonomy_loss = (
            term / (accelerator.num_processes * micro_steps) for term in term_sums
        )
        return StepResult(
            loss=reconstruction_sum / max(step_targets, 1), contrastive_loss=contrastive_loss,
            composition_loss=composition_loss, taxonomy_loss=taxonomy_loss, grad_norm=grad_norm, tokens=tokens,
            samples=stream.global_size * micro_steps,
        )


__all__ = ["OptimizerStep", "StepResult"]
