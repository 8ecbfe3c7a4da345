"""Tokenisation throughput (barcodes/s) of the k-mer, overlapping k-mer, character and BPE tokenizers.

Two ways a user tokenises a corpus are measured on real barcodes (``dev.csv.gz``, 84k BOLD COI records):

* ``batch``: ``tokenizer(list_of_barcodes)`` in batches in one process (Python lists out, the default call);
  ``batch_numpy_padded`` the same with ``padding=True, return_tensors="np"`` (what a collator needs);
  ``backend_batch`` the same call through the ``tokenizers`` backend (``use_fast_path=False``) on the first
  ``--backend-limit`` barcodes, to show what the vectorised path buys;
* ``datasets_map``: ``datasets.Dataset.map(batched=True, num_proc=N)``, the pretraining data path.

A cleaning-only row separates the cost of the shared cleaning policy from the encoding itself. The BPE rows use
the BarcodeMAE authors' 4096-token vocabulary and one trained here on the ``pretrain`` split (training time is
reported too). Prints one JSON object. Run from the repository root::

    python bench/bench_tokenization.py                   # whole dev set
    python bench/bench_tokenization.py --limit 20000     # quicker
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from collections.abc import Callable
from pathlib import Path

import datasets
import torch

from barcodemae.tokenization import BarcodeTokenizer, clean_barcode
from barcodemae.tokenization.bpe import read_csv_column, train_bpe_tokenizer

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = REPO_ROOT / ".." / "shared" / "data" / "bold_coi" / "dev.csv.gz"
DEFAULT_REFERENCE_BPE = (
    REPO_ROOT / ".." / "shared" / "data" / "reference_tokenizers" / "bpe_barcode_4096" / "tokenizer.json"
)


def timed(work: Callable[[], object], repeats: int) -> float:
    """Best wall time of ``repeats`` runs: the machine is shared, so the minimum is the least disturbed run."""
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        work()
        best = min(best, time.perf_counter() - start)
    return best


def batch_throughput(
    tokenizer: BarcodeTokenizer, barcodes: list[str], batch_size: int, repeats: int, **call: object
) -> dict:
    def run() -> None:
        for start in range(0, len(barcodes), batch_size):
            tokenizer(barcodes[start : start + batch_size], **call)

    seconds = timed(run, repeats)
    return {"barcodes_per_s": round(len(barcodes) / seconds), "seconds": round(seconds, 3), "barcodes": len(barcodes)}


def backend_throughput(tokenizer: BarcodeTokenizer, barcodes: list[str], batch_size: int, repeats: int) -> dict:
    tokenizer.use_fast_path = False
    try:
        return batch_throughput(tokenizer, barcodes, batch_size, repeats)
    finally:
        tokenizer.use_fast_path = True


def map_throughput(tokenizer: BarcodeTokenizer, dataset: datasets.Dataset, batch_size: int, num_proc: int) -> dict:
    def encode(batch: dict) -> dict:
        return tokenizer(batch["dna_barcode"])

    start = time.perf_counter()
    dataset.map(
        encode, batched=True, batch_size=batch_size, num_proc=num_proc, remove_columns=["dna_barcode"],
        keep_in_memory=True, load_from_cache_file=False, desc=None,
    )
    seconds = time.perf_counter() - start
    return {"barcodes_per_s": round(len(dataset) / seconds), "seconds": round(seconds, 3)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", default=str(DEFAULT_DATA))
    parser.add_argument("--reference-bpe", default=str(DEFAULT_REFERENCE_BPE))
    parser.add_argument("--limit", type=int, default=None, help="use only the first N barcodes")
    parser.add_argument("--batch-size", type=int, default=1000)
    parser.add_argument("--num-proc", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--bpe-vocab-size", type=int, default=4096)
    parser.add_argument("--backend-limit", type=int, default=5000, help="barcodes for the backend comparison")
    args = parser.parse_args()
    datasets.disable_progress_bars()

    barcodes = list(read_csv_column(args.data))[: args.limit]
    pretrain = list(read_csv_column(args.data, splits=["pretrain"]))

    start = time.perf_counter()
    trained_bpe = train_bpe_tokenizer(pretrain, vocab_size=args.bpe_vocab_size, show_progress=False)
    bpe_training = {
        "records": len(pretrain), "vocab_size": len(trained_bpe), "seconds": round(time.perf_counter() - start, 2)
    }

    tokenizers = {
        "kmer6": BarcodeTokenizer.kmer(6),
        "kmer6_overlapping": BarcodeTokenizer.kmer(6, 1),
        "char": BarcodeTokenizer.char(),
        "bpe_reference_4096": BarcodeTokenizer.from_tokenizer_file(args.reference_bpe),
        f"bpe_trained_{args.bpe_vocab_size}": trained_bpe,
    }
    cleaning_seconds = timed(lambda: [clean_barcode(b) for b in barcodes], args.repeats)
    dataset = datasets.Dataset.from_dict({"dna_barcode": barcodes})

    results = {}
    for name, tokenizer in tokenizers.items():
        encoded = tokenizer(barcodes[:2000])["input_ids"]
        results[name] = {
            "mean_tokens": round(sum(map(len, encoded)) / len(encoded), 1),
            "batch": batch_throughput(tokenizer, barcodes, args.batch_size, args.repeats),
            "batch_numpy_padded": batch_throughput(
                tokenizer, barcodes, args.batch_size, args.repeats, padding=True, return_tensors="np"
            ),
            "backend_batch": backend_throughput(tokenizer, barcodes[: args.backend_limit], args.batch_size, 1),
            f"datasets_map_num_proc_{args.num_proc}": map_throughput(
                tokenizer, dataset, args.batch_size, args.num_proc
            ),
        }

    print(json.dumps({
        "data": os.path.relpath(args.data, REPO_ROOT),
        "barcodes": len(barcodes),
        "batch_size": args.batch_size,
        "machine": {
            "cpus": os.cpu_count(), "torch_threads": torch.get_num_threads(), "python": platform.python_version()
        },
        "cleaning_only_barcodes_per_s": round(len(barcodes) / cleaning_seconds),
        "bpe_training": bpe_training,
        "tokenizers": results,
    }, indent=2))


if __name__ == "__main__":
    main()
