"""One documented spelling per flag, both spellings accepted: ``--max_steps`` and ``--max-steps`` alike.

Why: ``train.py`` follows Hugging Face's ``TrainingArguments`` (``--output_dir``), while ``barcodemae`` and the
``eval/`` scripts follow the Unix habit (``--top-k``); a user who types the other one should not get "unrecognized
arguments". So every command accepts both, and ``--help`` and the documentation show one: underscores for
``train.py`` (``barcodemae train``), hyphens for every other command. ``train.py``'s parser registers both
spellings of its flags (:mod:`barcodemae.dataclass_parser`; :func:`documented_options` hides the second in ``--help``);
:class:`CommandParser` maps an underscored flag onto the hyphenated one for the argparse commands.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence


def spelling_key(option: str) -> str:
    """The spelling-free name of a long option: ``--max_steps`` and ``--max-steps`` give the same key."""
    return "--" + option[2:].replace("_", "-") if option.startswith("--") else option


def documented_options(option_strings: Sequence[str]) -> list[str]:
    """An action's option strings with every later spelling of an earlier one dropped (``train.py``'s parser lists
    the field's own name first): what ``--help`` shows."""
    seen: set[str] = set()
    kept = []
    for option in option_strings:
        if spelling_key(option) not in seen:
            seen.add(spelling_key(option))
            kept.append(option)
    return kept


def hyphenated(args: Sequence[str]) -> list[str]:
    """``args`` with each underscored long option (``--top_k`` or ``--top_k=5``) spelled with hyphens, up to a
    bare ``--`` (after which every word is a value). Values are left alone: argparse reads no value that starts
    with ``--`` as a value anyway."""
    spelled: list[str] = []
    for position, word in enumerate(args):
        if word == "--":
            return spelled + list(args[position:])
        if word.startswith("--"):
            name, equals, value = word.partition("=")
            word = spelling_key(name) + equals + value
        spelled.append(word)
    return spelled


class CommandParser(argparse.ArgumentParser):
    """The argparse parser of ``barcodemae`` and the ``eval/`` scripts: flags are declared with hyphens, and the
    underscored spelling is read as the same flag (subcommand parsers are of this class too)."""

    def parse_known_args(  # type: ignore[override]
        self, args: Sequence[str] | None = None, namespace: argparse.Namespace | None = None
    ) -> tuple[argparse.Namespace, list[str]]:
        return super().parse_known_args(hyphenated(sys.argv[1:] if args is None else args), namespace)


__all__ = ["CommandParser", "documented_options", "hyphenated", "spelling_key"]
