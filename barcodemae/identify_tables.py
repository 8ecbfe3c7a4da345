"""The tables ``barcodemae identify query`` writes: one row per query with the call first, and one row per hit.

Why its own module: the columns are the command's interface, read by people and by the scripts labs already have
(BLAST's tabular format among them), so their names, order and formats live in one place.

The query table (``--output``, one row per query, in input order): ``query_id``, the call (``call_level``,
``called_taxon``, ``call_rule``), the top hit (``top_identity``, ``top_hit_id``, its taxonomy ``top_genus``,
``top_species``, ... and alignment statistics), then the caller's extra columns (the query's own taxonomy, the
neighbours' votes). The hits table (``<output stem>.hits.<ext>``, written with alignment): the best ``top_k`` hits
of every query, best first, with their alignment statistics (coordinates 1-based and inclusive, as BLAST's) and
taxonomy. ``blast6``: the 12 columns of BLAST's ``-outfmt 6``, without a header; ``evalue`` is ``NA`` (an
alignment to a shortlist has no database-wide E-value) and ``bitscore`` holds the raw local alignment score the
hits are ranked by (megablast's scoring doubled: match 2, mismatch -4, 5 a gap base), which orders hits as
megablast's bit score does but is not one.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pandas as pd

from barcodemae.atomic_files import atomic_write_path
from barcodemae.call_levels import CallColumns
from barcodemae.cli_options import TABLE_FORMATS
from barcodemae.identity_calls import RankedHits

FORMAT_OF_SUFFIX = {".csv": "csv", ".tsv": "tsv", ".tab": "tsv", ".b6": "blast6", ".m8": "blast6",
                    ".blast6": "blast6"}
"""``--format``'s default from the output's suffix (``.gz`` aside); any other suffix: CSV."""
HIT_RANKS: tuple[str, ...] = ("genus", "species", "family", "order", "dna_bin")
"""The reference taxonomy shown for each hit, in this order (those the index has)."""
IDENTITY_DECIMALS = 3
"""Percent identity and coverage are written with 3 decimals, as BLAST+ writes ``pident``; an aligned length under
1,000 columns never rounds across a whole-number threshold."""
BLAST6_COLUMNS: tuple[str, ...] = ("qseqid", "sseqid", "pident", "length", "mismatch", "gapopen", "qstart", "qend",
                                   "sstart", "send", "evalue", "bitscore")
BLAST6_FROM_HITS = {"qseqid": "query_id", "sseqid": "hit_id", "pident": "identity", "length": "aligned_length",
                    "mismatch": "mismatches", "gapopen": "gap_opens", "qstart": "query_start", "qend": "query_end",
                    "sstart": "hit_start", "send": "hit_end", "bitscore": "score"}


def output_format(path: str | Path, requested: str | None) -> str:
    """``requested`` (one of :data:`~barcodemae.cli_options.TABLE_FORMATS`), else the format the output's name
    implies."""
    if requested is not None:
        if requested not in TABLE_FORMATS:
            raise ValueError(f"--format must be one of {', '.join(TABLE_FORMATS)}, got {requested!r}")
        return requested
    suffixes = [suffix for suffix in Path(path).suffixes if suffix != ".gz"]
    return FORMAT_OF_SUFFIX.get(suffixes[-1].lower() if suffixes else "", "csv")


def hits_path(output: str | Path) -> Path:
    """Where the hits table goes: ``ids.csv`` -> ``ids.hits.csv`` (``ids.csv.gz`` -> ``ids.hits.csv.gz``)."""
    output = Path(output)
    name = output.name
    suffix = "".join(output.suffixes[-2:]) if output.suffix == ".gz" else output.suffix
    stem = name[:len(name) - len(suffix)] if suffix else name
    return output.with_name(f"{stem}.hits{suffix}")


def hit_frame(query_ids: np.ndarray, hits: RankedHits, reference_ids: np.ndarray,
              names: Mapping[str, np.ndarray]) -> pd.DataFrame:
    """One row per hit ``(n * h)``, query by query, best first: ids, rank, similarity, the alignment's statistics
    (when there is one) and the hit's taxonomy (``names``: rank -> ``(n, h)``)."""
    n, h = hits.reference.shape
    frame: dict[str, np.ndarray] = {
        "query_id": np.repeat(np.asarray(query_ids, dtype=object), h),
        "hit_rank": np.tile(np.arange(1, h + 1), n),
        "hit_id": reference_ids[hits.reference.ravel()],
    }
    statistics = hits.alignment
    if statistics is not None:
        frame.update({
            "identity": statistics.identity.round(IDENTITY_DECIMALS),
            "aligned_length": statistics.aligned_length,
            "query_coverage": statistics.query_coverage.round(IDENTITY_DECIMALS),
            "mismatches": statistics.mismatches,
            "gap_opens": statistics.gap_opens,
            "query_start": statistics.query_start + 1,
            "query_end": statistics.query_end,
            "hit_start": statistics.reference_start + 1,
            "hit_end": statistics.reference_end,
            "score": hits.local_score.ravel(),
        })
    frame["similarity"] = hits.similarity.ravel()
    frame.update({rank: names[rank].ravel() for rank in HIT_RANKS if rank in names})
    return pd.DataFrame(frame)


TOP_HIT_COLUMNS = ("identity", "hit_id", *HIT_RANKS, "similarity", "aligned_length", "query_coverage", "mismatches",
                   "gap_opens")
"""The best hit's columns in the query table, each as ``top_<name>``, in this order (those that exist)."""


def query_table(query_ids: np.ndarray, calls: CallColumns, top_hits: pd.DataFrame,
                extra: Mapping[str, np.ndarray]) -> pd.DataFrame:
    """One row per query: the call, then the best hit (``top_hits``: :func:`hit_frame` rows of rank 1, one per
    query, in order; ``top_identity`` is empty without alignment), then ``extra`` columns."""
    table: dict[str, object] = {"query_id": query_ids, "call_level": calls.level, "called_taxon": calls.taxon,
                                "call_rule": calls.rule}
    table["top_identity"] = top_hits["identity"].to_numpy() if "identity" in top_hits else np.nan
    table.update({f"top_{name}": top_hits[name].to_numpy() for name in TOP_HIT_COLUMNS[1:] if name in top_hits})
    table.update(extra)
    return pd.DataFrame(table)


def blast6_frame(hits: pd.DataFrame) -> pd.DataFrame:
    """:func:`hit_frame` rows as BLAST's 12 tabular columns (``evalue`` ``NA``, ``bitscore`` the raw score)."""
    frame = pd.DataFrame({column: hits[source] for column, source in BLAST6_FROM_HITS.items()})
    frame["evalue"] = "NA"
    return frame[list(BLAST6_COLUMNS)]


def write_table(frame: pd.DataFrame, path: str | Path, table_format: str) -> None:
    """Write ``frame`` as ``table_format`` (``blast6``: ``frame`` already in :data:`BLAST6_COLUMNS`), whole or not
    at all (a killed query leaves no truncated table that parses)."""
    blast = table_format == "blast6"
    with atomic_write_path(path) as temporary:
        frame.to_csv(temporary, index=False, sep="," if table_format == "csv" else "\t", header=not blast,
                     na_rep="NA" if blast else "")


def write_identification(table: pd.DataFrame, hits: pd.DataFrame | None, output: str | Path,
                         table_format: str) -> None:
    """The query table at ``output`` and, with alignment, the hits table beside it (:func:`hits_path`), the hits
    first: a query table on disk means its hits are there too. ``blast6``: each query's best hit at ``output``."""
    blast = table_format == "blast6"
    if hits is not None:
        write_table(blast6_frame(hits) if blast else hits, hits_path(output), table_format)
    write_table(blast6_frame(hits[hits["hit_rank"] == 1]) if blast else table, output, table_format)


__all__ = ["BLAST6_COLUMNS", "HIT_RANKS", "TOP_HIT_COLUMNS", "blast6_frame", "hit_frame",
           "hits_path", "output_format", "query_table", "write_identification", "write_table"]
