"""Checks of a local model folder made before any of its weights are loaded or any tensor is allocated.

Why before: ``from_pretrained`` builds the model ``config.json`` describes and only then compares it with the
stored weights, so a config with huge sizes allocates tens of gigabytes before its mismatch is found, an overflowing
size fails deep inside torch with a traceback, and a folder holding only ``pytorch_model.bin`` is unpickled (which
can run any code). Here ``config.json`` is read as JSON, its sizes are checked, the weights' shapes are read from the
safetensors headers (:mod:`barcodemae.safetensors_header`), and the model is built on the ``meta`` device (shapes
only, no memory) so every tensor the config implies can be compared with the stored one of the same name. Each
refusal is a one-line :class:`ModelFolderError` (a :class:`ValueError`) or :class:`FileNotFoundError` naming the
file and the problem.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from barcodemae.safetensors_header import read_safetensors_header

CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"
WEIGHTS_INDEX_FILE = "model.safetensors.index.json"
PICKLED_WEIGHT_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt", ".pkl")
"""Weight files in Python's pickle format: loading one can execute arbitrary code, so they are never read."""

SIZE_FIELDS = (
    "vocab_size", "hidden_size", "intermediate_size", "num_attention_heads", "max_position_embeddings",
    "decoder_hidden_size", "decoder_intermediate_size", "decoder_num_attention_heads",
    "d_model", "d_ff", "d_kv", "num_heads", "n_embd", "n_head", "n_positions",
)
"""Widths and counts of ``config.json`` (BERT/BarcodeMAE, T5/ENBED and GPT-2 spellings) that must be positive."""
LAYER_FIELDS = (
    "num_hidden_layers", "decoder_num_hidden_layers", "num_layers", "num_decoder_layers", "n_layer",
    "encoder_layers", "decoder_layers",
)
"""Layer counts of ``config.json``: non-negative, and at most :data:`MAX_LAYERS`."""
MAX_SIZE = 2**31 - 1
"""The largest width accepted: token ids and many kernels index with 32-bit integers, and any larger value is a
corrupt or hostile config (``10**30`` would overflow torch's 64-bit sizes)."""
MAX_LAYERS = 1024
"""The most layers accepted: beyond any published transformer, and small enough that building the model's skeleton
on the ``meta`` device (about a millisecond per layer) stays quick; a config asking for millions of layers would
otherwise take minutes and gigabytes of Python objects before its shapes could be compared."""


class ModelFolderError(ValueError):
    """A model folder refused before loading; the message names the file and the problem."""


def read_model_config(folder: Path) -> dict[str, Any]:
    """``config.json`` of a model folder as a dict (read as JSON: no code runs), its sizes checked
    (:func:`check_config_sizes`)."""
    path = folder / CONFIG_FILE
    try:
        config = json.loads(path.read_text())
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ModelFolderError(f"{path}: not valid JSON ({error})") from error
    if not isinstance(config, dict):
        raise ModelFolderError(f"{path}: not a JSON object")
    check_config_sizes(config, path)
    return config


def check_config_sizes(config: dict[str, Any], path: Path) -> None:
    """Refuse a width that is not a positive integer up to :data:`MAX_SIZE`, or a layer count outside
    ``0..``:data:`MAX_LAYERS`; ``null`` is left to the config class (some fields default from others)."""
    limits = {**dict.fromkeys(SIZE_FIELDS, (1, MAX_SIZE)), **dict.fromkeys(LAYER_FIELDS, (0, MAX_LAYERS))}
    for field, (low, high) in limits.items():
        value = config.get(field)
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            raise ModelFolderError(f"{path}: {field} must be an integer in {low}..{high}, got {value!r}")


def stored_tensor_shapes(folder: Path) -> dict[str, tuple[tuple[int, ...], Path]]:
    """``{tensor name: (shape, file)}`` of a folder's safetensors weights: ``model.safetensors``, or every shard a
    ``model.safetensors.index.json`` lists. Only headers are read.

    A folder with pickled weights only (``pytorch_model.bin`` ...) is refused: they are never unpickled.
    """
    index = folder / WEIGHTS_INDEX_FILE
    if index.is_file():
        files = [folder / shard for shard in _index_shards(index)]
    elif (folder / WEIGHTS_FILE).is_file():
        files = [folder / WEIGHTS_FILE]
    else:
        pickled = sorted(p.name for p in folder.iterdir() if p.suffix in PICKLED_WEIGHT_SUFFIXES)
        if pickled:
            raise ModelFolderError(
                f"{folder}: holds only pickled weights ({', '.join(pickled)}), which are not loaded because unpickling "
                f"can run any code; convert them to {WEIGHTS_FILE} first"
            )
        raise FileNotFoundError(f"{folder}: no {WEIGHTS_FILE} (or {WEIGHTS_INDEX_FILE}) holding the model's weights")
    shapes: dict[str, tuple[tuple[int, ...], Path]] = {}
    for file in files:
        for name, entry in read_safetensors_header(file).items():
            shapes[name] = (tuple(entry["shape"]), file)
    return shapes


def _index_shards(index: Path) -> list[str]:
    """The distinct shard files of a sharded-weights index, each a file beside it."""
    try:
        weight_map = json.loads(index.read_text()).get("weight_map")
    except (UnicodeDecodeError, json.JSONDecodeError, AttributeError) as error:
        raise ModelFolderError(f"{index}: not a JSON object with a weight_map ({error})") from error
    if not isinstance(weight_map, dict) or not all(isinstance(v, str) for v in weight_map.values()):
        raise ModelFolderError(f"{index}: weight_map must map tensor names to shard file names")
    shards = sorted(set(weight_map.values()))
    for shard in shards:
        if Path(shard).name != shard or shard in ("", ".", ".."):
            raise ModelFolderError(f"{index}: shard {shard!r} is not a file name in the model folder")
        if not (index.parent / shard).is_file():
            raise FileNotFoundError(f"{index}: lists shard {shard}, which is not in the folder")
    return shards


def check_config_fits_weights(
    folder: Path,
    stored: dict[str, tuple[tuple[int, ...], Path]],
    build: Callable[[], torch.nn.Module],
    *,
    heads_may_differ: bool = False,
) -> None:
    """Refuse a ``config.json`` whose model does not fit the folder's weights, before any memory is allocated.

    ``stored`` is :func:`stored_tensor_shapes` of the folder; ``build`` makes the model from its config and runs on
    the ``meta`` device, so only shapes exist. Every tensor of that model whose name is also stored (directly, or
    with/without the model's ``base_model_prefix``, as ``from_pretrained`` matches them) must have the stored shape;
    ``heads_may_differ`` (``ignore_mismatched_sizes``: a new classification head) lets tensors outside the base model
    differ. Tensors the weights lack are newly initialised by ``from_pretrained``, but when they outweigh every
    stored tensor together the config describes some other (possibly huge) model, and that is refused too.
    """
    config_path = folder / CONFIG_FILE
    try:
        with torch.device("meta"):
            model = build()
    except (RuntimeError, OverflowError, TypeError, ValueError) as error:
        reason = " ".join(str(error).split())[:300]
        raise ModelFolderError(f"{config_path}: describes a model that cannot be built ({reason})") from error
    prefix = getattr(model, "base_model_prefix", "")
    has_head = bool(prefix) and getattr(model, "base_model", model) is not model
    missing, missing_example, seen = 0, None, set()
    for name, tensor in model.state_dict(keep_vars=True).items():
        tied = id(tensor) in seen  # tied weights are listed under each name but stored (and built) once
        seen.add(id(tensor))
        expected = tuple(tensor.shape)
        stored_name = _stored_name(name, prefix, stored)
        if stored_name is None:
            if not tied:
                missing += math.prod(expected)
                missing_example = missing_example or name
            continue
        shape, file = stored[stored_name]
        in_head = has_head and not name.startswith(f"{prefix}.")
        if shape != expected and not (heads_may_differ and in_head):
            raise ModelFolderError(
                f"{config_path}: does not fit the weights: it implies {name} of shape {list(expected)}, "
                f"{file.name} holds {stored_name} of shape {list(shape)}"
            )
    total = sum(math.prod(shape) for shape, _ in stored.values())
    if missing > total:
        raise ModelFolderError(
            f"{config_path}: does not fit the weights: the tensors it implies that the weights lack "
            f"(e.g. {missing_example}) hold {missing:,} values, more than all {total:,} stored"
        )


def load_config(config_class: Any, name: str | Path, **kwargs: Any) -> tuple[Any, dict[str, Any]]:
    """``config_class.from_pretrained(name, return_unused_kwargs=True, **kwargs)``: the config (``kwargs`` such as
    ``num_labels`` applied) and the arguments it did not take.

    A config its class refuses (a negative size, a head count that does not divide the width ...) becomes a
    one-line :class:`ModelFolderError` naming ``config.json``, where the class gives a multi-line validation error
    or a ``TypeError`` traceback. A refusal to run the folder's own code is passed on unchanged, for the caller to
    name ``--trust-remote-code``.
    """
    from huggingface_hub.errors import StrictDataclassError

    try:
        return config_class.from_pretrained(name, return_unused_kwargs=True, **kwargs)
    except (StrictDataclassError, TypeError, ValueError) as error:
        if "trust_remote_code" in str(error):
            raise
        reason = " ".join(str(error).split())
        raise ModelFolderError(f"{Path(name) / CONFIG_FILE}: {reason}") from error


def from_pretrained_checked(model_class: Any, folder: str | Path, **kwargs: Any) -> Any:
    """``model_class.from_pretrained(folder, **kwargs)`` for an installed class, after every check of this module
    and reading safetensors weights only (``use_safetensors=True``: a pickle is never loaded).

    For loaders that know their class (the ENBED error detector and corrector of ``barcodemae qc``);
    :func:`barcodemae.inference.load_pretrained` does the same for Auto classes and hub names.
    """
    folder = Path(folder)
    read_model_config(folder)
    stored = stored_tensor_shapes(folder)
    config, load_kwargs = load_config(model_class.config_class, folder, **kwargs)
    check_config_fits_weights(folder, stored, lambda: model_class._from_config(config),
                              heads_may_differ=bool(load_kwargs.get("ignore_mismatched_sizes")))
    return model_class.from_pretrained(folder, config=config, use_safetensors=True, **load_kwargs)


def _stored_name(name: str, prefix: str, stored: dict[str, Any]) -> str | None:
    """The stored tensor ``from_pretrained`` loads into the model's tensor ``name``, if any."""
    candidates = [name]
    if prefix:
        with_prefix = f"{prefix}."
        candidates.append(name[len(with_prefix):] if name.startswith(with_prefix) else with_prefix + name)
    return next((candidate for candidate in candidates if candidate in stored), None)


__all__ = [
    "CONFIG_FILE",
    "LAYER_FIELDS",
    "MAX_LAYERS",
    "MAX_SIZE",
    "PICKLED_WEIGHT_SUFFIXES",
    "SIZE_FIELDS",
    "WEIGHTS_FILE",
    "WEIGHTS_INDEX_FILE",
    "ModelFolderError",
    "check_config_fits_weights",
    "check_config_sizes",
    "from_pretrained_checked",
    "load_config",
    "read_model_config",
    "stored_tensor_shapes",
]
