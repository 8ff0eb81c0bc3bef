"""ResNet18-1D: the 18-layer residual network (He et al. 2016) with 1-D convolutions.

Four stages of two basic blocks each (two convolutions, batch norm, identity or 1x1-projected shortcut),
a strided stem with max pooling, global average pooling and the study's MLP head
(:func:`pretraining.mae.classifier_head`, hidden width ``head_width``). The 1-D variant widely
used for ECG keeps this layout and widens the kernels (7 taps here). The defaults (base width 32
instead of ImageNet's 64, stem stride 4 so the first stage sees 625 steps of a 10-s ECG) keep a
forward+backward of 256 ECGs affordable on a CPU.

Tuning (docs/protocol.md, "Supervised baselines"): the authors list no ResNet-specific space, so
only the space every model shares is searched: ``backbone_out_dim`` 2^4..2^10, the head width.
The other fields stay settable per suite (``[baselines.resnet18-1d]``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from baselines.base import NeuralBaseline
from pretraining.mae import classifier_head
from simecg.errors import ConfigError


@dataclass(frozen=True)
class ResNet1dConfig:
    """Architecture of ResNet18-1D; ``blocks`` per stage (2, 2, 2, 2) is ResNet18."""

    base_width: int = 32
    kernel_size: int = 7
    stem_kernel_size: int = 15
    stem_stride: int = 4
    blocks: tuple[int, ...] = (2, 2, 2, 2)
    dropout: float = 0.0  # before the head
    head_width: int = 32  # the head's hidden width (the authors' backbone_out_dim); 0 = a linear head
    head_dropout: float = 0.25  # inside the head (docs/protocol.md: Linear, ReLU, Dropout 0.25, Linear)

    def __post_init__(self) -> None:
        if self.kernel_size % 2 == 0 or self.stem_kernel_size % 2 == 0:
            raise ConfigError(
                f"resnet18-1d: kernel_size and stem_kernel_size must be odd (same padding), "
                f"got {self.kernel_size} and {self.stem_kernel_size}"
            )
        if not self.blocks or min(self.blocks) < 1:
            raise ConfigError(f"resnet18-1d: blocks must be positive counts per stage, got {self.blocks}")


class BasicBlock1d(nn.Module):
    """Two same-padded convolutions with batch norm and a (projected) shortcut."""

    def __init__(self, in_ch: int, out_ch: int, kernel: int, stride: int):
        super().__init__()
        pad = kernel // 2
        self.conv1 = nn.Conv1d(in_ch, out_ch, kernel, stride=stride, padding=pad, bias=False)
        self.bn1 = nn.BatchNorm1d(out_ch)
        self.conv2 = nn.Conv1d(out_ch, out_ch, kernel, padding=pad, bias=False)
        self.bn2 = nn.BatchNorm1d(out_ch)
        nn.init.zeros_(self.bn2.weight)  # each block starts as the identity ("zero-init residual")
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or in_ch != out_ch:
            self.shortcut = nn.Sequential(
                nn.Conv1d(in_ch, out_ch, 1, stride=stride, bias=False), nn.BatchNorm1d(out_ch)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = torch.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return torch.relu(out + self.shortcut(x))


class ResNet1d(nn.Module):
    """``(batch, 1, L)`` -> logits ``(batch,)``."""

    def __init__(self, config: ResNet1dConfig):
        super().__init__()
        c = config
        w = c.base_width
        self.stem = nn.Sequential(
            nn.Conv1d(1, w, c.stem_kernel_size, stride=c.stem_stride, padding=c.stem_kernel_size // 2, bias=False),
            nn.BatchNorm1d(w),
            nn.ReLU(inplace=True),
            nn.MaxPool1d(3, stride=2, padding=1),
        )
        stages = []
        in_ch = w
        for i, n_blocks in enumerate(c.blocks):
            out_ch = w * 2**i
            for j in range(n_blocks):
                stages.append(BasicBlock1d(in_ch, out_ch, c.kernel_size, stride=2 if (i > 0 and j == 0) else 1))
                in_ch = out_ch
        self.stages = nn.Sequential(*stages)
        self.head = nn.Sequential(nn.Dropout(c.dropout), classifier_head(in_ch, c.head_width, c.head_dropout))
        for m in self.modules():
            if isinstance(m, nn.Conv1d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() == 2:
            x = x.unsqueeze(1)
        features = self.stages(self.stem(x)).mean(dim=-1)
        return self.head(features).squeeze(-1)


class ResNet18_1d(NeuralBaseline):  # noqa: N801 - the model's published name
    """ResNet18 with 1-D convolutions (He et al. 2016), a strong supervised ECG baseline."""

    Config = ResNet1dConfig
    check_overrides = {"base_width": 8}

    @staticmethod
    def build(config: ResNet1dConfig) -> nn.Module:
        return ResNet1d(config)

    @staticmethod
    def search_space(trial: Any) -> dict[str, Any]:
        # docs/protocol.md: every model searches backbone_out_dim 2^4..2^10 (here the head's hidden width).
        return {"head_width": 2 ** trial.suggest_int("log2_head_width", 4, 10)}
