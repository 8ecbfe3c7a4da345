"""Default values written in the model folder (``modeling_barcodemae/``), read from its source without importing it.

Why: ``train.py --help`` says what an unset architecture or run flag means, the model config's default, and
importing ``modeling_barcodemae`` to read it loads transformers and torch (its ``__init__`` registers the models
with the Auto classes), which made ``--help`` take seconds. The model folder stays the one owner of these numbers:
this module reads the literals its code writes (``hidden_size: int = 768`` in :class:`BarcodeMAEConfig`, the
keyword defaults of ``enbed_config``), and ``tests/test_help.py`` checks that they equal what the imported classes
hold.
"""

from __future__ import annotations

import ast
from functools import cache
from importlib.util import find_spec
from pathlib import Path
from typing import Any

MODEL_FOLDER = "modeling_barcodemae"


@cache
def model_folder_module(module: str) -> ast.Module:
    """The syntax tree of ``modeling_barcodemae/<module>.py``, located without running the package's ``__init__``
    (``find_spec`` of a top-level package only finds it)."""
    spec = find_spec(MODEL_FOLDER)
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError(f"the model folder {MODEL_FOLDER!r} is not installed")
    path = Path(next(iter(spec.submodule_search_locations))) / f"{module}.py"
    return ast.parse(path.read_text(encoding="utf-8"), filename=str(path))


def class_defaults(module: str, class_name: str) -> dict[str, Any]:
    """The class attributes of ``class_name`` in ``module`` that are given a literal (``name: type = literal`` or
    ``name = literal``): for a ``PretrainedConfig`` dataclass, each field's default."""
    tree = model_folder_module(module)
    body = next(node.body for node in tree.body if isinstance(node, ast.ClassDef) and node.name == class_name)
    defaults = {}
    for node in body:
        if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name) and node.value is not None:
            name, value = node.target.id, node.value
        elif isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            name, value = node.targets[0].id, node.value
        else:
            continue
        try:
            defaults[name] = ast.literal_eval(value)
        except ValueError:  # not a literal (a call, another name): no default this module can read
            continue
    return defaults


def keyword_defaults(module: str, function_name: str) -> dict[str, Any]:
    """The keyword-only parameters of the function ``function_name`` in ``module`` and their (literal) defaults."""
    tree = model_folder_module(module)
    function = next(node for node in tree.body if isinstance(node, ast.FunctionDef) and node.name == function_name)
    return {parameter.arg: ast.literal_eval(default)
            for parameter, default in zip(function.args.kwonlyargs, function.args.kw_defaults) if default is not None}


def barcodemae_config_defaults() -> dict[str, Any]:
    """:class:`~modeling_barcodemae.configuration_barcodemae.BarcodeMAEConfig`'s defaults, by attribute."""
    return class_defaults("configuration_barcodemae", "BarcodeMAEConfig")


def enbed_config_defaults() -> dict[str, Any]:
    """The size and attention defaults of :func:`~modeling_barcodemae.modeling_enbed.enbed_config`, by keyword."""
    return keyword_defaults("modeling_enbed", "enbed_config")


__all__ = [
    "MODEL_FOLDER",
    "barcodemae_config_defaults",
    "class_defaults",
    "enbed_config_defaults",
    "keyword_defaults",
    "model_folder_module",
]
