"""How barcodes become vectors, in one place: :class:`EmbeddingSettings` and the choices its flags offer.

Why: ``barcodemae embed``, ``identify build`` / ``query``, ``eval/run.py`` (``barcodemae evaluate``) and the
fine-tuning of the evaluation all load a model and run it over batches of barcodes, with the same knobs (batch size,
device, autocast dtype, pooling, layer, progress bars, whether a folder's own code may run). Each command once
declared them itself, with its own defaults, choices and help; now the library functions take one
:class:`EmbeddingSettings`, and every parser gets its flags from :func:`add_embedding_flags` and builds the settings
back with :meth:`EmbeddingSettings.from_args`. ``eval/run.py``'s
:class:`~barcodemae.eval.run.EvaluationSettings` extends it, as transformers' ``Seq2SeqTrainingArguments`` extends
``TrainingArguments``.

Nothing heavy is imported (building a parser must not load torch: ``--help`` answers at once;
tests/test_cli_startup.py); :mod:`barcodemae.inference` re-exports :data:`POOLINGS` and :data:`LAYER_MEAN`.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from dataclasses import dataclass, fields
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from typing_extensions import Self

POOLINGS = ("mean", "tokens", "cls", "max")
"""``mean``: average over non-pad tokens, [CLS] and [SEP] included (BarcodeMAE+'s ``tokens_with_cls``; the BIOSCAN
protocol's embedding); ``tokens``: the same without position 0, the [CLS]; ``cls``: the first token's state;
``max``: element-wise maximum over non-pad tokens. Unset (``None``) means the model's own
(``config.representation``, see ``barcodemae.inference.model_pooling``)."""

FRAMES = ("first", "all")
"""``first``: the barcode tokenized from its first base (the BIOSCAN-5M protocol); ``all``: the mean of its embeddings
tokenized from each of its first k bases (every reading frame of non-overlapping k-mers). Unset (``None``) means the
model's own (``config.pooled_frames``, see ``barcodemae.inference.model_frames``)."""

LAYER_MEAN = "mean"
"""``layer="mean"``: the average of every hidden state (embeddings and each block), pooled the same way."""

DTYPES = ("float32", "bf16", "fp16")
"""``--dtype``: full precision, or the forward pass under bfloat16 / float16 autocast (GPU speed; vectors then differ
from float32 in the third decimal). Unset (``None``) is float32."""

DTYPE_NAMES = {"float32": "float32", "fp32": "float32", "bf16": "bfloat16", "bfloat16": "bfloat16",
               "fp16": "float16", "float16": "float16"}
"""Every spelling of a dtype that Python callers may give (:data:`DTYPES` and torch's names) -> torch's name
(:func:`barcodemae.inference.autocast_dtype`)."""

DEFAULT_SHARD_SIZE = 16_384
"""Records per saved shard of a resumable embedding (``embed`` and ``identify build``, ``--shard-size``): a killed
run recomputes at most this many."""

EMBEDDING_FLAGS = ("batch_size", "device", "dtype", "pooling", "layer", "frames", "progress", "trust_remote_code")
"""The fields of :class:`EmbeddingSettings` in the order :func:`add_embedding_flags` adds their flags."""


def parse_layer(value: str) -> int | str:
    """A ``--layer`` command-line value: an integer, or :data:`LAYER_MEAN`."""
    if value == LAYER_MEAN:
        return value
    try:
        return int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be an integer or {LAYER_MEAN!r}, got {value!r}") from None


@dataclass(frozen=True)
class EmbeddingSettings:
    """How a model is loaded and run over barcodes; the flags of :func:`add_embedding_flags` have the same names.

    ``batch_size``: barcodes per forward pass (batches are length-sorted, so padding is small). ``device``: a torch
    device name, ``None`` for CUDA when available, else the CPU. ``dtype``: one of :data:`DTYPES` (or torch's
    name), ``None`` for float32. ``pooling`` (:data:`POOLINGS`), ``layer`` (an index, ``-1`` the last block, ``0``
    the embeddings, or :data:`LAYER_MEAN`) and ``frames`` (:data:`FRAMES`): ``None`` for the model's own
    (``config.representation``, ``config.pooled_layers``, ``config.pooled_frames``). ``progress``: show progress
    bars. ``trust_remote_code``: let a model that is not BarcodeMAE run the Python code its folder ships (default
    no, as in transformers; :func:`~barcodemae.inference.load_pretrained`).
    """

    batch_size: int = 128
    device: str | None = None
    dtype: str | None = None
    pooling: str | None = None
    layer: int | str | None = None
    frames: str | None = None
    progress: bool = True
    trust_remote_code: bool = False

    def __post_init__(self) -> None:
        if not isinstance(self.batch_size, int) or self.batch_size < 1:
            raise ValueError(f"batch_size must be a positive integer, got {self.batch_size!r}")
        if self.dtype is not None and self.dtype not in DTYPE_NAMES:
            raise ValueError(f"dtype must be one of {DTYPES} (or None for float32), got {self.dtype!r}")
        if self.pooling is not None and self.pooling not in POOLINGS:
            raise ValueError(f"pooling must be one of {POOLINGS}, got {self.pooling!r}")
        if self.frames is not None and self.frames not in FRAMES:
            raise ValueError(f"frames must be one of {FRAMES}, got {self.frames!r}")
        if isinstance(self.layer, str) and self.layer != LAYER_MEAN:
            raise ValueError(f"layer must be an integer or {LAYER_MEAN!r}, got {self.layer!r}")

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> Self:
        """The settings of parsed flags (their destinations are the field names; a field without a flag keeps its
        default)."""
        return cls(**{field.name: getattr(args, field.name) for field in fields(cls) if field.name in args})

    def forward_options(self) -> dict[str, Any]:
        """The keyword arguments of :func:`barcodemae.inference.embed_barcodes` these settings fix: everything but
        ``progress``, which each caller shows its own way (one bar over shards, or the embedding's own)."""
        return {"batch_size": self.batch_size, "device": self.device, "pooling": self.pooling, "layer": self.layer,
                "frames": self.frames, "dtype": self.dtype}

    def check_unset(self, names: Sequence[str], work: str) -> None:
        """Refuse settings among ``names`` that ``work`` has no use for, rather than ignore them: e.g. an index
        embeds with its model's own pooling, so ``pooling="cls"`` would silently not be used."""
        given = [f"{name}={getattr(self, name)!r}" for name in names if getattr(self, name) is not None]
        if given:
            raise ValueError(f"{work} does not take {', '.join(given)}: leave {', '.join(names)} unset")


DEFAULT_EMBEDDING = EmbeddingSettings()
"""The settings of a library function not given any (``settings=DEFAULT_EMBEDDING``): frozen, so one instance serves
every call."""

EMBEDDING_HELP = {
    "batch_size": "barcodes per forward pass (default %(default)s)",
    "device": "torch device, e.g. cuda, cuda:1, cpu (default: cuda when available, else cpu)",
    "dtype": "autocast dtype of the forward pass: bf16 or fp16 for GPU speed (default: float32)",
    "pooling": "token states -> one vector: mean (all tokens; BarcodeMAE+'s tokens_with_cls), tokens (all but "
    "[CLS]), cls, max (default: the model's own, config.representation)",
    "layer": f"hidden state to pool: -1 the last block, 0 the embeddings, {LAYER_MEAN!r} their average "
    "(default: the model's own, config.pooled_layers of a BarcodeMAE model, else the last)",
    "frames": "reading frames to average: first (the barcode from its first base) or all (from each of its first k "
    "bases, k forward passes; non-overlapping k-mers then no longer depend on where a read starts) (default: the "
    "model's own, config.pooled_frames of a BarcodeMAE model, else first)",
    "progress": "hide the progress bars (model loading, embedding)",
    "trust_remote_code": "let a model that is not BarcodeMAE run the Python code its folder or hub repository ships "
    "(default: no, as in transformers); BarcodeMAE folders always load through the installed package, running none "
    "of their code",
}
"""Each embedding flag's help, written once for every command."""


def add_embedding_flags(
    parser: argparse.ArgumentParser, defaults: EmbeddingSettings, names: Sequence[str] = EMBEDDING_FLAGS
) -> None:
    """The flags of the :class:`EmbeddingSettings` fields ``names`` on ``parser``, with ``defaults``' values (a
    command that embeds with its model's own pooling leaves ``pooling``, ``layer`` and ``dtype`` out).

    ``--trust-remote-code`` is off by default, as in ``transformers``; ``--no-trust-remote-code``, the default
    spelled out, stays accepted for scripts written when it was not.
    """
    flags: dict[str, dict[str, Any]] = {
        "batch_size": {"type": int},
        "device": {},
        "dtype": {"choices": DTYPES},
        "pooling": {"choices": POOLINGS},
        "layer": {"type": parse_layer},
        "frames": {"choices": FRAMES},
        "progress": {"action": "store_false"},
        "trust_remote_code": {"action": argparse.BooleanOptionalAction},
    }
    for name in names:
        option = "--no-progress" if name == "progress" else "--" + name.replace("_", "-")
        parser.add_argument(option, dest=name, default=getattr(defaults, name), help=EMBEDDING_HELP[name],
                            **flags[name])


__all__ = [
    "DEFAULT_EMBEDDING",
    "DEFAULT_SHARD_SIZE",
    "DTYPES",
    "DTYPE_NAMES",
    "EMBEDDING_FLAGS",
    "EMBEDDING_HELP",
    "FRAMES",
    "LAYER_MEAN",
    "POOLINGS",
    "EmbeddingSettings",
    "add_embedding_flags",
    "parse_layer",
]
