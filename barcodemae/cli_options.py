"""Command-line options shared by ``barcodemae``, ``train.py`` and ``eval/run.py``, with no heavy imports.

Why apart from :mod:`barcodemae.inference` (which re-exports them): building a parser must not import torch, so
``--help`` answers at once; these are the only pieces of the inference module that a parser needs.
"""

from __future__ import annotations

import argparse

POOLINGS = ("mean", "tokens", "cls", "max")
"""``mean``: average over non-pad tokens, [CLS] and [SEP] included (BarcodeMAE+'s ``tokens_with_cls``; the BIOSCAN
protocol's embedding); ``tokens``: the same without position 0, the [CLS]; ``cls``: the first token's state;
``max``: element-wise maximum over non-pad tokens. Unset (``None``) means the model's own
(``config.representation``, see ``barcodemae.inference.model_pooling``)."""

LAYER_MEAN = "mean"
"""``layer="mean"``: the average of every hidden state (embeddings and each block), pooled the same way."""

DEFAULT_KMER = 5
"""``identify build --kmer`` without a value: on dev ``val_unseen`` (genus of species absent from the ``train``
references, top-1) 5-mer profiles name 69.5% right, 4-mers 66.8%, 6-mers 69.7% at four times 5-mers' 4 KiB per
reference (docs/results.md)."""
DEFAULT_ALIGN = 50
"""References aligned per query by ``identify query`` (``--align``): on dev ``val_unseen`` the smallest ``N`` whose
top-hit genus accuracy is within 1.5 points of ``N = 100``'s for 4-mer and model retrieval alike (docs/results.md,
"Retrieve then align")."""
DEFAULT_IDENTITY_THRESHOLDS = "98,95,90,85"
"""Percent identity for a species, genus, family and order call (``--thresholds``): BOLDigger's defaults (97, 95, 90,
85) with the species threshold at 98, chosen on dev ``val`` / ``val_unseen`` (docs/results.md, "Calls on test and
test_unseen"): at 97, 4.6% of unseen-species queries got a (wrong) species name; at 98, 1.6%, with no fewer right
species calls on ``val``."""
TABLE_FORMATS = ("csv", "tsv", "blast6")
"""``identify query --format``: comma- or tab-separated, or BLAST's 12-column tabular ``-outfmt 6``."""


def parse_layer(value: str) -> int | str:
    """A ``--layer`` command-line value: an integer, or :data:`LAYER_MEAN`."""
    if value == LAYER_MEAN:
        return value
    try:
        return int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be an integer or {LAYER_MEAN!r}, got {value!r}") from None


def add_trust_remote_code_flag(parser: argparse.ArgumentParser) -> None:
    """``--trust-remote-code`` on an argparse parser; off by default, as in ``transformers``
    (``--no-trust-remote-code``, the default spelled out, stays accepted for scripts written when it was not)."""
    parser.add_argument(
        "--trust-remote-code", action=argparse.BooleanOptionalAction, default=False,
        help="let a model that is not BarcodeMAE run the Python code its folder or hub repository ships "
        "(default: no, as in transformers); BarcodeMAE folders always load through the installed package, "
        "running none of their code",
    )


__all__ = ["DEFAULT_ALIGN", "DEFAULT_IDENTITY_THRESHOLDS", "LAYER_MEAN", "POOLINGS", "TABLE_FORMATS",
           "add_trust_remote_code_flag", "parse_layer"]
