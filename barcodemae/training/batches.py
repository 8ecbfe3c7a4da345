"""Deterministic, resumable, process-count-independent pretraining batches.

Why not a plain DataLoader: two promises of ``train.py`` need batches that are a pure function of
``(seed, epoch, batch index)``:

* exact resume -- the data position is two integers in ``trainer_state.json``, and the masks and reading
  frames of batch ``i`` do not depend on what ran before it;
* the same result on 1 or N processes at the same global batch -- every process builds the *global* batch
  (shuffle, reading frames, masks drawn for the whole batch from one generator) and keeps its own rows. The
  masked-token count of the whole global batch is then known everywhere without communication, which is what
  the loop needs to normalise the loss exactly as a single process would.

Building the global batch on each process costs one tokenizer call per batch (the reading frames, drawn by
``BarcodeTokenizer.draw_frame_offsets``, go in as one offset per barcode), which is small next to a forward
pass. Rows are read from the Arrow table by index, so 5M barcodes stay memory-mapped.

Class-balanced batches (taxonomy-aware pretraining, BarcodeMAE+) keep both promises: :func:`balanced_batch_indices`
draws a global batch's rows from ``(seed, epoch, batch index)`` alone, like the shuffled order it replaces.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from barcodemae.tokenization.sequence_cleaning import NUCLEOTIDES

DECODER_KEYS = frozenset({"labels", "decoder_attention_mask"})
"""Batch entries laid out along the decoder's targets (span corruption), not along the encoder's input."""
ROW_KEYS = frozenset({"composition_targets"})
"""2-D batch entries that are one vector per row (not along the tokens): never trimmed to the tokens' width."""


_NUCLEOTIDE_BYTES = np.frombuffer(NUCLEOTIDES.encode("ascii"), dtype=np.uint8)
_NUCLEOTIDE_INDEX = np.full(256, -1, dtype=np.int64)  # A C G T -> 0..3, any other letter -1 (never substituted)
_NUCLEOTIDE_INDEX[_NUCLEOTIDE_BYTES] = np.arange(len(NUCLEOTIDES))


def check_augmentation(max_start_shift: int, substitution_rate: float) -> None:
    """Raise on augmentation settings :class:`GlobalBatchStream` cannot apply: the one statement of what is valid,
    which ``train.py``'s arguments also run, so a bad flag fails before any data is read."""
    if max_start_shift < 0:
        raise ValueError(f"max_start_shift must be >= 0, got {max_start_shift}")
    if not 0 <= substitution_rate < 1:
        raise ValueError(f"substitution_rate must be in [0, 1), got {substitution_rate}")


def substitute_bases(sequences: list[str], rate: float, rng: np.random.Generator) -> list[str]:
    """Each A/C/G/T base of every sequence replaced, with probability ``rate``, by one of the three other bases.

    An augmentation for pretraining: two views of a barcode then differ the way related barcodes do (point
    substitutions), so the view-contrastive term teaches that a few percent of changed bases leave the barcode
    where it was. Ambiguity codes (N, IUPAC) stay as they are; lengths never change. One draw per base of the whole
    batch (no per-base Python loop).
    """
    joined = np.frombuffer("".join(sequences).encode("ascii"), dtype=np.uint8).copy()
    index = _NUCLEOTIDE_INDEX[joined]
    hit = (index >= 0) & (rng.random(joined.size) < rate)
    shift = rng.integers(1, len(NUCLEOTIDES), size=int(hit.sum()))
    joined[hit] = _NUCLEOTIDE_BYTES[(index[hit] + shift) % len(NUCLEOTIDES)]
    text = joined.tobytes().decode("ascii")
    ends = np.cumsum([len(sequence) for sequence in sequences]).tolist()
    return [text[start:end] for start, end in zip([0, *ends[:-1]], ends)]


def kmer_composition(sequences: list[str], k: int) -> np.ndarray:
    """Each sequence's k-mer frequency profile over A/C/G/T, ``(len(sequences), 4**k)`` float32, rows summing to 1.

    The target of the composition term (``BarcodeMAEConfig.composition_weight``). k-mers are overlapping and read
    within one sequence; a k-mer holding any other letter (N, IUPAC codes) is not counted, and a sequence without a
    complete k-mer gets a row of zeros. Index of a k-mer: its bases as base-4 digits, A=0 C=1 G=2 T=3, first base most
    significant. Vectorised over the concatenated batch (no per-base Python loop).
    """
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    lengths = np.fromiter(map(len, sequences), dtype=np.int64, count=len(sequences))
    joined = np.frombuffer("".join(sequences).encode("ascii"), dtype=np.uint8)
    digits = _NUCLEOTIDE_INDEX[joined]
    size = 4**k
    counts = np.zeros((len(sequences), size), dtype=np.float32)
    starts = len(digits) - k + 1
    if starts > 0:
        windows = np.lib.stride_tricks.sliding_window_view(digits, k)  # (starts, k)
        row = np.repeat(np.arange(len(sequences)), lengths)[:starts]
        inside = np.arange(starts) + k <= np.cumsum(lengths)[row]  # the k-mer ends in the sequence it starts in
        valid = inside & (windows >= 0).all(axis=1)
        codes = windows[valid] @ (4 ** np.arange(k - 1, -1, -1))
        flat = np.bincount(row[valid] * size + codes, minlength=len(sequences) * size)
        counts = flat.reshape(len(sequences), size).astype(np.float32)
    totals = counts.sum(axis=1, keepdims=True)
    return np.divide(counts, totals, out=np.zeros_like(counts), where=totals > 0)


def target_count(batch: dict) -> int:
    """Tokens the loss is computed on: masked tokens (BarcodeMAE / BarcodeBERT) or decoder targets (ENBED's
    ``labels``, -100 = padding). The loop divides each step's summed loss by this count over the global batch."""
    if "labels" in batch:
        return int((batch["labels"] != -100).sum())
    return int(batch["masked_positions"].sum())


class BarcodeSource:
    """Random access to cleaned barcode strings from a :class:`datasets.Dataset` column or a Python list."""

    def __init__(self, data: Any, column: str = "dna_barcode") -> None:
        self._data = data
        self._column = column
        self._is_dataset = hasattr(data, "column_names")
        if self._is_dataset and column not in data.column_names:
            raise ValueError(f"dataset has no {column!r} column (columns: {data.column_names})")

    def __len__(self) -> int:
        return len(self._data)

    def take(self, indices: np.ndarray) -> list[str]:
        if self._is_dataset:
            return self._data[indices.tolist()][self._column]
        return [self._data[i] for i in indices.tolist()]


MIN_ROWS_PER_CLASS = 2
"""Labelled rows a taxon needs to enter the balanced block of a batch: two give the block a same-taxon pair."""


@dataclass(frozen=True)
class TaxonGroups:
    """The labelled rows of a split grouped by taxon: what :func:`balanced_batch_indices` draws from, built once.

    ``rows`` ``(n_grouped,)``: row indices of the taxa with at least :data:`MIN_ROWS_PER_CLASS` labelled rows, taxon
    by taxon (ascending id), each taxon's rows ascending; ``starts`` / ``counts`` ``(n_taxa,)``: where each taxon's
    rows begin in ``rows`` and how many there are; ``num_rows``: rows of the split, labelled or not (the fill).
    """

    rows: np.ndarray
    starts: np.ndarray
    counts: np.ndarray
    num_rows: int

    @classmethod
    def from_labels(cls, labels: np.ndarray) -> TaxonGroups:
        """Group ``labels`` ``(num_rows,)`` int (-1: unlabelled); a stable sort, no Python loop over rows."""
        labels = np.asarray(labels, dtype=np.int64)
        labelled = np.flatnonzero(labels >= 0)
        rows = labelled[np.argsort(labels[labelled], kind="stable")]
        _, counts = np.unique(labels[rows], return_counts=True)
        keep = counts >= MIN_ROWS_PER_CLASS
        rows, counts = rows[np.repeat(keep, counts)], counts[keep].astype(np.int64)
        return cls(rows, np.cumsum(counts) - counts, counts, len(labels))

    @property
    def num_taxa(self) -> int:
        return len(self.counts)


def balanced_block_positions(batch_size: int, classes_per_batch: int, per_class: int) -> np.ndarray:
    """Where the taxa of a balanced batch sit: ``(classes_per_batch, per_class)`` row positions in the batch.

    Taxon ``k`` takes ``per_class`` adjacent rows from ``floor(k * batch_size / classes_per_batch)``, the fill the
    rest. Why spread out rather than first: processes take contiguous slices of the global batch, so with a process
    count that divides ``classes_per_batch`` every process holds the same number of whole taxa (a batch-level term
    such as the triplet loss finds its positives on the same process), while the global batch stays the same
    whatever the process count.
    """
    starts = np.arange(classes_per_batch, dtype=np.int64) * batch_size // classes_per_batch
    return starts[:, None] + np.arange(per_class, dtype=np.int64)


def _draw_within_taxa(counts: np.ndarray, per_class: int, rng: np.random.Generator) -> np.ndarray:
    """``(len(counts), per_class)`` positions within each taxon's rows: distinct while a taxon has rows left (all
    of them once when it has fewer than ``per_class``), then uniform with replacement.

    The j-th distinct draw is uniform over the ``count - j`` positions not drawn yet: a uniform index among them,
    stepped over the earlier draws in increasing order. Loops over ``per_class`` only, never over taxa.
    """
    draws = rng.random((len(counts), per_class))
    picks = np.zeros((len(counts), per_class), dtype=np.int64)
    for j in range(per_class):
        distinct = np.floor(draws[:, j] * np.maximum(counts - j, 1)).astype(np.int64)
        for earlier in np.sort(picks[:, :j], axis=1).T:
            distinct += distinct >= earlier
        repeated = np.floor(draws[:, j] * counts).astype(np.int64)
        picks[:, j] = np.where(j < counts, distinct, repeated)
    return picks


def balanced_batch_indices(
    groups: TaxonGroups,
    seed: int,
    epoch: int,
    batch: int,
    batch_size: int,
    classes_per_batch: int,
    per_class: int,
) -> np.ndarray:
    """The rows of class-balanced global batch ``batch`` of ``epoch``: ``(batch_size,)`` int64 row indices.

    ``classes_per_batch`` taxa, drawn uniformly without replacement among those of ``groups`` (taxa with at least
    two labelled rows), give ``per_class`` rows each (without replacement, or every row once and then repeats when
    a taxon has fewer), at :func:`balanced_block_positions`; the other ``batch_size - classes_per_batch *
    per_class`` rows are a uniform draw without replacement from every row of the split, labelled or not (they may
    repeat a block row). A pure function of its arguments (one generator seeded with ``(seed, epoch, batch, 2)``):
    exact resume and the same batch on any process count follow.
    """
    block_size = classes_per_batch * per_class
    if not 0 < block_size <= batch_size:
        raise ValueError(
            f"{classes_per_batch} taxa x {per_class} rows must fill part of a global batch of {batch_size} rows"
        )
    if groups.num_taxa < classes_per_batch:
        raise ValueError(
            f"balanced batches need {classes_per_batch} taxa with >= {MIN_ROWS_PER_CLASS} labelled rows; the "
            f"split has {groups.num_taxa}"
        )
    rng = np.random.default_rng([seed, epoch, batch, 2])
    taxa = rng.choice(groups.num_taxa, size=classes_per_batch, replace=False)
    block = groups.rows[groups.starts[taxa, None] + _draw_within_taxa(groups.counts[taxa], per_class, rng)]
    positions = balanced_block_positions(batch_size, classes_per_batch, per_class).ravel()
    indices = np.empty(batch_size, dtype=np.int64)
    in_block = np.zeros(batch_size, dtype=bool)
    in_block[positions] = True
    indices[positions] = block.ravel()
    indices[~in_block] = rng.choice(groups.num_rows, size=batch_size - block_size, replace=False)
    return indices


@dataclass
class DataPosition:
    """Where the stream is: the epoch and the next global micro-batch within it."""

    epoch: int = 0
    batch: int = 0


class GlobalBatchStream:
    """Global micro-batches of ``per_device_batch_size * num_processes`` barcodes, sliced for this process.

    Args:
        source: the pretraining barcodes.
        tokenizer: a :class:`BarcodeTokenizer`.
        mask_fn: ``(input_ids, attention_mask, rng) ->`` a boolean mask of the tokens to predict for the whole
            global batch (the masking collator's ``mask_batch``: BarcodeMAE / BarcodeBERT, which mask inside the
            model), or a dict of the model's inputs (T5 span corruption for ENBED: ``input_ids``,
            ``attention_mask``, ``labels``, ``decoder_attention_mask``).
        per_device_batch_size / process_index / num_processes: the sharding.
        seed: seeds shuffling, reading frames and masks.
        frame_offsets: draw a random k-mer reading frame per barcode (training); off gives frame 0.
        max_start_shift: drop a uniform random 0..``max_start_shift`` leading bases of each barcode (training; 0: off),
            so a token's position id stops telling where in the COI gene it lies (a barcode keeps at least
            ``tokenizer.min_barcode_length`` bases).
        substitution_rate: replace each A/C/G/T base of every row by another base with this probability
            (:func:`substitute_bases`; training; 0: off), drawn per view, after the start shift.
        views: rows per barcode (1, or 2+ for the view-contrastive objective): each barcode is repeated as adjacent
            rows, each with its own start shift, reading frame and mask, and the batch carries ``barcode_ids``
            (rows with equal ids are views of one barcode). Batch sizes count barcodes, so a process holds
            ``per_device_batch_size * views`` rows and never splits a barcode's views.
        composition_kmer_size: with k > 0 the batch carries each row's k-mer frequency profile (after the start shift
            and substitutions: the bases the row holds) as ``composition_targets`` (:func:`kmer_composition`); 0: off.
        shuffle: permute the barcodes every epoch (off for validation).
        drop_last: drop the final partial global batch (training: every step has the same global size);
            validation keeps it, so every barcode is scored whatever the process count.
        taxon_labels: ``(len(source),)`` int, each barcode's taxon id (-1: unlabelled), for the taxonomy term: the
            batch then carries each row's label as ``taxon_labels`` (int64; every view of a barcode carries its
            barcode's). ``None``: no labels.
        classes_per_batch / per_class: with ``classes_per_batch > 0`` (needs ``taxon_labels``, ``shuffle`` and
            ``drop_last``), global batches are class-balanced (:func:`balanced_batch_indices`: that many taxa of
            ``per_class`` barcodes each, the rest a uniform draw) instead of slices of a shuffled order. An epoch is
            then as many batches as a shuffled epoch (``len(source) // global batch``), so ``--num_epochs`` means
            the same number of steps, but not one pass over every barcode. A process count that divides
            ``classes_per_batch`` gives every process whole taxa (:func:`balanced_block_positions`).
    """

    def __init__(
        self,
        source: BarcodeSource,
        tokenizer,
        mask_fn,
        *,
        per_device_batch_size: int,
        process_index: int = 0,
        num_processes: int = 1,
        seed: int = 0,
        frame_offsets: bool = True,
        shuffle: bool = True,
        drop_last: bool = True,
        max_start_shift: int = 0,
        substitution_rate: float = 0.0,
        views: int = 1,
        composition_kmer_size: int = 0,
        taxon_labels: np.ndarray | None = None,
        classes_per_batch: int = 0,
        per_class: int = 4,
    ) -> None:
        self.source = source
        self.tokenizer = tokenizer
        self.mask_fn = mask_fn
        self.per_device = per_device_batch_size
        self.process_index = process_index
        self.num_processes = num_processes
        self.global_size = per_device_batch_size * num_processes
        self.drop_last = drop_last
        if drop_last and len(source) < self.global_size:
            raise ValueError(
                f"{len(source)} barcodes cannot fill one global batch of {self.global_size} "
                f"({per_device_batch_size} per device x {num_processes} processes)"
            )
        self.seed = seed
        self.frame_offsets = frame_offsets and tokenizer.num_reading_frames > 1
        check_augmentation(max_start_shift, substitution_rate)
        self.max_start_shift = max_start_shift
        self.substitution_rate = substitution_rate
        if views < 1:
            raise ValueError(f"views must be >= 1, got {views}")
        self.views = views
        if composition_kmer_size < 0:
            raise ValueError(f"composition_kmer_size must be >= 0, got {composition_kmer_size}")
        self.composition_kmer_size = composition_kmer_size
        self.shuffle = shuffle
        self.taxon_labels = None if taxon_labels is None else np.asarray(taxon_labels, dtype=np.int64)
        if self.taxon_labels is not None and self.taxon_labels.shape != (len(source),):
            raise ValueError(f"taxon_labels has shape {self.taxon_labels.shape}, the source {len(source)} barcodes")
        self.classes_per_batch, self.per_class = classes_per_batch, per_class
        self.taxon_groups = None
        if classes_per_batch:
            if self.taxon_labels is None or not (shuffle and drop_last):
                raise ValueError("class-balanced batches (classes_per_batch > 0) need taxon_labels, shuffle, drop_last")
            self.taxon_groups = TaxonGroups.from_labels(self.taxon_labels)
            # A first draw checks the sizes (enough taxa, the block fits) now rather than at the first step.
            balanced_batch_indices(self.taxon_groups, seed, 0, 0, self.global_size, classes_per_batch, per_class)
        self.position = DataPosition()
        self._order_epoch: int | None = None
        self._order: np.ndarray | None = None

    @property
    def batches_per_epoch(self) -> int:
        """Global batches per epoch (full ones only with ``drop_last``)."""
        if self.drop_last:
            return len(self.source) // self.global_size
        return -(-len(self.source) // self.global_size)

    def _epoch_order(self, epoch: int) -> np.ndarray:
        if self._order_epoch != epoch:
            n = len(self.source)
            self._order = np.random.default_rng([self.seed, epoch]).permutation(n) if self.shuffle else np.arange(n)
            self._order_epoch = epoch
        return self._order  # type: ignore[return-value]

    def global_batch(self, epoch: int, batch: int) -> dict[str, np.ndarray]:
        """The whole global batch ``batch`` of ``epoch``: ids, attention mask, masked positions (numpy), with
        several views the barcodes' indices in the source as ``barcode_ids``, with ``composition_kmer_size`` the
        rows' k-mer profiles as ``composition_targets``, and with ``taxon_labels`` the rows' labels."""
        if self.taxon_groups is not None:
            indices = balanced_batch_indices(
                self.taxon_groups, self.seed, epoch, batch, self.global_size, self.classes_per_batch, self.per_class
            )
        else:
            indices = self._epoch_order(epoch)[batch * self.global_size : (batch + 1) * self.global_size]
        indices = np.repeat(indices, self.views)
        rng = np.random.default_rng([self.seed, epoch, batch, 1])
        sequences = self.source.take(indices)
        if self.max_start_shift:
            sequences = self._shift_starts(sequences, rng)
        if self.substitution_rate:
            sequences = substitute_bases(sequences, self.substitution_rate, rng)
        if self.frame_offsets:
            offsets = self.tokenizer.draw_frame_offsets(sequences, rng)
        else:
            offsets = np.zeros(len(sequences), np.int64)
        encoded = self.tokenizer(sequences, frame_offset=offsets, padding=True, return_tensors="np")
        ids, attention = encoded["input_ids"].astype(np.int64), encoded["attention_mask"].astype(np.int64)
        corrupted = self.mask_fn(ids, attention, rng)
        if isinstance(corrupted, dict):
            batch = dict(corrupted)
        else:
            batch = {"input_ids": ids, "attention_mask": attention, "masked_positions": np.asarray(corrupted, bool)}
        if self.views > 1:
            batch["barcode_ids"] = indices.astype(np.int64)
        if self.composition_kmer_size:
            batch["composition_targets"] = kmer_composition(sequences, self.composition_kmer_size)
        if self.taxon_labels is not None:
            batch["taxon_labels"] = self.taxon_labels[indices]
        return batch

    def _shift_starts(self, sequences: list[str], rng: np.random.Generator) -> list[str]:
        """Each barcode without a random number of leading bases (uniform in ``[0, max_start_shift]``, capped so
        that every reading frame the stream may draw still yields a token)."""
        keep = self.tokenizer.min_barcode_length(random_frames=self.frame_offsets)
        lengths = np.fromiter(map(len, sequences), dtype=np.int64, count=len(sequences))
        shifts = np.minimum(
            rng.integers(0, self.max_start_shift + 1, size=len(sequences)), np.maximum(lengths - keep, 0)
        )
        return [sequence[shift:] for sequence, shift in zip(sequences, shifts.tolist())]

    def local_slice(self, batch: dict[str, np.ndarray]) -> dict[str, torch.Tensor] | None:
        """This process's rows of a global batch, trimmed to their own longest row, as tensors (decoder
        targets to their own longest target row).

        ``None`` when a final partial batch (``drop_last=False``) has no rows left for this process.
        """
        local_rows = self.per_device * self.views
        rows = slice(self.process_index * local_rows, (self.process_index + 1) * local_rows)
        attention = batch["attention_mask"][rows]
        if len(attention) == 0:
            return None
        width = int(attention.sum(axis=1).max())
        if "decoder_attention_mask" in batch:
            target_width = int(batch["decoder_attention_mask"][rows].sum(axis=1).max())
        local = {}
        for key, value in batch.items():
            if value.ndim == 2 and key not in ROW_KEYS:
                value = value[rows, : target_width if key in DECODER_KEYS else width]
            else:
                value = value[rows]
            local[key] = torch.from_numpy(np.ascontiguousarray(value))
        return local

    def next(self) -> tuple[dict[str, torch.Tensor], dict[str, int]]:
        """This process's slice of the next global micro-batch, and the global batch's token / target counts."""
        if self.position.batch >= self.batches_per_epoch:
            self.position = DataPosition(self.position.epoch + 1, 0)
        batch = self.global_batch(self.position.epoch, self.position.batch)
        self.position = DataPosition(self.position.epoch, self.position.batch + 1)
        counts = {"targets": target_count(batch), "tokens": int(batch["attention_mask"].sum())}
        return self.local_slice(batch), counts

    def state_dict(self) -> dict[str, int]:
        return {"epoch": self.position.epoch, "batch": self.position.batch}

    def load_state_dict(self, state: dict[str, int]) -> None:
        self.position = DataPosition(int(state["epoch"]), int(state["batch"]))


__all__ = [
    "DECODER_KEYS",
    "MIN_ROWS_PER_CLASS",
    "ROW_KEYS",
    "BarcodeSource",
    "DataPosition",
    "GlobalBatchStream",
    "TaxonGroups",
    "balanced_batch_indices",
    "balanced_block_positions",
    "check_augmentation",
    "kmer_composition",
    "target_count",
]
