"""Multi-process training helpers: torchrun detection, process group, DDP wrapping, reductions.

A run is distributed when it was launched by ``torchrun`` (``WORLD_SIZE > 1`` in the
environment, with ``RANK``, ``LOCAL_RANK``, ``MASTER_ADDR`` and ``MASTER_PORT``).
The backend follows the device: NCCL for CUDA, gloo for the CPU. Every helper is a
no-op in a single-process run, so the engine calls them unconditionally.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from typing import Optional, Union

import torch
import torch.distributed as dist
from torch import nn

from rvoslib.runtime import pick_device

logger = logging.getLogger(__name__)


@dataclass
class DistContext:
    """Where this process stands in a (possibly single-process) run."""

    rank: int = 0  # global rank
    world_size: int = 1  # number of processes
    local_rank: int = 0  # rank on this machine (picks the GPU)
    device: torch.device = torch.device("cpu")  # this process's device
    owns_group: bool = False  # whether init_distributed created the process group (and must destroy it)

    @property
    def enabled(self) -> bool:
        """True when more than one process trains."""
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        """True on rank 0, the one that logs, evaluates and writes checkpoints."""
        return self.rank == 0


def world_size_from_env() -> int:
    """``WORLD_SIZE`` from the environment (1 when not launched by torchrun)."""
    value = os.environ.get("WORLD_SIZE", "1")
    try:
        return int(value)
    except ValueError as err:
        raise ValueError(f"environment variable WORLD_SIZE={value!r} is not an integer") from err


def init_distributed(device: Optional[Union[str, torch.device]] = None) -> DistContext:
    """Initialise the process group when launched by torchrun; pick this process's device.

    Args:
        device: requested device. In a distributed CUDA run, "cuda" (or None on a CUDA
            machine) becomes ``cuda:LOCAL_RANK``.

    Returns:
        a :class:`DistContext`; for a single process, rank 0 of 1 on ``pick_device(device)``.
    """
    world = world_size_from_env()
    if world <= 1:
        return DistContext(device=pick_device(device))
    rank, local_rank = int(os.environ.get("RANK", "0")), int(os.environ.get("LOCAL_RANK", "0"))
    chosen = pick_device(device)
    if chosen.type == "cuda":
        chosen = torch.device("cuda", local_rank if chosen.index is None else chosen.index)
        torch.cuda.set_device(chosen)
    owns = False
    if not dist.is_initialized():
        backend = "nccl" if chosen.type == "cuda" else "gloo"
        init_kwargs = {"device_id": chosen} if chosen.type == "cuda" else {}
        dist.init_process_group(backend=backend, rank=rank, world_size=world, **init_kwargs)
        owns = True
        logger.info("process group: backend=%s rank=%d/%d device=%s", backend, rank, world, chosen)
    return DistContext(rank=dist.get_rank(), world_size=dist.get_world_size(), local_rank=local_rank,
                       device=chosen, owns_group=owns)


def cleanup(ctx: DistContext) -> None:
    """Destroy the process group if :func:`init_distributed` created it."""
    if ctx.owns_group and dist.is_initialized():
        dist.destroy_process_group()


def barrier(ctx: DistContext) -> None:
    """Wait for every rank (no-op for one process)."""
    if not ctx.enabled:
        return
    if ctx.device.type == "cuda":
        dist.barrier(device_ids=[ctx.device.index])
    else:
        dist.barrier()


def wrap_ddp(module: nn.Module, ctx: DistContext, find_unused_parameters: bool = False) -> nn.Module:
    """``DistributedDataParallel(module)`` in a distributed run, else ``module`` itself."""
    if not ctx.enabled:
        return module
    from torch.nn.parallel import DistributedDataParallel

    device_ids = [ctx.device.index] if ctx.device.type == "cuda" else None
    return DistributedDataParallel(module, device_ids=device_ids, find_unused_parameters=find_unused_parameters)


def all_ranks_true(flag: bool, ctx: DistContext) -> bool:
    """Whether ``flag`` holds on every rank (one tiny all-reduce; no-op for one process)."""
    if not ctx.enabled:
        return flag
    value = torch.tensor([1.0 if flag else 0.0], device=ctx.device)
    dist.all_reduce(value, op=dist.ReduceOp.MIN)
    return bool(value.item() > 0.5)


def mean_over_ranks(values: dict[str, float], ctx: DistContext) -> dict[str, float]:
    """Average a dict of floats over the ranks (every rank must pass the same keys in the same order)."""
    if not ctx.enabled or not values:
        return values
    keys = list(values)
    packed = torch.tensor([float(values[k]) for k in keys], dtype=torch.float64, device=ctx.device)
    dist.all_reduce(packed, op=dist.ReduceOp.SUM)
    packed /= ctx.world_size
    return {k: float(v) for k, v in zip(keys, packed.tolist())}
