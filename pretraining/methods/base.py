"""The pretraining-method contract: what the one pretraining loop asks of MAE, SimCLR, DINO, ...

A pretraining *method* (docs/protocol.md, "Pretraining methods") turns the same encoder (the
paper's Transformer, :class:`~pretraining.mae.ECGEncoder`) into a trainable module with a
self-supervised loss. :func:`pretraining.loop.pretrain` knows nothing else about it: it builds
the module, feeds it the corpus's z-scored signals with the method's random numbers of the step,
steps the optimizer, and hands out ``module.encoder``.

Everything random in a step comes from :meth:`PretrainingMethod.draw`, called by the data stream
with a generator seeded by ``(seed, step)`` on the *global* batch (each process takes its slice).
The views, masks and crops a method makes are functions of those numbers, so a resumed run, or a
run over several processes, sees exactly the views of an uninterrupted one, and the validation
loss that chooses the encoder is as deterministic as the MAE's fresh masks.

A method is registered in the ``simecg_bench.methods`` entry-point group
(:data:`simecg.registries.METHODS`) as a subclass of :class:`PretrainingMethod` with a
``Config`` dataclass (its own settings, set with ``--set pretrain.method_options.<key>=...``),
``PRESETS`` (``paper`` and ``tiny``) and ``LIMITS``.
"""

from __future__ import annotations

import copy
from typing import Any, ClassVar

import numpy as np
import torch
from torch import nn

from pretraining.mae import MAEConfig
from simecg.config import Limits


class PretrainingMethod:
    """One self-supervised method over the shared encoder; subclass it and register it.

    Args:
        config: the method's resolved ``Config`` (a preset with ``pretrain.method_options``).
        encoder: the encoder's architecture (``pretrain.preset`` with ``pretrain.model``).

    Class attributes:
        Config: a frozen dataclass of the method's settings, defaults the paper's.
        PRESETS: named ``Config`` instances; ``paper`` and ``tiny`` at least (``pretrain.preset``
            chooses the encoder's and the method's preset together).
        LIMITS: what each Config field may take (:class:`simecg.config.Limits`).
        fidelity: ``"authors"`` when the method follows the authors' code, ``"inferred"`` when
            their code is not public and the method follows its published design.
        loss_name: what its loss is, for the loss curve's axis (:attr:`loss_label` may say more
            from the resolved settings).
    """

    Config: ClassVar[type] = type(None)
    PRESETS: ClassVar[dict[str, Any]] = {}
    LIMITS: ClassVar[dict[str, Limits]] = {}
    fidelity: ClassVar[str] = "inferred"
    loss_name: ClassVar[str] = "loss"

    def __init__(self, config: Any, encoder: MAEConfig):
        self.config = config
        self.encoder_config = encoder

    @property
    def loss_label(self) -> str:
        """The loss's name on the loss curve's axis (the class's :attr:`loss_name`)."""
        return self.loss_name

    # ---- what the loop calls -----------------------------------------------------------------
    def draw_width(self) -> int:
        """How many random numbers each sample takes per step (the width of :meth:`draw`)."""
        raise NotImplementedError

    def draw(self, rng: np.random.Generator, n: int) -> np.ndarray:
        """The step's random numbers for ``n`` samples, float32 ``(n, draw_width())``, uniform in [0, 1).

        Called on the whole global batch with a generator seeded by ``(seed, step)``.
        """
        return rng.random((n, self.draw_width()), dtype=np.float32)

    def build(self, encoder: nn.Module | None = None) -> nn.Module:
        """The trainable module (its random initialisation follows torch's seed); ``.encoder`` is the
        :class:`~pretraining.mae.ECGEncoder` handed out.

        ``encoder``: another module of the same interface (``embed``, ``run_blocks``, ``forward``,
        ``config``, ``pos_embed``) to build around instead of a new ECGEncoder; the speed benchmark
        passes a plain-PyTorch one as its reference.
        """
        raise NotImplementedError

    def loss(self, model: nn.Module, signals: torch.Tensor, draws: torch.Tensor) -> torch.Tensor:
        """The method's loss on z-scored ``signals`` ``(batch, 1, L)`` with the step's ``draws``.

        ``model`` is :meth:`build`'s module, possibly wrapped by DistributedDataParallel (call it,
        do not reach into it); in ``eval()`` mode the loss is the validation loss.
        """
        return model(signals, draws)

    def after_step(self, model: nn.Module) -> None:
        """Called after each optimizer step with the unwrapped module (a teacher's moving average, say)."""

    def figures(self, model: nn.Module, signals: torch.Tensor, draws: torch.Tensor,
                device: torch.device) -> dict[str, Any]:
        """Figures to log at a validation, named by artifact folder (e.g. reconstructions); none by default."""
        return {}

    @classmethod
    def describe(cls) -> str:
        """One line for ``simecg-bench list methods``."""
        doc = (cls.__doc__ or "").strip().splitlines()
        return doc[0] if doc else cls.__name__


class EMATeacher(nn.Module):
    """A frozen copy of a student module, moved towards it after each step: teacher = m·teacher + (1 - m)·student.

    The momentum teacher of BYOL (Grill et al. 2020) and DINO/iBOT (Caron et al. 2021; Zhou et
    al. 2022). Its weights are buffers of no gradient, saved with the module, so a resumed run
    continues the same teacher. The momentum is constant here (*inferred*: the published
    designs raise it to 1 on a cosine over the run; a constant one keeps a long run's first
    ``k`` steps equal to a ``k``-step run, as ``resume_from_prefix`` assumes).
    """

    def __init__(self, student: nn.Module):
        super().__init__()
        self.module = copy.deepcopy(student)
        for parameter in self.module.parameters():
            parameter.requires_grad_(False)

    @torch.no_grad()
    def update(self, student: nn.Module, momentum: float) -> None:
        teacher = list(self.module.parameters())
        online = [p.detach() for p in student.parameters()]
        torch._foreach_mul_(teacher, momentum)
        torch._foreach_add_(teacher, online, alpha=1.0 - momentum)

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        with torch.no_grad():
            return self.module(*args, **kwargs)
