"""What a pretraining run is built from: the model, its masking, the optimiser and the stream of training batches.

Shared by the training loop and the benchmarks (``bench/bench_train.py`` times steps of exactly what ``train.py``
trains), so each is built from :class:`TrainingArguments` in one place.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from barcodemae.masking.collator import BarcodeMaskingCollator
from barcodemae.masking.curriculum import CMGEMSCurriculum, CMStepCurriculum, MaskingCurriculum
from barcodemae.masking.npmi import TABLE_FILENAME, NPMITable
from barcodemae.masking.span_corruption import SpanCorruptionCollator
from barcodemae.optim import weight_decay_groups
from barcodemae.presets import enbed_model_config
from barcodemae.tokenization import BarcodeTokenizer
from modeling_barcodemae.configuration_barcodemae import BarcodeMAEConfig
from modeling_barcodemae.modeling_barcodemae import BarcodeMAEForPreTraining
from modeling_barcodemae.modeling_enbed import EnbedForConditionalGeneration

from .arguments import ARCHITECTURE_ARGUMENTS, RUN_CONFIG_ARGUMENTS, TrainingArguments
from .batches import BarcodeSource, GlobalBatchStream

logger = logging.getLogger(__name__)

NPMI_STRATEGIES = ("genemask", "global", "stochastic_global")
NPMI_BUILD_SEQUENCES = 20_000


def build_model(
    args: TrainingArguments, tokenizer: BarcodeTokenizer, taxonomy_num_classes: int = 0
) -> BarcodeMAEForPreTraining | EnbedForConditionalGeneration:
    """A freshly initialised pretraining model: the tokenizer's fields, the architecture flags, this run's choices
    (``taxonomy_num_classes``: the taxa of the pretraining rows, the ``ce`` taxonomy head's width)."""
    if args.objective == "enbed":
        return EnbedForConditionalGeneration(enbed_model_config(args.to_dict(), tokenizer.model_config_kwargs()))
    config = BarcodeMAEConfig.from_tokenizer(
        tokenizer,
        **{attribute: getattr(args, name) for name, attribute in ARCHITECTURE_ARGUMENTS.items()},
        **{attribute: getattr(args, name) for name, attribute in RUN_CONFIG_ARGUMENTS.items()},
        attention_probs_dropout_prob=args.dropout,
        pretraining_objective=args.objective,
        taxonomy_num_classes=taxonomy_num_classes,
    )
    return BarcodeMAEForPreTraining(config)


def pretrained_encoder(model: BarcodeMAEForPreTraining | EnbedForConditionalGeneration) -> torch.nn.Module:
    """The encoder whose mean-pooled states are the barcode embedding: BarcodeMAE's, or ENBED's LongT5 encoder."""
    return model.get_encoder() if isinstance(model, EnbedForConditionalGeneration) else model.barcodemae


def build_masking(
    args: TrainingArguments, tokenizer: BarcodeTokenizer, source: BarcodeSource, npmi_folder: Path | None,
    resume: bool, is_main: bool,
) -> tuple[BarcodeMaskingCollator, MaskingCurriculum | None, NPMITable | None]:
    """Collator (used for its vectorised ``mask_batch``), curriculum and NPMI table for ``--masking``.

    The curriculum is ``None`` unless ``--masking`` names one, the table unless a PMI-based strategy uses one.
    ``npmi_folder`` is where the run keeps its table (a run folder's ``npmi/``); ``None`` (benchmarks) neither saves
    nor reloads one.
    """
    curriculum: MaskingCurriculum | None = None
    strategy: str | None = args.masking
    if args.masking == "cm-gems":
        curriculum, strategy = CMGEMSCurriculum(), None
    elif args.masking == "cm-step":
        curriculum, strategy = CMStepCurriculum(), None
    names = {strategy} if curriculum is None else {curriculum.early, curriculum.late}
    table = None
    if names & set(NPMI_STRATEGIES):
        table = load_or_build_npmi_table(args, source, npmi_folder, resume, is_main)
    collator = BarcodeMaskingCollator(
        tokenizer, strategy=strategy, mask_ratio=args.mask_ratio, seed=args.seed, curriculum=curriculum,
        npmi_table=table,
    )
    return collator, curriculum, table


def load_or_build_npmi_table(
    args: TrainingArguments, source: BarcodeSource, npmi_folder: Path | None, resume: bool, is_main: bool
) -> NPMITable:
    """``--npmi_table``; when resuming, the table the run saved in ``npmi_folder``; else one counted now (and saved
    there by the main process).

    Reloading on resume masks with exactly the table the run started with, without counting the corpus again.
    """
    if args.npmi_table:
        return NPMITable.load(args.npmi_table)
    if resume and npmi_folder is not None and (npmi_folder / TABLE_FILENAME).is_file():
        logger.info("resuming with the NPMI table saved in %s", npmi_folder)
        return NPMITable.load(npmi_folder)
    # Deterministic (counts over the first barcodes), so every process builds the same table.
    table = NPMITable.build(source.take(np.arange(min(len(source), NPMI_BUILD_SEQUENCES))), progress=is_main)
    if is_main and npmi_folder is not None:
        table.save(npmi_folder)
    return table


def build_optimizer(model: torch.nn.Module, args: TrainingArguments) -> torch.optim.AdamW:
    """AdamW without weight decay on biases, LayerNorms and the MAE mask embedding (standard BERT practice)."""
    groups = weight_decay_groups(model, args.weight_decay)
    return torch.optim.AdamW(groups, lr=args.learning_rate, betas=(args.adam_beta1, args.adam_beta2))


def build_pretraining_stream(
    args: TrainingArguments, tokenizer: BarcodeTokenizer, pretrain: BarcodeSource, collator: BarcodeMaskingCollator,
    process_index: int, num_processes: int, taxon_labels: np.ndarray | None = None,
) -> tuple[GlobalBatchStream, Callable[..., Any]]:
    """The training batches (process ``process_index``'s rows of each global batch, augmented and masked) and the
    masking function validation batches reuse: ``(input_ids, attention_mask, rng) ->`` the masked tokens
    (BarcodeMAE / BarcodeBERT mask inside the model) or ENBED's span-corrupted inputs.

    ``taxon_labels`` ``(len(pretrain),)`` (-1: unlabelled): the taxonomy term's labels, carried by every batch, and
    the taxa of class-balanced batches (``--taxonomy_classes_per_batch``).
    """

    def token_mask(ids, attention, rng):
        return collator.mask_batch(ids, attention, rng=rng)

    spans = None
    if args.objective == "enbed":  # T5 span corruption: each run of masked tokens becomes one sentinel
        spans = SpanCorruptionCollator.from_tokenizer(
            tokenizer, sentinel_count=args.num_sentinels, noise_density=args.mask_ratio,
            mean_span_length=args.mean_span_length, mask_fn=None if args.masking == "random" else token_mask,
        )

    def mask_fn(ids, attention, rng):
        if spans is None:
            return token_mask(ids, attention, rng)
        batch = spans(ids, attention, rng)
        del batch["noise_mask"]  # a diagnostic, not a model input
        return batch

    stream = GlobalBatchStream(
        pretrain, tokenizer, mask_fn, per_device_batch_size=args.per_device_batch_size, seed=args.seed,
        frame_offsets=args.frame_offset_augmentation, max_start_shift=args.max_start_shift,
        substitution_rate=args.substitution_rate, views=args.views_per_barcode,
        composition_kmer_size=args.composition_kmer_size if args.composition_weight > 0 else 0,
        process_index=process_index, num_processes=num_processes, taxon_labels=taxon_labels,
        classes_per_batch=args.taxonomy_classes_per_batch, per_class=args.taxonomy_per_class,
    )
    return stream, mask_fn


__all__ = [
    "NPMI_STRATEGIES",
    "build_masking",
    "build_model",
    "build_optimizer",
    "build_pretraining_stream",
    "load_or_build_npmi_table",
    "pretrained_encoder",
]
