"""Periodic validation: masked-token loss/perplexity on fixed masks, and the open-world 1-NN genus probe.

Fixed masks (drawn once from the validation seed) make successive perplexities comparable, which the CM-GEMS
curriculum relies on. Validation runs under ``torch.random.fork_rng`` with a fixed seed, so it neither consumes
nor depends on the training RNG stream: resumed and uninterrupted runs stay identical.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from barcodemae.eval.metrics import one_nn_accuracy
from barcodemae.eval.postprocess import top_pc_variance_share
from barcodemae.inference import LAYER_MEAN, embed_barcode_layers, pooled_layer

from .batches import BarcodeSource, GlobalBatchStream, target_count


def pretraining_output(model, batch: dict[str, torch.Tensor], num_items_in_batch: float = 1):
    """The model's pretraining output on a :class:`GlobalBatchStream` batch (every entry is a model input).

    The cross-entropy over the targets (``reconstruction_loss``: masked tokens, or ENBED's decoder labels) is
    summed and divided by ``num_items_in_batch`` (default 1: the sum), for exact normalisation across micro-batches
    and devices; :func:`target_count` is its token count. A batch with several views per barcode carries their
    ``barcode_ids`` (the contrastive term).
    """
    return model(**batch, num_items_in_batch=num_items_in_batch)


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
        """Embed keys and queries with the evaluation suite's embedding loop (frame 0, mean pooling), so the
        periodic probe and the final evaluation score the same vectors; the encoder is left in training mode."""
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


__all__ = ["GenusProbe", "fixed_validation_batches", "pretraining_output", "validation_loss"]
