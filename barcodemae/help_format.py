"""The ``--help`` layout of the project's commands (``train.py``, ``eval/run.py``)."""

from __future__ import annotations

import argparse


class DefaultsHelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Keeps the description's line breaks and shows each flag's default where its help does not already say it.

    Flags whose unset value means "the model config's default" (``None`` in the dataclass) say so in their help
    instead of showing ``None``; on/off switches show no default.
    """

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        shown = action.nargs != 0 and action.default not in (None, argparse.SUPPRESS)
        if shown and "default" not in text:
            text += " (default: %(default)s)"
        return text
