"""How deep `identify query` should screen and how many hits it should align: the (--candidates, --align) sweep.

    python research/screen_sweep.py --query-split val_unseen --settings 50:0,20:200,20:500,20:1000,10:500,50:500

``identify`` screens each query's ``--candidates M`` nearest references by their best ungapped segment on the
pair's diagonal (:mod:`barcodemae.diagonal_screen`), scores and aligns the ``--align N`` best in full and calls from
the top hit. This runs :func:`barcodemae.identify.identify` itself, on an in-memory index of the ``--reference-split``
barcodes (``train``) embedded once (5-mer frequencies, or ``--model``'s pooled embedding; unit rows, as
``identify build`` stores them), for ``--queries``
random barcodes of the ``--query-split`` (all of them by default), once per ``N:M`` of ``--settings`` (``M = 0``:
no screen, the ``N`` nearest aligned as they are). Per setting: the top hit's genus and species accuracy (over
queries, and over the queries' species: the mean of each species' accuracy, so that a species with a hundred
queries counts once: on ``val_unseen`` one species of 89 queries moved the first by 2.4 points), the
share and precision of each call level (``--thresholds``) and the seconds ``identify`` took per query (embedding
excluded: it does not depend on the setting; say whether the machine was busy).

``--model-share W`` (with ``--model``) retrieves by both at once: each barcode's unit model vector and unit k-mer
profile, scaled by ``sqrt(W)`` and ``sqrt(1 - W)`` and concatenated, so that the cosine of two such vectors is ``W``
times the model's cosine plus ``1 - W`` times the k-mer profiles'.

Choose the defaults on ``val`` / ``val_unseen`` only, never on ``test``.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
from shortlist_recall import COLUMNS, DEFAULT_DATA, embed, percent

from barcodemae.call_levels import CALL_LEVELS
from barcodemae.cli_options import DEFAULT_IDENTITY_THRESHOLDS
from barcodemae.data import load_bioscan5m
from barcodemae.diagonal_screen import anchor_shifts, choose_anchor
from barcodemae.embedding_settings import FRAMES
from barcodemae.identify import ReferenceIndex, identify
from barcodemae.identity_calls import IDENTITY_RANKS, IdentityThresholds
from barcodemae.index_search import unit_rows


def parse_settings(text: str) -> list[tuple[int, int]]:
    """``"20:500,50:0"`` -> ``[(align, candidates), ...]``."""
    settings = []
    for part in text.split(","):
        align, _, candidates = part.partition(":")
        settings.append((int(align), int(candidates or 0)))
    return settings


def retrieval_vectors(model: Path | None, barcodes: list[str], kmer: int, frames: str | None,
                      model_share: float | None) -> np.ndarray:
    """``(n, d)`` unit rows the index searches: the model's (or the k-mer profiles' without a model), or with
    ``model_share`` both, weighted as the module says."""
    if model is None or model_share is None:
        return unit_rows(embed(model, barcodes, kmer, frames))
    if not 0 <= model_share <= 1:
        raise ValueError(f"--model-share must be in [0, 1], got {model_share}")
    return np.concatenate([np.sqrt(model_share) * unit_rows(embed(model, barcodes, kmer, frames)),
                           np.sqrt(1 - model_share) * unit_rows(embed(None, barcodes, kmer))], axis=1)


def measure(data: Path, *, model: Path | None, kmer: int, frames: str | None = None, query_split: str,
            reference_split: str, queries: int | None, settings: list[tuple[int, int]], thresholds: str,
            seed: int, model_share: float | None = None) -> dict[str, Any]:
    references = load_bioscan5m(data, reference_split).select_columns(COLUMNS).to_pandas()
    pool = load_bioscan5m(data, query_split).select_columns(COLUMNS).to_pandas()
    if queries is not None and queries < len(pool):
        chosen = np.sort(np.random.default_rng(seed).choice(len(pool), size=queries, replace=False))
        pool = pool.iloc[chosen].reset_index(drop=True)
    barcodes = pool["dna_barcode"].tolist()
    sequences = np.array(references["dna_barcode"].tolist(), dtype=bytes)
    anchor = choose_anchor(pa.array(references["dna_barcode"]))  # as `identify build` places the references
    index = ReferenceIndex(retrieval_vectors(model, references["dna_barcode"].tolist(), kmer, frames, model_share),
                           pa.Table.from_pandas(references.drop(columns="dna_barcode"), preserve_index=False),
                           {"screen_anchor": anchor}, sequences=sequences, shifts=anchor_shifts(sequences, anchor))
    vectors = retrieval_vectors(model, barcodes, kmer, frames, model_share)
    truth = {rank: pool[rank].to_numpy(dtype=object) for rank in IDENTITY_RANKS}
    query_species = pool["species"].fillna("").to_numpy(dtype=object)

    def species_macro(right: np.ndarray) -> float:
        """The mean over the queries' species of each one's share of ``right``."""
        return round(float(pd.Series(right).groupby(query_species).mean().mean()), 4)

    rows = []
    for align, candidates in settings:
        started = time.perf_counter()
        found = identify(index, vectors, pool["processid"].tolist(), query_sequences=barcodes, align=align,
                         candidates=candidates, thresholds=IdentityThresholds.parse(thresholds)).table
        seconds = time.perf_counter() - started
        genus_right = found["top_genus"].to_numpy() == truth["genus"]
        species_right = found["top_species"].to_numpy() == truth["species"]
        row: dict[str, Any] = {
            "align": align, "candidates": candidates,
            "top_hit_genus_accuracy": round(float(genus_right.mean()), 4),
            "top_hit_genus_species_macro": species_macro(genus_right),
            "top_hit_species_accuracy": round(float(species_right.mean()), 4),
            "top_hit_species_species_macro": species_macro(species_right),
            "seconds_per_query": round(seconds / len(pool), 5),
        }
        for level in CALL_LEVELS:
            called = (found["call_level"] == level).to_numpy()
            row[f"{level}_call_share"] = round(float(called.mean()), 4)
            if level != "none":
                right = found["called_taxon"].to_numpy()[called] == truth[level][called]
                row[f"{level}_call_precision"] = round(float(right.mean()), 4) if called.any() else None
        rows.append(row)
        print(json.dumps(row), flush=True)
    return {"data": str(data), "embedding": str(model) if model else f"{kmer}-mer frequencies", "frames": frames,
            "model_share": model_share,
            "query_split": query_split, "reference_split": reference_split, "queries": len(pool),
            "references": len(references), "thresholds": thresholds, "rows": rows}


def markdown(report: dict[str, Any]) -> str:
    """The rows as the table of docs/results.md."""
    header = ("| `--align` | `--candidates` | top-hit genus | species-macro | top-hit species | species-macro | "
              "species calls | right | genus calls | right | no call | ms/query |")
    lines = [header, "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for row in report["rows"]:
        shown = [percent(row[key]) for key in ("top_hit_genus_accuracy", "top_hit_genus_species_macro",
                                               "top_hit_species_accuracy", "top_hit_species_species_macro",
                                               "species_call_share", "species_call_precision", "genus_call_share",
                                               "genus_call_precision", "none_call_share")]
        lines.append(f"| {row['align']} | {row['candidates'] or '–'} | {' | '.join(shown)} | "
                     f"{1000 * row['seconds_per_query']:.1f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="BIOSCAN-5M format CSV")
    parser.add_argument("--model", type=Path, default=None, help="model folder (default: k-mer frequencies)")
    parser.add_argument("--kmer", type=int, default=5, help="k of the k-mer frequencies without --model")
    parser.add_argument("--frames", choices=FRAMES, default=None,
                        help="--model's reading frames, as identify build --frames (default: the model's own)")
    parser.add_argument("--model-share", type=float, default=None,
                        help="retrieve by this share of --model's cosine plus the rest of the k-mer profiles'")
    parser.add_argument("--query-split", default="val_unseen")
    parser.add_argument("--reference-split", default="train")
    parser.add_argument("--queries", type=int, default=None, help="random queries of the split (default: all)")
    parser.add_argument("--settings", default="50:0,20:200,20:500,20:1000", help="N:M pairs (--align:--candidates)")
    parser.add_argument("--thresholds", default=DEFAULT_IDENTITY_THRESHOLDS)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--output", type=Path, default=None, help="also write the JSON here")
    args = parser.parse_args(argv)
    report = measure(args.data, model=args.model, kmer=args.kmer, frames=args.frames, query_split=args.query_split,
                     reference_split=args.reference_split, queries=args.queries,
                     settings=parse_settings(args.settings), thresholds=args.thresholds, seed=args.seed,
                     model_share=args.model_share)
    if args.output:
        args.output.write_text(json.dumps(report, indent=2) + "\n")
    print(markdown(report))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
