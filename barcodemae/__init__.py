"""barcodemae: Hugging Face-native DNA barcode foundation models (BarcodeMAE and the BarcodeBERT baseline).

Importing the package registers the model, config and tokenizer classes with transformers' Auto classes.
"""

import modeling_barcodemae  # noqa: F401  (registers the Auto classes; safe while it is itself importing us)
from modeling_barcodemae.configuration_barcodemae import BarcodeMAEConfig
from modeling_barcodemae.modeling_barcodemae import (
    BarcodeMAEForPreTraining,
    BarcodeMAEForSequenceClassification,
    BarcodeMAEModel,
)

from .tokenization import BarcodeTokenizer, InvalidBarcodeError, clean_barcode

__version__ = "0.1.0"

__all__ = [
    "BarcodeMAEConfig",
    "BarcodeMAEForPreTraining",
    "BarcodeMAEForSequenceClassification",
    "BarcodeMAEModel",
    "BarcodeTokenizer",
    "InvalidBarcodeError",
    "clean_barcode",
]
