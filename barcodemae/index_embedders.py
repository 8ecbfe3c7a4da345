"""What turns barcodes into a reference index's vectors: a pretrained encoder, or k-mer frequency profiles.

Why one notion: ``identify build`` (resumable shards, post-processing, calibration) and ``identify query`` do the same
work whichever embedder made the vectors. Each embedder gives ``embed(sequences) -> (n, d)`` float32, its
``fingerprint`` (what a resumed build and every query must match), its ``info()`` (the ``index.json`` entry that says
how to remake it) and ``min_length`` (the shortest barcode it can embed: one token, or one k-mer).
:func:`requested_embedder` makes the embedder a user asked for (``--model`` or ``--kmer``);
:func:`index_embedder` the one a query of an index needs, refusing a request that differs from what built it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from functools import cached_property
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from barcodemae.checksums import is_same_model, model_fingerprint
from barcodemae.embed_files import load_model, token_min_length
from barcodemae.embedding_settings import DEFAULT_EMBEDDING, EmbeddingSettings
from barcodemae.kmer_frequencies import KmerFrequencyEmbedder


class IndexEmbedder(Protocol):
    """The embedder of a reference index (see the module docstring)."""

    kind: str
    """``model`` or ``kmer``: the ``index.json`` ``embedder.kind`` (:data:`EMBEDDERS`)."""

    @property
    def fingerprint(self) -> str:
        """Equal for two embedders exactly when they make the same vectors."""

    def matches(self, stored: dict[str, Any]) -> bool:
        """Whether it makes the vectors of an index's ``embedder`` entry (:meth:`info` of the embedder that built
        it, perhaps by an older version of this package)."""

    @property
    def noun(self) -> str:
        """What an index built by this embedder was built with, in an error message ("model", "5-mer profiles")."""

    @property
    def min_length(self) -> int:
        """Bases in the shortest barcode it embeds; shorter ones are rejected by the cleaning."""

    def info(self) -> dict[str, Any]:
        """The ``index.json`` ``embedder`` entry: ``kind``, ``fingerprint`` and what remakes the embedder."""

    def embed(self, sequences: Sequence[str], *, progress: bool = False) -> np.ndarray:
        """``(len(sequences), d)`` float32 vectors, row ``i`` for ``sequences[i]``."""


class ModelEmbedder:
    """A pretrained encoder's own barcode embedding (its pooling and layer), ``(n, hidden_size)``.

    The model loads at the first use that needs it, so a query given the wrong model folder is refused by its
    fingerprint (config and weight files) before seconds of loading. ``settings``: batch size, device,
    remote-code policy and reading frames (``frames``: ``None`` for the model's own; ``identify build --frames
    first`` makes a ``pooled_frames="all"`` model's index k times faster to build and query, and the index records
    it, so its queries embed the same way); the progress bar is :meth:`embed`'s ``progress``.
    """

    kind = "model"

    def __init__(self, model_dir: str | Path, settings: EmbeddingSettings = DEFAULT_EMBEDDING) -> None:
        settings.check_unset(("pooling", "layer", "dtype"), "a reference index, which embeds with its model's own "
                             "pooling and layer in float32,")
        self.model_dir = Path(model_dir)
        self.settings = settings

    def __str__(self) -> str:
        return str(self.model_dir)

    @classmethod
    def from_info(cls, stored: dict[str, Any], settings: EmbeddingSettings) -> ModelEmbedder:
        """The embedder of an ``index.json`` ``embedder`` entry (:meth:`info`), in the reading frames the index was
        built with."""
        return cls(stored["model_dir"], stored_frames(stored, settings))

    @property
    def noun(self) -> str:
        return "model"

    @cached_property
    def fingerprint(self) -> str:
        return model_fingerprint(self.model_dir)

    def matches(self, stored: dict[str, Any]) -> bool:
        """Whether the folder holds the model of an index's ``embedder`` entry (its content, wherever it lies)."""
        return is_same_model(self.model_dir, stored["fingerprint"])

    @cached_property
    def encoder(self) -> tuple[Any, Any]:
        """``(model, tokenizer)`` of the folder."""
        return load_model(self.model_dir, trust_remote_code=self.settings.trust_remote_code)

    @property
    def min_length(self) -> int:
        return token_min_length(self.encoder[1])

    def info(self) -> dict[str, Any]:
        from barcodemae.inference import model_frames, model_pooling, pooled_layer

        model = self.encoder[0]
        return {"kind": self.kind, "model_dir": str(self.model_dir.resolve()), "fingerprint": self.fingerprint,
                "pooling": model_pooling(model), "layer": pooled_layer(model),
                "frames": self.settings.frames or model_frames(model)}

    def embed(self, sequences: Sequence[str], *, progress: bool = False) -> np.ndarray:
        from barcodemae.inference import embed_barcodes

        model, tokenizer = self.encoder
        # pooling, layer, frames and dtype are unset (__init__): the model's own, in float32
        return embed_barcodes(model, tokenizer, list(sequences), **self.settings.forward_options(), progress=progress)


class KmerProfileEmbedder:
    """Overlapping k-mer frequency profiles (:class:`~barcodemae.kmer_frequencies.KmerFrequencyEmbedder`),
    ``(n, 4**k)``: an index that needs no pretrained model. Every window counts (stride 1), so a read's profile does
    not depend on where it starts, as it would with non-overlapping k-mers."""

    kind = "kmer"

    def __init__(self, k: int) -> None:
        self.profile = KmerFrequencyEmbedder(k)

    def __str__(self) -> str:
        return f"{self.profile.k}-mer profiles"

    @classmethod
    def from_info(cls, stored: dict[str, Any], settings: EmbeddingSettings) -> KmerProfileEmbedder:
        """The embedder of an ``index.json`` ``embedder`` entry (:meth:`info`); counting k-mers needs no
        ``settings``."""
        return cls(stored["k"])

    @property
    def noun(self) -> str:
        return str(self)

    @property
    def fingerprint(self) -> str:
        return f"kmer:k={self.profile.k}:stride={self.profile.stride}"

    def matches(self, stored: dict[str, Any]) -> bool:
        """Whether these profiles are those of an index's ``embedder`` entry (same k and stride)."""
        return stored["kind"] == self.kind and stored["fingerprint"] == self.fingerprint

    @property
    def min_length(self) -> int:
        return self.profile.k

    def info(self) -> dict[str, Any]:
        return {"kind": self.kind, "k": self.profile.k, "stride": self.profile.stride,
                "fingerprint": self.fingerprint}

    def embed(self, sequences: Sequence[str], *, progress: bool = False) -> np.ndarray:
        return self.profile(sequences, progress=progress)


EMBEDDERS: dict[str, type[ModelEmbedder | KmerProfileEmbedder]] = {
    ModelEmbedder.kind: ModelEmbedder, KmerProfileEmbedder.kind: KmerProfileEmbedder}
"""``index.json``'s ``embedder.kind`` -> the class that remakes the embedder."""


def stored_frames(stored: dict[str, Any], settings: EmbeddingSettings) -> EmbeddingSettings:
    """``settings`` with the reading frames of an index's ``embedder`` entry (an index built before frames were
    recorded: the model's own); other frames asked of its queries are refused, they would give other vectors."""
    frames = stored.get("frames")
    if settings.frames is not None and settings.frames != frames:
        raise ValueError(f"the index was built with frames={frames!r}; its queries cannot embed with "
                         f"frames={settings.frames!r}")
    return replace(settings, frames=frames)


def requested_embedder(model_dir: str | Path | None, kmer: int | None,
                       settings: EmbeddingSettings = DEFAULT_EMBEDDING) -> IndexEmbedder | None:
    """The embedder of ``--model`` (run with ``settings``) or ``--kmer`` (at most one of them; ``None`` when neither
    is given)."""
    if model_dir is not None and kmer is not None:
        raise ValueError("give --model or --kmer, not both: an index holds one kind of vector")
    if kmer is not None:
        if settings.frames is not None:
            raise ValueError(f"--frames {settings.frames} is a model's option; a k-mer index counts every window")
        return KmerProfileEmbedder(kmer)
    if model_dir is not None:
        return ModelEmbedder(model_dir, settings)
    return None


def stored_embedder(info: dict[str, Any]) -> dict[str, Any]:
    """The ``embedder`` entry of an ``index.json``; indexes built before it record their model at the top level."""
    return info.get("embedder") or {"kind": ModelEmbedder.kind, "model_dir": info["model_dir"],
                                    "fingerprint": info["model_fingerprint"]}


def index_embedder(info: dict[str, Any], index_dir: str | Path, *, model_dir: str | Path | None = None,
                   kmer: int | None = None, settings: EmbeddingSettings = DEFAULT_EMBEDDING) -> IndexEmbedder:
    """The embedder that made an index's vectors, for its queries (a model runs with ``settings``).

    ``model_dir`` / ``kmer``: what the user asked for (e.g. the model folder after moving it); refused, naming both,
    unless it makes the same vectors as the index's own (same fingerprint). Neither: the index's own embedder.
    """
    stored = stored_embedder(info)
    own = EMBEDDERS[stored["kind"]].from_info(stored, settings)
    if model_dir is not None and stored["kind"] == ModelEmbedder.kind:
        settings = stored_frames(stored, settings)  # the model given at query time embeds as the index did
    requested = requested_embedder(model_dir, kmer, settings)
    if requested is None:
        if isinstance(own, ModelEmbedder) and (own.model_dir / "config.json").is_file() and not own.matches(stored):
            raise ValueError(f"{own.model_dir}: not the model the index {index_dir} was built with any more (its "
                             "config.json or weights changed since): rebuild the index with it, or pass --model with "
                             "a copy of the model the index was built with")
        return own
    if requested.kind != own.kind or not requested.matches(stored):
        hint = f"; {own} need no --model" if isinstance(own, KmerProfileEmbedder) and model_dir is not None else ""
        raise ValueError(f"{requested}: not the {own.noun} the index {index_dir} was built with{hint}")
    return requested


__all__ = [
    "EMBEDDERS",
    "IndexEmbedder",
    "KmerProfileEmbedder",
    "ModelEmbedder",
    "index_embedder",
    "requested_embedder",
    "stored_embedder",
    "stored_frames",
]
