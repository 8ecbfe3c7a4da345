"""The defaults and choices of ``barcodemae identify``'s options, with no heavy imports.

Why apart from :mod:`barcodemae.identify` (which uses them): building a parser must not import torch or pandas, so
``--help`` answers at once. The options every embedding command shares (batch size, device, pooling ...) live in
:mod:`barcodemae.embedding_settings`.
"""

from __future__ import annotations

DEFAULT_KMER = 5
"""``identify build --kmer`` without a value: on dev ``val_unseen`` (genus of species absent from the ``train``
references, top-1) 5-mer profiles name 69.5% right, 4-mers 66.8%, 6-mers 69.7% at four times 5-mers' 4 KiB per
reference (docs/results.md)."""
DEFAULT_ALIGN = 20
"""References aligned in full per query by ``identify query`` (``--align``): the best-screened of the
candidates, whose identities the call and the hits table report (docs/results.md, "Screen, then align")."""
DEFAULT_CANDIDATES = 1000
"""Nearest references by embedding that ``identify query`` screens per query (``--candidates``; the diagonal screen
of :mod:`barcodemae.diagonal_screen`): the reference that names an unseen species' genus best often lies far down
the embedding's ranking. On dev ``val_unseen`` 1,000 named more genera than 500, and 2,000 no more, over the queries'
species (docs/results.md, "The diagonal screen")."""
DEFAULT_IDENTITY_THRESHOLDS = "98,95,90,85"
"""Percent identity for a species, genus, family and order call (``--thresholds``): BOLDigger's defaults (97, 95, 90,
85) with the species threshold at 98, chosen on dev ``val`` / ``val_unseen`` (docs/results.md, "Calls on test and
test_unseen"): at 97, 4.6% of unseen-species queries got a (wrong) species name; at 98, 1.6%, with no fewer right
species calls on ``val``."""
DEFAULT_TOP_K = 5
"""Hits reported per query by ``identify query`` (``--top-k``), which also vote for the query's genus, species and
BIN; the calibration of an index's calls votes with as many (:data:`barcodemae.identify.CALIBRATION_TOP_K`)."""
TABLE_FORMATS = ("csv", "tsv", "blast6")
"""``identify query --format``: comma- or tab-separated, or BLAST's 12-column tabular ``-outfmt 6``."""


__all__ = ["DEFAULT_ALIGN", "DEFAULT_CANDIDATES", "DEFAULT_IDENTITY_THRESHOLDS", "DEFAULT_KMER", "DEFAULT_TOP_K",
           "TABLE_FORMATS"]
