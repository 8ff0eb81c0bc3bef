"""MEGA: moving-average equipped gated attention (Ma et al., ICLR 2023), for single-lead ECGs.

Each layer smooths the token sequence with a *multi-dimensional damped exponential moving
average* (every channel is expanded to ``ema_dim`` EMA states with learned decay ``alpha`` and
damping ``delta``; bidirectional, computed as a long convolution via FFT), then runs *gated
single-head attention*: queries and keys are cheap per-dimension affine maps of one shared
representation ``Z`` of the EMA output, values come from the input, and a reset gate, an
update gate and a candidate state mix the attention output back into the residual stream
(the gated-recurrent-style update of the paper). A feed-forward sub-layer follows.

Tokens are linear embeddings of fixed-length chunks (``baselines.tokens``); the mean token
feeds the study's MLP head (:func:`pretraining.mae.classifier_head`).

Tuning (docs/protocol.md, the authors' MEGA space) maps onto the fields: embedding 64 (``embed_dim``,
fixed), depth 3-6 (``depth``), heads 2^4..2^6 (``ema_dim``: MEGA's attention is single-head;
its "heads" are the multi-dimensional EMA's heads, the states each channel is expanded to, as
in reference implementations' ``ema_heads``/``ndim``), feed-forward 2^5..2^8 (``ffn_dim``),
chunk length {50, 100, 250} (``chunk_length``), qkv dim 2^4..2^6 (``zdim``, the shared
query/key width), ``backbone_out_dim`` 2^4..2^10 (``head_width``). Every combination is valid
(no width must divide another).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from baselines.base import NeuralBaseline
from baselines.tokens import ChunkEmbedding
from pretraining.mae import classifier_head


@dataclass(frozen=True)
class MegaConfig:
    """Architecture of MEGA; ``zdim`` is the shared query/key width, ``hdim`` the value width."""

    chunk_length: int = 50
    embed_dim: int = 64
    depth: int = 4
    ema_dim: int = 16
    zdim: int = 32
    hdim: int = 128
    ffn_dim: int = 128
    dropout: float = 0.1
    bidirectional: bool = True
    signal_length: int = 5000
    head_width: int = 32  # the head's hidden width (the authors' backbone_out_dim); 0 = a linear head
    head_dropout: float = 0.25  # inside the head (docs/protocol.md: Linear, ReLU, Dropout 0.25, Linear)


class MultiHeadDampedEMA(nn.Module):
    """Multi-dimensional damped EMA over the sequence, ``(batch, L, d) -> (batch, L, d)``.

    Per channel ``j`` and state ``k``: ``h_t = a*b*u_t + (1 - a*g) * h_{t-1}`` with decay
    ``a = sigmoid(alpha)``, damping ``g = sigmoid(delta)``, expansion ``b = beta``; the output is
    ``sum_k eta_k h_t,k`` plus a skip ``omega * u_t``. Unrolled, that is a convolution with the
    kernel ``K_t = sum_k eta_k a_k b_k (1 - a_k g_k)^t``, applied here by FFT.
    """

    def __init__(self, dim: int, ema_dim: int, bidirectional: bool = True):
        super().__init__()
        self.bidirectional = bidirectional
        states = ema_dim * (2 if bidirectional else 1)
        self.ema_dim = ema_dim
        self.alpha = nn.Parameter(torch.randn(dim, states) * 0.2)
        self.delta = nn.Parameter(torch.randn(dim, states) * 0.2)
        signs = torch.where(torch.arange(states) % 2 == 0, 1.0, -1.0)  # alternating +-1, plus noise
        self.beta = nn.Parameter(signs + torch.randn(dim, states) * 0.02)
        self.eta = nn.Parameter(torch.randn(dim, states) / math.sqrt(ema_dim))
        self.omega = nn.Parameter(torch.randn(dim) * 0.02)

    def kernel(self, length: int) -> torch.Tensor:
        """The EMA convolution kernel(s), ``(directions, dim, length)``."""
        a = torch.sigmoid(self.alpha)
        q = 1.0 - a * torch.sigmoid(self.delta)
        t = torch.arange(length, device=a.device, dtype=a.dtype)
        powers = torch.exp(torch.log(q.clamp_min(1e-6)).unsqueeze(-1) * t)  # (dim, states, L)
        k = (a * self.beta * self.eta).unsqueeze(-1) * powers
        k = k.view(k.shape[0], -1, self.ema_dim, length).sum(dim=2)  # (dim, directions, L)
        return k.transpose(0, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        length = x.shape[1]
        u = x.transpose(1, 2)  # (batch, d, L)
        k = self.kernel(length)
        n = 2 * length
        out = _causal_conv(u, k[0], n)
        if self.bidirectional:
            out = out + _causal_conv(u.flip(-1), k[1], n).flip(-1)
        return (out + u * self.omega.unsqueeze(-1)).transpose(1, 2)


def _causal_conv(u: torch.Tensor, k: torch.Tensor, n: int) -> torch.Tensor:
    """``y_t = sum_{s<=t} k_{t-s} u_s`` via zero-padded FFT (no wrap-around for n >= 2L).

    In fp32 whatever autocast hands in: cuFFT has no bf16, and a long kernel's sums want the precision.
    """
    length = u.shape[-1]
    y = torch.fft.irfft(torch.fft.rfft(u.float(), n=n) * torch.fft.rfft(k.float(), n=n), n=n)
    return y[..., :length]


class MegaLayer(nn.Module):
    """EMA + gated single-head attention + feed-forward, each with its residual path."""

    def __init__(self, c: MegaConfig, num_tokens: int):
        super().__init__()
        d = c.embed_dim
        self.zdim, self.hdim = c.zdim, c.hdim
        self.norm = nn.LayerNorm(d)
        self.ema = MultiHeadDampedEMA(d, c.ema_dim, c.bidirectional)
        self.v_proj = nn.Linear(d, c.hdim)
        # From the EMA output: shared rep Z, reset gate gamma (on the attention output), update gate phi,
        # and the EMA part of the candidate state.
        self.mx_proj = nn.Linear(d, c.zdim + c.hdim + 2 * d)
        self.qk_scale = nn.Parameter(torch.randn(2, c.zdim) * 0.02 + 1.0)
        self.qk_shift = nn.Parameter(torch.zeros(2, c.zdim))
        self.h_proj = nn.Linear(c.hdim, d)
        self.rel_bias = nn.Parameter(torch.zeros(2 * num_tokens - 1))
        idx = torch.arange(num_tokens)
        self.register_buffer("rel_index", (idx[None, :] - idx[:, None]) + num_tokens - 1, persistent=False)
        self.dropout = nn.Dropout(c.dropout)
        self.ffn_norm = nn.LayerNorm(d)
        self.ffn = nn.Sequential(nn.Linear(d, c.ffn_dim), nn.SiLU(), nn.Dropout(c.dropout), nn.Linear(c.ffn_dim, d))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        residual = x
        xn = self.norm(x)
        v = F.silu(self.v_proj(xn))
        mx = F.silu(self.ema(xn))
        z, gamma, phi, hx = torch.split(self.mx_proj(mx), [self.zdim, self.hdim, x.shape[-1], x.shape[-1]], dim=-1)
        z = F.silu(z)
        q = z * self.qk_scale[0] + self.qk_shift[0]
        k = z * self.qk_scale[1] + self.qk_shift[1]
        bias = self.rel_bias[self.rel_index]
        attn = F.scaled_dot_product_attention(q, k, v, attn_mask=bias)  # single head
        candidate = F.silu(hx + self.h_proj(F.silu(gamma) * attn))
        gate = torch.sigmoid(phi)
        x = residual + gate * (self.dropout(candidate) - residual)  # phi*H + (1 - phi)*X
        return x + self.dropout(self.ffn(self.ffn_norm(x)))


class Mega(nn.Module):
    """``(batch, 1, L)`` -> logits ``(batch,)``: chunk tokens, MEGA layers, mean pooling, MLP head."""

    def __init__(self, config: MegaConfig):
        super().__init__()
        self.embed = ChunkEmbedding(config.chunk_length, config.embed_dim, config.signal_length)
        self.layers = nn.ModuleList(MegaLayer(config, self.embed.num_tokens) for _ in range(config.depth))
        self.norm = nn.LayerNorm(config.embed_dim)
        self.head = classifier_head(config.embed_dim, config.head_width, config.head_dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.embed(x)
        for layer in self.layers:
            h = layer(h)
        return self.head(self.norm(h).mean(dim=1)).squeeze(-1)


class MegaBaseline(NeuralBaseline):
    """MEGA (Ma et al. 2023): damped-EMA plus gated single-head attention over chunk tokens."""

    Config = MegaConfig
    check_overrides = {"embed_dim": 32, "depth": 2, "hdim": 64, "ffn_dim": 64}

    @staticmethod
    def build(config: MegaConfig) -> nn.Module:
        return Mega(config)

    @staticmethod
    def search_space(trial: Any) -> dict[str, Any]:
        # docs/protocol.md's MEGA space (module docstring: which field each name maps to); embedding 64 is fixed.
        return {
            "chunk_length": trial.suggest_categorical("chunk_length", [50, 100, 250]),
            "depth": trial.suggest_int("depth", 3, 6),
            "ema_dim": 2 ** trial.suggest_int("log2_heads", 4, 6),
            "ffn_dim": 2 ** trial.suggest_int("log2_ffn_dim", 5, 8),
            "zdim": 2 ** trial.suggest_int("log2_qkv_dim", 4, 6),
            "head_width": 2 ** trial.suggest_int("log2_head_width", 4, 10),
        }
