"""The package's model, config and tokenizer classes; importing this module registers them all with transformers'
Auto classes.

Why a module of its own: ``barcodemae/__init__.py`` hands these names out lazily (the command line must start
without torch), and the first use of any of them imports this module, so ``from barcodemae import BarcodeMAEModel``
registers the tokenizer as well, as ``import barcodemae`` did before. :mod:`modeling_barcodemae` registers
``AutoConfig`` / ``AutoModel`` / ``AutoModelForPreTraining`` / ``AutoModelForSequenceClassification`` and
:mod:`barcodemae.tokenization` ``AutoTokenizer``, each on import.
"""

from __future__ import annotations

from barcodemae.tokenization import BarcodeTokenizer
from modeling_barcodemae import (
    BarcodeMAEConfig,
    BarcodeMAEForPreTraining,
    BarcodeMAEForSequenceClassification,
    BarcodeMAEModel,
)

__all__ = [
    "BarcodeMAEConfig",
    "BarcodeMAEForPreTraining",
    "BarcodeMAEForSequenceClassification",
    "BarcodeMAEModel",
    "BarcodeTokenizer",
]
