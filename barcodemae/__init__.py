"""barcodemae: Hugging Face-native DNA barcode foundation models (BarcodeMAE and the BarcodeBERT baseline).

The model, config and tokenizer names are loaded on first use (``from barcodemae import BarcodeMAEModel``,
``barcodemae.BarcodeTokenizer``), which also registers them with transformers' Auto classes
(:mod:`barcodemae.auto_classes`). Why lazily: every ``barcodemae.*`` module, the ``barcodemae`` command's included,
runs this file first, and importing torch and transformers here made ``barcodemae --help`` take seconds.
"""

from __future__ import annotations

from typing import Any

from barcodemae.lazy_names import lazy_names

_LAZY = {
    "BarcodeMAEConfig": "barcodemae.auto_classes",
    "BarcodeMAEForPreTraining": "barcodemae.auto_classes",
    "BarcodeMAEForSequenceClassification": "barcodemae.auto_classes",
    "BarcodeMAEModel": "barcodemae.auto_classes",
    "BarcodeTokenizer": "barcodemae.auto_classes",
    "InvalidBarcodeError": "barcodemae.tokenization",
    "clean_barcode": "barcodemae.tokenization",
}
"""Public name -> the module that gives it (importing either registers the classes with the Auto classes)."""
_lazy_getattr, _lazy_dir = lazy_names(__name__, _LAZY)


def __getattr__(name: str) -> Any:
    if name == "__version__":
        from importlib.metadata import version

        return version("barcodemae")
    return _lazy_getattr(name)


def __dir__() -> list[str]:
    return sorted({*_lazy_dir(), "__version__"})


__all__ = [
    "BarcodeMAEConfig",
    "BarcodeMAEForPreTraining",
    "BarcodeMAEForSequenceClassification",
    "BarcodeMAEModel",
    "BarcodeTokenizer",
    "InvalidBarcodeError",
    "clean_barcode",
]
