"""Evaluation suite: closed-world species, open-world genus 1-NN, BIN reconstruction (BIOSCAN-5M protocol).

Submodules: :mod:`.embeddings` (the embedding loop, ``load_encoder``, k-mer baseline), :mod:`.metrics`
(metrics on plain arrays), :mod:`.run` (``run_evaluation`` and the command line), :mod:`.report`, :mod:`.plots`.
``run_evaluation`` is imported lazily so that ``import barcodemae.eval.embeddings`` stays light.
"""

from __future__ import annotations

from typing import Any

__all__ = ["run_evaluation"]


def __getattr__(name: str) -> Any:
    if name == "run_evaluation":
        from .run import run_evaluation

        return run_evaluation
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
