"""The one rule for an unset ``--device`` / ``device=None``: the GPU when there is one, else the CPU."""

from __future__ import annotations

import torch


def resolve_device(device: str | torch.device | None = None) -> torch.device:
    """``device`` as a :class:`torch.device`; ``None`` means ``cuda`` when available, else ``cpu``."""
    return torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))


__all__ = ["resolve_device"]
