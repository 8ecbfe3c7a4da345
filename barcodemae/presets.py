"""The YAML presets of ``configs/`` (installed as ``barcodemae.configs``), and the ENBED model a preset's sizes
describe.

Why apart from :mod:`barcodemae.training`: the evaluation builds a fresh ENBED of a preset's sizes too
(``eval/qc.py --model none``), and training imports the evaluation (it runs it at the end of a run), so what both
need lives below both. ``train.py`` reads presets through :func:`barcodemae.training.arguments.load_preset`, which
also checks every name against its arguments.
"""

from __future__ import annotations

from collections.abc import Mapping
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from barcodemae.masking.span_corruption import DEFAULT_SENTINEL_COUNT

if TYPE_CHECKING:
    from transformers import LongT5Config

PRESET_DIR = Path(str(resources.files("barcodemae.configs")))
"""``configs/`` of the repository, installed as ``barcodemae.configs`` (package data)."""
ENBED_ARCHITECTURE_ARGUMENTS: dict[str, str] = {
    # preset / train.py argument: keyword of modeling_enbed.enbed_config
    "hidden_size": "hidden_size",
    "num_hidden_layers": "num_hidden_layers",
    "decoder_num_hidden_layers": "num_decoder_layers",
    "num_attention_heads": "num_attention_heads",
    "intermediate_size": "intermediate_size",
    "dropout": "dropout",
    "encoder_attention": "encoder_attention",
    "local_radius": "local_radius",
    "global_block_size": "global_block_size",
}
"""The arguments that set ENBED's architecture, and the :func:`~modeling_barcodemae.modeling_enbed.enbed_config`
keyword each sets; the other architecture arguments (the MAE decoder's width and heads) do not apply to ENBED."""


def preset_names() -> list[str]:
    """The shipped presets: one per ``configs/*.yaml`` file, so a new file is a new preset with nothing else to
    edit (``--help``, the error for an unknown name and the README's table all follow the files)."""
    return sorted(path.stem for path in PRESET_DIR.glob("*.yaml")) if PRESET_DIR.is_dir() else []


def resolve_preset(preset: str) -> Path:
    """A preset name (``configs/<name>.yaml``) or a YAML path; a clear error lists the shipped presets."""
    path = Path(preset)
    if path.suffix in (".yaml", ".yml") and path.is_file():
        return path
    candidate = PRESET_DIR / f"{preset}.yaml"
    if candidate.is_file():
        return candidate
    raise FileNotFoundError(
        f"preset {preset!r} is neither a YAML file nor one of the presets in {PRESET_DIR}: {preset_names()}"
    )


def read_preset(preset: str) -> dict[str, Any]:
    """A preset's values (argument name -> value), as written: the names are not checked here (that needs
    ``train.py``'s arguments: :func:`barcodemae.training.arguments.load_preset`)."""
    path = resolve_preset(preset)
    values = yaml.safe_load(path.read_text()) or {}
    if not isinstance(values, dict):
        raise TypeError(f"{path}: a preset must be a mapping of argument names to values")
    return values


def enbed_model_config(values: Mapping[str, Any], tokenizer_fields: dict[str, Any]) -> LongT5Config:
    """The LongT5 config of a fresh ENBED that ``values`` describe (a preset's, or ``train.py``'s resolved
    arguments), for a tokenizer described by ``tokenizer_fields`` (``BarcodeTokenizer.model_config_kwargs()``).

    Architecture values that are missing or ``None`` take :func:`enbed_config`'s defaults, a missing sentinel
    count :data:`~barcodemae.masking.span_corruption.DEFAULT_SENTINEL_COUNT`. The model folder is imported here, not
    at the top: ``train.py --help`` reads the presets, and must not load transformers to do so.
    """
    from modeling_barcodemae.modeling_enbed import enbed_config

    sizes = {keyword: values[name] for name, keyword in ENBED_ARCHITECTURE_ARGUMENTS.items()
             if values.get(name) is not None}
    return enbed_config(tokenizer_fields, values.get("num_sentinels", DEFAULT_SENTINEL_COUNT), **sizes)


__all__ = [
    "ENBED_ARCHITECTURE_ARGUMENTS",
    "PRESET_DIR",
    "enbed_model_config",
    "preset_names",
    "read_preset",
    "resolve_preset",
]
