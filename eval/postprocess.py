"""Optional post-processing of embeddings before cosine similarity: centring or PCA-whitening fitted on the keys.

Why: a pretrained encoder's mean-pooled embeddings can be anisotropic -- a few directions shared by every
barcode carry most of the variance, and raw cosine similarity then mostly measures those directions. Centring
removes the common mean; PCA-whitening also rescales every principal direction of the *reference* (key)
embeddings to unit variance, so the 1-NN looks at all directions equally. The transform is fitted on the keys
only (the labelled reference set, never the queries) and then applied to keys and queries alike, so a
``barcodemae identify`` index stores it and every later query gets the same one. Raw cosine (``"none"``) stays
the protocol's default and headline number.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

POSTPROCESSING = ("none", "center", "whiten")
POSTPROCESS_FILE = "postprocess.safetensors"
WHITEN_EPSILON = 1e-5
"""Whitening adds ``WHITEN_EPSILON x`` the largest eigenvalue to every eigenvalue: directions with (almost) no
variance among the keys are not blown up into noise (a 768-wide embedding fitted on fewer keys is rank-deficient)."""


class EmbeddingPostprocessor:
    """``x -> (x - mean) @ projection``: identity, centring or PCA-whitening, fitted on key embeddings.

    Shapes: ``mean`` ``(H,)``, ``projection`` ``(H, H)``; :meth:`transform` maps ``(N, H) -> (N, H)``.
    """

    def __init__(self, method: str, mean: np.ndarray | None = None, projection: np.ndarray | None = None) -> None:
        if method not in POSTPROCESSING:
            raise ValueError(f"postprocess must be one of {POSTPROCESSING}, got {method!r}")
        self.method = method
        self.mean = mean
        self.projection = projection

    @classmethod
    def fit(cls, keys: Any, method: str, block: int = 65_536) -> EmbeddingPostprocessor:
        """Fit ``method`` on the key embeddings ``(N, H)``; ``"none"`` fits nothing.

        Mean and covariance are accumulated in float64 over blocks of rows, so ``keys`` may be a memory map of a
        reference library larger than RAM.
        """
        if method not in POSTPROCESSING:
            raise ValueError(f"postprocess must be one of {POSTPROCESSING}, got {method!r}")
        if method == "none":
            return cls(method)
        if np.ndim(keys) != 2 or len(keys) < 2:
            raise ValueError(f"fitting {method!r} needs at least two key embeddings (N, H), got shape {np.shape(keys)}")
        count, width = keys.shape
        total, gram = np.zeros(width), np.zeros((width, width))
        for start in range(0, count, block):
            rows = np.asarray(keys[start : start + block], dtype=np.float64)
            total += rows.sum(axis=0)
            if method == "whiten":
                gram += rows.T @ rows
        mean = total / count
        if method == "center":
            return cls(method, mean.astype(np.float32), None)
        covariance = (gram - count * np.outer(mean, mean)) / (count - 1)
        eigenvalues, eigenvectors = np.linalg.eigh(covariance)
        eigenvalues = np.clip(eigenvalues, 0.0, None)
        scale = 1.0 / np.sqrt(eigenvalues + WHITEN_EPSILON * max(float(eigenvalues.max()), 1e-12))
        return cls(method, mean.astype(np.float32), (eigenvectors * scale).astype(np.float32))

    def transform(self, embeddings: Any) -> np.ndarray:
        """Apply the fitted transform to ``(N, H)`` embeddings (a copy; float32)."""
        x = np.asarray(embeddings, dtype=np.float32)
        if self.method == "none":
            return x.copy()
        if x.ndim != 2 or x.shape[1] != len(self.mean):
            raise ValueError(f"embeddings must be (N, {len(self.mean)}), got shape {x.shape}")
        x = x - self.mean
        return x @ self.projection if self.projection is not None else x

    def save(self, folder: str | Path) -> None:
        """``postprocess.safetensors`` (tensors and the method in its metadata) in ``folder``."""
        from safetensors.numpy import save_file

        tensors = {"mean": self.mean} if self.mean is not None else {}
        if self.projection is not None:
            tensors["projection"] = self.projection
        tensors = tensors or {"mean": np.zeros(0, np.float32)}  # safetensors needs at least one tensor
        save_file(tensors, str(Path(folder) / POSTPROCESS_FILE), metadata={"method": self.method})

    @classmethod
    def load(cls, folder: str | Path) -> EmbeddingPostprocessor:
        """The transform saved by :meth:`save`; a folder without one means ``"none"``."""
        from safetensors import safe_open

        path = Path(folder) / POSTPROCESS_FILE
        if not path.is_file():
            return cls("none")
        with safe_open(str(path), framework="numpy") as handle:
            method = (handle.metadata() or {}).get("method", "")
            names = handle.keys()
            tensors = {name: handle.get_tensor(name) for name in names}
        if method not in POSTPROCESSING:
            raise ValueError(f"{path}: unknown post-processing method {method!r}")
        if method == "none":
            return cls(method)
        return cls(method, tensors.get("mean"), tensors.get("projection"))


def top_pc_variance_share(embeddings: Any) -> float:
    """Share of the total variance carried by the first principal component of ``(N, H)`` embeddings.

    A collapse diagnostic: near ``1/H`` for isotropic embeddings, near 1 when one shared direction dominates
    (then raw cosine similarity says little about the barcodes).
    """
    x = np.asarray(embeddings, dtype=np.float64)
    if x.ndim != 2 or len(x) < 2:
        raise ValueError(f"need at least two embeddings (N, H), got shape {x.shape}")
    singular = np.linalg.svd(x - x.mean(axis=0), compute_uv=False)
    power = singular**2
    return float(power[0] / power.sum()) if power.sum() > 0 else 0.0


__all__ = ["POSTPROCESSING", "POSTPROCESS_FILE", "EmbeddingPostprocessor", "top_pc_variance_share"]
