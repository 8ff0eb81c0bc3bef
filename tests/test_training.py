"""The shared training loop and metrics."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from baselines.training import TrainConfig, augment, predict_scores, train_classifier
from benchmark.metrics import binary_metrics, record_scores


def _separable(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    t = np.linspace(0, 10, 5000, dtype=np.float32)
    freq = np.where(y == 1, 3.0, 1.0)[:, None]
    x = np.sin(2 * np.pi * freq * t[None, :]) + 0.3 * rng.standard_normal((n, 5000))
    return x.astype(np.float32), y


class _Spectral(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv1d(1, 4, 101, stride=10)
        self.out = nn.Linear(4, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(self.conv(x).abs().mean(-1)).squeeze(-1)


def test_loop_learns_a_separable_task_and_restores_the_best_epoch() -> None:
    train, val, test = _separable(64, 0), _separable(32, 1), _separable(64, 2)
    torch.manual_seed(0)
    fit = train_classifier(_Spectral(), train, val, TrainConfig(lr=1e-2, batch_size=16, max_epochs=30,
                                                                eval_every=2, patience=5), seed=0)
    scores = predict_scores(fit.model, test[0])
    assert binary_metrics(test[1], scores)["auroc"] > 0.9
    assert fit.best_val_loss == min(h["val_loss"] for h in fit.history)
    assert fit.best_epoch in [int(h["epoch"]) for h in fit.history]


def test_same_seed_same_model() -> None:
    train, val = _separable(32, 0), _separable(16, 1)
    cfg = TrainConfig(lr=1e-2, batch_size=8, max_epochs=4, eval_every=2, patience=5, mask_ratio=0.2,
                      max_shift_ratio=0.1)
    outs = []
    for _ in range(2):
        torch.manual_seed(3)
        fit = train_classifier(_Spectral(), train, val, cfg, seed=5)
        outs.append(predict_scores(fit.model, val[0]))
    np.testing.assert_array_equal(outs[0], outs[1])


def test_augment_zeroes_one_segment_and_shifts_with_zero_padding() -> None:
    g = torch.Generator().manual_seed(0)
    x = torch.ones(4, 1, 100)
    masked = augment(x, mask_ratio=0.25, max_shift_ratio=0.0, generator=g)
    zeros = (masked == 0).squeeze(1)
    assert (zeros.sum(1) == 25).all()
    for row in zeros:  # contiguous
        idx = torch.nonzero(row).squeeze(1)
        assert idx.max() - idx.min() == 24
    shifted = augment(torch.arange(100.0).view(1, 1, 100).repeat(8, 1, 1), 0.0, 0.3, g)
    assert ((shifted == 0).sum(-1) <= 31).all()


def test_record_score_is_the_max_over_windows_and_f1_uses_threshold_half() -> None:
    scores = record_scores(np.array([0.2, 0.7, 0.4, 0.1]), np.array([0, 0, 1, 2]), np.array([0, 1, 2]))
    np.testing.assert_allclose(scores, [0.7, 0.4, 0.1])
    m = binary_metrics(np.array([1, 1, 0]), scores)
    assert m["f1"] == pytest.approx(2 / 3)  # only record 0 is predicted positive
    assert np.isnan(binary_metrics(np.array([1, 1]), np.array([0.9, 0.8]))["auroc"])
