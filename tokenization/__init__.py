"""Barcode tokenizers (k-mer, character, BPE), BPE training and the shared sequence-cleaning policy.

Importing this package registers :class:`BarcodeTokenizer` with ``AutoTokenizer`` (keyed by the BarcodeMAE config
class, so the model package is imported too): a saved tokenizer folder then loads with
``AutoTokenizer.from_pretrained`` as our class, without ``trust_remote_code``. Why here and not in
``barcodemae/__init__.py``: that file stays light for the command line, and whoever imports the tokenizer from here
must get the same ``AutoTokenizer`` as before.
"""

from transformers import AutoTokenizer

from modeling_barcodemae import BarcodeMAEConfig

from .bpe import train_bpe_tokenizer
from .sequence_cleaning import CleanedBarcode, InvalidBarcodeError, clean_barcode
from .tokenization_barcodemae import BarcodeTokenizer

AutoTokenizer.register(BarcodeMAEConfig, fast_tokenizer_class=BarcodeTokenizer, exist_ok=True)
BarcodeTokenizer.register_for_auto_class("AutoTokenizer")  # saved folders: tokenizer_config.json's auto_map

__all__ = ["BarcodeTokenizer", "CleanedBarcode", "InvalidBarcodeError", "clean_barcode", "train_bpe_tokenizer"]
