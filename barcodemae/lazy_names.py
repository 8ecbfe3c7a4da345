"""A package's public names, imported from their modules on first use (module ``__getattr__``, PEP 562).

Why: a package's ``__init__`` runs before any module under it, so an ``__init__`` that imports the package's torch
code makes every light module below it slow to import. ``barcodemae --help``, ``train.py --help`` and
``eval/run.py --help`` import such light modules (argument parsers, presets, constants); with eager ``__init__``
files each one loaded torch and transformers first. ``from barcodemae.masking import NPMITable`` still works: the
name's module is imported then.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Mapping
from importlib import import_module
from typing import Any


def lazy_names(package: str, sources: Mapping[str, str]) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """The ``(__getattr__, __dir__)`` of ``package``, whose public names ``sources`` maps to the module that defines
    each (absolute, or relative to ``package``: ``".collator"``).

    A name is imported from its module on first look-up and then kept in the package, so later look-ups skip
    ``__getattr__``; any other name is an ``AttributeError``, as for an ordinary module.
    """

    def __getattr__(name: str) -> Any:
        if name not in sources:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(import_module(sources[name], package), name)
        setattr(sys.modules[package], name, value)
        return value

    def __dir__() -> list[str]:
        return sorted({*vars(sys.modules[package]), *sources})

    return __getattr__, __dir__


__all__ = ["lazy_names"]
