"""Evaluate the exported ``final_model/`` folder at the end of training.

The full suite lives in :mod:`barcodemae.eval` (``run_evaluation``). When it is importable it is used; otherwise
this module runs the core BIOSCAN-5M probes itself so that the demo always reports numbers: open-world genus
1-NN (``test_unseen`` queries vs ``train`` keys) and closed-world species 1-NN (``test`` vs ``train``), with the
same cosine 1-NN as the periodic probe. The model is loaded back from the exported folder, so this also checks
that the export is usable.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .data import TrainingData
from .validation import embed, one_nn_accuracy

logger = logging.getLogger(__name__)

PROBES = (
    # name, key split, query split, rank
    ("open_world_genus_1nn", "train", "test_unseen", "genus"),
    ("closed_world_species_1nn", "train", "test", "species"),
)


def _labelled(data: TrainingData, split: str, rank: str) -> tuple[list[str], np.ndarray]:
    rows = data.rows(split)
    labels = np.asarray(data.dataset.data.column(rank).to_numpy(zero_copy_only=False), dtype=object)[rows]
    keep = np.array([label is not None for label in labels], dtype=bool)
    rows = rows[keep]
    return data.dataset.select(rows)["dna_barcode"], labels[keep]


def builtin_probes(model_dir: Path, data: TrainingData, batch_size: int = 128) -> dict[str, Any]:
    """1-NN probes of :data:`PROBES` with the exported encoder (frame 0, mean pooling, cosine)."""
    from transformers import AutoModel, AutoTokenizer

    encoder = AutoModel.from_pretrained(model_dir, trust_remote_code=True)
    tokenizer = AutoTokenizer.from_pretrained(model_dir, trust_remote_code=True)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    encoder.to(device)
    results: dict[str, Any] = {}
    for name, key_split, query_split, rank in PROBES:
        keys, key_labels = _labelled(data, key_split, rank)
        queries, query_labels = _labelled(data, query_split, rank)
        if not keys or not queries:
            logger.warning("skipping %s: %s has %d labelled keys, %s has %d queries", name, key_split, len(keys), query_split, len(queries))
            continue
        accuracy = one_nn_accuracy(
            embed(encoder, tokenizer, keys, batch_size, device), key_labels,
            embed(encoder, tokenizer, queries, batch_size, device), query_labels,
        )
        results[name] = {"accuracy": accuracy, "num_keys": len(keys), "num_queries": len(queries)}
    return results


def evaluate_export(model_dir: Path, data: TrainingData, eval_dir: Path, reducer: str = "auto", plots: bool = True) -> dict[str, Any]:
    """Run the evaluation suite (or the built-in probes) and write ``eval/results.json``."""
    eval_dir.mkdir(parents=True, exist_ok=True)
    try:
        from barcodemae.eval import run_evaluation  # the full suite, when installed
    except ImportError:
        run_evaluation = None
    if run_evaluation is not None:
        results = run_evaluation(str(model_dir), str(data.path), str(eval_dir), reducer=reducer, plots=plots)
    else:
        results = {"suite": "barcodemae.training.final_eval (built-in 1-NN probes)", **builtin_probes(model_dir, data)}
        (eval_dir / "results.json").write_text(json.dumps(results, indent=2))
    return results


__all__ = ["PROBES", "builtin_probes", "evaluate_export"]
