"""Command-line arguments of ``train.py``: one dataclass, YAML presets underneath, flags on top.

Why presets: the paper models (BarcodeMAE, BarcodeBERT) and the CPU demo differ in a dozen numbers; a preset
names a consistent set, and any flag still overrides it (``--preset barcodemae --max_steps 1000``).
Precedence: dataclass defaults < preset YAML < command-line flags.

Building the parser imports no torch, transformers or datasets, so ``train.py --help`` answers at once: the model
config's defaults are read from the model folder's source (:mod:`barcodemae.model_folder_defaults`), and the checks
of ``__post_init__``, which need the model config, import it when arguments are made (after parsing).
"""

from __future__ import annotations

import argparse
import dataclasses
import inspect
import json
import sys
import textwrap
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from barcodemae.dataclass_parser import DataclassArgumentParser
from barcodemae.help_format import DefaultsHelpFormatter
from barcodemae.masking.span_corruption import DEFAULT_SENTINEL_COUNT, SpanCorruptionCollator
from barcodemae.model_folder_defaults import barcodemae_config_defaults, enbed_config_defaults
from barcodemae.presets import ENBED_ARCHITECTURE_ARGUMENTS, PRESET_DIR, preset_names, read_preset, resolve_preset

ARCHITECTURE_ARGUMENTS: dict[str, str] = {
    # training argument: BarcodeMAEConfig attribute
    "hidden_size": "hidden_size",
    "num_hidden_layers": "num_hidden_layers",
    "num_attention_heads": "num_attention_heads",
    "intermediate_size": "intermediate_size",
    "decoder_hidden_size": "decoder_hidden_size",
    "decoder_num_hidden_layers": "decoder_num_hidden_layers",
    "decoder_num_attention_heads": "decoder_num_attention_heads",
    "decoder_intermediate_size": "decoder_intermediate_size",
    "dropout": "hidden_dropout_prob",
}
"""The flags that set the architecture, and the config attribute each sets (``--dropout`` also sets the attention
dropout): :func:`barcodemae.training.builders.build_model` builds the config from them, ``--init_from`` overwrites them
from a folder's config. ENBED's: :data:`barcodemae.presets.ENBED_ARCHITECTURE_ARGUMENTS`."""
RUN_CONFIG_ARGUMENTS: dict[str, str] = {
    "mask_ratio": "mask_ratio",
    "pooled_layers": "pooled_layers",
    "pooled_frames": "pooled_frames",
    "contrastive_weight": "contrastive_weight",
    "contrastive_temperature": "contrastive_temperature",
    "composition_weight": "composition_weight",
    "composition_kmer_size": "composition_kmer_size",
    "representation": "representation",
    "taxonomy_loss": "taxonomy_loss",
    "taxonomy_rank": "taxonomy_rank",
    "taxonomy_weight": "taxonomy_weight",
    "taxonomy_warmup_steps": "taxonomy_warmup_steps",
    "taxonomy_margin": "taxonomy_margin",
    "taxonomy_max_pairs": "taxonomy_max_pairs",
    "taxonomy_on": "taxonomy_on",
}
"""Flags that set this run's pretraining and embedding choices in the config, and the attribute each sets: unlike
the architecture, ``--init_from`` keeps them from the flags. Unset, they take the config's defaults
(:func:`run_config_defaults`), and the config's own checks judge them. ``taxonomy_num_classes`` is no flag: the
training loop sets it from the labels of the pretraining rows
(:func:`barcodemae.training.taxonomy.pretraining_taxon_labels`)."""
MIXED_PRECISION = ("auto", "no", "fp16", "bf16")
CURRICULA = ("cm-gems", "cm-step")


@dataclass
class TrainingArguments:
    """Everything ``train.py`` accepts; see ``python train.py --help``."""

    preset: str | None = field(
        default="tiny",
        metadata={
            "help": f"YAML preset: {' | '.join(preset_names())} (configs/NAME.yaml), a YAML path, or none; its "
            "values are the defaults shown here (`--preset NAME --help` shows another's)"
        },
    )
    # ------------------------------------------------------------------ data
    data: str | None = field(
        default=None,
        metadata={"help": "BIOSCAN-5M metadata CSV (.csv/.csv.gz); omitted: simulate the embedded default dataset"},
    )
    split: str = field(
        default="pretrain+other_heldout", metadata={"help": "pretraining split(s), '+'-joined (BIOSCAN-5M names)"}
    )
    max_train_samples: int | None = field(
        default=None,
        metadata={"help": "pretrain on a random subset of this many --split barcodes (drawn with --seed); unset: all"},
    )
    val_split: str = field(
        default="val", metadata={"help": "split for masked-token validation loss/perplexity ('' or none to skip)"}
    )
    key_split: str = field(
        default="train",
        metadata={"help": "labelled keys for the open-world 1-NN genus probe ('' or none to skip the probe)"},
    )
    query_split: str = field(
        default="val_unseen", metadata={"help": "queries for the 1-NN genus probe during training"}
    )
    max_val_samples: int = field(default=512, metadata={"help": "validation barcodes (fixed masks)"})
    max_probe_keys: int = field(
        default=2000, metadata={"help": "at most this many keys / queries in the periodic 1-NN probe"}
    )
    simulate_genera: int = field(
        default=40, metadata={"help": "genera of the embedded simulated dataset (~70 barcodes each)"}
    )
    # ------------------------------------------------------------------ model and tokenizer
    objective: str = field(
        default="mae",
        metadata={
            "help": "mae (BarcodeMAE) | mlm (BarcodeBERT) | enbed (ENBED: character-level LongT5 encoder-decoder, "
            "T5 span corruption; --tokenizer char)"
        },
    )
    tokenizer: str = field(
        default="kmer6",
        metadata={"help": "kmer6 | kmer:k=6,stride=1 | kmer:6:1 | char | BPE tokenizer.json or tokenizer folder"},
    )
    frame_offset_augmentation: bool = field(
        default=True, metadata={"help": "random k-mer reading frame per sample in training"}
    )
    max_start_shift: int = field(
        default=0,
        metadata={
            "help": "augmentation: drop a random 0..N leading bases of each pretraining barcode, so position ids no "
            "longer give away where in the gene a token lies (0: off)"
        },
    )
    substitution_rate: float = field(
        default=0.0,
        metadata={
            "help": "augmentation: replace each A/C/G/T base of a pretraining row by another base with this "
            "probability, drawn per view, so the views of the contrastive term differ like related barcodes (0: off)"
        },
    )
    init_from: str | None = field(
        default=None,
        metadata={
            "help": "continue pretraining from this folder (a final_model/, a converted checkpoint): its weights, "
            "architecture and tokenizer, with a fresh optimiser and schedule"
        },
    )
    pooled_layers: str | None = field(
        default=None,
        metadata={
            "help": "the barcode embedding (pooler_output) of the exported model: last (mean over the last block's "
            "tokens) or mean (over the average of every hidden state); see BarcodeMAEConfig.pooled_layers"
        },
    )
    pooled_frames: str | None = field(
        default=None,
        metadata={
            "help": "the reading frames the exported model's barcode embedding averages: first (the barcode from its "
            "first base) or all (from each of its first k bases); see BarcodeMAEConfig.pooled_frames"
        },
    )
    # Architecture: unset flags take the model config's defaults (architecture_defaults), the one place they live.
    hidden_size: int | None = field(default=None, metadata={"help": "encoder width"})
    num_hidden_layers: int | None = field(default=None, metadata={"help": "encoder blocks"})
    num_attention_heads: int | None = field(default=None, metadata={"help": "encoder attention heads"})
    intermediate_size: int | None = field(default=None, metadata={"help": "encoder feed-forward width"})
    decoder_hidden_size: int | None = field(default=None, metadata={"help": "MAE decoder width (not ENBED)"})
    decoder_num_hidden_layers: int | None = field(default=None, metadata={"help": "decoder blocks (MAE, ENBED)"})
    decoder_num_attention_heads: int | None = field(
        default=None, metadata={"help": "MAE decoder attention heads (not ENBED)"}
    )
    decoder_intermediate_size: int | None = field(
        default=None, metadata={"help": "MAE decoder feed-forward width (not ENBED)"}
    )
    dropout: float | None = field(default=None, metadata={"help": "dropout of hidden states and attention"})
    encoder_attention: str | None = field(
        default=None,
        metadata={"help": "ENBED encoder attention (LongT5): transient-global | local (both linear in length)"},
    )
    local_radius: int | None = field(
        default=None, metadata={"help": "ENBED: tokens each side a local attention window sees"}
    )
    global_block_size: int | None = field(
        default=None, metadata={"help": "ENBED transient-global attention: tokens summarised per global block"}
    )
    # ------------------------------------------------------------------ masking
    masking: str = field(
        default="random", metadata={"help": "random | span | genemask | global | stochastic_global | cm-gems | cm-step"}
    )
    mask_ratio: float | None = field(
        default=None, metadata={"help": "share of tokens masked (ENBED: the noise density of span corruption)"}
    )
    mean_span_length: float = field(default=3.0, metadata={"help": "ENBED: mean length of a corrupted span"})
    num_sentinels: int = field(
        default=DEFAULT_SENTINEL_COUNT,
        metadata={"help": "ENBED: T5 sentinel tokens after the tokenizer's vocabulary (spans per row)"},
    )
    contrastive_weight: float | None = field(
        default=None,
        metadata={
            "help": "add this weight times an InfoNCE loss between the pooled embeddings of two augmented views of "
            "each barcode (own start shift, reading frame, mask) to the masked-token loss (0: off; "
            "see BarcodeMAEConfig.contrastive_weight); batches then hold two rows per barcode"
        },
    )
    contrastive_temperature: float | None = field(
        default=None, metadata={"help": "temperature of the contrastive loss"}
    )
    composition_weight: float | None = field(
        default=None,
        metadata={
            "help": "add this weight times a composition loss: a linear head on the pooled embedding predicts each "
            "row's k-mer frequency profile (KL divergence; see BarcodeMAEConfig.composition_weight; 0: off)"
        },
    )
    composition_kmer_size: int | None = field(
        default=None, metadata={"help": "k of the composition term's k-mer profile"}
    )
    representation: str | None = field(
        default=None,
        metadata={
            "help": "what the barcode embedding (pooler_output) pools from each hidden state: tokens_with_cls (mean "
            "over every non-pad token), tokens (the same without [CLS]) or cls (the [CLS] state); see "
            "BarcodeMAEConfig.representation"
        },
    )
    taxonomy_loss: str | None = field(
        default=None,
        metadata={
            "help": "taxonomy-aware pretraining (BarcodeMAE+, docs/taxonomy.md): add an auxiliary term on the "
            "--taxonomy_rank labels of the --split rows: none | ce (classifier head) | triplet (batch-hard) | pair "
            "(same-taxon pairs) | supcon (contrastive with same-taxon positives); unlabelled rows take no part"
        },
    )
    taxonomy_rank: str | None = field(
        default=None, metadata={"help": "rank whose names are the taxonomy labels: genus | family | species"}
    )
    taxonomy_weight: float | None = field(
        default=None, metadata={"help": "weight of the taxonomy term (after its warmup)"}
    )
    taxonomy_warmup_steps: int | None = field(
        default=None, metadata={"help": "optimiser steps over which the taxonomy weight grows linearly from 0"}
    )
    taxonomy_margin: float | None = field(
        default=None, metadata={"help": "margin of the triplet term: softplus(d_pos - d_neg + margin)"}
    )
    taxonomy_max_pairs: int | None = field(
        default=None, metadata={"help": "pair term: at most this many pairs per batch, half of them same-taxon"}
    )
    taxonomy_on: str | None = field(
        default=None,
        metadata={"help": "state the taxonomy term sees: cls (the encoder's [CLS] state) | pooled (pooler_output)"},
    )
    taxonomy_classes_per_batch: int = field(
        default=0,
        metadata={
            "help": "class-balanced batches (with --taxonomy_loss): each global batch holds this many taxa of "
            "--taxonomy_per_class barcodes each, the rest a uniform draw of the split (0: plain shuffled batches)"
        },
    )
    taxonomy_per_class: int = field(
        default=4, metadata={"help": "barcodes per taxon in a class-balanced batch"}
    )
    npmi_table: str | None = field(
        default=None, metadata={"help": "saved NPMI table (genemask/global); built from the training data if omitted"}
    )
    # ------------------------------------------------------------------ optimisation
    max_steps: int = field(default=-1, metadata={"help": "optimiser steps; -1: use num_epochs"})
    num_epochs: float = field(
        default=1.0,
        metadata={"help": "passes over the --split barcodes, used when --max_steps is -1 (may be a fraction)"},
    )
    per_device_batch_size: int = field(
        default=32,
        metadata={"help": "barcodes per device in each forward pass (two rows each with the contrastive term)"},
    )
    gradient_accumulation_steps: int = field(
        default=1,
        metadata={"help": "forward passes per optimiser step; global batch: per_device_batch_size x processes x this"},
    )
    learning_rate: float = field(default=1e-4, metadata={"help": "peak AdamW learning rate, reached after the warm-up"})
    weight_decay: float = field(
        default=0.01, metadata={"help": "AdamW weight decay of the weight matrices (biases and norms: none)"}
    )
    adam_beta1: float = field(default=0.9, metadata={"help": "AdamW beta1: decay of the gradient's running mean"})
    adam_beta2: float = field(
        default=0.98, metadata={"help": "AdamW beta2: decay of the squared gradient's running mean"}
    )
    warmup_ratio: float = field(
        default=0.05,
        metadata={"help": "share of the optimiser steps over which the learning rate rises linearly from 0"},
    )
    lr_scheduler: str = field(
        default="cosine", metadata={"help": "cosine (warmup-cosine) | linear | onecycle | constant"}
    )
    max_grad_norm: float = field(
        default=1.0, metadata={"help": "clip the gradients' global norm to this before each optimiser step"}
    )
    mixed_precision: str = field(
        default="auto", metadata={"help": "auto (bf16 on a bf16-capable GPU, else no) | no | fp16 | bf16"}
    )
    seed: int = field(
        default=42,
        metadata={"help": "seed of the initial weights, masks, augmentation, batch order and the simulated data"},
    )
    # ------------------------------------------------------------------ logging, checkpoints, evaluation
    output_dir: str = field(
        default="runs/barcodemae-tiny",
        metadata={"help": "run folder: training_args.json, metrics.jsonl, checkpoints/, final_model/, eval/"},
    )
    logging_steps: int = field(
        default=10, metadata={"help": "write the training losses to metrics.jsonl every this many optimiser steps"}
    )
    eval_steps: int = field(
        default=200,
        metadata={"help": "validate (masked-token loss, 1-NN genus probe) every this many optimiser steps"},
    )
    save_steps: int = field(
        default=500, metadata={"help": "save a resumable checkpoint every this many optimiser steps"}
    )
    save_total_limit: int = field(
        default=3, metadata={"help": "keep the newest this many checkpoints, deleting older ones (0: keep all)"}
    )
    overwrite_output_dir: bool = field(
        default=False,
        metadata={
            "help": "start afresh in an --output_dir that holds another run, deleting that run's files "
            "(checkpoints, final_model/, metrics, ...); without it such a folder is refused"
        },
    )
    resume_from_checkpoint: str | None = field(
        default=None, metadata={"help": "a checkpoints/step_N folder, or 'latest' (in output_dir)"}
    )
    report_to: str = field(default="none", metadata={"help": "accelerate trackers: none | tensorboard | wandb | all"})
    evaluate: bool = field(default=True, metadata={"help": "run the evaluation suite on final_model/ at the end"})
    eval_reducer: str = field(
        default="auto",
        metadata={
            "help": "BIN-clustering reducer of the final evaluation: auto (UMAP if installed) | umap | pca | none"
        },
    )
    eval_plots: bool = field(default=True, metadata={"help": "write the evaluation plots (UMAP / per-genus accuracy)"})
    load_best_model_at_end: bool = field(
        default=False,
        metadata={
            "help": "export the weights of the step with the best --metric_for_best_model as final_model/ "
            "(kept in <output_dir>/best_model/ during the run), instead of the last step's"
        },
    )
    metric_for_best_model: str = field(
        default="genus_1nn_accuracy",
        metadata={
            "help": "validation metric for --load_best_model_at_end: genus_1nn_accuracy[_layer_<i>] (the probe on "
            "--query_split), val_loss, unseen_val_loss, ...; *loss / *perplexity are minimised, others maximised"
        },
    )
    stop_after_steps: int | None = field(
        default=None,
        metadata={"help": "testing hook: stop abruptly after this step (no final save), like a killed job"},
    )

    def __post_init__(self) -> None:
        from huggingface_hub.errors import StrictDataclassError

        from barcodemae.optim import SCHEDULERS
        from barcodemae.training.batches import check_augmentation
        from barcodemae.training.taxonomy import check_taxonomy_splits
        from modeling_barcodemae.configuration_barcodemae import OBJECTIVES as PRETRAINING_OBJECTIVES
        from modeling_barcodemae.configuration_barcodemae import BarcodeMAEConfig
        from modeling_barcodemae.modeling_enbed import ENCODER_ATTENTION

        objectives = (*PRETRAINING_OBJECTIVES, "enbed")  # BarcodeMAE's two, and ENBED's span corruption (LongT5)
        if self.objective not in objectives:
            raise ValueError(f"--objective must be one of {objectives}, got {self.objective!r}")
        for name, default in unset_flag_defaults(self.objective).items():
            if getattr(self, name) is None:
                setattr(self, name, default)
        try:  # the config's checks are the one statement of what a valid value is
            BarcodeMAEConfig(**{attribute: getattr(self, flag) for flag, attribute in RUN_CONFIG_ARGUMENTS.items()})
        except (ValueError, StrictDataclassError) as error:  # transformers 5 configs wrap their checks' errors
            raise ValueError(f"invalid run flag (named as the config attribute): {error.__cause__ or error}") from error
        if self.objective == "enbed":
            for name in ("contrastive_weight", "composition_weight"):
                if getattr(self, name):
                    raise ValueError(f"--{name} is for the mae / mlm objectives, not enbed")
            for name in ("taxonomy_loss", "representation"):
                if getattr(self, name) != getattr(BarcodeMAEConfig, name):
                    raise ValueError(f"--{name} is for the mae / mlm objectives, not enbed")
            if self.init_from:
                raise ValueError("--init_from continues BarcodeMAE / BarcodeBERT folders; enbed starts from scratch")
            if self.mean_span_length < 1:
                raise ValueError(f"--mean_span_length must be >= 1, got {self.mean_span_length}")
            if self.encoder_attention not in ENCODER_ATTENTION:
                raise ValueError(
                    f"--encoder_attention must be one of {ENCODER_ATTENTION}, got {self.encoder_attention!r}"
                )
        if self.lr_scheduler not in SCHEDULERS:
            raise ValueError(f"--lr_scheduler must be one of {SCHEDULERS}, got {self.lr_scheduler!r}")
        if self.mixed_precision not in MIXED_PRECISION:
            raise ValueError(f"--mixed_precision must be one of {MIXED_PRECISION}, got {self.mixed_precision!r}")
        if self.max_steps <= 0 and self.num_epochs <= 0:
            raise ValueError("give --max_steps > 0 or --num_epochs > 0")
        for name in (
            "per_device_batch_size",
            "gradient_accumulation_steps",
            "logging_steps",
            "eval_steps",
            "save_steps",
        ):
            if getattr(self, name) < 1:
                raise ValueError(f"--{name} must be >= 1, got {getattr(self, name)}")
        if self.max_train_samples is not None and self.max_train_samples < 1:
            raise ValueError(f"--max_train_samples must be >= 1, got {self.max_train_samples}")
        try:  # the batch stream's check is the one statement of valid augmentation settings
            check_augmentation(self.max_start_shift, self.substitution_rate)
        except ValueError as error:
            raise ValueError(f"invalid augmentation flag: {error}") from error
        if self.taxonomy_classes_per_batch < 0 or self.taxonomy_per_class < 1:
            raise ValueError(
                f"--taxonomy_classes_per_batch must be >= 0 and --taxonomy_per_class >= 1, got "
                f"{self.taxonomy_classes_per_batch} and {self.taxonomy_per_class}"
            )
        if self.taxonomy_classes_per_batch and self.taxonomy_loss == "none":
            raise ValueError("--taxonomy_classes_per_batch balances the labels of --taxonomy_loss; give one")
        if self.taxonomy_loss != "none":
            check_taxonomy_splits(self.split)

    @property
    def views_per_barcode(self) -> int:
        """Rows per pretraining barcode (:func:`views_per_barcode`)."""
        return views_per_barcode(self.contrastive_weight, self.taxonomy_loss)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def views_per_barcode(contrastive_weight: float, taxonomy_loss: str) -> int:
    """Rows per pretraining barcode: two augmented views for a term that compares views (the view-contrastive term,
    or ``supcon``, whose positives are the other view *and* same-taxon rows), else one."""
    return 2 if contrastive_weight > 0 or taxonomy_loss == "supcon" else 1


def architecture_defaults(objective: str) -> dict[str, Any]:
    """The model config's default for each architecture flag of ``objective``: what an unset flag means.

    BarcodeMAE / BarcodeBERT: :class:`BarcodeMAEConfig`'s class defaults (the paper's 6 x 6 x 768 encoder and
    6-block decoder); ENBED: :func:`enbed_config`'s keyword defaults; both as the model folder writes them
    (:mod:`barcodemae.model_folder_defaults`). Flags that do not apply stay ``None``.
    """
    if objective == "enbed":
        keywords = enbed_config_defaults()
        return {flag: keywords[keyword] for flag, keyword in ENBED_ARCHITECTURE_ARGUMENTS.items()}
    config = barcodemae_config_defaults()
    return {flag: config[attribute] for flag, attribute in ARCHITECTURE_ARGUMENTS.items()}


def run_config_defaults(objective: str) -> dict[str, Any]:
    """What each unset flag of ``RUN_CONFIG_ARGUMENTS`` means: :class:`BarcodeMAEConfig`'s class default, except
    ENBED's masked share, which is :class:`SpanCorruptionCollator`'s noise density (T5's 0.15)."""
    config = barcodemae_config_defaults()
    defaults = {flag: config[attribute] for flag, attribute in RUN_CONFIG_ARGUMENTS.items()}
    if objective == "enbed":
        defaults["mask_ratio"] = inspect.signature(SpanCorruptionCollator).parameters["noise_density"].default
    return defaults


def unset_flag_defaults(objective: str) -> dict[str, Any]:
    """Every flag that is ``None`` until resolved, and what it resolves to for ``objective``: the architecture's
    and the run choices' model-config defaults."""
    return {**architecture_defaults(objective), **run_config_defaults(objective)}


def load_preset(preset: str) -> dict[str, Any]:
    """Preset values, checked against the dataclass fields so a typo in a YAML file fails loudly."""
    values = read_preset(preset)
    known = {f.name for f in dataclasses.fields(TrainingArguments)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise ValueError(f"{resolve_preset(preset)}: unknown argument(s) {unknown}")
    return values


def describe_config_defaults(parser: argparse.ArgumentParser) -> None:
    """Make ``--help`` say what an unset architecture or run flag means (the model config's default, per objective)
    instead of ``None`` (the value that stands for "unset" until ``__post_init__`` resolves it)."""
    defaults = {"BarcodeMAE": unset_flag_defaults("mae"), "ENBED": unset_flag_defaults("enbed")}
    for action in parser._actions:
        per_model = {model: values[action.dest] for model, values in defaults.items()
                     if values.get(action.dest) is not None}
        if not per_model or action.default is not None:
            continue
        shown = (str(next(iter(per_model.values()))) if len(set(per_model.values())) == 1
                 else ", ".join(f"{model} {value}" for model, value in per_model.items()))
        action.help = f"{action.help} (default: the model config's: {shown})"


def describe_preset_defaults(parser: argparse.ArgumentParser, preset: str, values: dict[str, Any]) -> None:
    """Make ``--help`` show, for each flag ``preset`` sets, the preset's value and that it comes from the preset
    (what a run without that flag uses), rather than the dataclass default the preset replaces."""
    for action in parser._actions:
        if action.dest in values and action.nargs != 0:  # not the --no_* switch of a boolean
            shown = str(values[action.dest]).replace("%", "%%")  # argparse %-formats help strings
            action.help = f"{action.help} (default: {shown}, from --preset {preset})"


def requested_preset(argv: list[str] | None) -> str | None:
    """The ``--preset`` of ``argv`` (the dataclass default when it gives none), read before the full parse so that
    the preset's values can become the parser's defaults, which ``--help`` then shows."""
    default = next(f.default for f in dataclasses.fields(TrainingArguments) if f.name == "preset")
    first = argparse.ArgumentParser(add_help=False, allow_abbrev=False)
    first.add_argument("--preset", default=default)
    known, _ = first.parse_known_args(sys.argv[1:] if argv is None else argv)
    return None if known.preset is None or known.preset.lower() == "none" else known.preset


def build_parser(preset: str | None, prog: str | None = None) -> DataclassArgumentParser:
    """``train.py``'s parser with ``preset``'s values (``None``: no preset) as its defaults, and a ``--help`` that
    shows them, names each flag once and describes every flag; ``prog``: the command name its usage shows
    (``barcodemae train`` when called through the ``barcodemae`` command, else the script's name)."""
    values = load_preset(preset) if preset is not None else {}
    if preset is None:
        shown = "no preset: each default is train.py's own or the model config's"
    else:
        path = resolve_preset(preset)
        shown = f"--preset {preset} ({Path('configs', path.name) if path.parent == PRESET_DIR else path}) where it " \
                "sets a flag, else train.py's own or the model config's"
    description = textwrap.fill(
        f"Pretrain BarcodeMAE / BarcodeBERT / ENBED (docs/training.md). A flag given overrides the preset, which "
        f"overrides train.py's defaults. Defaults shown: {shown}.", width=100)
    parser = DataclassArgumentParser(TrainingArguments, formatter_class=DefaultsHelpFormatter, description=description,
                                     prog=prog)
    parser.set_defaults(**values)
    if preset is not None:
        describe_preset_defaults(parser, preset, values)
    describe_config_defaults(parser)
    return parser


def parse_args(argv: list[str] | None = None, prog: str | None = None) -> TrainingArguments:
    """Parse flags over the preset over the defaults (see the module docstring); ``--help`` shows the defaults of
    the ``--preset`` given (``tiny`` unless another is named)."""
    return build_parser(requested_preset(argv), prog).parse_into_dataclass(argv)


def save_arguments(args: TrainingArguments, path: Path) -> None:
    path.write_text(json.dumps(args.to_dict(), indent=2, sort_keys=True))


RESUME_MAY_CHANGE = frozenset(
    {
        "preset",  # the resolved values it supplied are compared, not its name
        "output_dir",
        "overwrite_output_dir",
        "resume_from_checkpoint",
        "stop_after_steps",
        "logging_steps",
        "eval_steps",
        "save_steps",
        "save_total_limit",
        "report_to",
        "key_split",
        "query_split",
        "max_probe_keys",
        "evaluate",
        "eval_reducer",
        "eval_plots",
    }
)
"""Arguments a resumed run may change: where it writes, how often it logs, validates and saves, the genus probe
(read-only) and the final evaluation. Every other argument defines the model, the data, the masking or the
schedule, and resuming with another value would fail to load the checkpoint or silently train something else."""


COMPARED_BY_CONTENT = frozenset({"data"})
"""File arguments whose spelling may change on resume (``./data.csv`` or absolute, after a move): only whether one
is given is compared with the saved arguments; :func:`barcodemae.training.data_identity.check_resume_data` compares
what the file holds."""


def resume_mismatches(saved: dict[str, Any], given: TrainingArguments) -> list[str]:
    """``--name: saved X, given Y`` for each argument outside :data:`RESUME_MAY_CHANGE` that differs.

    Only arguments present on both sides are compared, so a run saved before an argument existed still resumes.
    """
    current = given.to_dict()
    compared = (saved.keys() & current.keys()) - RESUME_MAY_CHANGE

    def differs(name: str) -> bool:
        if name in COMPARED_BY_CONTENT:
            return (saved[name] is None) != (current[name] is None)
        return saved[name] != current[name]

    differing = sorted(filter(differs, compared))
    return [f"--{name}: saved {saved[name]!r}, given {current[name]!r}" for name in differing]


__all__ = [
    "ARCHITECTURE_ARGUMENTS",
    "COMPARED_BY_CONTENT",
    "RESUME_MAY_CHANGE",
    "RUN_CONFIG_ARGUMENTS",
    "TrainingArguments",
    "architecture_defaults",
    "build_parser",
    "load_preset",
    "parse_args",
    "resume_mismatches",
    "run_config_defaults",
    "unset_flag_defaults",
]
