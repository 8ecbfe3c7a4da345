"""Evaluation suite: closed-world species, open-world genus 1-NN, BIN reconstruction (BIOSCAN-5M protocol).

Submodules: :mod:`.metrics` (metrics on plain arrays), :mod:`.run` (``run_evaluation`` and the command line),
:mod:`.postprocess`, :mod:`.finetune`, :mod:`.qc`, :mod:`.report`, :mod:`.plots`; the embedding loop they share with
training, ``embed`` and ``identify`` is :mod:`barcodemae.inference`. ``run_evaluation`` is imported lazily so that
importing a submodule (the training loop's probe uses :mod:`.metrics`) does not load the whole suite.
"""

from __future__ import annotations

from typing import Any

__all__ = ["run_evaluation"]


def __getattr__(name: str) -> Any:
    if name == "run_evaluation":
        from .run import run_evaluation

        return run_evaluation
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
