"""Multi-process training with ``torchrun`` (DistributedDataParallel), and the 1-process case.

``torchrun`` sets ``RANK``, ``WORLD_SIZE`` and ``LOCAL_RANK``; :func:`setup` joins the process
group (NCCL on GPUs, gloo on CPU) and picks this process's device. Without those variables it
is a single process and every helper here is a no-op, so the training loop has one code path.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

from simecg.errors import ConfigError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DistContext:
    """Where this process sits in the job."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")
    owns_group: bool = False  # True when setup() created the process group (and teardown ends it)

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def _device(preference: str, local_rank: int) -> torch.device:
    if preference == "auto":
        return torch.device("cuda", local_rank) if torch.cuda.is_available() else torch.device("cpu")
    if preference == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError("pretrain.device is 'cuda' but no GPU is visible; use device=auto or cpu")
        return torch.device("cuda", local_rank)
    if preference == "cpu":
        return torch.device("cpu")
    raise ConfigError(f"pretrain.device must be auto, cpu or cuda, got {preference!r}")


def setup(device: str = "auto") -> DistContext:
    """Join the ``torchrun`` process group when there is one; return this process's context."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    dev = _device(device, local_rank)
    if world_size <= 1 and not (dist.is_available() and dist.is_initialized()):
        return DistContext(device=dev)
    owns = False
    if not dist.is_initialized():
        backend = "nccl" if dev.type == "cuda" else "gloo"
        if dev.type == "cuda":
            torch.cuda.set_device(dev)
        dist.init_process_group(backend=backend)
        owns = True
    ctx = DistContext(dist.get_rank(), dist.get_world_size(), local_rank, dev, owns)
    log.info("process %d of %d on %s", ctx.rank, ctx.world_size, ctx.device)
    return ctx


def teardown(ctx: DistContext) -> None:
    if ctx.owns_group and dist.is_initialized():
        dist.destroy_process_group()


def barrier(ctx: DistContext) -> None:
    if ctx.distributed:
        dist.barrier()


def all_reduce_sum(values: torch.Tensor, ctx: DistContext) -> torch.Tensor:
    """Sum of a float64 tensor over all processes (returned on CPU)."""
    if not ctx.distributed:
        return values
    backend_device = ctx.device if dist.get_backend() == "nccl" else torch.device("cpu")
    buf = values.to(backend_device)
    dist.all_reduce(buf, op=dist.ReduceOp.SUM)
    return buf.cpu()


def all_reduce_mean(value: float, ctx: DistContext) -> float:
    """Mean of one number over all processes."""
    if not ctx.distributed:
        return value
    return float(all_reduce_sum(torch.tensor([value], dtype=torch.float64), ctx)[0]) / ctx.world_size
