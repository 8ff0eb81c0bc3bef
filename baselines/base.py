"""The model contract: every model a cell trains, obtained from the registry, used the same way.

The MAE fine-tuned from a pretrained encoder, the scratch Transformer, the neural baselines and
XGBoost all satisfy :class:`Baseline` (scikit-learn's estimator style): the constructor stores
settings only, :meth:`~Baseline.fit` learns from training and validation arrays and returns the
model, :meth:`~Baseline.predict_scores` gives a probability-like score per signal. So the code
that runs a cell has one path for every model, and a plugin's model gets the same protocol,
tuning and tests as ours (:func:`baselines.checks.check_baseline`).

A *neural* model (:class:`NeuralBaseline`) only builds its ``nn.Module`` from its config; the one
shared loop in :mod:`baselines.training` trains every neural model (same early stopping,
augmentation and metrics, so the comparison is fair by construction). An *estimator* model
(:class:`EstimatorBaseline`) makes a scikit-learn style classifier.

Register a new one with an entry point (see README, "Add a baseline"), in a module of its own::

    class MyNet(NeuralBaseline):
        Config = MyNetConfig
        @staticmethod
        def build(config: MyNetConfig) -> nn.Module: ...
        @staticmethod
        def search_space(trial: optuna.Trial) -> dict: ...
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Protocol

import numpy as np

from baselines.training import (
    GroupedWindows,
    TrainConfig,
    TrainingSamples,
    as_grouped_windows,
    as_training_samples,
    predict_scores,
    resolve_device,
    train_classifier,
)
from pretraining.mae import METHOD
from simecg.config import apply_overrides, to_dict
from simecg.errors import ConfigError
from simecg.identity import Identity
from simecg.registries import BASELINES

OnEval = Callable[[int, float], None]
ROLES = ("baseline", "extra", "ablation", "pretrained")  # Baseline.role: a model's part in the headline


@dataclasses.dataclass(frozen=True)
class EmptyConfig:
    """For baselines without architecture parameters."""


class EncoderSource(Protocol):
    """Where pretrained encoders come from (the runner provisions them; tests may pass a folder)."""

    def identity(self, corpus: str, method: str = METHOD) -> Identity:
        """The identity of the encoder pretrained by ``method`` on ``corpus`` (without training it)."""
        ...

    def path(self, corpus: str, method: str = METHOD) -> Path:
        """The encoder file pretrained by ``method`` on ``corpus``, trained or fetched if needed."""
        ...


class Baseline:
    """The contract of every model a cell trains.

    Class attributes:
        Config: frozen dataclass of the model's own settings; defaults are its paper setting.
        kind: ``"neural"`` or ``"estimator"`` (listings only; the runner never branches on it).
        role: what the model is in the headline comparison (:data:`ROLES`): ``"baseline"`` (the
            default: a supervised baseline, in the pool of "the strongest baseline"),
            ``"extra"`` (a supervised model shown beside them, never chosen as the strongest,
            e.g. XGBoost on features), ``"ablation"`` (an ablation of the pretrained model, e.g.
            the scratch Transformer; shown, never chosen) or ``"pretrained"`` (compared with the
            strongest baseline: relative gain, wins, significance). A subclass that still sets the
            older flag ``ablation = True`` gets the role ``"ablation"``.
        variant_field: a Config field set from the part of a model name after ``:``
            (``mae:sim`` sets the MAE's ``corpus`` to ``sim``); None if the model has none.
        check_overrides: Config overrides that keep :func:`~baselines.checks.check_baseline`
            fast on a CPU (a narrow network, say).
        training_defaults: the model's own fine-tuning defaults, for the :class:`TrainConfig`
            fields a suite leaves at None (``weight_decay``). The built-in models declare none:
            the authors' optimizer is Adam without weight decay for every model (their YAML's
            0.01 is never passed to it; docs/protocol.md), so every model trains with 0 unless
            ``--set finetune.weight_decay=...`` says otherwise. A plugin may declare its own.
            Applied whenever the model is made (:meth:`ModelSpec.create`); a value set in the
            suite's ``[finetune]``, by ``--set`` or by the tuner wins. They are part of the
            model's identity (:meth:`ModelSpec.identity`), so changing one reruns its cells.
        tuned_as: Config values whose tuned hyper-parameters a model takes, when its own differ:
            the study of its cells is run with these (the pretrained MAE's frozen-encoder probe,
            ``mode = "probe"``, takes the values tuned with full fine-tuning, as the authors'
            frozen runs took theirs; ``tuning.separate_studies=frozen`` tunes it on its own).

    Training and validation data (:meth:`fit`): ``x_train`` is ``(n, L)`` signals or a
    :class:`~baselines.training.TrainingSamples` whose signals change per epoch (CPSC2018's
    random 10-s crop of each record), with ``y_train`` one label per sample; ``x_val`` is
    ``(n, L)`` signals or :class:`~baselines.training.GroupedWindows` (a record's windows, its
    score the max over them), with ``y_val`` one label per record. Plain arrays are what 10-s
    records give; :func:`~baselines.training.as_training_samples` and
    :func:`~baselines.training.as_grouped_windows` turn either form into the objects.

    Fitted state (after :meth:`fit`): ``val_loss_`` (validation log loss, what tuning
    minimises), ``history_`` (learning curve rows), ``fit_metrics_`` (numbers worth logging).
    """

    Config: ClassVar[type] = EmptyConfig
    kind: ClassVar[str] = "neural"
    role: ClassVar[str] = "baseline"
    variant_field: ClassVar[str | None] = None
    check_overrides: ClassVar[dict[str, Any]] = {}
    training_defaults: ClassVar[Mapping[str, Any]] = {}
    tuned_as: ClassVar[Mapping[str, Any]] = {}

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if cls.__dict__.get("ablation") is True and "role" not in cls.__dict__:  # the flag this role replaced
            cls.role = "ablation"
        if cls.role not in ROLES:
            raise TypeError(f"{cls.__name__}.role must be one of {', '.join(ROLES)}, got {cls.role!r}")

    def __init__(self, config: Any = None, training: TrainConfig | None = None, seed: int = 0,
                 encoders: EncoderSource | None = None):
        self.config = config if config is not None else self.make_config()
        self.training = (training if training is not None else TrainConfig()).resolved(self.training_defaults)
        self.seed = seed
        self.encoders = encoders

    # ----- what a cell calls
    def fit(self, x_train: np.ndarray | TrainingSamples, y_train: np.ndarray,
            x_val: np.ndarray | GroupedWindows, y_val: np.ndarray, on_eval: OnEval | None = None) -> Baseline:
        """Learn from z-scored signals and 0/1 labels; validation drives early stopping.

        ``x_train``/``x_val`` are ``(n, L)`` arrays or the objects described in the class
        docstring (per-epoch crops, records of several windows). ``on_eval(epoch, val_loss)`` is
        called at each evaluation (Optuna pruning raises from it).
        """
        raise NotImplementedError

    def predict_scores(self, x: np.ndarray) -> np.ndarray:
        """A score in [0, 1] per signal of ``x`` (``(n, L)``), higher = more likely positive."""
        raise NotImplementedError

    # ----- configuration, tuning, identity
    @classmethod
    def make_config(cls, overrides: Mapping[str, Any] | None = None) -> Any:
        """Default config with ``overrides`` (from a suite, ``--set`` or Optuna) applied."""
        try:
            return apply_overrides(cls.Config(), dict(overrides or {}))
        except ConfigError as exc:
            raise ConfigError(f"{cls.__name__}: {exc}") from None

    @staticmethod
    def search_space(trial: Any) -> dict[str, Any]:
        """The model's own Optuna space: ``trial.suggest_*`` calls returning Config overrides."""
        return {}

    @classmethod
    def tuning_space(cls, trial: Any, config: Any = None) -> dict[str, Any]:
        """Everything tuned for this model: Config fields and fine-tuning (``TrainConfig``) fields.

        ``config`` is the model's resolved config (None: the defaults), for a model whose config
        says what is searched (the pretrained MAE's ``tune_head_width``).
        """
        return cls.search_space(trial)

    @classmethod
    def identity(cls, config: Any, encoders: EncoderSource | None) -> dict[str, Any]:
        """What of the model enters a cell's fingerprint (its resolved config; encoders add theirs)."""
        return {"config": to_dict(config)}

    @classmethod
    def prepare(cls, config: Any, encoders: EncoderSource | None) -> None:
        """Get what the model needs before its cells run (a pretrained encoder, say). Default: nothing."""

    @classmethod
    def describe(cls) -> str:
        """One line for listings: the first line of the class docstring."""
        doc = (cls.__doc__ or "").strip()
        return doc.splitlines()[0] if doc else cls.__name__


def training_space(trial: Any) -> dict[str, Any]:
    """The fine-tuning hyper-parameters every neural model is tuned over (docs/protocol.md)."""
    return {
        "lr": trial.suggest_float("lr", 5e-6, 5e-3, log=True),
        "mask_ratio": trial.suggest_float("mask_ratio", 0.0, 0.5),
        "max_shift_ratio": trial.suggest_float("max_shift_ratio", 0.0, 0.75),
    }


def encoder_tuning_space(trial: Any, config: Any = None) -> dict[str, Any]:
    """The space of the study's Transformer encoder under its CLS-token head, pretrained or from scratch.

    The authors search ``backbone_out_dim`` 2^4..2^10 for it too, but build its head from the
    embedding width (Linear(128, 32), ReLU, Dropout 0.25, Linear(32, 1)): the value has no effect,
    so the ``paper`` space is the fine-tuning space alone (docs/protocol.md, tuning). A config with
    ``tune_head_width = true`` also searches the head's hidden width over that range.
    """
    space = training_space(trial)
    if config is not None and getattr(config, "tune_head_width", False):
        space["head_width"] = 2 ** trial.suggest_int("log2_head_width", 4, 10)
    return space


class NeuralBaseline(Baseline):
    """A PyTorch model, ``(batch, 1, L)`` -> logits ``(batch,)``, trained by the shared loop."""

    kind: ClassVar[str] = "neural"

    @staticmethod
    def build(config: Any) -> Any:  # -> torch.nn.Module
        raise NotImplementedError

    def build_module(self) -> Any:
        """The module to train, initialised from ``self.seed`` (pretrained models load weights here)."""
        return self.build(self.config)

    @classmethod
    def tuning_space(cls, trial: Any, config: Any = None) -> dict[str, Any]:
        return {**training_space(trial), **cls.search_space(trial)}

    def fit(self, x_train: np.ndarray | TrainingSamples, y_train: np.ndarray,
            x_val: np.ndarray | GroupedWindows, y_val: np.ndarray, on_eval: OnEval | None = None) -> NeuralBaseline:
        import torch

        torch.manual_seed(self.seed)
        module = self.build_module()
        fit = train_classifier(module, as_training_samples(x_train, y_train), as_grouped_windows(x_val, y_val),
                               self.training, seed=self.seed, on_eval=on_eval)
        self.module_ = fit.model
        self.val_loss_ = fit.best_val_loss
        self.history_ = fit.history
        self.fit_metrics_ = {"best_epoch": fit.best_epoch, "epochs_run": fit.epochs_run,
                             "best_val_loss": fit.best_val_loss, "train_seconds": fit.seconds}
        return self

    def predict_scores(self, x: np.ndarray) -> np.ndarray:
        return predict_scores(self.module_, x, self.training.batch_size, self.training.device)

    @classmethod
    def count_parameters(cls, config: Any = None) -> int:
        """Trainable parameters of the model built from ``config`` (the default config if None)."""
        model = cls.build(cls.make_config() if config is None else config)
        return sum(p.numel() for p in model.parameters() if p.requires_grad)


class EstimatorBaseline(Baseline):
    """A scikit-learn style classifier on raw ``(n, 5000)`` signals, early-stopped on validation."""

    kind: ClassVar[str] = "estimator"

    @staticmethod
    def make_estimator(config: Any, seed: int) -> Any:
        raise NotImplementedError

    def fit(self, x_train: np.ndarray | TrainingSamples, y_train: np.ndarray,
            x_val: np.ndarray | GroupedWindows, y_val: np.ndarray, on_eval: OnEval | None = None) -> EstimatorBaseline:
        """Fit on one sample per training item (for per-epoch samples: those of epoch 1, e.g. one random
        crop per record); validate on every window, the validation loss on each record's max score."""
        from sklearn.metrics import log_loss

        train = as_training_samples(x_train, y_train)
        val = as_grouped_windows(x_val, y_val)
        signals = train.batch(np.arange(len(train)), 1)
        self.estimator_ = self.on_device(self.make_estimator(self.config, self.seed),
                                         resolve_device(self.training.device))
        self.estimator_.fit(signals, np.asarray(train.labels).astype(int), val.signals,
                            val.window_labels.astype(int))
        scores = val.item_max(self.predict_scores(val.signals))
        self.val_loss_ = float(log_loss(val.labels.astype(int), scores, labels=[0, 1]))
        self.history_: list[dict[str, float]] = []
        self.fit_metrics_ = {"best_val_loss": self.val_loss_}
        return self

    def predict_scores(self, x: np.ndarray) -> np.ndarray:
        return np.asarray(self.estimator_.predict_proba(x)[:, 1], dtype=np.float64)

    @staticmethod
    def on_device(estimator: Any, device: Any) -> Any:
        """``estimator`` set to fit on ``device`` (a ``torch.device``: ``finetune.device`` resolved), for
        estimators that can use a GPU (XGBoost); the default leaves it as it is (on the CPU)."""
        return estimator


@dataclass(frozen=True)
class ModelSpec:
    """A model name resolved through the registry: its class and config (before tuning)."""

    name: str  # as a cell names it, e.g. "resnet18-1d" or "mae:sim"
    entry: str  # the registry name, e.g. "mae"
    cls: type[Baseline]
    config: Any

    def split_overrides(self, params: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
        """Tuned values: those naming a Config field, and those for the fine-tuning config."""
        fields = {f.name for f in dataclasses.fields(self.config)}
        training_fields = {f.name for f in dataclasses.fields(TrainConfig)}
        unknown = sorted(set(params) - fields - training_fields)
        if unknown:
            raise ConfigError(f"{self.name}: tuned value(s) {', '.join(unknown)} name no setting of the model "
                              f"({', '.join(sorted(fields)) or 'none'}) or of fine-tuning")
        return ({k: v for k, v in params.items() if k in fields},
                {k: v for k, v in params.items() if k not in fields})

    def create(self, training: TrainConfig, seed: int, encoders: EncoderSource | None = None,
               params: Mapping[str, Any] | None = None) -> Baseline:
        """An unfitted model with tuned ``params`` applied to its config and to ``training``.

        The model's :attr:`~Baseline.training_defaults` then fill what ``training`` leaves at None
        (a plugin's own weight decay, say), so ``model.training`` is what it trains with.
        """
        own, train = self.split_overrides(params or {})
        config = apply_overrides(self.config, own) if own else self.config
        return self.cls(config, apply_overrides(training, train) if train else training, seed, encoders)

    def tuning_space(self, trial: Any) -> dict[str, Any]:
        """The values a tuning trial draws for this model (its class's space under its resolved config)."""
        return self.cls.tuning_space(trial, self.config)

    def tuned_as(self) -> ModelSpec:
        """The model whose tuned values this one takes: its config with the class's
        :attr:`~Baseline.tuned_as` values (itself when they change nothing)."""
        config = apply_overrides(self.config, dict(self.cls.tuned_as)) if self.cls.tuned_as else self.config
        return self if config == self.config else dataclasses.replace(self, config=config)

    def identity(self, encoders: EncoderSource | None) -> dict[str, Any]:
        """The model's part of a cell's identity: registry name, the class's identity (resolved
        config; encoders add theirs) and its fine-tuning defaults (they change its numbers)."""
        identity = {"model": self.entry, **self.cls.identity(self.config, encoders)}
        if self.cls.training_defaults:
            identity["training_defaults"] = dict(sorted(self.cls.training_defaults.items()))
        return identity


def resolve_model(name: str, overrides: Mapping[str, Mapping[str, Any]] | None = None) -> ModelSpec:
    """Resolve a cell's model name (``"resnet18-1d"``, ``"mae:sim"``) via the registry.

    ``overrides`` maps registry names to Config overrides (a suite's ``[baselines.<name>]`` tables).
    """
    entry, sep, variant = name.partition(":")
    cls = BASELINES.get(entry)
    settings = dict((overrides or {}).get(entry, {}))
    if sep:
        if cls.variant_field is None:
            raise ConfigError(f"model {name!r}: {entry} takes no ':<variant>' (it has no variant field)")
        settings[cls.variant_field] = variant
    return ModelSpec(name, entry, cls, cls.make_config(settings))
