"""What the progress bar and ``metrics.jsonl`` show of training steps: the losses, the learning rate, the gradient
norm and the throughput over the steps since the last log line (smoother than one step's).

The records are written by :class:`~barcodemae.training.metrics_log.MetricsLog`; this module only composes them.
"""

from __future__ import annotations

import time
from typing import Any

import torch

from .batches import GlobalBatchStream
from .optimizer_step import StepResult


class StepLog:
    """Console postfix and log records of the steps trained from ``stream`` with ``scheduler``'s learning rate; the
    extra loss terms appear only when the stream feeds them (several views, composition targets)."""

    def __init__(self, stream: GlobalBatchStream, scheduler: torch.optim.lr_scheduler.LRScheduler) -> None:
        self.stream, self.scheduler = stream, scheduler
        self.restart()

    def restart(self) -> None:
        """Start a new throughput window (after a logged step)."""
        self.start, self.tokens, self.samples = time.perf_counter(), 0, 0

    def add(self, step: StepResult) -> None:
        """Count a trained step in the throughput window."""
        self.tokens += step.tokens
        self.samples += step.samples

    def postfix(self, step: StepResult) -> dict[str, str]:
        """The progress bar's postfix: loss, learning rate, tokens per second (the count ``metrics.jsonl`` logs)."""
        throughput = self.tokens / (time.perf_counter() - self.start)
        postfix = {"loss": f"{step.loss:.4f}", "lr": f"{self.scheduler.get_last_lr()[0]:.2e}",
                   "tok/s": f"{throughput:,.0f}"}
        if self.stream.views > 1:
            postfix["contrastive"] = f"{step.contrastive_loss:.4f}"
        if self.stream.composition_kmer_size:
            postfix["composition"] = f"{step.composition_loss:.4f}"
        if self.stream.taxon_labels is not None:
            postfix["taxonomy"] = f"{step.taxonomy_loss:.4f}"
        return postfix

    def record(self, global_step: int, step: StepResult) -> dict[str, Any]:
        """The ``metrics.jsonl`` record of optimiser step ``global_step``."""
        elapsed = time.perf_counter() - self.start
        position = self.stream.position
        record = {
            "step": global_step,
            "loss": step.loss,
            "learning_rate": float(self.scheduler.get_last_lr()[0]),
            "grad_norm": float(step.grad_norm) if step.grad_norm is not None else None,
            "epoch": position.epoch + position.batch / self.stream.batches_per_epoch,
            "tokens_per_second": self.tokens / elapsed,
            "samples_per_second": self.samples / elapsed,
        }
        if self.stream.views > 1:
            record["contrastive_loss"] = step.contrastive_loss
        if self.stream.composition_kmer_size:
            record["composition_loss"] = step.composition_loss
        if self.stream.taxon_labels is not None:
            record["taxonomy_loss"] = step.taxonomy_loss
        return record


__all__ = ["StepLog"]
