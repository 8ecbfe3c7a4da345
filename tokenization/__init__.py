"""Barcode tokenizers (k-mer, character, BPE), BPE training and the shared sequence-cleaning policy.

The public names load on first use (:func:`barcodemae.lazy_names.lazy_names`): importing
:mod:`barcodemae.tokenization.sequence_cleaning` (the cleaning policy, standard library only) must not load torch
and transformers first, or ``identify`` with a k-mer index and ``qc`` without a model start seconds late.
``BarcodeTokenizer`` comes from :mod:`.auto_tokenizer`, which registers it with ``AutoTokenizer`` (keyed by the
BarcodeMAE config class): whoever imports the tokenizer from here gets the same ``AutoTokenizer`` as before.
"""

from barcodemae.lazy_names import lazy_names

__getattr__, __dir__ = lazy_names(
    __name__,
    {
        "BarcodeTokenizer": ".auto_tokenizer",
        "CleanedBarcode": ".sequence_cleaning",
        "InvalidBarcodeError": ".sequence_cleaning",
        "clean_barcode": ".sequence_cleaning",
        "train_bpe_tokenizer": ".bpe",
    },
)

__all__ = ["BarcodeTokenizer", "CleanedBarcode", "InvalidBarcodeError", "clean_barcode", "train_bpe_tokenizer"]
