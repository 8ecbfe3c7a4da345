"""Tokenise a loaded barcode dataset with ``datasets.map``: batched, multi-process and cached on disk.

Why here and not in the training loop: for 5M barcodes tokenisation is worth doing once; the Arrow cache then
makes every later run (and every worker) start from token ids. The reading frame is fixed (``frame_offset``,
default 0) so the cache is deterministic; random frame offsets are a training-time augmentation applied on the
fly, not baked into a cached file.
"""

from __future__ import annotations

import datasets
import pyarrow.compute as pc
from datasets.fingerprint import Hasher

from barcodemae.tokenization.sequence_cleaning import InvalidBarcodeError

TOKENIZE_BATCH_SIZE = 1_000


def _encode_batch(batch: dict[str, list], tokenizer, frame_offset: int) -> dict[str, list]:
    encoded = tokenizer(
        batch["dna_barcode"], frame_offset=frame_offset, padding=False, truncation=False,
        return_attention_mask=False, return_token_type_ids=False,
    )
    return {"input_ids": encoded["input_ids"]}


def check_min_length(dataset: datasets.Dataset, min_bp: int, batch_size: int = 100_000) -> None:
    """Raise naming the first barcode shorter than ``min_bp`` (a k-mer tokenizer needs at least ``k`` bases),
    before any worker starts; one Arrow pass over the barcode column."""
    arrow = dataset.select_columns(["processid", "dna_barcode"]).with_format("arrow")
    for batch in arrow.iter(batch_size=batch_size):
        lengths = pc.binary_length(batch["dna_barcode"])
        short = pc.less(lengths, min_bp)
        if pc.any(short).as_py():
            first = pc.index(short, True).as_py()
            raise InvalidBarcodeError(
                batch["processid"][first].as_py(),
                f"{lengths[first].as_py()} bp is shorter than the tokenizer's k={min_bp}; "
                f"load with min_length>={min_bp}",
            )


def tokenize_dataset(
    dataset: datasets.Dataset | datasets.IterableDataset,
    tokenizer,
    *,
    frame_offset: int = 0,
    num_proc: int | None = None,
    batch_size: int = TOKENIZE_BATCH_SIZE,
    keep_columns: bool = True,
):
    """Add an ``input_ids`` column (``[CLS] tokens [SEP]``, unpadded, int32) to a dataset from the loaders.

    Works on in-memory (cached, ``num_proc`` workers) and streaming datasets. ``keep_columns=False`` keeps only
    ``input_ids`` and the label columns (the smallest cache for pretraining). Pad and mask per batch with the
    project's collators.
    """
    label_columns = [name for name in (dataset.column_names or []) if name.endswith("_label")]
    remove = None if keep_columns else [name for name in dataset.column_names if name not in label_columns]
    features = None
    if dataset.features is not None:
        kept = {} if remove else dict(dataset.features)
        kept.update({name: dataset.features[name] for name in label_columns})
        kept["input_ids"] = datasets.List(datasets.Value("int32"))
        features = datasets.Features(kept)
    kwargs = {
        "function": _encode_batch, "batched": True, "batch_size": batch_size, "remove_columns": remove,
        "features": features,
        "fn_kwargs": {"tokenizer": tokenizer, "frame_offset": frame_offset},
    }
    if isinstance(dataset, datasets.IterableDataset):
        return dataset.map(**kwargs)
    if getattr(tokenizer, "scheme", None) == "kmer" and len(dataset):
        check_min_length(dataset, tokenizer.k)
    return dataset.map(
        **kwargs, num_proc=num_proc if num_proc and num_proc > 1 else None, desc="tokenizing barcodes",
        new_fingerprint=tokenized_fingerprint(dataset, tokenizer, frame_offset, keep_columns),
    )


def tokenized_fingerprint(dataset: datasets.Dataset, tokenizer, frame_offset: int, keep_columns: bool) -> str:
    """Cache key from what determines the ids (vocabulary, scheme, k, stride, max_bp, frame) rather than from
    the tokenizer object, whose lazily built internal caches would change its hash after the first call."""
    settings = tuple(getattr(tokenizer, name, None) for name in ("scheme", "k", "stride", "max_bp"))
    return Hasher.hash(
        ("barcodemae.tokenize_dataset/1", dataset._fingerprint, tokenizer.backend_tokenizer.to_str(), settings,
         frame_offset, keep_columns)
    )
