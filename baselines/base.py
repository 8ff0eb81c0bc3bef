"""The contract of a supervised baseline: a config dataclass, a builder, a search space.

A *neural* baseline maps ``(batch, 1, 5000)`` z-scored ECGs to logits ``(batch,)`` and is
trained by the one shared loop in ``benchmark.training`` (same early stopping, augmentation
and metrics for every model, so the comparison is fair by construction). An *estimator*
baseline is a scikit-learn style classifier on raw signals (``fit``/``predict_proba``).

Register a new one with a decorator in a module of its own::

    @BASELINES.register("my-net")
    class MyNet(NeuralBaseline):
        Config = MyNetConfig
        @staticmethod
        def build(config: MyNetConfig) -> nn.Module: ...
        @staticmethod
        def search_space(trial: optuna.Trial) -> dict: ...
"""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar

from simecg.config import apply_overrides
from simecg.errors import ConfigError


@dataclasses.dataclass(frozen=True)
class EmptyConfig:
    """For baselines without architecture parameters."""


class Baseline:
    """Common part: a frozen ``Config`` dataclass whose defaults are the baseline's paper setting."""

    kind: ClassVar[str] = "neural"
    Config: ClassVar[type] = EmptyConfig

    @classmethod
    def make_config(cls, overrides: dict[str, Any] | None = None) -> Any:
        """Default config with ``overrides`` (from a suite, ``--set`` or Optuna) applied."""
        try:
            return apply_overrides(cls.Config(), overrides or {})
        except ConfigError as exc:
            raise ConfigError(f"{cls.__name__}: {exc}") from None

    @staticmethod
    def search_space(trial: Any) -> dict[str, Any]:
        """Optuna architecture space: ``trial.suggest_*`` calls returning Config overrides."""
        return {}

    @classmethod
    def describe(cls) -> str:
        """One line for listings: the first line of the class docstring."""
        doc = (cls.__doc__ or "").strip()
        return doc.splitlines()[0] if doc else cls.__name__


class NeuralBaseline(Baseline):
    """A PyTorch model trained by the shared loop."""

    kind: ClassVar[str] = "neural"

    @staticmethod
    def build(config: Any) -> Any:  # -> torch.nn.Module
        raise NotImplementedError

    @classmethod
    def count_parameters(cls, config: Any = None) -> int:
        """Trainable parameters of the model built from ``config`` (the default config if None)."""
        model = cls.build(cls.make_config() if config is None else config)
        return sum(p.numel() for p in model.parameters() if p.requires_grad)


class EstimatorBaseline(Baseline):
    """A scikit-learn style classifier on raw ``(n, 5000)`` signals."""

    kind: ClassVar[str] = "estimator"

    @staticmethod
    def make_estimator(config: Any, seed: int) -> Any:
        raise NotImplementedError
