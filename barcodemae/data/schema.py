"""The one record schema every reader (FASTA, BIOSCAN-5M CSV, BOLD TSV, other CSV/TSV tables) maps to.

Why a single schema: pretraining, embedding and evaluation code must not care where a barcode came from, and
label ids must mean the same thing whichever file was loaded.

Missing values: a taxonomy rank or BIN that is absent, empty, or one of BOLD's/pandas' placeholder strings
(``"None"``, ``"NA"``, ``"nan"``...) is stored as ``None`` (Arrow null), never as an empty string, so
``x is None`` is the one test for "unknown". ``split`` is the exception: it is ``""`` for sources without
BIOSCAN partitions (FASTA, BOLD, tables without a split column), because it is a partition name, not a label.
"""

from __future__ import annotations

from dataclasses import dataclass

import datasets

TAXONOMY_RANKS: tuple[str, ...] = ("phylum", "class", "order", "family", "subfamily", "genus", "species")
"""Taxonomic ranks kept by every loader, most general first (BIOSCAN-5M column names)."""

LABEL_RANKS: tuple[str, ...] = (*TAXONOMY_RANKS, "dna_bin")
"""Ranks that get an integer ``<rank>_label`` column by default: every rank, so a classifier or probe can target
any of them (pass ``label_ranks=`` to a loader to encode fewer)."""

RECORD_COLUMNS: tuple[str, ...] = ("processid", "dna_barcode", "split", *TAXONOMY_RANKS, "dna_bin")
"""String columns of a loaded dataset, in order; the ``<rank>_label`` int columns follow them."""

MISSING_STRINGS: frozenset[str] = frozenset({"", "None", "none", "NA", "N/A", "NaN", "nan", "null", "NULL"})
"""Placeholder strings read as "missing" in taxonomy and BIN columns (BOLD writes the literal ``None``)."""


def label_column(rank: str) -> str:
    """Name of the integer label column for ``rank`` (``"genus"`` -> ``"genus_label"``)."""
    return f"{rank}_label"


def normalise_missing(value: str | None) -> str | None:
    """Map empty and placeholder strings to ``None``; strip surrounding whitespace from real names."""
    if value is None:
        return None
    value = value.strip()
    return None if value in MISSING_STRINGS else value


def record_features(label_ranks: tuple[str, ...] = LABEL_RANKS) -> datasets.Features:
    """Arrow features of a loaded dataset: all record columns are strings, label columns int64 (-1 = missing)."""
    features = {name: datasets.Value("string") for name in RECORD_COLUMNS}
    features.update({label_column(rank): datasets.Value("int64") for rank in label_ranks})
    return datasets.Features(features)


def raw_features() -> datasets.Features:
    """Arrow features of records before cleaning and labelling (every column a string)."""
    return datasets.Features({name: datasets.Value("string") for name in RECORD_COLUMNS})


@dataclass
class BarcodeRecord:
    """One specimen: its id, barcode, BIOSCAN split and taxonomy (``None`` = unknown)."""

    processid: str
    dna_barcode: str | None
    split: str = ""
    phylum: str | None = None
    class_: str | None = None
    order: str | None = None
    family: str | None = None
    subfamily: str | None = None
    genus: str | None = None
    species: str | None = None
    dna_bin: str | None = None

    def to_dict(self) -> dict[str, str | None]:
        """The record keyed by the dataset column names (``class_`` becomes ``class``)."""
        return {
            "processid": self.processid,
            "dna_barcode": self.dna_barcode,
            "split": self.split,
            "phylum": self.phylum,
            "class": self.class_,
            "order": self.order,
            "family": self.family,
            "subfamily": self.subfamily,
            "genus": self.genus,
            "species": self.species,
            "dna_bin": self.dna_bin,
        }
