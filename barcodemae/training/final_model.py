"""The run's product: ``final_model/`` with its tokenizer, label vocabulary and NPMI table, its evaluation and
``summary.json``.

``final_model/`` holds the last step's weights, or the best step's with ``--load_best_model_at_end``; it is what
``barcodemae export``, ``--init_from`` and the evaluation suite read.
"""

from __future__ import annotations

import json
import logging
from typing import Any

import torch
from accelerate import Accelerator

from barcodemae.eval import run_evaluation
from barcodemae.file_modes import apply_umask
from barcodemae.masking.npmi import NPMITable
from barcodemae.run_layout import RunLayout
from barcodemae.tokenization import BarcodeTokenizer

from .arguments import TrainingArguments
from .best_model import BestModelTracker
from .data import TrainingData
from .metrics_log import MetricsLog

logger = logging.getLogger(__name__)


def export_final_model(
    args: TrainingArguments, accelerator: Accelerator, model: torch.nn.Module, tokenizer: BarcodeTokenizer,
    data: TrainingData, npmi_table: NPMITable | None, best: BestModelTracker | None, metrics: MetricsLog,
    summary: dict[str, Any],
) -> dict[str, Any]:
    """``final_model/`` (the last step's weights, or the best step's with ``--load_best_model_at_end``) with its
    tokenizer, label vocabulary and NPMI table, its evaluation (``--evaluate``) and ``summary.json``; returns the
    summary (``summary`` holds the loop's ``global_step``, ``max_steps``, ``parameters`` and ``last_log``)."""
    layout = RunLayout(args.output_dir)
    global_step = summary["global_step"]
    final_dir = layout.final_model
    summary = {**summary, "final_model": str(final_dir)}
    if best is not None and best.best_step is not None:
        best.load_best_weights(accelerator.unwrap_model(model))
        summary["final_model_step"] = best.best_step
        summary["best_model"] = best.state_dict()
        logger.info(
            "%s/ holds step %d, the best %s (%.4g); the last step was %d",
            final_dir.name, best.best_step, best.metric, best.best_value, global_step,
        )
        metrics.write({"step": global_step, "final_model_step": best.best_step, f"best_{best.metric}": best.best_value})
    else:
        summary["final_model_step"] = global_step
    # Every process takes part in gathering the weights (FSDP/DeepSpeed ZeRO-3 shard them); the main one writes.
    state_dict = accelerator.get_state_dict(model)
    if accelerator.is_main_process:
        unwrapped = accelerator.unwrap_model(model)
        unwrapped.save_pretrained(final_dir, state_dict=state_dict, safe_serialization=True)
        tokenizer.save_pretrained(final_dir)
        data.label_vocab.save(final_dir)
        if npmi_table is not None:
            npmi_table.save(final_dir)  # the masking statistics the model was trained with travel with it
        apply_umask(final_dir)
        if args.evaluate:
            results = run_evaluation(
                str(final_dir), str(data.path), str(layout.eval), reducer=args.eval_reducer, plots=args.eval_plots,
            )
            summary["evaluation"] = results
            # Only the metrics go to metrics.jsonl and the trackers: per-genus accuracies (thousands of genera on
            # BIOSCAN-5M), settings and split sizes stay in eval/results.json.
            metrics.write({"step": global_step, **_flatten(results.get("metrics", results), "eval/metrics/")})
        layout.summary.write_text(json.dumps(summary, indent=2, default=str))
    return summary


def _flatten(results: dict[str, Any], prefix: str = "eval/") -> dict[str, float]:
    """Numeric leaves of a nested results dict as ``eval/a/b`` keys (for metrics.jsonl and trackers)."""
    flat: dict[str, float] = {}
    for key, value in results.items():
        if isinstance(value, dict):
            flat.update(_flatten(value, f"{prefix}{key}/"))
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            flat[f"{prefix}{key}"] = float(value)
    return flat


__all__ = ["export_final_model"]
