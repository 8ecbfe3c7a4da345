"""Throughput of `barcodemae embed` and `barcodemae identify` end to end (load, clean, sort, embed, write).

Prints one JSON object. Without --model a randomly initialised model of the given size is saved to a temporary
folder (throughput does not depend on the weights). Example:

    python bench/bench_embed_identify.py --input ../shared/data/bold_coi/demo.csv.gz --hidden-size 768 --layers 12
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import torch

from barcodemae import BarcodeMAEConfig, BarcodeMAEModel, BarcodeTokenizer
from barcodemae.data import load_barcodes
from barcodemae.embed_files import embed_file
from barcodemae.embedding_settings import DEFAULT_SHARD_SIZE, EmbeddingSettings, add_embedding_flags
from barcodemae.identify import build_reference_index, identify_file
from barcodemae.inference import embed_barcodes, load_encoder

DEFAULT_INPUT = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "bold_coi" / "demo.csv.gz"


def random_model(folder: Path, hidden_size: int, layers: int) -> Path:
    tokenizer = BarcodeTokenizer.kmer()
    config = BarcodeMAEConfig(
        vocab_size=len(tokenizer), hidden_size=hidden_size, num_hidden_layers=layers,
        num_attention_heads=max(1, hidden_size // 64), intermediate_size=4 * hidden_size,
        decoder_hidden_size=hidden_size, decoder_num_attention_heads=max(1, hidden_size // 64),
        decoder_intermediate_size=4 * hidden_size,
    )
    BarcodeMAEModel(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--input", default=str(DEFAULT_INPUT))
    parser.add_argument("--model", default=None)
    parser.add_argument("--hidden-size", type=int, default=128)
    parser.add_argument("--layers", type=int, default=2)
    add_embedding_flags(parser, EmbeddingSettings(), ("batch_size", "device"))
    parser.add_argument("--shard-size", type=int, default=DEFAULT_SHARD_SIZE)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    settings = EmbeddingSettings(batch_size=args.batch_size, device=args.device, progress=False)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        model = Path(args.model) if args.model else random_model(work / "model", args.hidden_size, args.layers)
        results = {"input": args.input, "model": args.model or f"random h={args.hidden_size} L={args.layers}",
                   "batch_size": args.batch_size, "device": args.device or "auto", "threads": args.threads}
        # the embedding loop alone, on the same cleaned barcodes: the difference to embed_file is the file pipeline
        encoder, tokenizer = load_encoder(model)
        barcodes = load_barcodes(args.input)["dna_barcode"]
        start = time.perf_counter()
        embed_barcodes(encoder, tokenizer, barcodes, **settings.forward_options(), progress=False)
        seconds = time.perf_counter() - start
        results["embed_barcodes_only"] = {"records": len(barcodes), "seconds": round(seconds, 2),
                                          "records_per_s": round(len(barcodes) / seconds, 1)}
        for suffix in (".parquet", ".npy"):
            start = time.perf_counter()
            summary = embed_file(model, args.input, work / f"out{suffix}", settings=settings,
                                 shard_size=args.shard_size)
            seconds = time.perf_counter() - start
            results[f"embed{suffix}"] = {"records": summary.num_records, "seconds": round(seconds, 2),
                                         "records_per_s": round(summary.num_records / seconds, 1)}
        start = time.perf_counter()
        index = build_reference_index(model, args.input, work / "index", settings=settings,
                                      shard_size=args.shard_size)
        results["identify_build_s"] = round(time.perf_counter() - start, 2)
        start = time.perf_counter()
        table = identify_file(work / "index", args.input, work / "ids.csv", settings=settings)
        seconds = time.perf_counter() - start
        results["identify_query"] = {"queries": len(table), "references": len(index.embeddings),
                                     "seconds": round(seconds, 2), "queries_per_s": round(len(table) / seconds, 1)}
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
