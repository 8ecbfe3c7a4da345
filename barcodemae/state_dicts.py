"""Key clean-up for state dicts saved from wrapped models, shared by the export and the converter."""

from __future__ import annotations

WRAPPER_PREFIXES = ("module.", "_orig_mod.")
"""Prefixes added by DistributedDataParallel (``module.``) and ``torch.compile`` (``_orig_mod.``) when a wrapped
model's state dict is saved; they may be nested (``module._orig_mod.``)."""


def strip_wrapper_prefixes(key: str) -> str:
    """``key`` without any (nested) wrapper prefix: ``module._orig_mod.encoder.x`` -> ``encoder.x``."""
    stripped = True
    while stripped:
        stripped = False
        for prefix in WRAPPER_PREFIXES:
            if key.startswith(prefix):
                key, stripped = key[len(prefix) :], True
    return key


__all__ = ["WRAPPER_PREFIXES", "strip_wrapper_prefixes"]
