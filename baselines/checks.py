"""``check_baseline``: does a model keep the contract the runner relies on? (like scikit-learn's ``check_estimator``).

Plugin authors call it in their own tests::

    from baselines import check_baseline

    def test_my_net_keeps_the_contract():
        check_baseline("my-net")

Our test suite runs it over every registered baseline, so a plugin installed beside the suite
gets the same checks. Each failed check raises :class:`BaselineContractError` saying which
promise was broken.
"""

from __future__ import annotations

import dataclasses
import json
import math
from typing import Any

import numpy as np

from baselines.base import Baseline, EncoderSource, ModelSpec
from baselines.training import TrainConfig, as_grouped_windows, as_training_samples
from simecg.config import apply_overrides
from simecg.errors import ConfigError, SimECGError
from simecg.registries import BASELINES
from simecg.signal import N_SAMPLES

# Short, CPU-sized training for the checks (the contract, not the accuracy, is checked).
CHECK_TRAINING = TrainConfig(lr=1e-3, batch_size=16, max_epochs=2, eval_every=1, patience=1)


class BaselineContractError(SimECGError, AssertionError):
    """A registered model does not keep the model contract (:class:`baselines.base.Baseline`)."""


def check_data(n: int = 48, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """A small learnable problem: z-scored noise, positives carry a 2-Hz spike train."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, N_SAMPLES)).astype(np.float32)
    y = (np.arange(n) % 2).astype(np.float32)
    x[y == 1, ::250] += 6.0
    x = (x - x.mean(axis=1, keepdims=True)) / x.std(axis=1, keepdims=True)
    half = n * 3 // 4
    return x[:half], y[:half], x[half:], y[half:]


def check_baseline(name_or_cls: str | type[Baseline], encoders: EncoderSource | None = None,
                   variant: str | None = None) -> dict[str, Any]:
    """Run the contract checks on a registered model (by name) or a model class; return a summary.

    Args:
        name_or_cls: a registry name (``"resnet18-1d"``) or a :class:`Baseline` subclass.
        encoders: for models that need pretrained encoders (``mae``).
        variant: the ``:variant`` of the model name for models that take one (``mae`` -> a corpus).
    """
    if isinstance(name_or_cls, str):
        name, cls = name_or_cls, BASELINES.get(name_or_cls)
    else:
        name, cls = getattr(name_or_cls, "__name__", "model"), name_or_cls
    _expect(isinstance(cls, type) and issubclass(cls, Baseline), name, "is a subclass of baselines.base.Baseline")
    _check_config(name, cls)
    settings = dict(cls.check_overrides)
    if cls.variant_field is not None:
        settings[cls.variant_field] = variant or cls.make_config().__getattribute__(cls.variant_field)
    spec = ModelSpec(name, name, cls, cls.make_config(settings))
    _check_tuning_space(spec)

    identity = spec.identity(encoders)
    try:
        text = json.dumps(identity, sort_keys=True)
    except TypeError as exc:
        raise BaselineContractError(f"{name}: identity() is not JSON-ready ({exc})") from None
    _expect(json.dumps(spec.identity(encoders), sort_keys=True) == text, name, "gives the same identity twice")

    x_train, y_train, x_val, y_val = check_data()
    before = x_train.copy()
    cls.prepare(spec.config, encoders)
    model = spec.create(CHECK_TRAINING, seed=3, encoders=encoders)
    evaluations: list[tuple[int, float]] = []
    fitted = model.fit(x_train, y_train, x_val, y_val, on_eval=lambda e, loss: evaluations.append((e, loss)))
    _expect(fitted is model, name, "fit() returns the model itself")
    _expect(np.array_equal(before, x_train), name, "leaves its training signals unchanged")
    _expect(math.isfinite(float(model.val_loss_)), name, f"sets a finite val_loss_ (got {model.val_loss_!r})")
    _expect(isinstance(model.history_, list), name, "sets history_ to a list of rows")
    bad = {k: v for k, v in model.fit_metrics_.items() if not math.isfinite(float(v))}
    _expect(not bad, name, f"sets finite fit_metrics_ (got {bad})")
    scores = np.asarray(model.predict_scores(x_val))
    _expect(scores.shape == (len(x_val),), name, f"predicts one score per signal (got shape {scores.shape})")
    _expect(bool(np.isfinite(scores).all()) and scores.min() >= 0 and scores.max() <= 1, name,
            "predicts finite scores in [0, 1]")
    # the same data as objects (what records longer than a window give: per-epoch samples, grouped windows)
    again = spec.create(CHECK_TRAINING, seed=3, encoders=encoders).fit(
        as_training_samples(x_train, y_train), y_train, as_grouped_windows(x_val, y_val), y_val)
    _expect(np.allclose(again.predict_scores(x_val), scores, atol=1e-6), name,
            "is deterministic and reads training samples and grouped windows: the same seed and data "
            "give the same scores")
    return {"name": name, "kind": cls.kind, "val_loss": float(model.val_loss_), "evaluations": len(evaluations),
            "identity": identity}


def _check_config(name: str, cls: type[Baseline]) -> None:
    config_cls = cls.Config
    _expect(dataclasses.is_dataclass(config_cls), name, "has a dataclass Config")
    _expect(config_cls.__dataclass_params__.frozen, name, "has a frozen Config (configs are values)")
    try:
        config = cls.make_config()
    except Exception as exc:
        raise BaselineContractError(f"{name}: its Config() has no usable defaults ({exc})") from None
    try:
        cls.make_config({"no_such_setting_": 1})
    except ConfigError:
        pass
    else:
        raise BaselineContractError(f"{name}: make_config accepted an unknown setting (it must raise ConfigError)")
    _expect(cls.make_config() == config, name, "builds equal default configs")
    try:
        TrainConfig().resolved(cls.training_defaults)
    except ConfigError as exc:
        raise BaselineContractError(f"{name}: its training_defaults are not fine-tuning settings ({exc})") from None


def _check_tuning_space(spec: ModelSpec) -> None:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    for _ in range(3):
        params = spec.tuning_space(study.ask())
        _expect(isinstance(params, dict), spec.name, "tuning_space() returns a dict of overrides")
        try:
            own, training = spec.split_overrides(params)
            apply_overrides(spec.config, own)
            apply_overrides(CHECK_TRAINING, training)
        except ConfigError as exc:
            raise BaselineContractError(f"{spec.name}: its tuning space proposes an invalid value: {exc}") from None


def _expect(condition: bool, name: str, promise: str) -> None:
    if not condition:
        raise BaselineContractError(f"{name}: breaks the model contract: it must be true that it {promise}")
