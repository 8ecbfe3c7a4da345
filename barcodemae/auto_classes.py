"""The package's model, config and tokenizer classes, registered with transformers' Auto classes on import.

Why a module of its own: ``barcodemae/__init__.py`` hands these names out lazily (the command line must start
without torch), so the registration that used to run on ``import barcodemae`` runs here, on the first use of any
of them. After it, ``AutoConfig`` / ``AutoModel`` / ``AutoModelForPreTraining`` /
``AutoModelForSequenceClassification`` (registered by :mod:`modeling_barcodemae` itself) and ``AutoTokenizer``
load BarcodeMAE folders without ``trust_remote_code``.
"""

from __future__ import annotations

from transformers import AutoTokenizer

from barcodemae.tokenization import BarcodeTokenizer
from modeling_barcodemae import (  # importing it registers the model classes with the Auto classes
    BarcodeMAEConfig,
    BarcodeMAEForPreTraining,
    BarcodeMAEForSequenceClassification,
    BarcodeMAEModel,
)


def register_auto_classes() -> None:
    """Register the tokenizer with ``AutoTokenizer`` (idempotent; importing this module already did)."""
    AutoTokenizer.register(BarcodeMAEConfig, fast_tokenizer_class=BarcodeTokenizer, exist_ok=True)
    BarcodeTokenizer.register_for_auto_class("AutoTokenizer")  # saved folders: tokenizer_config.json's auto_map


register_auto_classes()

__all__ = [
    "BarcodeMAEConfig",
    "BarcodeMAEForPreTraining",
    "BarcodeMAEForSequenceClassification",
    "BarcodeMAEModel",
    "BarcodeTokenizer",
    "register_auto_classes",
]
