"""The study's own Transformer encoder, randomly initialised and trained from scratch.

This is the ablation of pretraining: the same :class:`pretraining.mae.ECGEncoder` (a named
architecture preset, ``paper`` by default) under the same CLS-token MLP head and the same
fine-tuning, but without any MAE weights, so any gain of a pretrained model over it is the
gain of pretraining. Because it is that ablation, its encoder is not searched (the authors'
separate supervised "Transformer" space of docs/protocol.md would change the architecture it
ablates). As the authors' random-init runs, it takes the tuned values of the SimECG-N MAE's
study of the same task (``tuning.shared_studies``, docs/protocol.md); tuned on its own, its
space is the pretrained MAE's (:func:`baselines.base.encoder_tuning_space`). Like every model,
it trains with Adam without weight decay.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from torch import nn

from baselines.base import NeuralBaseline, encoder_tuning_space
from pretraining.mae import PRESETS, ECGEncoder, EncoderClassifier, check_head, preset
from simecg.errors import ConfigError


@dataclass(frozen=True)
class TransformerScratchConfig:
    """Encoder preset (``pretraining.mae.PRESETS``) and the classification head."""

    preset: str = "paper"
    head_width: int = 32  # the head's hidden width (the authors' backbone_out_dim); 0 = a linear head
    pooling: str = "cls"
    dropout: float = 0.25  # the head's dropout (docs/protocol.md head: Linear, ReLU, Dropout 0.25, Linear)
    activation: str = "relu"  # the head's activation: "relu" (paper) or "gelu"
    tune_head_width: bool = False  # also search head_width 2^4..2^10 when it is tuned on its own

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

    @staticmethod
    def build(config: TransformerScratchConfig) -> nn.Module:
        encoder = ECGEncoder(preset(config.preset))
        return EncoderClassifier(encoder, head_width=config.head_width, pooling=config.pooling, dropout=config.dropout,
                                 activation=config.activation)

    @classmethod
    def tuning_space(cls, trial: Any, config: Any = None) -> dict[str, Any]:
        # the encoder is fixed (it is the pretrained model's architecture): the pretrained MAE's space
        return encoder_tuning_space(trial, config)
