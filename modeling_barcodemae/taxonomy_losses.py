"""Auxiliary taxonomy terms of taxonomy-aware pretraining (the authors' BarcodeMAE+ recipe, issue #28).

Masked-token prediction alone leaves little genus information in the embedding of small encoders (README, issue
#12). BarcodeMAE+ adds a term on one state per row (the [CLS] state by default, ``config.taxonomy_on``) that uses
the taxon labels of the pretraining split: a classifier's cross-entropy, a batch-hard triplet loss, or a binary
same-taxon loss over pairs. ``supcon`` (the view-contrastive InfoNCE with same-taxon rows as extra positives) reuses
``view_contrastive_loss`` of the model file with the mask of :func:`taxon_positive_mask`.

Conventions shared by every term: ``states`` ``(batch, hidden)`` is one state per row, ``labels`` ``(batch,)`` int64
the row's taxon id with ``-1`` for an unlabelled row; unlabelled rows take no part. A batch where a term has nothing
to compare (no labelled row, a single class, no anchor with both a positive and a negative) gives 0, computed from
the states so that the backward pass still reaches the same parameters on every process (distributed data parallel
waits for every parameter's gradient). Distances and similarities are cosine, computed in float32.

This file is copied into saved model folders: it imports only torch.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

TAXONOMY_HEAD_DROPOUT = 0.1
"""Dropout of :class:`TaxonomyHead`, as in the authors' head."""


def taxonomy_warmup_scale(step: int, warmup_steps: int) -> float:
    """The factor on ``config.taxonomy_weight`` at optimiser step ``step`` (0-based): ``step / warmup_steps``
    growing linearly from 0 to 1, then 1; always 1 without warmup (``warmup_steps == 0``).

    Why a ramp: the term's gradients on a randomly initialised encoder would otherwise dominate the first steps of
    masked-token prediction (BarcodeMAE+ warms it up over its first epochs). A pure function of the step, so a
    resumed run continues the ramp exactly.
    """
    if step < 0 or warmup_steps < 0:
        raise ValueError(f"step and warmup_steps must be >= 0, got {step} and {warmup_steps}")
    if warmup_steps == 0:
        return 1.0
    return min(1.0, step / warmup_steps)


class TaxonomyHead(nn.Module):
    """The ``"ce"`` term's classifier: LayerNorm, dropout 0.1, linear (the authors' head)."""

    def __init__(self, hidden_size: int, num_classes: int, layer_norm_eps: float):
        super().__init__()
        self.LayerNorm = nn.LayerNorm(hidden_size, eps=layer_norm_eps)
        self.dropout = nn.Dropout(TAXONOMY_HEAD_DROPOUT)
        self.classifier = nn.Linear(hidden_size, num_classes)

    def forward(self, states: torch.Tensor) -> torch.Tensor:
        """Class logits ``(batch, num_classes)`` of states ``(batch, hidden)``."""
        return self.classifier(self.dropout(self.LayerNorm(states)))


def taxonomy_ce_loss(logits: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Cross-entropy of the labelled rows, and their accuracy.

    ``logits`` ``(batch, num_classes)``; ``labels`` ``(batch,)``, -1 unlabelled. Returns ``(loss, accuracy)``,
    scalars: the mean cross-entropy over labelled rows (0 without any) and the share of them whose arg-max logit is
    their label (0 without any; detached, for logs).
    """
    known = labels >= 0
    count = known.sum().clamp(min=1)
    targets = labels.masked_fill(~known, -100)
    loss = F.cross_entropy(logits.float(), targets, ignore_index=-100, reduction="sum") / count
    accuracy = ((logits.detach().argmax(dim=-1) == labels) & known).sum() / count
    return loss, accuracy


def cosine_similarities(states: torch.Tensor) -> torch.Tensor:
    """Cosine similarity of every pair of rows: ``(batch, batch)`` float32 of ``(batch, hidden)`` states."""
    unit = F.normalize(states.float(), dim=-1)
    return unit @ unit.T


def labelled_pairs(labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(same, other)`` ``(batch, batch)`` booleans: pairs of distinct labelled rows of one taxon, and of two
    taxa. Unlabelled rows (-1) are in neither."""
    known = labels >= 0
    both = known.unsqueeze(0) & known.unsqueeze(1)
    equal = labels.unsqueeze(0) == labels.unsqueeze(1)
    itself = torch.eye(len(labels), dtype=torch.bool, device=labels.device)
    return both & equal & ~itself, both & ~equal


def batch_hard_triplet_loss(states: torch.Tensor, labels: torch.Tensor, margin: float) -> torch.Tensor:
    """Batch-hard triplet loss on cosine distance with a soft margin (Hermans et al. 2017; BarcodeMAE+).

    Each labelled row is an anchor whose loss is ``softplus(d(a, farthest same-taxon row) - d(a, nearest
    other-taxon row) + margin)``, ``d = 1 - cosine similarity``; the result is the mean over anchors that have both
    (0 when none has). ``states`` ``(batch, hidden)``, ``labels`` ``(batch,)``; returns a scalar.
    """
    distance = 1.0 - cosine_similarities(states)  # in [0, 2]: -1 and 3 lie outside, for masked entries
    same, other = labelled_pairs(labels)
    hardest_positive = distance.masked_fill(~same, -1.0).amax(dim=1)
    hardest_negative = distance.masked_fill(~other, 3.0).amin(dim=1)
    anchors = same.any(dim=1) & other.any(dim=1)
    per_anchor = F.softplus(hardest_positive - hardest_negative + margin)
    return (per_anchor * anchors).sum() / anchors.sum().clamp(min=1)


def same_taxon_pair_loss(
    states: torch.Tensor,
    labels: torch.Tensor,
    max_pairs: int,
    temperature: float,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Binary cross-entropy of "same taxon?" over sampled pairs, on cosine similarity / ``temperature`` as logit.

    Draws ``n = min(#same-taxon pairs, #other-taxon pairs, max_pairs // 2)`` pairs of each kind (unordered pairs of
    distinct labelled rows, uniformly without replacement), so the two answers are balanced whatever the batch;
    returns their mean loss (0 when either kind is missing). ``states`` ``(batch, hidden)``, ``labels``
    ``(batch,)``. The draw is one ``torch.rand`` of ``generator`` (``None``: torch's global generator, which
    ``accelerate`` checkpoints restore like dropout's, so a resumed run draws the same pairs); its device is the
    states'. No host synchronisation: the draw keeps a fixed number of candidates and weights out the extras.
    """
    batch = len(labels)
    same, other = labelled_pairs(labels)
    upper = torch.ones(batch, batch, dtype=torch.bool, device=labels.device).triu(diagonal=1)
    same, other = same & upper, other & upper
    keys = torch.rand(batch, batch, generator=generator, device=states.device).flatten()
    candidates = min(max_pairs // 2, batch * batch)
    # The `candidates` smallest uniform keys of a kind are a uniform sample of its pairs, in random order.
    positive = keys.masked_fill(~same.flatten(), 2.0).topk(candidates, largest=False).indices
    negative = keys.masked_fill(~other.flatten(), 2.0).topk(candidates, largest=False).indices
    count = torch.minimum(same.sum(), other.sum()).clamp(max=candidates)
    taken = (torch.arange(candidates, device=labels.device) < count).float().repeat(2)
    logits = cosine_similarities(states).flatten()[torch.cat([positive, negative])] / temperature
    targets = torch.arange(2 * candidates, device=logits.device).lt(candidates).float()  # same-taxon first
    losses = F.binary_cross_entropy_with_logits(logits, targets, reduction="none")
    return (losses * taken).sum() / (2 * count).clamp(min=1)


def taxon_positive_mask(labels: torch.Tensor, barcode_ids: torch.Tensor | None = None) -> torch.Tensor:
    """Positives of the ``"supcon"`` term: ``(batch, batch)`` bool, rows of one labelled taxon or (with
    ``barcode_ids``, ``(batch,)``) views of one barcode. The diagonal is true; the loss ignores it."""
    known = labels >= 0
    positives = (labels.unsqueeze(0) == labels.unsqueeze(1)) & known.unsqueeze(0) & known.unsqueeze(1)
    if barcode_ids is not None:
        positives = positives | (barcode_ids.unsqueeze(0) == barcode_ids.unsqueeze(1))
    return positives | torch.eye(len(labels), dtype=torch.bool, device=labels.device)


__all__ = [
    "TAXONOMY_HEAD_DROPOUT",
    "TaxonomyHead",
    "batch_hard_triplet_loss",
    "cosine_similarities",
    "labelled_pairs",
    "same_taxon_pair_loss",
    "taxon_positive_mask",
    "taxonomy_ce_loss",
    "taxonomy_warmup_scale",
]
