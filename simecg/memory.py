"""Whether a model can be trained on this machine at all, checked from its size before anything runs.

A width or depth typed one digit too long (``--set pretrain.model.embed_dim=1000000``) would
otherwise pass every range check, start a run and fail deep inside PyTorch's allocator, or drive
the machine into swap. Training with Adam holds four float32 copies of every parameter (weights,
gradients, two moment estimates): that lower bound, against the memory this process may use,
refuses only models that cannot fit whatever the batch size.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

from simecg.errors import ConfigError

BYTES_PER_TRAINED_PARAMETER = 16  # float32 weights, gradients and Adam's two moments
_CGROUP_LIMITS = ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes")


def usable_memory() -> int | None:
    """Bytes this process may use: the machine's RAM, or its container's limit when lower (None: unknown)."""
    sizes = []
    with contextlib.suppress(ValueError, OSError, AttributeError):  # not every system says
        sizes.append(os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
    for limit in _CGROUP_LIMITS:
        try:
            text = Path(limit).read_text().strip()
        except OSError:
            continue
        if text.isdigit():
            sizes.append(int(text))
    return min(sizes) if sizes else None


def check_trainable(n_parameters: int, what: str, usable: int | None = None) -> None:
    """Raise a one-line :class:`ConfigError` when training ``n_parameters`` cannot fit in memory."""
    usable = usable_memory() if usable is None else usable
    need = n_parameters * BYTES_PER_TRAINED_PARAMETER
    if usable is not None and need > usable:
        raise ConfigError(f"{what} has {_count(n_parameters)} parameters: training it needs at least "
                          f"{_gib(need)} GiB (weights, gradients, Adam), more than the "
                          f"{_gib(usable)} GiB this machine gives; lower its width or depth")


def _gib(n_bytes: int) -> str:
    """``12.5``; a size past what a float holds (a width typed with an exponent) in powers of ten."""
    gib = n_bytes // 2**30
    return f"{n_bytes / 2**30:,.1f}" if gib < 10**15 else f"~1e{len(str(gib)) - 1}"


def _count(n: int) -> str:
    return f"{n:,}" if n < 10**15 else f"~1e{len(str(n)) - 1}"
