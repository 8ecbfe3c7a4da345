"""Barcode quality control with ENBED (issue #15): per-base error detection and read correction, against the
translation check, on genera the fine-tuning never saw.

    python eval/qc.py --model runs/enbed-tiny/final_model --data ../shared/data/bold_coi/dev.csv.gz --output runs/qc
    python eval/qc.py --model none --preset enbed-tiny ...      (a fresh, unpretrained model of the preset's size)

Why: real barcodes carry no labels of their read errors, so errors are injected into clean barcodes
(:func:`barcodemae.qc.inject_errors`, rates set by the flags) and the model is scored on exactly known positions.

Data (split by genus). Test genera are those whose every record is in ``--test-splits`` (default
``other_heldout``: in BIOSCAN-5M, the genera absent from every labelled and pretraining partition); the detector is
fine-tuned on barcodes of all the other genera taken from ``--train-splits`` (default ``train``). So no test read
belongs to a genus whose barcodes the fine-tuning saw: a detector cannot pass by recalling barcodes of known
genera. ``--seed`` draws the barcodes (distinct sequences, up to ``--train-barcodes`` / ``--test-barcodes``), the
errors and the training order. Caveat: ENBED's pretraining split (``train.py``'s default
``pretrain+other_heldout``) contains clean ``other_heldout`` barcodes; pretrain with ``--split pretrain`` for a
test on genera the encoder never saw at all.

Detection. :class:`modeling_barcodemae.EnbedForErrorDetection` (the pretrained encoder plus per-token heads) is
fine-tuned for ``--steps`` steps on freshly corrupted training barcodes (new errors every batch; error labels
weighted ``--error-weight`` times the correct ones in the loss), AdamW with
weight-decay groups, linear warm-up then cosine decay, gradient clipping at 1. Held-out reads are corrupted once.
A base is predicted as the arg-max of its label, a deletion where its probability exceeds 0.5, a read as
erroneous where ``error_score > --verdict-threshold``, by default (``auto``) the threshold with the best verdict
F1 on ``--validation-barcodes`` reads of the training genera that were never trained on (saved in
``qc_model/``'s config as ``verdict_clean_nll_threshold``: ``barcodemae qc``'s default). Reads are ranked and
compared by ``-log P(clean)`` (the same order as ``error_score``, which rounds to 1 for long reads). The
translation check scores the same reads. Reported per
method: per label class precision / recall / F1, ``overall`` (typed), ``detection`` (type-agnostic, the fair
comparison with the translation check, which cannot type errors), recall per error kind, per-record AUROC and
verdict precision / recall / F1 (:mod:`barcodemae.qc.metrics`).

Correction (``--correction-steps N``, 0 = off). :class:`modeling_barcodemae.EnbedForConditionalGeneration` from
the same folder is fine-tuned on (read with errors -> original barcode + ``[SEP]``), then generates for the first
``--correction-reads`` held-out reads, greedy and with ``--num-beams`` beams. Reported: fraction of reads
restored exactly (all reads, erroneous reads, and clean reads left unchanged) and mean Levenshtein distance to the
original, against returning the read unchanged.

Writes ``results.json`` (``NaN`` as ``null``), ``qc_model/`` and ``correction_model/`` (model + tokenizer; the
latter's config has ``finetuning_task: read_correction``) under ``--output``, prints the results (stdout) and ends
with a summary of them (stderr). Both folders are what ``barcodemae qc --model .../qc_model [--correction-model
.../correction_model]`` checks reads with.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
from collections.abc import Callable
from dataclasses import asdict, fields
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm

from barcodemae.data import load_bioscan5m
from barcodemae.data.splits import resolve_splits
from barcodemae.endings import print_ending, qc_evaluation_ending
from barcodemae.errors import check_writable_folder, report_errors
from barcodemae.flag_spellings import CommandParser
from barcodemae.help_format import DefaultsHelpFormatter
from barcodemae.model_folders import from_pretrained_checked
from barcodemae.optim import learning_rate_schedule, weight_decay_groups
from barcodemae.presets import enbed_model_config, read_preset
from barcodemae.qc import (
    READ_CORRECTION_TASK,
    VERDICT_THRESHOLD_KEY,
    BaseLevelReport,
    CorruptedRead,
    ErrorRates,
    base_level_metrics,
    best_threshold,
    check_translation,
    clean_nll_threshold,
    detect_errors,
    encode_reads,
    flag_reads,
    generate_corrections,
    inject_errors,
    record_auroc,
    record_truth,
    token_batch,
    verdict_metrics,
)
from barcodemae.tokenization import BarcodeTokenizer
from modeling_barcodemae import EnbedForConditionalGeneration, EnbedForErrorDetection

logger = logging.getLogger("eval.qc")


# ------------------------------------------------------------------------------------------------------------ data
def select_barcodes(
    path: str | Path,
    test_splits: str,
    train_splits: str,
    train_barcodes: int,
    test_barcodes: int,
    seed: int,
    validation_barcodes: int = 0,
) -> tuple[list[str], list[str], list[str], dict[str, Any]]:
    """Training, validation and held-out barcodes split by genus (rule in the module docstring): distinct
    sequences, drawn with ``seed``; validation barcodes come from the training genera but are never trained on
    (they choose the verdict threshold). Returns the three lists and a description of the split for
    ``results.json``. The training and held-out draws do not depend on ``validation_barcodes``."""
    test_names, train_names = resolve_splits(test_splits), resolve_splits(train_splits)
    records = load_bioscan5m(path, "all").select_columns(["dna_barcode", "genus", "split"]).to_pandas()
    records = records[records["genus"].notna() & (records["genus"] != "")]
    only_test = records.groupby("genus")["split"].agg(lambda splits: bool(splits.isin(test_names).all()))
    test_genera = set(only_test.index[only_test])
    if not test_genera:
        raise ValueError(f"{path}: no genus has all its records in {test_names}; choose other --test-splits")
    is_test = records["genus"].isin(test_genera)
    train_pool = records[~is_test & records["split"].isin(train_names)]
    if train_pool.empty:
        raise ValueError(f"{path}: no record of a non-test genus in {train_names}; choose other --train-splits")
    rng = np.random.default_rng(seed)

    def draw(frame: pd.DataFrame, count: int) -> list[str]:
        unique = frame["dna_barcode"].drop_duplicates().to_numpy()
        return unique[rng.permutation(len(unique))[:count]].tolist()

    train = draw(train_pool, train_barcodes + validation_barcodes)
    train, validation = train[:train_barcodes], train[train_barcodes:]
    test = draw(records[is_test], test_barcodes)
    description = {
        "rule": f"test genera: every record in {test_names}; training: other genera's records in {train_names}",
        "test_genera": len(test_genera),
        "train_genera": int(train_pool["genus"].nunique()),
        "train_barcodes": len(train),
        "validation_barcodes": len(validation),
        "test_barcodes": len(test),
    }
    return train, validation, test, description


# ----------------------------------------------------------------------------------------------------- training
def train(
    model: torch.nn.Module,
    batch_of: Callable[[np.random.Generator], dict[str, torch.Tensor]],
    *,
    steps: int,
    learning_rate: float,
    warmup_ratio: float,
    weight_decay: float,
    seed: int,
    description: str,
) -> list[float]:
    """``steps`` AdamW steps on ``batch_of(rng)`` (model inputs with labels), warm-up + cosine, gradients clipped
    at 1; returns the losses. The model is left in eval mode."""
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    optimizer = torch.optim.AdamW(weight_decay_groups(model, weight_decay), lr=learning_rate)
    schedule = learning_rate_schedule(optimizer, "cosine", warmup_ratio=warmup_ratio, max_steps=steps)
    model.train()
    losses = []
    progress = tqdm(range(steps), desc=description)
    for _ in progress:
        loss = model(**batch_of(rng)).loss
        optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        schedule.step()
        losses.append(loss.item())  # float(loss) warns: a scalar from a tensor that requires grad
        progress.set_postfix(loss=f"{losses[-1]:.4f}")
    model.eval()
    return losses


def corrupted_batch(
    barcodes: list[str], rates: ErrorRates, batch_size: int
) -> Callable[[np.random.Generator], list[CorruptedRead]]:
    """A sampler of ``batch_size`` training barcodes (with replacement) with fresh errors."""
    return lambda rng: inject_errors([barcodes[i] for i in rng.integers(0, len(barcodes), batch_size)], rates, rng)


def _tensors(arrays: dict[str, np.ndarray]) -> dict[str, torch.Tensor]:
    return {key: torch.from_numpy(value) for key, value in arrays.items()}


def correction_inputs(reads: list[CorruptedRead], tokenizer: BarcodeTokenizer) -> dict[str, torch.Tensor]:
    """Seq2seq inputs ``[CLS] read [SEP]`` ``(n, S)`` and labels ``original [SEP]`` ``(n, T)``, -100-padded."""
    input_ids, attention_mask = encode_reads([read.read for read in reads], tokenizer)
    target_ids, target_mask = encode_reads([read.original for read in reads], tokenizer)
    labels = np.where(target_mask[:, 1:] == 1, target_ids[:, 1:], -100)  # drop [CLS]
    return _tensors({"input_ids": input_ids, "attention_mask": attention_mask, "labels": labels})


# --------------------------------------------------------------------------------------------------- detection
def method_results(
    reads: list[CorruptedRead], report: BaseLevelReport, scores: np.ndarray, verdicts: np.ndarray
) -> dict[str, Any]:
    """One method's row of ``results.json``: base-level report, record AUROC of ``scores`` (higher: more likely
    erroneous), verdict P/R/F1."""
    truth = record_truth(reads)
    return {
        "per_class": {name: asdict(prf) for name, prf in report.per_class.items()},
        "overall": asdict(report.overall),
        "detection": asdict(report.detection),
        "recall_by_kind": report.recall_by_kind,
        "record_auroc": record_auroc(scores, truth),
        "verdict": asdict(verdict_metrics(verdicts, truth)),
    }


# -------------------------------------------------------------------------------------------------- correction
def edit_distance(a: str, b: str) -> int:
    """Levenshtein distance, one numpy row per base of ``a``: the in-row insertion chain is a running minimum
    (``row[j] = min_k (candidate[k] + j - k)``)."""
    target = np.frombuffer(b.encode("ascii"), dtype=np.uint8)
    offsets = np.arange(len(target) + 1)
    row = offsets.copy()
    for i, letter in enumerate(a.encode("ascii"), start=1):
        candidate = np.empty_like(row)
        candidate[0] = i
        candidate[1:] = np.minimum(row[1:] + 1, row[:-1] + (target != letter))
        row = np.minimum.accumulate(candidate - offsets) + offsets
    return int(row[-1])


def correction_results(reads: list[CorruptedRead], outputs: list[str]) -> dict[str, float]:
    """Exact restoration and edit distance of ``outputs`` against the reads' originals."""
    exact = np.array([output == read.original for read, output in zip(reads, outputs, strict=True)])
    erroneous = record_truth(reads)
    distances = [edit_distance(output, read.original) for read, output in zip(reads, outputs, strict=True)]
    return {
        "exact": float(exact.mean()),
        "exact_erroneous": float(exact[erroneous].mean()) if erroneous.any() else float("nan"),
        "clean_kept": float(exact[~erroneous].mean()) if (~erroneous).any() else float("nan"),
        "mean_edit_distance": float(np.mean(distances)),
    }


# -------------------------------------------------------------------------------------------------------- models
def fresh_config(preset: str) -> Any:
    """The LongT5 config of a fresh ENBED of ``preset``'s sizes (``--model none``)."""
    return enbed_model_config(read_preset(preset), BarcodeTokenizer.char().model_config_kwargs())


def load_model(model: str, preset: str, cls: type) -> tuple[Any, BarcodeTokenizer]:
    """``cls`` from an ENBED folder (pretrained encoder, new heads where ``cls`` has them) or fresh for ``none``."""
    if model.lower() == "none":
        torch.manual_seed(0)
        return cls(fresh_config(preset)).eval(), BarcodeTokenizer.char()
    return from_pretrained_checked(cls, model).eval(), BarcodeTokenizer.from_pretrained(model)


# ------------------------------------------------------------------------------------------------------- command
def run_qc(args: argparse.Namespace) -> dict[str, Any]:
    """The whole evaluation of the module docstring; returns what ``results.json`` holds."""
    output = Path(args.output)
    check_writable_folder(output)
    rates = ErrorRates(substitution=args.substitution, insertion=args.insertion, deletion=args.deletion,
                       homopolymer=args.homopolymer, n_run=args.n_run, clean_fraction=args.clean_fraction)
    train_barcodes, validation_barcodes, test_barcodes, data = select_barcodes(
        args.data, args.test_splits, args.train_splits, args.train_barcodes, args.test_barcodes, args.seed,
        validation_barcodes=args.validation_barcodes if args.verdict_threshold == "auto" else 0,
    )
    test_reads = inject_errors(test_barcodes, rates, np.random.default_rng([args.seed, 1]))
    data["erroneous_test_reads"] = int(record_truth(test_reads).sum())
    sample = corrupted_batch(train_barcodes, rates, args.batch_size)

    detector, tokenizer = load_model(args.model, args.preset, EnbedForErrorDetection)
    if args.error_weight <= 0:
        raise ValueError(f"--error-weight must be > 0, got {args.error_weight}")
    detector.config.error_label_weight = args.error_weight
    losses = train(detector, lambda rng: _tensors(token_batch(sample(rng), tokenizer).as_dict()),
                   steps=args.steps, learning_rate=args.learning_rate, warmup_ratio=args.warmup_ratio,
                   weight_decay=args.weight_decay, seed=args.seed, description="error detection")
    predictions = detect_errors(detector, [read.read for read in test_reads], tokenizer,
                                batch_size=args.eval_batch_size)
    labels, deletions = predictions.base_labels, predictions.deletions
    risk = -predictions.clean_log_probability  # error_score's order, without its rounding to 1
    threshold = verdict_threshold(args, detector, tokenizer, validation_barcodes, rates)
    setattr(detector.config, VERDICT_THRESHOLD_KEY, threshold["clean_nll"])  # `barcodemae qc`'s default
    detector.save_pretrained(output / "qc_model")
    tokenizer.save_pretrained(output / "qc_model")
    check = check_translation([read.read for read in test_reads])
    results: dict[str, Any] = {
        "settings": {**{k: v for k, v in vars(args).items() if k != "output"}, "rates": asdict(rates)},
        "data": data,
        "verdict_threshold": threshold,
        "detection": {
            "model": {**method_results(test_reads, base_level_metrics(test_reads, labels, deletions), risk,
                                       flag_reads(predictions.clean_log_probability, threshold["clean_nll"])),
                      "first_loss": losses[0] if losses else None, "last_loss": losses[-1] if losses else None},
            "translation_baseline": method_results(test_reads, base_level_metrics(test_reads, check.base_predictions),
                                                   check.score, check.has_errors),
        },
    }
    if args.correction_steps > 0:
        corrector, tokenizer = load_model(args.model, args.preset, EnbedForConditionalGeneration)
        train(corrector, lambda rng: correction_inputs(sample(rng), tokenizer), steps=args.correction_steps,
              learning_rate=args.learning_rate, warmup_ratio=args.warmup_ratio, weight_decay=args.weight_decay,
              seed=args.seed, description="read correction")
        corrector.config.finetuning_task = READ_CORRECTION_TASK  # `barcodemae qc` tells it from a pretraining folder
        corrector.save_pretrained(output / "correction_model")
        tokenizer.save_pretrained(output / "correction_model")
        reads = test_reads[: args.correction_reads]
        plain = [read.read for read in reads]
        results["correction"] = {
            "reads": len(reads),
            "unchanged": correction_results(reads, plain),
            "greedy": correction_results(reads, generate_corrections(
                corrector, plain, tokenizer, num_beams=1, batch_size=args.eval_batch_size)),
            f"beam{args.num_beams}": correction_results(reads, generate_corrections(
                corrector, plain, tokenizer, num_beams=args.num_beams, batch_size=args.eval_batch_size)),
        }
    results = _without_nan(results)
    (output / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    return results


def verdict_threshold(
    args: argparse.Namespace, detector: Any, tokenizer: BarcodeTokenizer, validation_barcodes: list[str],
    rates: ErrorRates,
) -> dict[str, Any]:
    """The detector's read-verdict threshold: ``--verdict-threshold`` as given, or (``auto``) the one with the best
    verdict F1 on the validation barcodes, corrupted once like the test reads. Expressed both as ``-log P(clean)``
    (``clean_nll``: what :func:`~barcodemae.qc.flag_reads` compares) and as ``error_score`` (may round to 1)."""
    if args.verdict_threshold != "auto":
        limit, chosen_on = clean_nll_threshold(float(args.verdict_threshold)), "--verdict-threshold"
    else:
        reads = inject_errors(validation_barcodes, rates, np.random.default_rng([args.seed, 2]))
        truth = record_truth(reads)
        if truth.all() or not truth.any():
            raise ValueError("the validation reads need clean and erroneous reads: set --clean-fraction in (0, 1)")
        found = detect_errors(detector, [read.read for read in reads], tokenizer, batch_size=args.eval_batch_size)
        limit = best_threshold(-found.clean_log_probability, truth)
        chosen_on = f"best verdict F1 on {len(reads)} validation reads of the training genera"
    return {"clean_nll": limit, "error_score": -math.expm1(-limit), "chosen_on": chosen_on}


def _verdict_threshold_flag(value: str) -> str:
    """``auto`` or a probability in [0, 1] (kept as its text; :func:`verdict_threshold` reads it)."""
    if value != "auto":
        clean_nll_threshold(float(value))  # refuses what is not a probability
    return value


def _without_nan(value: Any) -> Any:
    """``value`` with every NaN float replaced by ``None`` (strict JSON)."""
    if isinstance(value, dict):
        return {key: _without_nan(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_without_nan(item) for item in value]
    if isinstance(value, (float, np.floating)):
        return None if math.isnan(value) else float(value)
    if isinstance(value, np.integer):
        return int(value)
    return value


RATE_HELP = {
    "substitution": "injected substitutions per base",
    "insertion": "injected insertions per boundary (the L + 1 places before, between and after the bases)",
    "deletion": "injected deletions per base",
    "homopolymer": "homopolymer length errors per run of >= 3 identical bases",
    "n_run": "N runs started per base",
    "clean_fraction": "share of the reads left without errors",
}
"""``--help`` of the error-rate flags, one per :class:`~barcodemae.qc.ErrorRates` rate (its docstrings give the
units); ``n_run_max_length`` is no flag."""


def build_parser(prog: str | None = None) -> argparse.ArgumentParser:
    parser = CommandParser(prog=prog, description=__doc__.split("\n\n")[0], formatter_class=DefaultsHelpFormatter)
    parser.add_argument("--model", required=True, help="ENBED folder (train.py's final_model) or 'none' (fresh)")
    parser.add_argument("--preset", default="enbed-tiny", help="sizes of the fresh model of --model none")
    parser.add_argument("--data", required=True, help="BIOSCAN-5M format CSV (.csv or .csv.gz)")
    parser.add_argument("--output", required=True, help="folder for results.json, qc_model/, correction_model/")
    parser.add_argument("--test-splits", default="other_heldout", help="test genera: all their records in these")
    parser.add_argument("--train-splits", default="train", help="training barcodes: other genera's rows in these")
    parser.add_argument("--train-barcodes", type=int, default=2000, help="distinct training barcodes (at most)")
    parser.add_argument("--test-barcodes", type=int, default=500, help="distinct held-out barcodes (at most)")
    defaults = ErrorRates()
    for field in fields(ErrorRates):
        if field.name in RATE_HELP:
            parser.add_argument(f"--{field.name.replace('_', '-')}", type=float, default=getattr(defaults, field.name),
                                help=f"{RATE_HELP[field.name]} (ErrorRates.{field.name})")
    parser.add_argument("--steps", type=int, default=300, help="detector fine-tuning steps")
    parser.add_argument("--batch-size", type=int, default=16, help="reads per fine-tuning step (both models)")
    parser.add_argument("--learning-rate", type=float, default=1e-3, help="peak AdamW learning rate of the fine-tuning")
    parser.add_argument("--warmup-ratio", type=float, default=0.1,
                        help="share of the fine-tuning steps over which the learning rate rises from 0")
    parser.add_argument("--weight-decay", type=float, default=0.01, help="AdamW weight decay of the weight matrices")
    parser.add_argument("--eval-batch-size", type=int, default=32, help="reads per forward pass when scoring")
    parser.add_argument(
        "--verdict-threshold", type=_verdict_threshold_flag, default="auto",
        help="error_score above which a read is erroneous, or auto: the best verdict F1 on validation reads",
    )
    parser.add_argument(
        "--validation-barcodes", type=int, default=200,
        help="barcodes of the training genera, never trained on, that choose the auto verdict threshold",
    )
    parser.add_argument(
        "--error-weight", type=float, default=1.0,
        help="weight of the error labels in the detector's loss (config.error_label_weight; 1: unweighted)",
    )
    parser.add_argument("--correction-steps", type=int, default=0, help="read-correction fine-tuning steps (0: off)")
    parser.add_argument("--correction-reads", type=int, default=100, help="held-out reads corrected (generation)")
    parser.add_argument("--num-beams", type=int, default=4, help="beams of the beam-search correction")
    parser.add_argument("--seed", type=int, default=0,
                        help="seed of the barcodes drawn, the injected errors and the training order")
    return parser


def main(argv: list[str] | None = None, prog: str | None = None) -> int:
    """``eval/qc.py`` and ``barcodemae train-qc`` (``prog``, the name its usage and errors give): expected failures
    are one line on stderr and exit status 2."""
    args = build_parser(prog).parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")

    def run() -> int:
        results = run_qc(args)
        print(json.dumps(results, indent=2))
        print_ending(qc_evaluation_ending(results, output_dir=args.output))
        return 0

    return report_errors(prog or "eval/qc.py", run)


if __name__ == "__main__":
    raise SystemExit(main())
