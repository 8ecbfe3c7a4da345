"""BIOSCAN-5M partition names and the meta-splits users ask for (``all``, ``seen``, ``unseen``, ``a+b``)."""

from __future__ import annotations

from collections.abc import Iterable

BIOSCAN5M_SPLITS: tuple[str, ...] = (
    "pretrain",
    "train",
    "val",
    "test",
    "key_unseen",
    "val_unseen",
    "test_unseen",
    "other_heldout",
)
"""The eight partitions of the BIOSCAN-5M ``split`` column, in the official order."""

META_SPLITS: dict[str, tuple[str, ...]] = {
    "all": BIOSCAN5M_SPLITS,
    "seen": ("train", "val", "test"),
    "unseen": ("key_unseen", "val_unseen", "test_unseen"),
}
"""Names that stand for several partitions, as in the official ``bioscan-dataset`` package."""


def resolve_splits(split: str | Iterable[str] | None) -> list[str]:
    """Expand a split request into the partition names it covers, in official order, without repeats.

    ``"pretrain+other_heldout"``, ``["train", "val"]``, ``"seen"`` and ``"all"`` (or ``None``) are accepted;
    an unknown name raises :class:`ValueError` listing every valid name, so a typo never selects nothing.
    """
    if split is None:
        return list(BIOSCAN5M_SPLITS)
    parts = split.split("+") if isinstance(split, str) else list(split)
    requested: set[str] = set()
    unknown: list[str] = []
    for part in parts:
        name = part.strip() if isinstance(part, str) else part
        if name in META_SPLITS:
            requested.update(META_SPLITS[name])
        elif name in BIOSCAN5M_SPLITS:
            requested.add(name)
        else:
            unknown.append(repr(name))
    if unknown or not parts:
        valid = ", ".join([*BIOSCAN5M_SPLITS, *META_SPLITS])
        what = ", ".join(unknown) if unknown else "an empty request"
        raise ValueError(f"unknown BIOSCAN-5M split name(s) {what} in {split!r}; valid names: {valid} (join with '+')")
    return [name for name in BIOSCAN5M_SPLITS if name in requested]
