"""Analytic matmul FLOPs of the transformer stacks, for utilisation ratios and expected speedups.

Multiply-add = 2 FLOPs. Per token of a length-L sequence, one post-LN layer of width H and feed-forward width I
costs ``8 H^2`` (QKV + output projections) + ``4 H I`` (feed-forward) + ``4 L H`` (attention scores and the
weighted sum). Embeddings, LayerNorm, softmax and pooling are negligible and not counted. Backward costs about
twice the forward, so a training step is ``3 x`` the forward.
"""

from __future__ import annotations


def layers_flops(layers: int, length: int, hidden: int, intermediate: int) -> float:
    """Forward FLOPs of ``layers`` transformer layers over one sequence of ``length`` tokens."""
    return float(layers * length * (8 * hidden**2 + 4 * hidden * intermediate + 4 * length * hidden))


def head_flops(length: int, hidden: int, vocab_size: int, transform: bool) -> float:
    """Forward FLOPs of the vocabulary head over ``length`` tokens (optional dense transform first)."""
    return float(length * (2 * hidden * vocab_size + (2 * hidden**2 if transform else 0)))
