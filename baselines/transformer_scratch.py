"""The study's own Transformer encoder, randomly initialised and trained from scratch.

This is the ablation of pretraining: the same :class:`pretraining.mae.ECGEncoder` (a named
architecture preset, ``paper`` by default) under the same CLS-token MLP head and the same
fine-tuning, but without any MAE weights, so any gain of a pretrained model over it is the
gain of pretraining.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from torch import nn

from baselines.base import NeuralBaseline
from pretraining.mae import PRESETS, ECGEncoder, EncoderClassifier, preset
from simecg.errors import ConfigError


@dataclass(frozen=True)
class TransformerScratchConfig:
    """Encoder preset (``pretraining.mae.PRESETS``) and the classification head."""

    preset: str = "paper"
    head_width: int = 64
    pooling: str = "cls"
    dropout: float = 0.0

    def __post_init__(self) -> None:
        if self.preset not in PRESETS:
            raise ConfigError(
                f"transformer-scratch: unknown preset {self.preset!r}; known: {', '.join(sorted(PRESETS))}"
            )
        if self.pooling not in ("cls", "mean"):
            raise ConfigError(f"transformer-scratch: pooling must be 'cls' or 'mean', got {self.pooling!r}")


class TransformerScratch(NeuralBaseline):
    """The MAE encoder architecture with random weights (the no-pretraining ablation)."""

    Config = TransformerScratchConfig
    ablation = True
    check_overrides = {"preset": "tiny", "head_width": 16}

    @staticmethod
    def build(config: TransformerScratchConfig) -> nn.Module:
        encoder = ECGEncoder(preset(config.preset))
        return EncoderClassifier(encoder, head_width=config.head_width, pooling=config.pooling, dropout=config.dropout)

    @staticmethod
    def search_space(trial: Any) -> dict[str, Any]:
        # The encoder is fixed (it is the pretrained model's architecture); only the head is searched,
        # over the same widths as the fine-tuning space of PROTOCOL.md (2^4 .. 2^10).
        return {"head_width": trial.suggest_categorical("head_width", [2**k for k in range(4, 11)])}
