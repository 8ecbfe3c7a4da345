"""Figures of an evaluation run: the open-world queries' embeddings (test_unseen, or val_unseen) in 2-D coloured by
genus, and accuracy per genus.

matplotlib is a dependency; in an environment installed without it (``pip install --no-deps``) the run still
writes results.json and the report, and records that no plots were made.
"""

from __future__ import annotations

import importlib.util
import logging
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from barcodemae.eval.metrics import reduce_dimensions

logger = logging.getLogger(__name__)

MAX_COLOURED_GENERA = 20
"""Genera beyond the most frequent ones are drawn in grey: more colours than this cannot be told apart."""


def plot_embedding_2d(path: Path, coordinates: np.ndarray, genus: np.ndarray, title: str) -> None:
    import matplotlib.pyplot as plt

    counts = pd.Series(genus).value_counts()
    top = list(counts.index[:MAX_COLOURED_GENERA])
    colours = plt.get_cmap("tab20")(np.linspace(0, 1, max(len(top), 1)))
    fig, ax = plt.subplots(figsize=(8, 7))
    rest = ~np.isin(genus, top)
    ax.scatter(coordinates[rest, 0], coordinates[rest, 1], s=4, c="lightgrey", label="other genera")
    for colour, name in zip(colours, top):
        chosen = genus == name
        ax.scatter(coordinates[chosen, 0], coordinates[chosen, 1], s=6, color=colour, label=f"{name} ({chosen.sum()})")
    ax.set_title(title)
    ax.set_xticks([])
    ax.set_yticks([])
    ax.legend(fontsize=6, markerscale=2, loc="center left", bbox_to_anchor=(1.0, 0.5), frameon=False)
    fig.tight_layout()
    fig.savefig(path, dpi=130)
    plt.close(fig)


def plot_accuracy_per_genus(
    path: Path, genus_accuracy: dict[str, dict[str, float]], max_genera: int = 40, split: str = "test_unseen"
) -> None:
    import matplotlib.pyplot as plt

    table = pd.DataFrame(genus_accuracy).T.sort_values("support", ascending=False).head(max_genera)
    table = table.sort_values("accuracy")
    fig, ax = plt.subplots(figsize=(7, max(3.0, 0.22 * len(table) + 1)))
    ax.barh(
        [f"{name} (n={int(n)})" for name, n in zip(table.index, table["support"])], table["accuracy"], color="tab:blue"
    )
    ax.set_xlim(0, 1)
    ax.set_xlabel("open-world genus 1-NN accuracy")
    ax.set_title(f"accuracy per genus ({split}, {len(table)} most frequent genera)")
    ax.tick_params(axis="y", labelsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=130)
    plt.close(fig)


def write_plots(
    output: Path,
    frame: pd.DataFrame,
    embeddings: np.ndarray,
    details: dict[str, Any],
    genus_accuracy: dict[str, dict[str, float]],
    *,
    reducer: str = "auto",
    seed: int = 0,
) -> dict[str, Any]:
    """Write both figures into ``output``; returns their file names and the 2-D reducer used.

    ``reducer`` is the run's choice (``auto``/``umap``/``pca``); with ``none`` the 2-D view uses PCA.
    """
    if importlib.util.find_spec("matplotlib") is None:
        logger.warning("matplotlib is not installed: no plots (pip install matplotlib)")
        return {"skipped": "matplotlib not installed"}
    import matplotlib

    matplotlib.use("Agg")
    rows, split = details["genus_rows"], details["open_world_split"]
    written: dict[str, Any] = {}
    if len(rows) >= 3:
        coordinates, used = reduce_dimensions(
            embeddings[rows], n_components=2, reducer="pca" if reducer == "none" else reducer, random_state=seed
        )
        name = f"{used}_{split}_genus.png"
        plot_embedding_2d(
            output / name,
            coordinates,
            np.asarray(details["genus_true"]),
            f"{split} embeddings ({used.upper()}), coloured by genus",
        )
        written["embedding_2d"], written["embedding_2d_reducer"] = name, used
    if genus_accuracy:
        plot_accuracy_per_genus(output / "accuracy_per_genus.png", genus_accuracy, split=split)
        written["accuracy_per_genus"] = "accuracy_per_genus.png"
    return written


__all__ = ["plot_accuracy_per_genus", "plot_embedding_2d", "write_plots"]
