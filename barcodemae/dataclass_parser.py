"""An argparse parser whose flags are a dataclass's fields, made as ``transformers.HfArgumentParser`` makes them.

Why not ``HfArgumentParser`` itself: importing it imports transformers (over a second), and ``train.py --help``
should answer at once (issue #30). The flags are those of ``HfArgumentParser`` for the field types
``train.py``'s :class:`~barcodemae.training.arguments.TrainingArguments` uses (``str``, ``int``, ``float``,
``bool``, each optionally ``| None``): ``--max_steps`` with ``--max-steps`` accepted too
(:mod:`barcodemae.flag_spellings`), the help from the field's ``metadata["help"]``, and for a ``bool`` field
``--X`` (on), ``--X false`` and, when it is on by default, ``--no_X``.
"""

from __future__ import annotations

import argparse
import dataclasses
import types
import typing
from collections.abc import Sequence
from typing import Any

SWITCH_VALUES = {"yes": True, "true": True, "t": True, "y": True, "1": True,
                 "no": False, "false": False, "f": False, "n": False, "0": False}
"""The words a ``bool`` flag takes as its value, case-insensitively (``HfArgumentParser``'s)."""


def switch_value(word: str) -> bool:
    """The value of ``--X WORD`` for a ``bool`` field (:data:`SWITCH_VALUES`)."""
    if word.lower() not in SWITCH_VALUES:
        raise argparse.ArgumentTypeError(f"expected one of {'/'.join(SWITCH_VALUES)}, got {word!r}")
    return SWITCH_VALUES[word.lower()]


def value_type(annotation: Any, name: str) -> type:
    """The type a flag's value is read as: the annotation, or ``X`` of ``X | None``."""
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        given = [member for member in typing.get_args(annotation) if member is not type(None)]
        if len(given) != 1:
            raise TypeError(f"field {name!r}: a flag reads one type, got {annotation}")
        annotation = given[0]
    if annotation not in (str, int, float, bool):
        raise TypeError(f"field {name!r}: no flag for values of type {annotation}")
    return annotation


def spellings(name: str) -> list[str]:
    """``--name`` and, when it has an underscore, ``--name-with-hyphens`` (listed second: ``--help`` hides it)."""
    return [f"--{name}", *([f"--{name.replace('_', '-')}"] if "_" in name else [])]


class DataclassArgumentParser(argparse.ArgumentParser):
    """The flags of ``dataclass_type``'s fields; :meth:`parse_into_dataclass` parses a command line into one
    instance of it (whose ``__post_init__`` then checks the values)."""

    def __init__(self, dataclass_type: type, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.dataclass_type = dataclass_type
        annotations = typing.get_type_hints(dataclass_type)
        for field in dataclasses.fields(dataclass_type):
            self.add_field(field, value_type(annotations[field.name], field.name))

    def add_field(self, field: dataclasses.Field, kind: type) -> None:
        """The flag of ``field`` (values read as ``kind``), and ``--no_<name>`` for a ``bool`` on by default."""
        if field.default is dataclasses.MISSING:
            raise TypeError(f"field {field.name!r} has no default; every flag here is optional")
        help_text = field.metadata.get("help")
        if kind is not bool:
            self.add_argument(*spellings(field.name), type=kind, default=field.default, help=help_text)
            return
        self.add_argument(*spellings(field.name), type=switch_value, nargs="?", const=True, default=field.default,
                          help=help_text)
        if field.default is True:
            self.add_argument(*spellings(f"no_{field.name}"), action="store_false", dest=field.name,
                              help=f"turn --{field.name} off (the same as --{field.name} false)")

    def parse_into_dataclass(self, args: Sequence[str] | None = None) -> Any:
        """An instance of the dataclass from ``args`` (default ``sys.argv[1:]``); an unknown flag or a bad value
        is argparse's usage error (exit status 2)."""
        return self.dataclass_type(**vars(self.parse_args(args)))


__all__ = ["SWITCH_VALUES", "DataclassArgumentParser", "spellings", "switch_value", "value_type"]
