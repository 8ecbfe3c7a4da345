"""Barcode tokenizers (k-mer, character, BPE) and the shared sequence-cleaning policy."""

from .sequence_cleaning import CleanedBarcode, InvalidBarcodeError, clean_barcode
from .tokenization_barcodemae import BarcodeTokenizer

__all__ = ["BarcodeTokenizer", "CleanedBarcode", "InvalidBarcodeError", "clean_barcode"]
