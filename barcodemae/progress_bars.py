"""Hiding the progress bars that libraries draw on their own, for ``--no-progress``.

Why: ``--no-progress`` hid the package's bars only; transformers still drew ``Loading weights`` (and ``Writing
model shards`` on save), and datasets ``Generating train split`` and its ``map`` bars, so a quiet run was not quiet
and a one-line error came after a bar. Each library has its own global switch; :func:`library_progress_bars_hidden`
turns them all off for a block and restores what each was before (these are process-wide settings, and a caller in
Python may have chosen them).
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager

TRANSFORMERS_LOGGING = "transformers.utils.logging"
"""The module holding transformers' progress-bar switch, looked up in ``sys.modules`` only."""


@contextmanager
def library_progress_bars_hidden() -> Iterator[None]:
    """Turn off the progress bars of transformers, datasets and huggingface_hub inside the block.

    transformers is not imported for this: one loaded inside the block starts with huggingface_hub's setting (off),
    and a command that never loads a model (``identify`` with a k-mer index) is spared its import time.
    """
    import datasets
    from huggingface_hub.utils import are_progress_bars_disabled, disable_progress_bars, enable_progress_bars

    hub_shown = not are_progress_bars_disabled()
    transformers_logging = sys.modules.get(TRANSFORMERS_LOGGING)
    transformers_shown = transformers_logging.is_progress_bar_enabled() if transformers_logging else hub_shown
    datasets_shown = datasets.is_progress_bar_enabled()
    if transformers_logging is not None:
        transformers_logging.disable_progress_bar()
    datasets.disable_progress_bars()
    disable_progress_bars()
    try:
        yield
    finally:
        transformers_logging = sys.modules.get(TRANSFORMERS_LOGGING)  # perhaps loaded inside the block
        if transformers_logging is not None and transformers_shown:
            transformers_logging.enable_progress_bar()  # switches huggingface_hub's on too: set below
        if datasets_shown:
            datasets.enable_progress_bars()
        if hub_shown:
            enable_progress_bars()
        else:
            disable_progress_bars()


__all__ = ["library_progress_bars_hidden"]
