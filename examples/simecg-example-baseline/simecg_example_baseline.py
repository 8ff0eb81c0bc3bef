"""A tiny 1-D CNN baseline for SimECG-Bench, shipped as a separate package.

Everything a baseline needs sits in this one module: the ``nn.Module``, a frozen config
dataclass (its defaults are the baseline's default setting) and an Optuna search space over
architecture parameters. The package's ``pyproject.toml`` points the ``simecg_bench.baselines``
entry point at the class (``simecg_example_baseline:ExampleTinyCNN``), exactly as SimECG-Bench
declares its own baselines; the class is imported only when a suite or a listing needs it.
``baselines.check_baseline("example-tiny-cnn")`` checks it keeps the model contract.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from baselines.base import NeuralBaseline


@dataclass(frozen=True)
class TinyCNNConfig:
    """Architecture: ``depth`` strided convolution blocks of ``width`` channels."""

    width: int = 16
    depth: int = 3
    kernel_size: int = 9


class TinyCNN(nn.Module):
    """``(batch, 1, 5000)`` z-scored ECGs -> logits ``(batch,)``."""

    def __init__(self, config: TinyCNNConfig):
        super().__init__()
        layers: list[nn.Module] = []
        channels = 1
        for _ in range(config.depth):
            layers += [
                nn.Conv1d(channels, config.width, config.kernel_size, stride=4, padding=config.kernel_size // 2),
                nn.BatchNorm1d(config.width),
                nn.ReLU(),
            ]
            channels = config.width
        self.features = nn.Sequential(*layers)
        self.head = nn.Linear(config.width, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() == 2:
            x = x.unsqueeze(1)
        return self.head(self.features(x).mean(dim=-1)).squeeze(-1)


class ExampleTinyCNN(NeuralBaseline):
    """A three-layer strided 1-D CNN: the smallest useful example of a plugin baseline."""

    Config = TinyCNNConfig
    check_overrides = {"width": 8}

    @staticmethod
    def build(config: TinyCNNConfig) -> nn.Module:
        return TinyCNN(config)

    @staticmethod
    def search_space(trial: Any) -> dict[str, Any]:
        # Architecture only: the shared tuner adds learning rate, augmentation and weight decay.
        return {
            "width": trial.suggest_categorical("width", [8, 16, 32]),
            "depth": trial.suggest_int("depth", 2, 4),
        }
