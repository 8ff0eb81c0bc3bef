"""Multi-process training with ``torchrun`` (DistributedDataParallel), and the 1-process case.

``torchrun`` sets ``RANK``, ``WORLD_SIZE`` and ``LOCAL_RANK``; :func:`setup` joins the process
group (NCCL on GPUs, gloo on CPU) and picks this process's device. Without those variables it
is a single process and every helper here is a no-op, so the training loop has one code path.

Dying well matters as much as training: a pre-empted or killed job is rerun and resumes from
the last checkpoint, so no process of the old job may survive it. Two guards:

* every collective times out (:data:`TIMEOUT_ENV`, default :data:`DEFAULT_TIMEOUT_S`) instead of
  gloo's 30 minutes, so the survivors of a dead peer that is not noticed otherwise still end;
* ``torchrun`` starts its workers in sessions of their own, so killing the ``torchrun`` process
  (SIGKILL, the OOM killer, ``kill -9 -<pgid>``) would leave them training as orphans and writing
  checkpoints into the folder the rerun resumes from. On Linux each worker asks the kernel for
  SIGTERM when its launcher dies (``PR_SET_PDEATHSIG``), which the CLI turns into a KILLED run.
"""

from __future__ import annotations

import ctypes
import logging
import os
import signal
import sys
from dataclasses import dataclass
from datetime import timedelta

import torch
import torch.distributed as dist

from simecg.errors import ConfigError

log = logging.getLogger(__name__)

TIMEOUT_ENV = "SIMECG_DDP_TIMEOUT_S"
# Longer than anything one process does while the others wait (rank 0 writes a checkpoint or
# logs a figure to MLflow), far shorter than gloo's default of 30 minutes.
DEFAULT_TIMEOUT_S = 600.0
_PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


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
        _die_with_launcher()
        dist.init_process_group(backend=backend, timeout=collective_timeout())
        owns = True
    ctx = DistContext(dist.get_rank(), dist.get_world_size(), local_rank, dev, owns)
    log.info("process %d of %d on %s", ctx.rank, ctx.world_size, ctx.device)
    return ctx


def collective_timeout() -> timedelta:
    """How long a collective waits for the other processes (``$SIMECG_DDP_TIMEOUT_S`` seconds, default 600)."""
    raw = os.environ.get(TIMEOUT_ENV, "").strip()
    if not raw:
        return timedelta(seconds=DEFAULT_TIMEOUT_S)
    try:
        seconds = float(raw)
    except ValueError:
        seconds = float("nan")
    if not seconds > 0 or seconds == float("inf"):
        raise ConfigError(f"{TIMEOUT_ENV} must be a positive number of seconds, got {raw!r}")
    return timedelta(seconds=seconds)


def _die_with_launcher() -> None:
    """Under ``torchrun`` on Linux: receive SIGTERM when the launcher dies (see the module doc)."""
    if not sys.platform.startswith("linux") or "TORCHELASTIC_RUN_ID" not in os.environ:
        return
    launcher = os.getppid()
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        failed = libc.prctl(_PR_SET_PDEATHSIG, int(signal.SIGTERM), 0, 0, 0) != 0
    except (OSError, AttributeError):
        failed = True
    if failed:
        log.warning("cannot ask the kernel for SIGTERM when torchrun dies: if torchrun is killed, end its workers too")
        return
    if os.getppid() != launcher:  # it died before the request took effect
        os.kill(os.getpid(), signal.SIGTERM)


def broadcast_int(value: int, ctx: DistContext) -> int:
    """Rank 0's ``value`` on every process (one decision for all, e.g. which checkpoint to resume)."""
    if not ctx.distributed:
        return value
    backend_device = ctx.device if dist.get_backend() == "nccl" else torch.device("cpu")
    buf = torch.tensor([value], dtype=torch.int64, device=backend_device)
    dist.broadcast(buf, src=0)
    return int(buf.item())


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
