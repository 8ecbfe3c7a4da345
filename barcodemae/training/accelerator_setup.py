"""How a run's ``Accelerator`` is set up from the arguments, and what its distributed setup implies for the run.

Why apart from the builders: these choices depend on the machine (a bf16-capable GPU, installed trackers, FSDP or
DeepSpeed ZeRO-3 sharding), not on the model or the data.
"""

from __future__ import annotations

import logging

import torch
from accelerate import Accelerator
from accelerate.utils import DistributedType

from barcodemae.run_layout import METRICS_FILE

logger = logging.getLogger(__name__)


def resolve_mixed_precision(choice: str) -> str:
    """``auto``: bf16 on a GPU that supports it, full precision otherwise (CPU autocast gains little)."""
    if choice != "auto":
        return choice
    return "bf16" if torch.cuda.is_available() and torch.cuda.is_bf16_supported() else "no"


def available_trackers(report_to: str) -> list[str] | None:
    """Trackers requested *and* installed; a missing package is logged, not fatal."""
    if report_to == "none":
        return None
    from accelerate.utils import is_tensorboard_available, is_wandb_available

    installed = {"tensorboard": is_tensorboard_available(), "wandb": is_wandb_available()}
    wanted = list(installed) if report_to == "all" else [name.strip() for name in report_to.split(",")]
    for name in wanted:
        if not installed.get(name, False):
            logger.warning("tracker %r is not installed; logging to %s and the console only", name, METRICS_FILE)
    return [name for name in wanted if installed.get(name, False)] or None


def parameters_are_sharded(accelerator: Accelerator) -> bool:
    """Whether each process holds only a shard of the parameters (FSDP, DeepSpeed ZeRO-3).

    Code that runs the unwrapped model on one process (the periodic genus probe) would then see flat shards, or
    hang waiting for an all-gather the other processes never join. ZeRO-1/2 shard only optimiser state.
    """
    if accelerator.distributed_type == DistributedType.FSDP:
        return True
    if accelerator.distributed_type == DistributedType.DEEPSPEED:
        plugin = accelerator.state.deepspeed_plugin
        return plugin is not None and int(plugin.zero_stage) == 3
    return False


__all__ = ["available_trackers", "parameters_are_sharded", "resolve_mixed_precision"]
