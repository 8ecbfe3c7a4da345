"""Masking strategies (random, span, GeneMask, Global, curricula), the pretraining data collator and T5 span
corruption for encoder-decoder pretraining (:mod:`.span_corruption`).

Typical use::

    from barcodemae.masking import BarcodeMaskingCollator, CMGEMSCurriculum, NPMITable

    table = NPMITable.build(sequences)                      # once per corpus; table.save(model_dir)
    curriculum = CMGEMSCurriculum(threshold=0.05)           # GeneMask -> Global when val perplexity flattens
    collator = BarcodeMaskingCollator(tokenizer, None, mask_ratio=0.5, curriculum=curriculum, npmi_table=table)

The names of ``__all__`` load on first use (:mod:`barcodemae.lazy_names`). Why: ``train.py --help`` reads
:mod:`.span_corruption`'s defaults (numpy only), and this file runs first; importing the collator's torch code
here cost seconds.
"""

from __future__ import annotations

from barcodemae.lazy_names import lazy_names

_SUBMODULES = {
    "BarcodeMaskingCollator": ".collator",
    "fixed_validation_masks": ".collator",
    "CMGEMSCurriculum": ".curriculum",
    "CMStepCurriculum": ".curriculum",
    "MaskingCurriculum": ".curriculum",
    "MaskRatioSchedule": ".curriculum",
    "NPMITable": ".npmi",
    "count_ngrams": ".npmi",
    "pmi_min_segmentation": ".npmi",
    "mask_budget": ".selection",
    "select_by_key": ".selection",
    "SentinelVocabulary": ".span_corruption",
    "SpanCorruptionCollator": ".span_corruption",
    "corrupt_spans": ".span_corruption",
    "random_spans_noise_mask": ".span_corruption",
    "reconstruct": ".span_corruption",
    "spans_to_token_keys": ".spans",
    "STRATEGIES": ".strategies",
    "GeneMaskMasking": ".strategies",
    "GlobalMasking": ".strategies",
    "MaskingBatch": ".strategies",
    "MaskingStrategy": ".strategies",
    "RandomMasking": ".strategies",
    "SpanMasking": ".strategies",
    "build_strategy": ".strategies",
    "stochastic_global": ".strategies",
}
"""Public name -> the submodule that defines it (relative to this package)."""

__getattr__, __dir__ = lazy_names(__name__, _SUBMODULES)

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
