"""Barcode tokenizers (k-mer, character, BPE), BPE training and the shared sequence-cleaning policy."""

from .bpe import train_bpe_tokenizer
from .sequence_cleaning import CleanedBarcode, InvalidBarcodeError, clean_barcode
from .tokenization_barcodemae import BarcodeTokenizer

__all__ = ["BarcodeTokenizer", "CleanedBarcode", "InvalidBarcodeError", "clean_barcode", "train_bpe_tokenizer"]
