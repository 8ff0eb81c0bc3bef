"""Emb-GRU and Emb-LSTM: a linear embedding of fixed-length chunks into a recurrent stack.

The 5,000-sample ECG is cut into chunks of 50, 100 or 250 samples (searchable), each chunk is
embedded by one shared linear map (``baselines.tokens``), and a (bidirectional) GRU or LSTM
stack reads the chunk sequence. The final states of both directions (or the mean over time)
feed the study's MLP head (:func:`pretraining.mae.classifier_head`). The two registered
baselines differ only in the recurrent cell.

Tuning (docs/protocol.md, the authors' Emb-LSTM/Emb-GRU space): depth 1-4 (``num_layers``), hidden
2^4..2^8 (``hidden_size``), chunk length {50, 100, 250} (``chunk_length``), embedding 64
(``embed_dim``, fixed), ``backbone_out_dim`` 2^4..2^10 (``head_width``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import nn

from baselines.base import NeuralBaseline
from baselines.tokens import ChunkEmbedding
from pretraining.mae import classifier_head
from simecg.errors import ConfigError

CELLS: dict[str, type[nn.RNNBase]] = {"gru": nn.GRU, "lstm": nn.LSTM}


@dataclass(frozen=True)
class EmbRNNConfig:
    """Architecture of an Emb-RNN; ``pooling`` is ``last`` (final states) or ``mean`` (over time)."""

    chunk_length: int = 50
    embed_dim: int = 64
    hidden_size: int = 128
    num_layers: int = 2
    bidirectional: bool = True
    pooling: str = "last"
    dropout: float = 0.1
    signal_length: int = 5000
    head_width: int = 32  # the head's hidden width (the authors' backbone_out_dim); 0 = a linear head
    head_dropout: float = 0.25  # inside the head (docs/protocol.md: Linear, ReLU, Dropout 0.25, Linear)

    def __post_init__(self) -> None:
        if self.pooling not in ("last", "mean"):
            raise ConfigError(f"emb-rnn: pooling must be 'last' or 'mean', got {self.pooling!r}")


class ChunkRNN(nn.Module):
    """``(batch, 1, L)`` -> logits ``(batch,)`` through chunk embedding and a recurrent stack."""

    def __init__(self, config: EmbRNNConfig, cell: str):
        super().__init__()
        c = config
        self.pooling = c.pooling
        self.bidirectional = c.bidirectional
        self.hidden_size = c.hidden_size
        self.embed = ChunkEmbedding(c.chunk_length, c.embed_dim, c.signal_length)
        self.rnn = CELLS[cell](
            c.embed_dim,
            c.hidden_size,
            num_layers=c.num_layers,
            batch_first=True,
            bidirectional=c.bidirectional,
            dropout=c.dropout if c.num_layers > 1 else 0.0,
        )
        out_dim = c.hidden_size * (2 if c.bidirectional else 1)
        self.head = nn.Sequential(nn.Dropout(c.dropout), classifier_head(out_dim, c.head_width, c.head_dropout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        tokens = self.embed(x)
        # The recurrence runs in fp32 even under bf16 autocast on a GPU: cuDNN's bf16 RNNs are recent
        # (cuDNN 9.13), older stacks fail; on the CPU nothing changes.
        with torch.autocast(tokens.device.type, enabled=False):
            out, _ = self.rnn(tokens.float())  # (batch, tokens, directions * hidden)
        if self.pooling == "mean":
            pooled = out.mean(dim=1)
        elif self.bidirectional:  # forward direction ends at the last token, backward at the first
            pooled = torch.cat([out[:, -1, : self.hidden_size], out[:, 0, self.hidden_size :]], dim=-1)
        else:
            pooled = out[:, -1]
        return self.head(pooled).squeeze(-1)


def _search_space(trial: Any) -> dict[str, Any]:
    # docs/protocol.md's Emb-LSTM/Emb-GRU space (module docstring); embedding 64 is fixed.
    return {
        "chunk_length": trial.suggest_categorical("chunk_length", [50, 100, 250]),
        "num_layers": trial.suggest_int("num_layers", 1, 4),
        "hidden_size": 2 ** trial.suggest_int("log2_hidden_size", 4, 8),
        "head_width": 2 ** trial.suggest_int("log2_head_width", 4, 10),
    }


class _EmbRNN(NeuralBaseline):
    Config = EmbRNNConfig
    check_overrides = {"hidden_size": 32, "num_layers": 1}
    cell: ClassVar[str] = "gru"

    @classmethod
    def build(cls, config: EmbRNNConfig) -> nn.Module:
        return ChunkRNN(config, cls.cell)

    search_space = staticmethod(_search_space)


class EmbGRU(_EmbRNN):
    """Emb-GRU: linear chunk embedding (50/100/250 samples) into a bidirectional GRU stack."""

    cell = "gru"


class EmbLSTM(_EmbRNN):
    """Emb-LSTM: linear chunk embedding (50/100/250 samples) into a bidirectional LSTM stack."""

    cell = "lstm"
