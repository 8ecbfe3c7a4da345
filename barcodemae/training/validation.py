"""Periodic validation: masked-token loss/perplexity on fixed masks, and the open-world 1-NN genus probe.

Fixed masks (drawn once from the validation seed) make successive perplexities comparable, which the CM-GEMS
curriculum relies on. Validation runs under ``torch.random.fork_rng`` with a fixed seed, so it neither consumes
nor depends on the training RNG stream: resumed and uninterrupted runs stay identical.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

from barcodemae.eval.embeddings import embed_barcodes
from barcodemae.eval.metrics import one_nn_accuracy

from .batches import BarcodeSource, GlobalBatchStream


def masked_token_loss(model, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """Summed cross-entropy over masked tokens and their count, for exact normalisation across devices."""
    output = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], masked_positions=batch["masked_positions"])
    masked = output.masked_positions
    targets = batch["input_ids"][masked]
    # The pretraining head returns the logits of the masked tokens only, in row-major order.
    loss_sum = F.cross_entropy(output.logits.float(), targets, reduction="sum")
    return loss_sum, masked.sum()


def fixed_validation_batches(stream: GlobalBatchStream) -> list[dict[str, torch.Tensor]]:
    """All of a (non-shuffled, frame-0, ``drop_last=False``) stream's non-empty local slices, built once."""
    slices = (stream.local_slice(stream.global_batch(0, b)) for b in range(stream.batches_per_epoch))
    return [batch for batch in slices if batch is not None]


@torch.no_grad()
def validation_loss(accelerator, model, batches: list[dict[str, torch.Tensor]], seed: int) -> dict[str, float]:
    """Masked-token loss and perplexity over the fixed batches, summed over all processes."""
    model.eval()
    total = torch.zeros(2, dtype=torch.float64, device=accelerator.device)
    devices = [accelerator.device] if accelerator.device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        for batch in batches:
            loss_sum, count = masked_token_loss(model, {k: v.to(accelerator.device) for k, v in batch.items()})
            total += torch.stack([loss_sum.double(), count.double()])
    total = accelerator.reduce(total, reduction="sum")
    model.train()
    loss = float(total[0] / total[1].clamp(min=1))
    return {"val_loss": loss, "val_perplexity": math.exp(min(loss, 50.0))}


class GenusProbe:
    """Open-world genus 1-NN: unseen-species queries against labelled keys of seen species (BIOSCAN protocol)."""

    def __init__(self, keys: BarcodeSource, key_genus: np.ndarray, queries: BarcodeSource, query_genus: np.ndarray, limit: int, seed: int):
        rng = np.random.default_rng(seed)
        self.key_index = np.sort(rng.permutation(len(keys))[:limit])
        self.query_index = np.sort(rng.permutation(len(queries))[:limit])
        self.keys = keys.take(self.key_index)
        self.queries = queries.take(self.query_index)
        self.key_genus = np.asarray(key_genus)[self.key_index]
        self.query_genus = np.asarray(query_genus)[self.query_index]

    def __call__(self, encoder, tokenizer, device: torch.device, batch_size: int = 128) -> dict[str, float]:
        """Embed keys and queries with the evaluation suite's ``embed_barcodes`` (frame 0, mean pooling), so the
        periodic probe and the final evaluation score the same vectors; the encoder is left in training mode."""
        embed = {"batch_size": batch_size, "device": device, "progress": False}
        try:
            accuracy = one_nn_accuracy(
                embed_barcodes(encoder, tokenizer, self.keys, **embed), self.key_genus,
                embed_barcodes(encoder, tokenizer, self.queries, **embed), self.query_genus,
                device=device,
            )["accuracy"]
        finally:
            encoder.train()
        return {"genus_1nn_accuracy": accuracy}


__all__ = ["GenusProbe", "fixed_validation_batches", "masked_token_loss", "validation_loss"]
