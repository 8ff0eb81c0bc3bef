"""iBOT (Zhou et al. 2022) on the shared encoder, from its published design: *inferred* (docs/protocol.md).

The authors' configs name iBOT (their model factory passes ``projection_dim``, ``hidden_dim``,
``ibot_mask_ratio``, the temperatures and the CLS and patch centre momenta) but their
``ibot.py`` is not public. As published: DINO's self-distillation on the CLS token
(:mod:`pretraining.methods.dino`) plus masked image modelling as self-distillation: the student
sees each view with some patch tokens replaced by a learned mask token and matches, at those
patches, the teacher's distribution for the unmasked view; one head serves the CLS token and the
patches, each with its own centre. Adapted: DINO's sizes (:class:`DINOConfig`), a fixed share of
0.3 of the 100 patches masked per view (published: a random share in [0.1, 0.5] of blocks, on
half of the images), both losses weighted 1.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import nn

from pretraining.mae import ECGEncoder
from pretraining.methods.base import PretrainingMethod
from pretraining.methods.dino import DINO_LIMITS, DINOConfig, DINOModule, distillation_loss, update_center
from pretraining.methods.views import VIEW_DRAWS
from simecg.config import NON_NEGATIVE, Limits


@dataclass(frozen=True)
class IBOTConfig(DINOConfig):
    """iBOT's settings (*inferred*: see the module)."""

    mask_ratio: float = 0.3
    center_patch_momentum: float = 0.9
    patch_loss_weight: float = 1.0


def patch_mask(noise: torch.Tensor, ratio: float) -> torch.Tensor:
    """Boolean ``(batch, patches)``: the ``round(ratio * patches)`` patches of lowest noise in each row."""
    count = int(round(noise.shape[1] * ratio))
    ranks = torch.argsort(torch.argsort(noise, dim=1), dim=1)
    return ranks < count


class IBOTModule(DINOModule):
    def __init__(self, encoder: ECGEncoder, config: IBOTConfig):
        super().__init__(encoder, config)
        self.mask_token = nn.Parameter(torch.zeros(1, 1, encoder.config.embed_dim))
        nn.init.normal_(self.mask_token, std=0.02)
        self.register_buffer("center_patch", torch.zeros(config.projection_dim))

    def masked_tokens(self, view: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """The encoder's output for ``view`` with the ``mask``ed patch tokens replaced by the mask token."""
        tokens = self.encoder.embed(view)
        masked = self.mask_token + self.encoder.pos_embed[:, 1:, :]
        tokens = torch.where(mask.unsqueeze(-1), masked.to(tokens.dtype), tokens)
        return self.encoder.run_blocks(tokens)

    def forward(self, signals: torch.Tensor, draws: torch.Tensor) -> torch.Tensor:
        c = self.config
        views = self.views(signals, draws)
        patches = self.encoder.config.num_patches
        noise = draws[:, 2 * VIEW_DRAWS:].reshape(-1, 2, patches)
        masks = [patch_mask(noise[:, i], c.mask_ratio) for i in range(2)]
        students = [self.head(self.masked_tokens(v, m)) for v, m in zip(views, masks, strict=True)]
        teachers = [self.teacher_head(self.teacher_encoder(v)) for v in views]
        cls_loss = sum(distillation_loss(students[1 - i][:, 0], teachers[i][:, 0], self.center,
                                         c.temperature_student, c.temperature_teacher) for i in range(2)) / 2
        patch_loss = sum(self._patch_loss(students[i][:, 1:], teachers[i][:, 1:], masks[i]) for i in range(2)) / 2
        if self.training:
            update_center(self.center, torch.cat([t[:, 0] for t in teachers]), c.center_momentum)
            update_center(self.center_patch, torch.cat([t[:, 1:] for t in teachers]), c.center_patch_momentum)
        return cls_loss + c.patch_loss_weight * patch_loss

    def _patch_loss(self, student: torch.Tensor, teacher: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Distillation at the masked patches of one view (zero when none is masked)."""
        if not bool(mask.any()):
            return student.sum() * 0.0
        c = self.config
        return distillation_loss(student[mask], teacher[mask], self.center_patch, c.temperature_student,
                                 c.temperature_teacher)


class IBOT(PretrainingMethod):
    """iBOT: DINO on the CLS token plus masked-patch self-distillation (published design; inferred)."""

    Config = IBOTConfig
    PRESETS: ClassVar[dict[str, Any]] = {
        "paper": IBOTConfig(), "tiny": IBOTConfig(projection_dim=64, hidden_dim=64),
    }
    LIMITS: ClassVar[dict[str, Limits]] = {
        **DINO_LIMITS, "mask_ratio": Limits(ge=0, lt=1), "center_patch_momentum": Limits(ge=0, le=1),
        "patch_loss_weight": NON_NEGATIVE,
    }
    loss_name = "CLS + masked-patch distillation cross-entropy"

    def draw_width(self) -> int:
        return 2 * VIEW_DRAWS + 2 * self.encoder_config.num_patches

    def build(self, encoder: nn.Module | None = None) -> nn.Module:
        return IBOTModule(encoder if encoder is not None else ECGEncoder(self.encoder_config), self.config)

    def after_step(self, model: nn.Module) -> None:
        model.update_teacher()
