"""A supervised yardstick without deep learning: k-mer frequencies projected by a genus LDA (``--baseline kmer-lda``).

The plain ``kmer`` baseline measures what raw 4-mer composition already tells apart. ``kmer-lda`` asks how far a
*linear* map, fitted with the genus labels of the ``train`` keys, gets on the same protocol: linear discriminant
analysis (scikit-learn) on the k-mer frequency vectors (:class:`~barcodemae.inference.KmerFrequencyEmbedder`), and
every record embedded as the LDA transform. A learned encoder that does not beat it has learned less about genera
than one supervised linear layer on k-mer counts.

The LDA sees only the rows it is told to fit on (``eval/run.py`` passes the ``train`` keys with a genus), never a
query row, so the open-world queries stay unseen species of genera it was fitted on, as for any model.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.discriminant_analysis import LinearDiscriminantAnalysis

from .protocol_options import LDA_SOLVERS


def fit_genus_lda(frequencies: np.ndarray, genus: np.ndarray, *, solver: str) -> LinearDiscriminantAnalysis:
    """LDA fitted to k-mer frequencies (N, 4**k) and their genus labels (N,), keeping
    ``min(num_genera - 1, 4**k)`` components (every discriminant direction there is)."""
    if solver not in LDA_SOLVERS:
        raise ValueError(f"LDA solver must be one of {LDA_SOLVERS}, got {solver!r}")
    num_genera = len(np.unique(genus))
    if num_genera < 2:
        raise ValueError(f"the genus LDA needs at least 2 genera among its training rows, got {num_genera}")
    lda = LinearDiscriminantAnalysis(
        solver=solver,
        shrinkage="auto" if solver == "eigen" else None,
        n_components=min(num_genera - 1, frequencies.shape[1]),
    )
    return lda.fit(frequencies, genus)


def genus_lda_embeddings(
    frequencies: np.ndarray, genus: np.ndarray, fit_rows: np.ndarray, *, solver: str
) -> tuple[np.ndarray, dict[str, Any]]:
    """Every row of ``frequencies`` (R, D) embedded by an LDA fitted on ``fit_rows`` (N,) only, with their
    ``genus`` (R,) labels; returns the embeddings (R, C) float32 and what the fit was (for ``results.json``)."""
    lda = fit_genus_lda(frequencies[fit_rows], genus[fit_rows], solver=solver)
    embeddings = lda.transform(frequencies).astype(np.float32)
    info = {
        "solver": solver,
        "shrinkage": lda.shrinkage,
        "num_keys": len(fit_rows),
        "num_genera": len(lda.classes_),
        "num_features": int(frequencies.shape[1]),
        "n_components": int(embeddings.shape[1]),
    }
    return embeddings, info


__all__ = ["LDA_SOLVERS", "fit_genus_lda", "genus_lda_embeddings"]
