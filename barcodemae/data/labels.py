"""Stable rank -> {name: id} vocabularies, saved next to a model so train and test share label ids.

Why sorted names: ids then depend only on *which* names occur, not on file order, shuffling or the number of
worker processes, so rebuilding the vocabulary from the same data gives the same ids.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

VOCAB_FILE = "label_vocab.json"
MISSING_LABEL = -1


class LabelVocabulary:
    """Per-rank label vocabularies; id ``i`` of a rank is the ``i``-th of its names in sorted order.

    ``encode`` maps missing names (``None``) to ``-1``, and names absent from the vocabulary (e.g. unseen
    species when a training vocabulary is reused on ``test_unseen``) to ``unknown`` (default ``-1``; pass
    ``unknown=None`` to raise instead).
    """

    def __init__(self, names: Mapping[str, Iterable[str]]):
        self._names: dict[str, list[str]] = {}
        for rank, rank_names in names.items():
            unique = sorted({name for name in rank_names if name is not None})
            self._names[rank] = unique
        self._index = {rank: {name: i for i, name in enumerate(values)} for rank, values in self._names.items()}
        self._value_sets = {rank: pa.array(values, type=pa.string()) for rank, values in self._names.items()}

    # construction -----------------------------------------------------------------------------------------
    @classmethod
    def from_columns(cls, columns: Mapping[str, Iterable[pa.Array | pa.ChunkedArray | Sequence[str | None]]]):
        """Build from chunks of each rank's column (Arrow arrays or lists), de-duplicating with Arrow."""
        names: dict[str, set[str]] = {}
        for rank, chunks in columns.items():
            seen: set[str] = set()
            for chunk in chunks:
                array = chunk if isinstance(chunk, (pa.Array, pa.ChunkedArray)) else pa.array(chunk, pa.string())
                seen.update(pc.unique(array.cast(pa.string())).drop_null().to_pylist())
            names[rank] = seen
        return cls(names)

    # access -----------------------------------------------------------------------------------------------
    @property
    def ranks(self) -> tuple[str, ...]:
        return tuple(self._names)

    def names(self, rank: str) -> list[str]:
        """Names of ``rank`` in id order (``names(rank)[i]`` is the name of id ``i``)."""
        return list(self._check_rank(rank))

    def num_labels(self, rank: str) -> int:
        return len(self._check_rank(rank))

    def __contains__(self, rank: str) -> bool:
        return rank in self._names

    def __eq__(self, other: object) -> bool:
        return isinstance(other, LabelVocabulary) and self._names == other._names

    def __repr__(self) -> str:
        sizes = ", ".join(f"{rank}={len(names)}" for rank, names in self._names.items())
        return f"LabelVocabulary({sizes})"

    def _check_rank(self, rank: str) -> list[str]:
        if rank not in self._names:
            raise KeyError(f"rank {rank!r} is not in this label vocabulary (ranks: {', '.join(self._names)})")
        return self._names[rank]

    # encoding ---------------------------------------------------------------------------------------------
    def encode(self, rank: str, names, *, unknown: int | None = MISSING_LABEL) -> np.ndarray:
        """Ids (int64 numpy array) of ``names``; ``None`` -> -1, names not in the vocabulary -> ``unknown``.

        Vectorised with Arrow ``index_in`` so it is cheap on millions of rows; accepts a list, an Arrow
        array or a single name.
        """
        self._check_rank(rank)
        single = isinstance(names, str) or names is None
        array = pa.array([names] if single else names, pa.string()) if not isinstance(
            names, (pa.Array, pa.ChunkedArray)
        ) else names.cast(pa.string())
        index = pc.index_in(array, value_set=self._value_sets[rank])
        ids = index.fill_null(MISSING_LABEL).to_numpy(zero_copy_only=False).astype(np.int64)
        absent = np.asarray(pc.and_(pc.is_null(index), pc.is_valid(array)).to_numpy(zero_copy_only=False))
        if absent.any():
            if unknown is None:
                bad = pc.filter(array, pa.array(absent)).to_pylist()
                raise KeyError(f"{rank} name(s) not in the label vocabulary: {bad[:10]}")
            ids[absent] = unknown
        return ids[0] if single else ids

    def decode(self, rank: str, ids) -> list[str | None]:
        """Names of ``ids`` (``-1`` and other negative ids -> ``None``)."""
        names = self._check_rank(rank)
        return [names[i] if i >= 0 else None for i in np.asarray(ids, dtype=np.int64).tolist()]

    # persistence ------------------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, list[str]]:
        return {rank: list(names) for rank, names in self._names.items()}

    def save(self, directory: str | Path) -> Path:
        """Write ``label_vocab.json`` into ``directory`` (e.g. a model folder) and return its path."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        path = directory / VOCAB_FILE
        path.write_text(json.dumps({"format": "barcodemae-label-vocab/1", "ranks": self.to_dict()}, indent=1))
        return path

    @classmethod
    def load(cls, path: str | Path) -> LabelVocabulary:
        """Read a vocabulary written by :meth:`save` (pass the directory or the JSON file itself)."""
        path = Path(path)
        if path.is_dir():
            path = path / VOCAB_FILE
        if not path.is_file():
            raise FileNotFoundError(f"no label vocabulary at {path} (expected a {VOCAB_FILE} written by .save())")
        payload = json.loads(path.read_text())
        if not isinstance(payload, dict) or "ranks" not in payload:
            raise ValueError(f"{path} is not a barcodemae label vocabulary (no 'ranks' key)")
        vocab = cls(payload["ranks"])
        for rank, names in payload["ranks"].items():
            if vocab.names(rank) != list(names):
                raise ValueError(f"{path}: names of rank {rank!r} are not sorted and unique; the file was edited")
        return vocab
