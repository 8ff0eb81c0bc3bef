"""A pretraining method from outside SimECG-Bench: tell a time-reversed ECG from one played forward.

It shows the whole contract of :class:`pretraining.methods.base.PretrainingMethod`: a ``Config``
dataclass with ``paper`` and ``tiny`` presets and its ``LIMITS``, the random numbers of a step
(:meth:`draw_width`: one per ECG, whether to reverse it), the module around the shared encoder
(its ``.encoder`` is what fine-tuning starts from) and its loss. The pretraining loop, the
checkpoints, the best-validation encoder and the fine-tuning come from the suite.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from baselines.pretrained_mae import pretrained_model
from pretraining.mae import ECGEncoder
from pretraining.methods.base import PretrainingMethod
from simecg.config import Limits


@dataclass(frozen=True)
class ExampleFlipConfig:
    reverse_share: float = 0.5  # share of ECGs played backwards


class FlipModule(nn.Module):
    def __init__(self, encoder: nn.Module, config: ExampleFlipConfig):
        super().__init__()
        self.encoder = encoder
        self.config = config
        self.classifier = nn.Linear(encoder.config.embed_dim, 1)

    def forward(self, signals: torch.Tensor, draws: torch.Tensor) -> torch.Tensor:
        reversed_ = draws[:, 0] < self.config.reverse_share
        views = torch.where(reversed_.view(-1, 1, 1), signals.flip(-1), signals)
        logits = self.classifier(self.encoder(views)[:, 0]).squeeze(-1)
        return F.binary_cross_entropy_with_logits(logits.float(), reversed_.float())


class ExampleFlip(PretrainingMethod):
    """Example plugin method: is this ECG played backwards? (a toy pretext task)"""

    Config = ExampleFlipConfig
    PRESETS = {"paper": ExampleFlipConfig(), "tiny": ExampleFlipConfig()}
    LIMITS = {"reverse_share": Limits(gt=0, lt=1)}

    def draw_width(self) -> int:
        return 1

    def build(self, encoder: nn.Module | None = None) -> nn.Module:
        return FlipModule(encoder if encoder is not None else ECGEncoder(self.encoder_config), self.config)


# The model that fine-tunes this method's encoders, named "example-flip:<corpus>" in suites.
ExampleFlipModel = pretrained_model("example-flip")
