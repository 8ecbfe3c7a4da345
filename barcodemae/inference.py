"""Barcode embeddings from a frozen encoder (ours or any Hugging Face folder) and a k-mer frequency baseline.

The one inference module (loading an encoder, tokenising, length batching, autocast, pooling): the evaluation
suite, ``barcodemae embed``, ``identify`` and the final evaluation of ``train.py`` all call :func:`embed_barcodes`,
and so does the periodic genus probe during pretraining: their numbers come from identical vectors.
Barcodes are sorted by length before batching (padding is then minimal; the original order is restored), the
forward pass runs under ``torch.inference_mode`` and optionally under bf16/fp16 autocast.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from barcodemae.devices import resolve_device
from barcodemae.embedding_settings import DTYPE_NAMES, DTYPES, FRAMES, LAYER_MEAN, POOLINGS
from barcodemae.kmer_frequencies import KmerFrequencyEmbedder
from barcodemae.model_folders import (
    CONFIG_FILE,
    check_config_fits_weights,
    load_config,
    read_model_config,
    stored_tensor_shapes,
)


# ---------------------------------------------------------------------------------------------- loading
def load_encoder(model_dir_or_name: str | os.PathLike, trust_remote_code: bool = False) -> tuple[Any, Any]:
    """The encoder (``AutoModel``, in eval mode) and tokenizer of a model folder or hub name.

    Works for BarcodeMAE folders (pretraining heads are dropped: the encoder is kept) and for any other Hugging Face
    model (BERT, DNABERT-2, ...). A missing local folder, or a folder without a ``config.json``, raises
    :class:`FileNotFoundError` naming it instead of a network error from the hub. ``trust_remote_code``: see
    :func:`load_pretrained`.
    """
    model, tokenizer = load_pretrained(model_dir_or_name, "AutoModel", trust_remote_code=trust_remote_code)
    return model.eval(), tokenizer


OUR_CLASSES = {
    "AutoModel": "BarcodeMAEModel",
    "AutoModelForSequenceClassification": "BarcodeMAEForSequenceClassification",
}
"""The installed class that loads a BarcodeMAE folder for each Auto class used here (no folder code is run)."""


ENCODER_OF_SEQ2SEQ = {"longt5": "LongT5EncoderModel", "t5": "T5EncoderModel", "mt5": "MT5EncoderModel"}
"""The encoder-only class of each encoder-decoder family embedded here (ENBED is LongT5): the decoder's weights
in the folder are skipped."""


def is_local_name(name: str) -> bool:
    """Whether ``name`` means a path on this machine rather than a hub repository id."""
    path = Path(name).expanduser()
    windows_path = os.sep != "/" and os.sep in name
    return path.exists() or name.startswith((".", "/", "~")) or name.count("/") > 1 or windows_path


def load_pretrained(
    model_dir_or_name: str | os.PathLike,
    auto_class: str,
    trust_remote_code: bool = False,
    **model_kwargs: Any,
) -> tuple[Any, Any]:
    """A model (``auto_class``: ``"AutoModel"`` or ``"AutoModelForSequenceClassification"``) and its tokenizer,
    with clear errors for a bad location or a bad folder.

    Shared by the embedding loop and fine-tuning, so both name a missing folder, a folder without
    ``config.json`` or an unreachable hub name the same way.

    Whose code runs: a BarcodeMAE folder (``model_type == "barcodemae"``) always loads through the *installed*
    classes (:class:`BarcodeMAEModel`, :class:`BarcodeTokenizer`), never through the Python files copied into it, so
    nothing from the folder executes; so does the tokenizer of any local folder saved with ours (ENBED's LongT5
    folders, whose model is plain ``transformers``). Any other model's own code (its ``config.json`` ``auto_map``)
    runs only with ``trust_remote_code=True`` (``--trust-remote-code``): by default none does, as in
    ``transformers``, because a folder someone else made is no safer than a hub repository.

    What is read: safetensors weights only (``use_safetensors=True``): pickled ``pytorch_model.bin`` files are never
    unpickled, since that can run any code. A local folder is checked before any weights are read or any tensor is
    allocated (:mod:`barcodemae.model_folders`): the sizes in ``config.json``, the weights' headers, and the shape of
    every tensor the config implies against the stored one.
    """
    from transformers import AutoTokenizer

    from barcodemae import BarcodeTokenizer  # importing barcodemae also registers it with the Auto* classes

    name = os.fspath(model_dir_or_name)
    path = Path(name).expanduser()
    local = is_local_name(name)
    if local and not path.is_dir():
        raise FileNotFoundError(f"model folder {name!r} does not exist")
    if path.is_dir() and not (path / CONFIG_FILE).is_file():
        raise FileNotFoundError(
            f"{name!r} is not a model folder: it has no config.json (expected a save_pretrained folder)"
        )
    stored = None
    if local:  # read as data before any model code or config class runs
        model_type = read_model_config(path).get("model_type")
        stored = stored_tensor_shapes(path)
    trust = bool(trust_remote_code)  # None, from callers written when it meant "local folders", is not trusted
    try:
        if not local:
            model_type = _hub_model_type(name)
        loader, config, load_kwargs = _model_loader(name, model_type, auto_class, trust, model_kwargs)
        if stored is not None:
            check_config_fits_weights(
                path, stored, lambda: _build(loader, config, trust),
                heads_may_differ=bool(load_kwargs.get("ignore_mismatched_sizes")),
            )
        if model_type != "barcodemae":
            load_kwargs["trust_remote_code"] = trust
        model = loader.from_pretrained(name, config=config, use_safetensors=True, **load_kwargs)
        if model_type == "barcodemae" or (local and _tokenizer_class(path) == BarcodeTokenizer.__name__):
            tokenizer = BarcodeTokenizer.from_pretrained(name)  # ours, from the package (ENBED folders too)
        else:
            tokenizer = AutoTokenizer.from_pretrained(name, trust_remote_code=trust)
    except OSError as error:
        raise FileNotFoundError(
            f"cannot load model {name!r} (not a local model folder, and not on the hub "
            f"or the hub is unreachable): {error}"
        ) from error
    except ValueError as error:
        if "trust_remote_code" in str(error) and not trust:
            raise ValueError(
                f"{name}: the model needs its own Python code to load (auto_map of its config); pass "
                "--trust-remote-code (trust_remote_code=True) if you trust that code"
            ) from error
        raise
    return model, tokenizer


def _model_loader(
    name: str, model_type: str | None, auto_class: str, trust: bool, model_kwargs: dict[str, Any]
) -> tuple[Any, Any, dict[str, Any]]:
    """The class whose ``from_pretrained`` loads the model, its config (``model_kwargs`` such as ``num_labels``
    applied) and the remaining ``from_pretrained`` arguments.

    A config that its class refuses becomes a one-line error naming ``config.json``
    (:func:`~barcodemae.model_folders.load_config`).
    """
    import transformers

    import modeling_barcodemae

    if model_type == "barcodemae":
        loader = getattr(modeling_barcodemae, OUR_CLASSES[auto_class])
        config_loader, extra = loader.config_class, {}
    else:
        # An encoder-decoder's AutoModel needs decoder inputs: embeddings come from its encoder alone (ENBED).
        encoder_class = ENCODER_OF_SEQ2SEQ.get(model_type or "") if auto_class == "AutoModel" else None
        loader = getattr(transformers, encoder_class or auto_class)
        config_loader, extra = transformers.AutoConfig, {"trust_remote_code": trust}
    config, load_kwargs = load_config(config_loader, name, **extra, **model_kwargs)
    return loader, config, load_kwargs


def _build(loader: Any, config: Any, trust: bool) -> Any:
    """The model ``loader`` makes from ``config`` with fresh weights (an Auto class picks the class from the
    config, as its ``from_pretrained`` does)."""
    if hasattr(loader, "from_config"):
        return loader.from_config(config, trust_remote_code=trust)
    return loader._from_config(config)


def _tokenizer_class(folder: Path) -> str | None:
    """``tokenizer_class`` of a local folder's ``tokenizer_config.json`` (read as JSON), ``None`` without one."""
    import json

    config = folder.expanduser() / "tokenizer_config.json"
    return json.loads(config.read_text()).get("tokenizer_class") if config.is_file() else None


def _hub_model_type(name: str) -> str | None:
    """``model_type`` of a hub repository's ``config.json`` (read as JSON: no code runs)."""
    from transformers import PretrainedConfig

    config, _ = PretrainedConfig.get_config_dict(name)
    return config.get("model_type")


# -------------------------------------------------------------------------------------------- baseline
# ------------------------------------------------------------------------------------------- embedding
def _resolve_device(model: torch.nn.Module, device: str | torch.device | None) -> torch.device:
    device = resolve_device(device)
    if next(model.parameters()).device != device:
        model.to(device)
    return device


def autocast_dtype(dtype: str | torch.dtype | None) -> torch.dtype | None:
    """The autocast dtype of a ``--dtype`` choice (:data:`~barcodemae.embedding_settings.DTYPES`, or torch's name
    of it), ``None`` for full precision."""
    if isinstance(dtype, str):
        if dtype not in DTYPE_NAMES:
            raise ValueError(f"dtype must be one of {DTYPES} (or None for float32), got {dtype!r}")
        dtype = getattr(torch, DTYPE_NAMES[dtype])
    return None if dtype in (None, torch.float32) else dtype


def tokenize_barcodes(
    tokenizer: Any, batch: list[str], max_tokens: int | None, frame_offsets: int | np.ndarray = 0
) -> dict[str, torch.Tensor]:
    """Our tokenizer cleans and frames barcodes itself (``frame_offsets``: frame 0 for evaluation, or one offset
    per barcode); others get raw DNA, truncated."""
    # A BarcodeTokenizer, installed or loaded from a folder's own code (another class object: isinstance would miss it)
    if hasattr(tokenizer, "nucleotide_spans"):
        return dict(tokenizer(batch, frame_offset=frame_offsets, padding=True, return_tensors="pt"))
    encoded = tokenizer(
        batch, padding=True, truncation=max_tokens is not None, max_length=max_tokens, return_tensors="pt"
    )
    return {key: value for key, value in encoded.items() if key in ("input_ids", "attention_mask")}


def length_batches(lengths: Sequence[int] | np.ndarray, batch_size: int) -> list[np.ndarray]:
    """Record indices in batches of ``batch_size``, longest first (stable): little padding, and a batch too
    large for memory fails at once rather than at the end."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be positive, got {batch_size}")
    order = np.argsort(-np.asarray(lengths, dtype=np.int64), kind="stable")
    return [order[start : start + batch_size] for start in range(0, len(order), batch_size)]


def pool(hidden: torch.Tensor, attention_mask: torch.Tensor, pooling: str) -> torch.Tensor:
    """One vector per barcode from token states ``(B, L, H)``; see :data:`POOLINGS`."""
    if pooling == "cls":
        return hidden[:, 0]
    if pooling == "tokens":  # the [CLS] at position 0 left out
        attention_mask = attention_mask.clone()
        attention_mask[:, 0] = 0
    mask = attention_mask.unsqueeze(-1).to(torch.bool)
    if pooling == "max":
        return hidden.masked_fill(~mask, torch.finfo(hidden.dtype).min).amax(dim=1)
    weights = mask.to(hidden.dtype)
    return (hidden * weights).sum(dim=1) / weights.sum(dim=1).clamp(min=1.0)


REPRESENTATION_POOLING = {"tokens_with_cls": "mean", "tokens": "tokens", "cls": "cls"}
"""``BarcodeMAEConfig.representation`` -> the :data:`POOLINGS` name that computes it."""


def model_pooling(model: Any) -> str:
    """How a model's own barcode embedding pools its token states: a BarcodeMAE encoder's ``config.representation``
    (``cls``, ``tokens`` or ``tokens_with_cls`` = ``mean``), else ``"mean"``.

    Why: ``pooling=None`` everywhere (``embed``, ``identify``, ``eval/run.py``, the training-time probe) means "the
    embedding this model was made to give", as ``layer=None`` does for :func:`pooled_layer`; a model trained with
    a [CLS]-based taxonomy term is then scored and used on its [CLS] state.
    """
    return REPRESENTATION_POOLING[getattr(model.config, "representation", "tokens_with_cls")]


def pooled_layer(model: Any) -> int | str:
    """The hidden state a model's own barcode embedding pools: :data:`LAYER_MEAN` for a BarcodeMAE encoder with
    ``config.pooled_layers == "mean"``, else ``-1`` (the last block, as for any other Hugging Face encoder).

    Why: ``layer=None`` everywhere (``embed``, ``identify``, ``eval/run.py``, the training-time probe) means "the
    embedding this model was made to give", so a model exported with layer-average pooling is scored and used
    the way it was chosen.
    """
    return LAYER_MEAN if getattr(model.config, "pooled_layers", "last") == "mean" else -1


def model_frames(model: Any) -> str:
    """Which reading frames a model's own barcode embedding averages: a BarcodeMAE encoder's
    ``config.pooled_frames`` (``"first"`` or ``"all"``), else ``"first"``; ``frames=None`` everywhere means this,
    as ``layer=None`` means :func:`pooled_layer`."""
    return getattr(model.config, "pooled_frames", "first")


def reading_frames(tokenizer: Any, frames: str) -> int:
    """How many reading frames ``frames`` averages with this tokenizer: all of a :class:`BarcodeTokenizer`'s
    (``k`` for non-overlapping k-mers, 1 for characters and BPE) for ``"all"``, else 1.

    Another tokenizer (any Hugging Face model's) cannot be asked for a frame, so ``"all"`` is refused for it rather
    than silently computing the first frame only.
    """
    if frames not in FRAMES:
        raise ValueError(f"frames must be one of {FRAMES}, got {frames!r}")
    if frames == "first":
        return 1
    if not hasattr(tokenizer, "num_reading_frames"):
        raise ValueError(f"frames='all' needs a BarcodeMAE tokenizer, which can read a barcode from any of its first "
                         f"k bases; {type(tokenizer).__name__} cannot")
    return int(tokenizer.num_reading_frames)


def frame_views(batch: list[str], num_frames: int, k: int) -> tuple[list[str], np.ndarray]:
    """Each barcode of ``batch`` once per reading frame, frame-major: ``(num_frames * B)`` sequences and their
    frame offsets ``0, ..., num_frames - 1`` (each capped at ``len - k``, so that a barcode of fewer than
    ``k + offset`` bases still yields a token; its last frames then repeat)."""
    lengths = np.fromiter(map(len, batch), dtype=np.int64, count=len(batch))
    offsets = np.minimum(np.arange(num_frames)[:, None], np.maximum(lengths - k, 0)[None, :])
    return batch * num_frames, offsets.reshape(-1)


def embed_barcodes(
    model: Any,
    tokenizer: Any,
    sequences: Sequence[str],
    *,
    batch_size: int = 256,
    device: str | torch.device | None = None,
    pooling: str | None = None,
    layer: int | str | None = None,
    frames: str | None = None,
    dtype: str | torch.dtype | None = None,
    progress: bool = True,
) -> np.ndarray:
    """Embed barcodes with a frozen encoder: ``(N, H)`` float32, row ``i`` for ``sequences[i]``.

    Args:
        model: an encoder returning ``last_hidden_state`` (``load_encoder``), or a :class:`KmerFrequencyEmbedder`.
        tokenizer: its tokenizer (ignored for the k-mer baseline).
        batch_size: barcodes per forward pass (batches are length-sorted, so padding is small).
        device: where to run; ``None`` = CUDA when available, else CPU. The model is moved there.
        pooling: one of :data:`POOLINGS`; ``None`` the model's own (:func:`model_pooling`: what ``pooler_output``
            of BarcodeMAE gives).
        layer: which hidden state to pool: ``None`` the model's own choice (:func:`pooled_layer`), ``-1`` the last
            layer, ``0`` the embeddings, ``i`` after block ``i``, or ``"mean"`` (:data:`LAYER_MEAN`) for the
            average over all of them.
        frames: ``"first"`` (the barcode read from its first base), ``"all"`` (the mean over its reading frames,
            :func:`reading_frames`), or ``None`` for the model's own (:func:`model_frames`).
        dtype: autocast dtype (``"bf16"``/``"fp16"``) for speed on GPU; ``None`` = full float32.
        progress: show a tqdm bar.
    """
    if isinstance(model, KmerFrequencyEmbedder):
        return model(sequences, progress=progress)
    return embed_barcode_layers(
        model, tokenizer, sequences, layers=(layer,), batch_size=batch_size, device=device, pooling=pooling,
        frames=frames, dtype=dtype, progress=progress,
    )[0]


def check_layer(layer: int | str, num_layers: int | None) -> None:
    """Refuse a layer index outside ``[-(L+1), L]`` for an ``L``-block model, or an unknown name."""
    if isinstance(layer, str):
        if layer != LAYER_MEAN:
            raise ValueError(f"layer must be an integer or {LAYER_MEAN!r}, got {layer!r}")
        return
    if layer != -1 and num_layers is not None and not -(num_layers + 1) <= layer <= num_layers:
        raise ValueError(
            f"layer must be in [-{num_layers + 1}, {num_layers}] for a {num_layers}-layer model, got {layer}"
        )


def embed_barcode_layers(
    model: Any,
    tokenizer: Any,
    sequences: Sequence[str],
    *,
    layers: Sequence[int | str | None],
    batch_size: int = 256,
    device: str | torch.device | None = None,
    pooling: str | None = None,
    frames: str | None = None,
    dtype: str | torch.dtype | None = None,
    progress: bool = True,
) -> np.ndarray:
    """Pooled embeddings of several hidden states from one forward pass: ``(len(layers), N, H)`` float32.

    Why one pass: the training-time probe scores every layer (where pretraining helps or hurts is a per-layer
    question) at the cost of a single embedding of the keys and queries. ``layers`` entries are as
    :func:`embed_barcodes`'s ``layer``; the other arguments too. With ``F`` reading frames a forward pass holds
    the ``batch_size // F`` barcodes of a batch once per frame (``F * B`` rows, as many as one frame would), and
    their pooled states are averaged over the frames.
    """
    pooling = model_pooling(model) if pooling is None else pooling
    if pooling not in POOLINGS:
        raise ValueError(f"pooling must be one of {POOLINGS}, got {pooling!r}")
    if pooling in ("cls", "tokens") and getattr(tokenizer, "framing", "cls_sep") == "none":
        raise ValueError(f"pooling={pooling!r} needs a leading [CLS] token, but this tokenizer has framing='none'")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    if not layers:
        raise ValueError("layers must name at least one hidden state")
    sequences = list(sequences)
    num_frames = reading_frames(tokenizer, model_frames(model) if frames is None else frames)
    layers = [pooled_layer(model) if layer is None else layer for layer in layers]
    num_layers = getattr(model.config, "num_hidden_layers", None)
    for layer in layers:
        check_layer(layer, num_layers)
    needs_all_states = any(layer != -1 for layer in layers)
    device = _resolve_device(model, device)
    autocast = autocast_dtype(dtype)
    max_tokens = getattr(model.config, "max_position_embeddings", None)
    out: np.ndarray | None = None  # allocated at the first batch: configs name the width differently
    model.eval()
    bar = tqdm(total=len(sequences), desc="embedding", unit="barcode", disable=not progress)
    with (
        torch.inference_mode(),
        torch.autocast(device.type, dtype=autocast or torch.bfloat16, enabled=autocast is not None),
    ):
        for rows in length_batches([len(sequence) for sequence in sequences], max(batch_size // num_frames, 1)):
            views, offsets = frame_views([sequences[i] for i in rows], num_frames, getattr(tokenizer, "k", 1))
            tokens = tokenize_barcodes(tokenizer, views, max_tokens, offsets if num_frames > 1 else 0)
            batch = {key: value.to(device) for key, value in tokens.items()}
            # output_hidden_states only when needed: some remote-code encoders (DNABERT-2) do not accept it
            outputs = model(**batch, output_hidden_states=True) if needs_all_states else model(**batch)
            pooled = torch.stack(
                [pool(_hidden_state(outputs, layer), batch["attention_mask"], pooling) for layer in layers]
            )  # (layers, F * B, H), frame-major
            pooled = pooled.unflatten(1, (num_frames, len(rows))).mean(dim=1).float().cpu().numpy()
            if out is None:
                out = np.zeros((len(layers), len(sequences), pooled.shape[2]), dtype=np.float32)
            out[:, rows] = pooled
            bar.update(len(rows))
    bar.close()
    if out is None:  # no sequences
        out = np.zeros((len(layers), 0, int(getattr(model.config, "hidden_size", 0))), dtype=np.float32)
    return out


def _hidden_state(outputs: Any, layer: int | str) -> torch.Tensor:
    """Token states ``(B, L, H)`` of one layer (``"mean"``: averaged over all layers) from a model output."""
    if layer == LAYER_MEAN:
        return torch.stack(outputs.hidden_states).mean(dim=0)
    if layer != -1:
        return outputs.hidden_states[layer]
    # remote-code encoders may return a plain tuple
    return outputs[0] if isinstance(outputs, tuple) else outputs.last_hidden_state


__all__ = [
    "LAYER_MEAN",
    "POOLINGS",
    "REPRESENTATION_POOLING",
    "KmerFrequencyEmbedder",
    "autocast_dtype",
    "check_layer",
    "embed_barcode_layers",
    "embed_barcodes",
    "frame_views",
    "length_batches",
    "load_encoder",
    "load_pretrained",
    "model_frames",
    "model_pooling",
    "pool",
    "pooled_layer",
    "reading_frames",
    "tokenize_barcodes",
]
