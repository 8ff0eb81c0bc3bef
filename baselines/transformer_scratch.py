"""The study's own Transformer encoder, randomly initialised and trained from scratch.

This is the ablation of pretraining: the same :class:`pretraining.mae.ECGEncoder` (a named
architecture preset, ``paper`` by default) under the same CLS-token MLP head and the same
fine-tuning, but without any MAE weights, so any gain of a pretrained model over it is the
gain of pretraining. Because it is that ablation, its encoder is not searched (the authors'
separate supervised "Transformer" space of PROTOCOL.md would change the architecture it
ablates); only the head width (``backbone_out_dim``, 2^4..2^10) is. Trained from scratch, it
takes the supervised baselines' Adam weight decay 0.01.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from torch import nn

from baselines.base import NeuralBaseline
from pretraining.mae import PRESETS, ECGEncoder, EncoderClassifier, check_head, preset
from simecg.errors import ConfigError


@dataclass(frozen=True)
class TransformerScratchConfig:
    """Encoder preset (``pretraining.mae.PRESETS``) and the classification head."""

    preset: str = "paper"
    head_width: int = 32  # the head's hidden width (the authors' backbone_out_dim); 0 = a linear head
    pooling: str = "cls"
    dropout: float = 0.25  # the head's dropout (PROTOCOL.md head: Linear, ReLU, Dropout 0.25, Linear)
    activation: str = "relu"  # the head's activation: "relu" (paper) or "gelu"

    def __post_init__(self) -> None:
        if self.preset not in PRESETS:
            raise ConfigError(
                f"transformer-scratch: unknown preset {self.preset!r}; known: {', '.join(sorted(PRESETS))}"
            )
        check_head("transformer-scratch", self.pooling, self.activation)


class TransformerScratch(NeuralBaseline):
    """The MAE encoder architecture with random weights (the no-pretraining ablation)."""

    Config = TransformerScratchConfig
    role = "ablation"
    check_overrides = {"preset": "tiny", "head_width": 16}
    training_defaults = {"weight_decay": 0.01}  # trained from scratch, as the supervised baselines (PROTOCOL.md)

    @staticmethod
    def build(config: TransformerScratchConfig) -> nn.Module:
        encoder = ECGEncoder(preset(config.preset))
        return EncoderClassifier(encoder, head_width=config.head_width, pooling=config.pooling, dropout=config.dropout,
                                 activation=config.activation)

    @staticmethod
    def search_space(trial: Any) -> dict[str, Any]:
        # The encoder is fixed (it is the pretrained model's architecture); only the head is searched,
        # over PROTOCOL.md's backbone_out_dim 2^4 .. 2^10.
        return {"head_width": 2 ** trial.suggest_int("log2_head_width", 4, 10)}
