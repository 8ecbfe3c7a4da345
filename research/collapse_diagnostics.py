"""Diagnostics of the genus-probe collapse (docs/results.md, issue #12): what the mean-pooled embeddings encode instead.

    python research/collapse_diagnostics.py position-perplexity --data ../shared/data/bold_coi/dev.csv.gz
    python research/collapse_diagnostics.py checkpoint runs/p/base --step 1500 [--data ...]
    python research/collapse_diagnostics.py kmer-ceiling [--data ...]

``position-perplexity``: how well a table of 6-mer frequencies per token position (frame 0, counted on
``pretrain+other_heldout``) predicts ``val`` tokens, against the unigram table: the part of masked-token
prediction that needs no sequence context at all.

``checkpoint``: for a ``train.py`` run folder and one saved step (``checkpoints/step_N``; ``--step 0`` = the same
architecture untrained, same seed), on ``val_unseen`` queries (2,000) against ``train`` keys (4,000), raw cosine:
genus 1-NN for several poolings (mean, max, layer average) with and without PCA-whitening fitted on the keys; the
codon phase of each barcode's first base (``barcodemae.qc.best_frame``: the frame with the fewest TAA/TAG stops,
invertebrate mitochondrial code), how well 1-NN recovers it, genus 1-NN among same-phase keys, and the mean of
the top three principal components per phase.

``kmer-ceiling``: what a mean-pooled encoder of width W can keep of k-mer composition without learning, on the
same keys and queries: genus 1-NN of k-mer count vectors (non-overlapping 6-mers as the tokenizer sees them,
overlapping 6- and 4-mers), of random Gaussian projections of the non-overlapping 6-mer counts to W dimensions
(three draws; an untrained encoder's pooled output is close to such a projection) and of their first W principal
components (the best linear W-dimensional summary of the counts). Prints one JSON object.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch
from accelerate.utils import set_seed
from safetensors.torch import load_file

from barcodemae.data import load_bioscan5m
from barcodemae.eval.metrics import one_nn_accuracy
from barcodemae.eval.postprocess import EmbeddingPostprocessor
from barcodemae.inference import KmerFrequencyEmbedder
from barcodemae.qc import best_frames
from barcodemae.run_layout import RunLayout
from barcodemae.tokenization import BarcodeTokenizer
from barcodemae.training.arguments import TrainingArguments
from barcodemae.training.builders import build_model

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "bold_coi" / "dev.csv.gz"


def position_perplexity(data: Path) -> dict:
    tokenizer = BarcodeTokenizer.kmer(6)
    width = tokenizer.model_max_length

    def encode(split: str, limit: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        barcodes = list(load_bioscan5m(data, split)["dna_barcode"])[:limit]
        encoded = tokenizer(barcodes, padding="max_length", max_length=width, return_tensors="np")
        return encoded["input_ids"], encoded["attention_mask"]

    ids, mask = encode("pretrain+other_heldout")
    counts = np.full((width, len(tokenizer)), 0.01)
    for position in range(width):
        np.add.at(counts[position], ids[:, position][mask[:, position] == 1], 1)
    per_position = counts / counts.sum(axis=1, keepdims=True)
    unigram = counts.sum(axis=0) / counts.sum()
    held_ids, held_mask = encode("val", 2000)
    real = (held_mask == 1) & (held_ids >= len(tokenizer.all_special_ids))
    positions, tokens = np.nonzero(real)[1], held_ids[real]
    return {
        "position_only_perplexity": float(np.exp(-np.log(per_position[positions, tokens]).mean())),
        "unigram_perplexity": float(np.exp(-np.log(unigram[tokens]).mean())),
        "val_tokens": int(real.sum()),
    }


def probe_sample(data: Path) -> tuple[list[str], np.ndarray, np.ndarray, np.ndarray]:
    """Barcodes and genera of ``train+val_unseen``, with 4,000 ``train`` keys and 2,000 ``val_unseen`` queries."""
    frame = load_bioscan5m(data, "train+val_unseen")
    split = np.asarray(frame["split"])
    genus = np.asarray(frame["genus"], dtype=object)
    rng = np.random.default_rng(0)
    keys = np.sort(rng.permutation(np.flatnonzero((split == "train") & (genus != None)))[:4000])
    queries = np.sort(rng.permutation(np.flatnonzero((split == "val_unseen") & (genus != None)))[:2000])
    return list(frame["dna_barcode"]), genus, keys, queries


def kmer_ceiling(data: Path, widths: tuple[int, ...] = (64, 256)) -> dict:
    barcodes, genus, keys, queries = probe_sample(data)

    def genus_1nn(key_vectors: np.ndarray, query_vectors: np.ndarray) -> float:
        return one_nn_accuracy(key_vectors, genus[keys], query_vectors, genus[queries])["accuracy"]

    result: dict = {"keys": len(keys), "queries": len(queries)}
    for k, stride in ((6, 6), (6, 1), (4, 1)):
        embedder = KmerFrequencyEmbedder(k, stride=stride)
        key_counts = embedder([barcodes[i] for i in keys])
        query_counts = embedder([barcodes[i] for i in queries])
        result[f"genus_1nn_counts_k{k}_stride{stride}"] = genus_1nn(key_counts, query_counts)
        if (k, stride) != (6, 6):
            continue
        mean = key_counts.mean(axis=0)
        _, _, components = np.linalg.svd(key_counts - mean, full_matrices=False)
        for width in widths:
            draws = [np.random.default_rng(seed).normal(size=(key_counts.shape[1], width)) for seed in range(3)]
            result[f"genus_1nn_random_projection_{width}"] = [
                genus_1nn(key_counts @ r, query_counts @ r) for r in draws
            ]
            pca = components[:width].T
            result[f"genus_1nn_pca_{width}"] = genus_1nn((key_counts - mean) @ pca, (query_counts - mean) @ pca)
    return result


def checkpoint_diagnostics(run: Path, step: int, data: Path) -> dict:
    barcodes, genus, keys, queries = probe_sample(data)
    args = TrainingArguments(**json.loads(RunLayout(run).training_args.read_text()))
    tokenizer = BarcodeTokenizer.from_spec(args.tokenizer)
    set_seed(args.seed)
    model = build_model(args, tokenizer)
    if step:
        model.load_state_dict(load_file(str(RunLayout(run).checkpoint(step) / "model.safetensors")))
    encoder = model.barcodemae.eval()

    def embed(rows: np.ndarray) -> dict[str, np.ndarray]:
        pooled: dict[str, list[np.ndarray]] = {}
        texts = [barcodes[i] for i in rows]
        with torch.inference_mode():
            for start in range(0, len(texts), 256):
                batch = tokenizer(texts[start : start + 256], padding=True, return_tensors="pt")
                out = encoder(**batch, output_hidden_states=True)
                weight = batch["attention_mask"].unsqueeze(-1).float()
                last = out.last_hidden_state
                views = {
                    "mean": (last * weight).sum(1) / weight.sum(1),
                    "max": last.masked_fill(weight == 0, -1e9).amax(1),
                    "layer_mean": (torch.stack(out.hidden_states).mean(0) * weight).sum(1) / weight.sum(1),
                }
                for name, value in views.items():
                    pooled.setdefault(name, []).append(value.numpy())
        return {name: np.concatenate(parts) for name, parts in pooled.items()}

    key_vectors, query_vectors = embed(keys), embed(queries)
    result: dict = {"run": str(run), "step": step, "keys": len(keys), "queries": len(queries)}
    for name in key_vectors:
        k, q = key_vectors[name], query_vectors[name]
        result[f"genus_1nn_{name}"] = one_nn_accuracy(k, genus[keys], q, genus[queries])["accuracy"]
        white = EmbeddingPostprocessor.fit(k, "whiten")
        result[f"genus_1nn_{name}_whitened"] = one_nn_accuracy(
            white.transform(k), genus[keys], white.transform(q), genus[queries])["accuracy"]
    key_phase = best_frames([barcodes[i] for i in keys])
    query_phase = best_frames([barcodes[i] for i in queries])
    k, q = key_vectors["mean"], query_vectors["mean"]
    result["phase_shares_of_keys"] = np.bincount(key_phase, minlength=3).tolist()
    result["phase_1nn"] = one_nn_accuracy(k, key_phase, q, query_phase)["accuracy"]
    same = []
    for phase in range(3):
        chosen = query_phase == phase
        if chosen.sum() and (key_phase == phase).sum():
            same.append(one_nn_accuracy(k[key_phase == phase], genus[keys][key_phase == phase], q[chosen],
                                        genus[queries][chosen])["accuracy"] * chosen.sum())
    result["genus_1nn_among_same_phase_keys"] = float(sum(same) / len(queries))
    centred = k - k.mean(axis=0)
    _, singular, vt = np.linalg.svd(centred, full_matrices=False)
    components = centred @ vt[:3].T
    result["top3_pc_variance_shares"] = (singular[:3] ** 2 / (singular**2).sum()).round(3).tolist()
    result["top3_pc_mean_by_phase"] = [[round(float(components[key_phase == p, j].mean()), 2)
                                        if (key_phase == p).any() else None for p in range(3)] for j in range(3)]
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    position = commands.add_parser("position-perplexity")
    position.add_argument("--data", type=Path, default=DEFAULT_DATA)
    checkpoint = commands.add_parser("checkpoint")
    checkpoint.add_argument("run", type=Path)
    checkpoint.add_argument("--step", type=int, required=True)
    checkpoint.add_argument("--data", type=Path, default=DEFAULT_DATA)
    ceiling = commands.add_parser("kmer-ceiling")
    ceiling.add_argument("--data", type=Path, default=DEFAULT_DATA)
    args = parser.parse_args(argv)
    torch.set_num_threads(2)
    if args.command == "position-perplexity":
        result = position_perplexity(args.data)
    elif args.command == "kmer-ceiling":
        result = kmer_ceiling(args.data)
    else:
        result = checkpoint_diagnostics(args.run, args.step, args.data)
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
