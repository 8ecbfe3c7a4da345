"""Masking strategies (random, span, GeneMask, Global, curricula), the pretraining data collator and T5 span
corruption for encoder-decoder pretraining (:mod:`.span_corruption`).

Typical use::

    from barcodemae.masking import BarcodeMaskingCollator, CMGEMSCurriculum, NPMITable

    table = NPMITable.build(sequences)                      # once per corpus; table.save(model_dir)
    curriculum = CMGEMSCurriculum(threshold=0.05)           # GeneMask -> Global when val perplexity flattens
    collator = BarcodeMaskingCollator(tokenizer, None, mask_ratio=0.5, curriculum=curriculum, npmi_table=table)
"""

from .collator import BarcodeMaskingCollator, fixed_validation_masks
from .curriculum import CMGEMSCurriculum, CMStepCurriculum, MaskingCurriculum, MaskRatioSchedule
from .npmi import NPMITable, count_ngrams, pmi_min_segmentation
from .selection import mask_budget, select_by_key
from .span_corruption import (
    SentinelVocabulary,
    SpanCorruptionCollator,
    corrupt_spans,
    random_spans_noise_mask,
    reconstruct,
)
from .spans import spans_to_token_keys
from .strategies import (
    STRATEGIES,
    GeneMaskMasking,
    GlobalMasking,
    MaskingBatch,
    MaskingStrategy,
    RandomMasking,
    SpanMasking,
    build_strategy,
    stochastic_global,
)

__all__ = [
    "STRATEGIES",
    "BarcodeMaskingCollator",
    "CMGEMSCurriculum",
    "CMStepCurriculum",
    "GeneMaskMasking",
    "GlobalMasking",
    "MaskRatioSchedule",
    "MaskingBatch",
    "MaskingCurriculum",
    "MaskingStrategy",
    "NPMITable",
    "RandomMasking",
    "SentinelVocabulary",
    "SpanCorruptionCollator",
    "SpanMasking",
    "build_strategy",
    "corrupt_spans",
    "count_ngrams",
    "fixed_validation_masks",
    "mask_budget",
    "pmi_min_segmentation",
    "random_spans_noise_mask",
    "reconstruct",
    "select_by_key",
    "spans_to_token_keys",
    "stochastic_global",
]
