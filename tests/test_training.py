"""The shared training loop and metrics."""

from __future__ import annotations

import contextlib

import numpy as np
import pytest
import torch
from torch import nn

from baselines.training import (
    DeviceBatches,
    TrainConfig,
    as_training_samples,
    augment,
    autocast,
    check_device,
    predict_scores,
    resolve_device,
    train_classifier,
)
from benchmark.results.metrics import binary_metrics, record_scores
from simecg.errors import ConfigError


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


@pytest.mark.slow
def test_loop_learns_a_separable_task_and_restores_the_best_epoch() -> None:
    train, val, test = _separable(64, 0), _separable(32, 1), _separable(64, 2)
    torch.manual_seed(0)
    fit = train_classifier(_Spectral(), train, val, TrainConfig(lr=1e-2, batch_size=16, max_epochs=30,
                                                                eval_every=2, patience=5), seed=0)
    scores = predict_scores(fit.model, test[0])
    assert binary_metrics(test[1], scores)["auroc"] > 0.9
    assert fit.best_val_loss == min(h["val_loss"] for h in fit.history)
    assert fit.best_epoch in [int(h["epoch"]) for h in fit.history]


@pytest.mark.slow
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


# ----- the device: every stage of a fit on config.device, the same code on CPU and GPU

def test_auto_is_the_gpu_when_there_is_one_else_the_cpu_and_cpu_is_the_cpu() -> None:
    assert resolve_device("auto") == torch.device("cuda" if torch.cuda.is_available() else "cpu")
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device(torch.device("cpu")) == torch.device("cpu")
    assert check_device("cuda:1") == "cuda:1"  # the spelling only: valid on a machine without that GPU


@pytest.mark.parametrize("name", ["gpu", "cuda:", "cuda:x", "CPU", "", "mps", "cpu:0"])
def test_a_bad_device_is_a_config_error_naming_it(name: str) -> None:
    with pytest.raises(ConfigError, match=f"finetune.device .*{name!r}"):
        resolve_device(name)
    with pytest.raises(ConfigError, match=repr(name)):
        train_classifier(_Spectral(), _separable(8, 0), _separable(4, 1), TrainConfig(max_epochs=1, device=name))


def test_a_gpu_that_is_not_there_is_a_config_error_not_a_cpu_run() -> None:
    missing = f"cuda:{torch.cuda.device_count() if torch.cuda.is_available() else 0}"
    with pytest.raises(ConfigError, match=f"{missing!r} but .* visible"):
        resolve_device(missing)


def test_explicit_cpu_and_auto_on_this_machine_train_the_same_numbers() -> None:
    """On a CPU machine ``auto`` is the CPU: the explicit and the automatic device give identical fits."""
    device = "cuda" if torch.cuda.is_available() else "cpu"  # "auto" here
    train, val = _separable(48, 0), _separable(16, 1)
    outs = []
    for name in ("auto", device):
        torch.manual_seed(3)
        cfg = TrainConfig(lr=1e-2, batch_size=16, max_epochs=4, eval_every=2, mask_ratio=0.2, max_shift_ratio=0.1,
                          grad_clip=1.0, device=name)
        fit = train_classifier(_Spectral(), train, val, cfg, seed=5)
        outs.append((fit.history, predict_scores(fit.model, val[0], 8, name)))
    assert outs[0][0] == outs[1][0]
    np.testing.assert_array_equal(outs[0][1], outs[1][1])


class _DeviceSpy(_Spectral):
    """Records the device and dtype of every input, and fails if one is not where the weights are."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: set[tuple[str, torch.dtype]] = set()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        assert x.device == self.conv.weight.device
        self.seen.add((x.device.type, x.dtype))
        return super().forward(x)


def test_training_validation_and_scoring_all_run_on_the_configured_device() -> None:
    train, val = _separable(20, 0), _separable(6, 1)
    spy = _DeviceSpy()
    cfg = TrainConfig(batch_size=8, max_epochs=2, eval_every=1, mask_ratio=0.1, max_shift_ratio=0.1, device="cpu")
    fit = train_classifier(spy, train, val, cfg, seed=0)
    assert fit.model is spy and spy.conv.weight.device.type == "cpu"
    scores = predict_scores(spy, val[0], 4, "cpu")
    assert scores.dtype == np.float32 and scores.shape == (6,)
    assert spy.seen == {("cpu", torch.float32)}  # fp32 on the CPU: no autocast there
    assert isinstance(autocast(torch.device("cpu")), contextlib.nullcontext)


def test_the_batches_of_an_epoch_hold_every_sample_once_unchanged_and_with_its_label() -> None:
    x, y = _separable(37, 0)
    x[:, 0] = np.arange(37)  # each signal names its row
    cfg = TrainConfig(batch_size=8, device="cpu")
    batches = DeviceBatches(as_training_samples(x, y.astype(np.float32)), cfg, torch.device("cpu"),
                            torch.Generator().manual_seed(0))
    rows = []
    for xb, yb in batches.epoch(1):
        assert xb.shape[1:] == (1, 5000) and len(xb) <= 8
        index = xb[:, 0, 0].long().numpy()
        np.testing.assert_array_equal(xb[:, 0].numpy(), x[index])
        np.testing.assert_array_equal(yb.numpy(), y[index])
        rows += index.tolist()
    assert sorted(rows) == list(range(37))


def test_training_leaves_the_callers_thread_count_and_arrays_alone() -> None:
    before = torch.get_num_threads()
    train, val = _separable(16, 0), _separable(4, 1)
    copy = train[0].copy()
    try:
        torch.set_num_threads(1)
        train_classifier(_Spectral(), train, val, TrainConfig(batch_size=8, max_epochs=1, mask_ratio=0.3,
                                                              max_shift_ratio=0.3, device="cpu"))
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)
    np.testing.assert_array_equal(train[0], copy)  # shared with the CPU tensor, never written


def test_a_diverged_fine_tuning_is_an_error_not_a_model() -> None:
    """lr=1e3 drives the loss to ~1e20 (or NaN): the fit fails saying so, instead of a model scoring F1 0."""
    from simecg.errors import DivergedError

    train, val = _separable(32, 0), _separable(16, 1)
    torch.manual_seed(0)
    with pytest.raises(DivergedError, match=r"diverged.*finetune\.lr") as error:
        train_classifier(_Spectral(), train, val, TrainConfig(lr=1e3, batch_size=8, max_epochs=6, eval_every=2,
                                                              patience=5), seed=0)
    assert isinstance(error.value, RuntimeError)  # a tuning trial that diverges is a failed trial


def test_a_non_finite_loss_stops_at_the_evaluation_that_sees_it() -> None:
    from simecg.errors import DivergedError

    class Poisoned(_Spectral):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return super().forward(x) * float("nan")

    train, val = _separable(16, 0), _separable(8, 1)
    with pytest.raises(DivergedError, match="epoch 1"):
        train_classifier(Poisoned(), train, val, TrainConfig(lr=1e-2, batch_size=8, max_epochs=50, eval_every=1,
                                                             patience=50), seed=0)
