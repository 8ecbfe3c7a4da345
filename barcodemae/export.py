"""Export a training checkpoint as a Hub-ready feature-extraction folder holding only the frozen encoder.

Why a separate step: a pretraining checkpoint carries the MAE decoder, the masked-token head and (for accelerate
``save_state``) optimizer state, none of which a user embedding barcodes needs. The exported folder holds the
encoder weights (``model.safetensors``), a config whose ``architectures`` is ``["BarcodeMAEModel"]`` with a full
``auto_map``, the model and tokenizer code files, the tokenizer, the evaluation ``results.json`` and a
``README.md`` model card rendered from ``model_cards/``. It loads with
``AutoModel.from_pretrained(folder, trust_remote_code=True)`` and ``pipeline("feature-extraction", ...)`` in a
process that never installed ``barcodemae``.
"""

from __future__ import annotations

import json
import logging
import shutil
import string
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file

from barcodemae.errors import CheckpointError, check_new_folder
from barcodemae.file_modes import apply_umask
from barcodemae.inference import reading_frames
from barcodemae.run_layout import RESULTS_FILE, TRAINING_ARGS_FILE, RunLayout
from barcodemae.state_dicts import strip_wrapper_prefixes
from barcodemae.tokenization import BarcodeTokenizer
from modeling_barcodemae import BarcodeMAEConfig, BarcodeMAEModel

logger = logging.getLogger(__name__)

ENCODER_PREFIX = "barcodemae."
"""``base_model_prefix`` of every BarcodeMAE head: encoder weights are ``barcodemae.*`` in a head's state dict."""

MODEL_CARD_TEMPLATE = Path(str(resources.files("barcodemae.model_cards"))) / "feature_extraction.md"
"""``model_cards/`` of the repository, installed as ``barcodemae.model_cards`` (package data)."""
WEIGHT_FILES = ("model.safetensors", "model.safetensors.index.json")
SEARCH_PARENTS = 2
"""How many parent folders of a checkpoint are searched for the run's ``config.json``/tokenizer/results."""


@dataclass
class CheckpointFiles:
    """Where the pieces of one checkpoint live (an accelerate checkpoint keeps config/tokenizer in the run dir)."""

    weights: Path
    config_dir: Path
    tokenizer_dir: Path
    results: Path | None
    training_args: Path | None = None


# ------------------------------------------------------------------------------------------ locating files
def _weights_file(folder: Path) -> Path | None:
    for name in WEIGHT_FILES:
        if (folder / name).is_file():
            return folder / name
    return None


def _nearest_with(folder: Path, name: str) -> Path | None:
    """``folder`` or its nearest parent (up to ``SEARCH_PARENTS`` levels) containing ``name``.

    A parent's ``final_model/`` counts too: train.py keeps config and tokenizer there, next to ``checkpoints/``.
    """
    for candidate in [folder, *list(folder.parents)[:SEARCH_PARENTS]]:
        for place in (candidate, RunLayout(candidate).final_model):
            if (place / name).is_file():
                return place
    return None


def locate_checkpoint(
    checkpoint: str | Path,
    *,
    config_dir: str | Path | None = None,
    tokenizer_dir: str | Path | None = None,
    results: str | Path | None = None,
) -> CheckpointFiles:
    """Find weights, config, tokenizer and results of a ``save_pretrained`` folder or an accelerate checkpoint.

    An accelerate ``save_state`` folder (``model.safetensors`` + ``optimizer.bin`` + ``random_states_*.pkl``,
    train.py's ``<run>/checkpoints/step_N``) has no ``config.json``: the run's output folder or its
    ``final_model/`` holds it, so parents are searched unless ``config_dir``/``tokenizer_dir`` are given.
    Results are found automatically only for a saved model folder; an intermediate checkpoint needs
    ``results=`` because the run's results describe its final model. Only safetensors and JSON are read.
    """
    folder = Path(checkpoint)
    if not folder.is_dir():
        raise CheckpointError(f"{folder}: checkpoint folder not found")
    weights = _weights_file(folder)
    if weights is None:
        found = sorted(p.name for p in folder.iterdir())
        raise CheckpointError(
            f"{folder}: no model.safetensors (or sharded index) in the checkpoint; found {found}. "
            "Save with save_pretrained(..., safe_serialization=True) or accelerator.save_state (safetensors)."
        )
    config_folder = Path(config_dir) if config_dir is not None else _nearest_with(folder, "config.json")
    if config_folder is None or not (config_folder / "config.json").is_file():
        raise CheckpointError(
            f"{folder}: no config.json in the checkpoint or its {SEARCH_PARENTS} parent folders; pass config_dir"
        )
    tokenizer_folder = Path(tokenizer_dir) if tokenizer_dir is not None else _nearest_with(folder, "tokenizer.json")
    if tokenizer_folder is None or not (tokenizer_folder / "tokenizer.json").is_file():
        raise CheckpointError(
            f"{folder}: no tokenizer.json in the checkpoint or its {SEARCH_PARENTS} parent folders; pass tokenizer_dir"
        )
    if results is not None:
        results_path: Path | None = Path(results)
        if not results_path.is_file():
            raise CheckpointError(f"{results_path}: results file not found")
    elif (folder / "config.json").is_file():
        results_path = _nearest_results(folder)
    else:
        # An intermediate training checkpoint: the run's eval/results.json measured final_model/, not these weights.
        results_path = None
    args_folder = _nearest_with(folder, TRAINING_ARGS_FILE)
    return CheckpointFiles(
        weights,
        config_folder,
        tokenizer_folder,
        results_path,
        RunLayout(args_folder).training_args if args_folder is not None else None,
    )


def _nearest_results(model_folder: Path) -> Path | None:
    """The evaluation of a saved model: its own ``results.json``, or the run's ``eval/results.json`` beside it
    (train.py evaluates ``final_model/`` into ``<run>/eval/``)."""
    for path in (model_folder / RESULTS_FILE, RunLayout(model_folder.parent).eval_results):
        if path.is_file():
            return path
    return None


# ---------------------------------------------------------------------------------------------- weights
def _load_state_dict(weights: Path) -> dict[str, torch.Tensor]:
    """All tensors of a safetensors file or of every shard listed in a ``model.safetensors.index.json``."""
    if weights.name.endswith(".index.json"):
        shards = sorted(set(json.loads(weights.read_text())["weight_map"].values()))
        state: dict[str, torch.Tensor] = {}
        for shard in shards:
            state.update(load_file(str(weights.parent / shard)))
        return state
    return load_file(str(weights))


def encoder_state_dict(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The encoder's weights from any BarcodeMAE state dict, keyed as in :class:`BarcodeMAEModel`.

    Strips DDP/``torch.compile`` wrapper prefixes, then keeps ``barcodemae.*`` (dropping the prefix) and drops
    the decoder, masked-token head and classifier. A bare encoder state dict (already exported) passes through.
    """
    unwrapped = {strip_wrapper_prefixes(key): tensor for key, tensor in state.items()}
    if any(key.startswith(ENCODER_PREFIX) for key in unwrapped):
        return {key[len(ENCODER_PREFIX) :]: t for key, t in unwrapped.items() if key.startswith(ENCODER_PREFIX)}
    return {key: t for key, t in unwrapped.items() if key.startswith(("embeddings.", "encoder."))}


def load_frozen_encoder(files: CheckpointFiles) -> BarcodeMAEModel:
    """Build :class:`BarcodeMAEModel` from the checkpoint, requiring every encoder weight to be present."""
    config = BarcodeMAEConfig.from_pretrained(files.config_dir)
    config.architectures = ["BarcodeMAEModel"]
    model = BarcodeMAEModel(config)
    state = encoder_state_dict(_load_state_dict(files.weights))
    if not state:
        raise CheckpointError(f"{files.weights}: no encoder weights (barcodemae.*, embeddings.*, encoder.*) found")
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    if missing or unexpected:
        raise CheckpointError(
            f"{files.weights}: encoder weights do not match config {files.config_dir / 'config.json'}: "
            f"missing {missing[:5]}{'...' if len(missing) > 5 else ''}, "
            f"unexpected {unexpected[:5]}{'...' if len(unexpected) > 5 else ''}"
        )
    mismatched = [k for k in expected if expected[k].shape != state[k].shape]
    if mismatched:
        key = mismatched[0]
        raise CheckpointError(
            f"{files.weights}: {key} has shape {tuple(state[key].shape)}, config expects {tuple(expected[key].shape)}"
        )
    model.load_state_dict(state, strict=True)
    return model.eval().requires_grad_(False)


# ------------------------------------------------------------------------------------------- model card
def describe_training_run(training_args: Path | None) -> str | None:
    """A model-card paragraph from train.py's ``training_args.json`` (data, splits, objective, masking, steps)."""
    if training_args is None:
        return None
    args = json.loads(training_args.read_text())
    data = args.get("data") or "the simulated demo dataset of train.py"
    details = [f"- Data: `{data}`, pretraining split(s) `{args.get('split', '?')}`"]
    for key, label in (
        ("preset", "Preset"),
        ("objective", "Objective"),
        ("tokenizer", "Tokenizer"),
        ("masking", "Masking"),
        ("max_steps", "Optimiser steps"),
        ("num_epochs", "Epochs"),
        ("learning_rate", "Peak learning rate"),
        ("seed", "Seed"),
    ):
        if key == "num_epochs" and (args.get("max_steps") or -1) > 0:
            continue  # max_steps overrides epochs in train.py
        if args.get(key) not in (None, -1, ""):
            details.append(f"- {label}: `{args[key]}`")
    return "Pretrained with `train.py` (arguments from `training_args.json`):\n\n" + "\n".join(details)


def _format_value(value: Any) -> str:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return str(value)
    return f"{value:,}" if isinstance(value, int) else f"{value:.4f}"


def _flatten(results: Mapping[str, Any], prefix: str = "") -> list[tuple[str, Any]]:
    rows = []
    for key, value in results.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            rows.extend(_flatten(value, f"{name} / "))
        elif isinstance(value, (list, tuple)):
            rows.append((name, ", ".join(_format_value(v) for v in value)))
        else:
            rows.append((name, value))
    return rows


def results_markdown(results: Mapping[str, Any] | None) -> str:
    """The measured results as a Markdown table (nested keys joined with ``/``), exactly as in ``results.json``."""
    if not results:
        return "No evaluation results were supplied with this export (`results.json` missing)."
    lines = [
        "Measured on this model and copied verbatim from `results.json` (also in this folder):",
        "",
        "| metric | value |",
        "|---|---|",
    ]
    lines += [f"| {name} | {_format_value(value)} |" for name, value in _flatten(results)]
    return "\n".join(lines)


def render_model_card(
    model: BarcodeMAEModel,
    tokenizer: BarcodeTokenizer,
    *,
    results: Mapping[str, Any] | None,
    repo_id: str,
    source: str,
    model_name: str | None = None,
    training_data: str | None = None,
    license: str = "mit",
    dataset_tag: str = "bioscan-ml/BIOSCAN-5M",
    template: str | Path = MODEL_CARD_TEMPLATE,
) -> str:
    """Fill ``model_cards/feature_extraction.md`` (``string.Template`` ``$fields``) from the model and results."""
    config = model.config
    is_mae = config.pretraining_objective == "mae"
    frames = reading_frames(tokenizer, config.pooled_frames)
    objective_name = "BarcodeMAE" if is_mae else "BarcodeBERT"
    ambiguity = (
        "a k-mer containing one becomes `[UNK]`."
        if tokenizer.scheme == "kmer"
        else "codes missing from the vocabulary become `[UNK]`."
    )
    fields = {
        "license": license,
        "dataset_tag": dataset_tag,
        "model_name": model_name or f"{objective_name} DNA barcode encoder",
        "objective_name": objective_name,
        "architecture": "`BarcodeMAEModel` (BERT-style post-LayerNorm transformer encoder, learned absolute positions)",
        "objective_description": (
            f"masked autoencoding (BarcodeMAE, Safari et al. 2025): {config.mask_ratio:.0%} of tokens masked, the "
            "encoder sees only visible tokens and a decoder reconstructs the masked ones"
            if is_mae
            else f"masked language modelling (BarcodeBERT): {config.mask_ratio:.0%} of tokens masked, BERT 80/10/10"
        ),
        "num_layers": config.num_hidden_layers,
        "hidden_size": config.hidden_size,
        "num_heads": config.num_attention_heads,
        "intermediate_size": config.intermediate_size,
        "num_parameters": f"{model.num_parameters():,}",
        "tokenizer_description": tokenizer.summary(),
        "embedding_description": embedding_description(config, frames),
        "frames_usage": frames_usage(frames),
        "max_bp": tokenizer.max_bp,
        "ambiguity_note": ambiguity,
        "source": source,
        "training_data": training_data
        or "Not recorded with this checkpoint. Pass `training_data=` / `--training-data` to describe it.",
        "repo_id": repo_id,
        "results": results_markdown(results),
    }
    if not Path(template).is_file():
        raise FileNotFoundError(
            f"model card template {template} not found; pass template= (--template) or install from a source checkout"
        )
    return string.Template(Path(template).read_text()).substitute(fields)


def embedding_description(config: Any, frames: int) -> str:
    """The model card's "Embedding" row: what the model's own barcode embedding is (``pooled_layers``,
    ``representation``, and the ``frames`` its ``pooled_frames`` averages), in words."""
    states = ("the average of every hidden state (embeddings and each block)" if config.pooled_layers == "mean"
              else "the last block's token states")
    pooled = {"tokens_with_cls": "averaged over the non-padding tokens", "tokens": "averaged over the non-padding "
              "tokens but [CLS]", "cls": "at the [CLS] position"}[config.representation]
    averaged = f", averaged over the barcode's {frames} reading frames (see How to use)" if frames > 1 else ""
    return f"{states}, {pooled} (`pooler_output`){averaged}"


def frames_usage(frames: int) -> str:
    """The model card's lines for a model whose embedding averages ``frames`` > 1 reading frames: the average it
    was evaluated with (empty for one frame)."""
    if frames == 1:
        return ""
    return (
        "\nThis model's barcode embedding is the mean over the barcode read from each of its first "
        f"{frames} bases (its reading frames; what it was evaluated with, and what "
        "`barcodemae embed` writes):\n\n```python\nwith torch.no_grad():\n"
        "    embeddings = torch.stack([model(**tokenizer(barcodes, frame_offset=i, padding=True, "
        "return_tensors=\"pt\")).pooler_output\n"
        "                              for i in range(tokenizer.k)]).mean(0)\n```\n"
    )


# ------------------------------------------------------------------------------------------------ export
def export_encoder(
    checkpoint: str | Path,
    output_dir: str | Path,
    *,
    results: str | Path | None = None,
    config_dir: str | Path | None = None,
    tokenizer_dir: str | Path | None = None,
    repo_id: str | None = None,
    model_name: str | None = None,
    training_data: str | None = None,
    license: str = "mit",
    template: str | Path = MODEL_CARD_TEMPLATE,
    push_to_hub: str | None = None,
    private: bool = False,
    token: str | None = None,
) -> Path:
    """Write the Hub-ready feature-extraction folder for ``checkpoint`` into ``output_dir``; return its path.

    ``repo_id`` is the name used in the model card's loading examples (default: ``push_to_hub`` or the output
    folder). With ``push_to_hub="user/name"`` the folder is uploaded after it is written (see
    :func:`push_folder_to_hub`).
    """
    files = locate_checkpoint(checkpoint, config_dir=config_dir, tokenizer_dir=tokenizer_dir, results=results)
    output = Path(output_dir)
    check_new_folder(output)
    model = load_frozen_encoder(files)
    tokenizer = BarcodeTokenizer.from_pretrained(files.tokenizer_dir)
    if len(tokenizer) != model.config.vocab_size:
        raise CheckpointError(
            f"{files.tokenizer_dir}: tokenizer has {len(tokenizer)} tokens, model vocab_size is "
            f"{model.config.vocab_size}; pass the tokenizer the model was trained with"
        )
    results_data = json.loads(files.results.read_text()) if files.results is not None else None

    output.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(output)  # an encoder: config.json names BarcodeMAEModel and serves AutoModel only
    tokenizer.save_pretrained(output)
    if files.results is not None:
        shutil.copyfile(files.results, output / RESULTS_FILE)
    card = render_model_card(
        model,
        tokenizer,
        results=results_data,
        repo_id=repo_id or push_to_hub or str(output),
        source=str(Path(checkpoint)),
        model_name=model_name,
        training_data=training_data or describe_training_run(files.training_args),
        license=license,
        template=template,
    )
    (output / "README.md").write_text(card)
    apply_umask(output)
    logger.info("exported %s encoder (%s parameters) to %s", files.weights, f"{model.num_parameters():,}", output)
    if push_to_hub:
        push_folder_to_hub(output, push_to_hub, private=private, token=token)
    return output


def push_folder_to_hub(
    folder: str | Path,
    repo_id: str,
    *,
    private: bool = False,
    token: str | None = None,
    commit_message: str | None = None,
) -> str:
    """Create ``repo_id`` on the Hugging Face Hub if needed and upload the exported folder; return the commit URL."""
    from huggingface_hub import HfApi

    api = HfApi(token=token)
    api.create_repo(repo_id, repo_type="model", private=private, exist_ok=True)
    commit = api.upload_folder(
        folder_path=str(folder),
        repo_id=repo_id,
        repo_type="model",
        commit_message=commit_message or "Upload BarcodeMAE feature-extraction encoder",
    )
    return str(getattr(commit, "commit_url", commit))
