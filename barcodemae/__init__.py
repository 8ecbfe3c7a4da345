"""barcodemae: Hugging Face-native DNA barcode foundation models (BarcodeMAE and the BarcodeBERT baseline).

Importing the package registers the model, config and tokenizer classes with transformers' Auto classes.
"""

from transformers import AutoTokenizer

from modeling_barcodemae import (  # importing it registers the model classes with the Auto classes
    BarcodeMAEConfig,
    BarcodeMAEForPreTraining,
    BarcodeMAEForSequenceClassification,
    BarcodeMAEModel,
)

from .tokenization import BarcodeTokenizer, InvalidBarcodeError, clean_barcode

AutoTokenizer.register(BarcodeMAEConfig, fast_tokenizer_class=BarcodeTokenizer, exist_ok=True)
BarcodeTokenizer.register_for_auto_class("AutoTokenizer")  # saved folders: tokenizer_config.json's auto_map

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
