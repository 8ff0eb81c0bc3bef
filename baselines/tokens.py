"""Shared input stage of the sequence baselines: cut a signal into fixed-length chunks and
embed each chunk linearly (the "Emb-" design of docs/protocol.md), so a 10-s ECG of 5,000 samples
becomes a short token sequence (100 tokens of 50 samples by default).

MEGA, LUNA, Emb-GRU and Emb-LSTM all read their input through this one layer, so they differ
only in the sequence model, as in the study.
"""

from __future__ import annotations

import torch
from torch import nn

from simecg.errors import ConfigError


class ChunkEmbedding(nn.Module):
    """``(batch, 1, L)`` -> ``(batch, L // chunk_length, embed_dim)`` by a shared linear map."""

    def __init__(self, chunk_length: int, embed_dim: int, signal_length: int = 5000):
        super().__init__()
        if chunk_length <= 0 or signal_length % chunk_length:
            raise ConfigError(
                f"chunk_length must divide the signal length {signal_length}, got {chunk_length}"
            )
        self.chunk_length = chunk_length
        self.signal_length = signal_length
        self.proj = nn.Linear(chunk_length, embed_dim)

    @property
    def num_tokens(self) -> int:
        return self.signal_length // self.chunk_length

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() == 3:
            x = x.squeeze(1)
        if x.shape[-1] != self.signal_length:
            raise ConfigError(f"expected signals of {self.signal_length} samples, got {x.shape[-1]}")
        return self.proj(x.reshape(x.shape[0], self.num_tokens, self.chunk_length))
