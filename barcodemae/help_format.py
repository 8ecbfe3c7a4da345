"""The ``--help`` layout of the project's commands (``train.py``, ``eval/run.py``, ``eval/qc.py``)."""

from __future__ import annotations

import argparse
import copy

from barcodemae.flag_spellings import documented_options


class DefaultsHelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Keeps the description's line breaks, shows each flag's default where its help does not already say it, and
    names each flag once, in its documented spelling (:mod:`barcodemae.flag_spellings`).

    Flags whose unset value means "the model config's default" (``None`` in the dataclass) say so in their help
    instead of showing ``None``; on/off switches show no default.
    """

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        shown = action.nargs != 0 and action.default not in (None, argparse.SUPPRESS)
        if shown and "default" not in text:
            text += " (default: %(default)s)"
        return text

    def _format_action_invocation(self, action: argparse.Action) -> str:
        options = documented_options(action.option_strings)
        if options != list(action.option_strings):
            action = copy.copy(action)
            action.option_strings = options
        return super()._format_action_invocation(action)
