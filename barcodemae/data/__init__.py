"""Readers for FASTA (taxonomy from SINTAX or BOLD headers), BIOSCAN-5M CSV, BOLD TSV and any CSV/TSV with id and
sequence columns, all mapped to one cleaned, labelled record schema through one entry point
(:func:`open_barcode_file`, :mod:`barcodemae.data.barcode_files`).

Every reader applies the one cleaning policy of :mod:`barcodemae.tokenization.sequence_cleaning`; what it
rejected, truncated or trimmed is counted in a :class:`CleaningReport` (returned with ``return_report=True``
and logged). Label ids come from a :class:`LabelVocabulary` that can be saved next to a model.
"""

from .barcode_files import BarcodeFile, detect_format, open_barcode_file
from .bioscan5m import download_bioscan5m, load_bioscan5m
from .bold import read_bold_tsv
from .cleaning import RecordCleaner, clean_records, clean_table
from .fasta import read_fasta
from .labels import LabelVocabulary
from .loaders import load_barcodes
from .report import CleaningReport
from .schema import (
    LABEL_RANKS,
    RECORD_COLUMNS,
    TAXONOMY_RANKS,
    BarcodeRecord,
    label_column,
    record_features,
)
from .splits import BIOSCAN5M_SPLITS, META_SPLITS, resolve_splits
from .tokenize import tokenize_dataset

__all__ = [
    "BIOSCAN5M_SPLITS",
    "LABEL_RANKS",
    "META_SPLITS",
    "RECORD_COLUMNS",
    "TAXONOMY_RANKS",
    "BarcodeFile",
    "BarcodeRecord",
    "CleaningReport",
    "LabelVocabulary",
    "RecordCleaner",
    "clean_records",
    "clean_table",
    "detect_format",
    "download_bioscan5m",
    "label_column",
    "load_barcodes",
    "load_bioscan5m",
    "open_barcode_file",
    "read_bold_tsv",
    "read_fasta",
    "record_features",
    "resolve_splits",
    "tokenize_dataset",
]
