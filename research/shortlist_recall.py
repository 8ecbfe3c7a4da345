"""How many references `identify query --align N` must align: the recall of the embedding shortlist.

    python research/shortlist_recall.py --data ../shared/data/bold_coi/dev.csv.gz --queries 300 --deep 500

Retrieval bounds retrieve-then-align: a reference the embedding does not shortlist is never aligned. For a random
``--queries`` of the ``--query-split`` barcodes (default ``val_unseen``: species absent from the library, the hard
case) against the ``--reference-split`` ones (``train``), every query is aligned to its ``--deep`` nearest
references by embedding (a stand-in for all of them: the script reports how deep the best ones lie) with
:func:`barcodemae.alignment.align_shortlist`, and the hits ranked as ``identify`` ranks them
(:func:`barcodemae.identity_calls.rank_hits`). For each ``N`` of ``--shortlists``:

- ``recall``: share of queries whose best identity among their ``N`` nearest equals their best among ``--deep``
  (the shortlist loses nothing);
- ``top_hit_genus_accuracy``: the best-aligning of the ``N``'s genus is the query's;
- the identity calls (``--thresholds``): share per level and precision (the taxon named is the query's);
- ``align_seconds_per_query``: the alignment time per query at that ``N`` (on this machine; say if busy).

The embedding: 4-mer frequencies (:class:`~barcodemae.inference.KmerFrequencyEmbedder`, no model) by default, or
``--model`` (its pooled embedding, as ``identify build`` stores it).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import numpy as np

from barcodemae.alignment import align_shortlist, local_scores
from barcodemae.call_levels import CALL_LEVELS
from barcodemae.cli_options import DEFAULT_IDENTITY_THRESHOLDS
from barcodemae.data import load_bioscan5m
from barcodemae.eval.metrics import top_k_neighbors
from barcodemae.identity_calls import IDENTITY_RANKS, IdentityThresholds, RankedHits, identity_calls, rank_hits
from barcodemae.inference import KmerFrequencyEmbedder, embed_barcodes, load_encoder

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "bold_coi" / "dev.csv.gz"
COLUMNS = ["processid", "dna_barcode", *IDENTITY_RANKS]


def embed(model: Path | None, barcodes: list[str], kmer: int = 4, frames: str | None = None) -> np.ndarray:
    """``(n, d)`` embeddings of ``barcodes``: ``kmer``-mer frequencies, or ``model``'s pooled embedding in its
    reading ``frames`` (``None``: the model's own)."""
    if model is None:
        return KmerFrequencyEmbedder(k=kmer)(barcodes)
    encoder, tokenizer = load_encoder(model)
    return embed_barcodes(encoder, tokenizer, barcodes, frames=frames, progress=False)


def measure(data: Path, *, model: Path | None, query_split: str, reference_split: str, queries: int, deep: int,
            shortlists: list[int], thresholds: str, seed: int, threads: int) -> dict[str, Any]:
    references = load_bioscan5m(data, reference_split).select_columns(COLUMNS).to_pandas()
    pool = load_bioscan5m(data, query_split).select_columns(COLUMNS).to_pandas()
    chosen = np.sort(np.random.default_rng(seed).choice(len(pool), size=min(queries, len(pool)), replace=False))
    query_table = pool.iloc[chosen].reset_index(drop=True)
    started = time.perf_counter()
    reference_vectors = embed(model, references["dna_barcode"].tolist())
    query_vectors = embed(model, query_table["dna_barcode"].tolist())
    nearest, similarity = top_k_neighbors(reference_vectors, query_vectors, deep, use_faiss=False)
    embed_seconds = time.perf_counter() - started
    sequences = np.array(references["dna_barcode"].tolist(), dtype=bytes)
    started = time.perf_counter()
    statistics = align_shortlist(query_table["dna_barcode"].tolist(), nearest, sequences, threads=threads)
    align_seconds = time.perf_counter() - started
    scores = local_scores(query_table["dna_barcode"].tolist(), nearest, sequences, threads=threads)
    best = rank_hits(nearest, similarity, statistics, scores)
    best_identity = np.where(best.covering, best.identity, -1.0).max(axis=1)  # the highest, whatever its rank
    deepest = np.argmax(nearest == best.reference[:, :1], axis=1)  # the best hit's position in the shortlist
    taxa = {rank: references[rank].to_numpy(dtype=object) for rank in IDENTITY_RANKS}
    truth = {rank: query_table[rank].to_numpy(dtype=object) for rank in IDENTITY_RANKS}
    rows = []
    for count in shortlists:
        nearest_first = RankedHits(nearest, similarity, statistics, scores).head(count)  # --align count, no screen
        found = rank_hits(nearest_first.reference, nearest_first.similarity, nearest_first.alignment,
                          nearest_first.local_score)
        identity = np.where(found.covering, found.identity, -1.0).max(axis=1)
        calls = identity_calls(found, {rank: names[found.reference] for rank, names in taxa.items()},
                               IdentityThresholds.parse(thresholds))
        row: dict[str, Any] = {
            "shortlist": count,
            "recall": round(float(np.mean(identity >= best_identity)), 4),
            "top_hit_genus_accuracy": round(float(np.mean(taxa["genus"][found.reference[:, 0]] == truth["genus"])), 4),
            "align_seconds_per_query": round(align_seconds / deep * count / len(nearest), 5),
        }
        for level in CALL_LEVELS:
            called = calls.level == level
            row[f"{level}_call_share"] = round(float(called.mean()), 4)
            if level != "none":
                right = calls.taxon[called] == truth[level][called]
                row[f"{level}_call_precision"] = round(float(right.mean()), 4) if called.any() else None
        rows.append(row)
    return {
        "data": str(data), "embedding": str(model) if model else "4-mer frequencies", "query_split": query_split,
        "reference_split": reference_split, "queries": len(nearest), "references": len(references), "deep": deep,
        "threads": threads,
        "thresholds": thresholds, "embedding_top1_genus_accuracy":
            round(float(np.mean(taxa["genus"][nearest[:, 0]] == truth["genus"])), 4),
        "best_hit_position_quantiles": {q: int(np.quantile(deepest, q / 100)) for q in (50, 90, 99, 100)},
        "best_hit_beyond_half_of_deep": round(float(np.mean(deepest >= deep // 2)), 4),
        "embed_and_search_seconds": round(embed_seconds, 1), "align_seconds": round(align_seconds, 1),
        "rows": rows,
    }


def percent(value: float | None) -> str:
    return "–" if value is None else f"{100 * value:.1f}"


def markdown(report: dict[str, Any]) -> str:
    """The rows as the table of docs/results.md."""
    lines = ["| N | recall | top-hit genus | species calls | right | genus calls | right | no call | align s/query |",
             "|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for row in report["rows"]:
        shown = [percent(row[key]) for key in ("recall", "top_hit_genus_accuracy", "species_call_share",
                                               "species_call_precision", "genus_call_share", "genus_call_precision",
                                               "none_call_share")]
        lines.append(f"| {row['shortlist']} | {' | '.join(shown)} | {row['align_seconds_per_query']:.4f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="BIOSCAN-5M format CSV")
    parser.add_argument("--model", type=Path, default=None, help="model folder (default: 4-mer frequencies)")
    parser.add_argument("--query-split", default="val_unseen")
    parser.add_argument("--reference-split", default="train")
    parser.add_argument("--queries", type=int, default=300, help="random queries of the split")
    parser.add_argument("--deep", type=int, default=500, help="nearest references aligned: 'all' for the recall")
    parser.add_argument("--shortlists", default="5,10,20,50,100", help="the N to measure")
    parser.add_argument("--thresholds", default=DEFAULT_IDENTITY_THRESHOLDS)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2, help="alignment threads")
    parser.add_argument("--output", type=Path, default=None, help="also write the JSON here")
    args = parser.parse_args(argv)
    shortlists = [int(value) for value in args.shortlists.split(",")]
    if max(shortlists) > args.deep:
        parser.error(f"--shortlists go up to {max(shortlists)}, beyond --deep {args.deep}")
    report = measure(args.data, model=args.model, query_split=args.query_split, reference_split=args.reference_split,
                     queries=args.queries, deep=args.deep, shortlists=shortlists, thresholds=args.thresholds,
                     seed=args.seed, threads=args.threads)
    text = json.dumps(report, indent=2)
    if args.output:
        args.output.write_text(text + "\n")
    print(text)
    print(markdown(report))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
