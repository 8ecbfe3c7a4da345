"""Closed-world species by full fine-tuning: encoder + linear head trained end to end on ``train``, scored on ``test``.

The linear probe (:func:`barcodemae.eval.metrics.linear_probe`) measures what the frozen embedding already
separates; fine-tuning measures how good a starting point the pretrained encoder is, the second closed-world
number BarcodeBERT and BarcodeMAE report. Any ``AutoModelForSequenceClassification`` folder works: BarcodeMAE
folders load as :class:`BarcodeMAEForSequenceClassification` (the MAE decoder and vocabulary head are dropped and a
new classifier is initialised), plain BERT folders as ``BertForSequenceClassification``.

Training is a plain torch loop (AdamW, linear warm-up then linear decay, gradient clipping), shuffled
mini-batches tokenised on the fly; our k-mer tokenizer draws a random reading frame per training barcode (the
pretraining augmentation, for non-overlapping k-mers) and uses frame 0 for the test barcodes, as the embedding
loop does.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from barcodemae.devices import resolve_device
from barcodemae.embedding_settings import EmbeddingSettings
from barcodemae.inference import autocast_dtype, load_pretrained, tokenize_barcodes
from barcodemae.optim import learning_rate_schedule, weight_decay_groups

from .metrics import classification_scores
from .protocol_options import FINETUNE_BATCH_SIZE

FINETUNE_SETTINGS = EmbeddingSettings(batch_size=FINETUNE_BATCH_SIZE)
""":func:`fine_tune_classifier`'s settings when given none."""


def load_classifier(
    model_dir_or_name: str | os.PathLike, num_labels: int, trust_remote_code: bool = False
) -> tuple[Any, Any]:
    """A sequence classifier with a fresh ``num_labels``-way head on top of the folder's encoder, and its tokenizer
    (``trust_remote_code`` as in :func:`~barcodemae.inference.load_pretrained`)."""
    return load_pretrained(
        model_dir_or_name, "AutoModelForSequenceClassification", trust_remote_code=trust_remote_code,
        num_labels=num_labels, ignore_mismatched_sizes=True,
    )


def _reading_frames(tokenizer: Any, batch: list[str], rng: np.random.Generator) -> np.ndarray | int:
    """A random reading frame per training barcode, drawn by the tokenizer exactly as pretraining draws them
    (``BarcodeTokenizer.draw_frame_offsets``); frame 0 for tokenizers without reading frames."""
    if not hasattr(tokenizer, "draw_frame_offsets"):
        return 0
    return tokenizer.draw_frame_offsets(batch, rng)


def fine_tune_classifier(
    model_dir_or_name: str | os.PathLike,
    train_sequences: Sequence[str],
    train_labels: Sequence[Any],
    test_sequences: Sequence[str],
    test_labels: Sequence[Any],
    *,
    epochs: int = 3,
    learning_rate: float = 1e-4,
    weight_decay: float = 0.01,
    warmup_ratio: float = 0.1,
    max_grad_norm: float = 1.0,
    seed: int = 0,
    return_predictions: bool = False,
    settings: EmbeddingSettings = FINETUNE_SETTINGS,
) -> dict[str, Any]:
    """Fine-tune the whole encoder with a new classification head; return test ``accuracy`` and ``macro_accuracy``.

    ``settings``: the batch size (of training and of prediction), device, autocast dtype, progress bar and
    remote-code policy (:class:`~barcodemae.embedding_settings.EmbeddingSettings`); the classifier pools as its model
    does, so ``pooling`` and ``layer`` stay unset. Test barcodes whose label never occurs in ``train_labels`` cannot
    be predicted and count as errors (the closed-world protocol's ``test`` split only holds species seen in
    ``train``). Also returns ``num_train``, ``num_test``, ``num_classes``, ``epochs``, ``steps`` and the mean
    training loss of the last epoch.
    """
    settings.check_unset(("pooling", "layer", "frames"), "fine-tuning, whose classifier pools one reading frame "
                         "as its model does,")
    batch_size = settings.batch_size
    train_sequences, test_sequences = list(train_sequences), list(test_sequences)
    train_y, test_y = np.asarray(train_labels, dtype=object), np.asarray(test_labels, dtype=object)
    if len(train_sequences) != len(train_y) or len(test_sequences) != len(test_y):
        raise ValueError(
            f"fine-tuning needs one label per barcode: train {len(train_sequences)} barcodes / {len(train_y)} labels, "
            f"test {len(test_sequences)} / {len(test_y)}"
        )
    if epochs < 1:
        raise ValueError(f"epochs must be >= 1, got {epochs}")
    classes, targets = np.unique(train_y.astype(str), return_inverse=True)
    if len(classes) < 2:
        raise ValueError(f"fine-tuning needs at least 2 classes in the training labels, got {len(classes)}")

    torch.manual_seed(seed)
    model, tokenizer = load_classifier(model_dir_or_name, len(classes), trust_remote_code=settings.trust_remote_code)
    device = resolve_device(settings.device)
    model.to(device)
    autocast = autocast_dtype(settings.dtype)
    max_tokens = getattr(model.config, "max_position_embeddings", None)
    optimizer = torch.optim.AdamW(weight_decay_groups(model, weight_decay), lr=learning_rate)
    steps_per_epoch = math.ceil(len(train_sequences) / batch_size)
    total_steps = epochs * steps_per_epoch
    scheduler = learning_rate_schedule(optimizer, "linear", warmup_ratio=warmup_ratio, max_steps=total_steps)
    generator = np.random.default_rng(seed)
    labels_tensor = torch.from_numpy(targets.astype(np.int64))
    bar = tqdm(total=total_steps, desc="fine-tuning", unit="step", disable=not settings.progress)
    epoch_losses: list[float] = []
    model.train()
    for _ in range(epochs):
        order = generator.permutation(len(train_sequences))
        losses = []
        for start in range(0, len(order), batch_size):
            rows = order[start : start + batch_size]
            sequences = [train_sequences[i] for i in rows]
            frames = _reading_frames(tokenizer, sequences, generator)
            encoded = tokenize_barcodes(tokenizer, sequences, max_tokens, frames)
            batch = {key: value.to(device) for key, value in encoded.items()}
            with torch.autocast(device.type, dtype=autocast or torch.bfloat16, enabled=autocast is not None):
                loss = model(**batch, labels=labels_tensor[rows].to(device)).loss
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), max_grad_norm)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            losses.append(float(loss.detach()))
            bar.update(1)
            bar.set_postfix(loss=f"{losses[-1]:.3f}")
        epoch_losses.append(float(np.mean(losses)))
    bar.close()

    model.eval()
    predictions = np.empty(len(test_sequences), dtype=object)
    with (
        torch.inference_mode(),
        torch.autocast(device.type, dtype=autocast or torch.bfloat16, enabled=autocast is not None),
    ):
        for start in range(0, len(test_sequences), batch_size):
            encoded = tokenize_barcodes(tokenizer, test_sequences[start : start + batch_size], max_tokens)
            batch = {key: value.to(device) for key, value in encoded.items()}
            predicted = model(**batch).logits.argmax(dim=-1).cpu().numpy()
            predictions[start : start + len(predicted)] = classes[predicted]
    result: dict[str, Any] = {
        **classification_scores(test_y.astype(str), predictions.astype(str)),
        "num_train": len(train_sequences),
        "num_test": len(test_sequences),
        "num_classes": len(classes),
        "epochs": epochs,
        "steps": total_steps,
        "learning_rate": learning_rate,
        "final_epoch_loss": epoch_losses[-1],
    }
    if return_predictions:
        result["predictions"] = predictions
    return result


__all__ = ["FINETUNE_SETTINGS", "fine_tune_classifier", "load_classifier"]
