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
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Protocol

import numpy as np

from baselines.names import ModelName
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
from simecg.config import apply_overrides, to_dict
from simecg.errors import ConfigError
from simecg.identity import Identity
from simecg.registries import BASELINES

OnEval = Callable[[int, float], None]
ROLES = ("baseline", "extra", "ablation", "pretrained")  # Baseline.role: a model's part in the headline


@dataclasses.dataclass(frozen=True)
class EmptyConfig:
    """For baselines without architecture parameters."""


@dataclass(frozen=True)
class EncoderNeed:
    """The encoder a pretrained model fine-tunes: the one pretraining ``method`` makes on ``source``.

    A pretrained model is a method on a source (docs/protocol.md, "Pretraining sources"): the
    model declares its method (:attr:`Baseline.pretraining_method`) and its name's variant names
    the source (``mae:sim``: the source ``sim``), so the encoder provisioning asks each model
    which encoder it needs (:meth:`Baseline.encoder_need`) instead of knowing the models. Two
    models that need the same method on the same source share one encoder.
    """

    method: str  # the pretraining method, e.g. masked autoencoding
    source: str  # a corpus name or a suite's [sources.<name>] table

    def __str__(self) -> str:
        return f"{self.method} on {self.source}"


class EncoderSource(Protocol):
    """Where pretrained encoders come from (the runner provisions them; tests may pass a folder)."""

    def identity(self, need: EncoderNeed) -> Identity:
        """The identity of the encoder ``need`` names (without training it)."""
        ...

    def path(self, need: EncoderNeed) -> Path:
        """The encoder file ``need`` names, trained or fetched if needed."""
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
            older flag ``ablation = True`` gets the role ``"ablation"``. A suite's grid that names a
            pretrained model without a variant (``mae``) runs it on each of the suite's pretraining
            sources (``mae:sim``, ``mae:ptbxl``: :func:`expand_model`), so its ``variant_field``
            names the source.
        variant_field: a Config field set from the part of a model name after ``:``
            (``mae:sim`` sets the MAE's ``corpus`` to ``sim``); None if the model has none.
        pretraining_method: for a model that fine-tunes a pretrained encoder, the pretraining
            method of that encoder; with the source its variant names, the encoder it needs
            (:meth:`encoder_need`), which the runner provisions before its cells and whose
            fingerprint enters their identity. None: the model needs no encoder.
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
    pretraining_method: ClassVar[str | None] = None
    check_overrides: ClassVar[dict[str, Any]] = {}
    training_defaults: ClassVar[Mapping[str, Any]] = {}
    tuned_as: ClassVar[Mapping[str, Any]] = {}

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if cls.__dict__.get("ablation") is True and "role" not in cls.__dict__:  # the flag this role replaced
            cls.role = "ablation"
        if cls.role not in ROLES:
            raise TypeError(f"{cls.__name__}.role must be one of {', '.join(ROLES)}, got {cls.role!r}")
        if cls.role == "pretrained" and cls.variant_field is None:
            raise TypeError(f"{cls.__name__} has the role 'pretrained' but no variant_field: a pretrained model "
                            "runs once per pretraining source, named after ':' (set variant_field to the Config "
                            "field that holds the source)")

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
    def encoder_need(cls, config: Any) -> EncoderNeed | None:
        """The encoder this model fine-tunes: its :attr:`pretraining_method` on the source its variant
        field holds (``mae:sim``: the MAE's method on ``sim``); None for a model without one."""
        if cls.pretraining_method is None or cls.variant_field is None:
            return None
        return EncoderNeed(cls.pretraining_method, str(getattr(config, cls.variant_field)))

    @classmethod
    def identity(cls, config: Any, encoders: EncoderSource | None) -> dict[str, Any]:
        """What of the model enters a cell's fingerprint: its resolved config and, for a model that needs
        an encoder, that encoder's fingerprint and whether its pretraining saw downstream test records."""
        identity: dict[str, Any] = {"config": to_dict(config)}
        need = cls.encoder_need(config)
        if need is not None:
            encoder = _encoder_source(cls, encoders).identity(need)
            identity["encoder"] = encoder.fingerprint
            # pretrained on downstream test records (ptbxl-authors): every output says so
            identity["sees_test_records"] = bool(encoder.payload.get("corpus", {}).get("sees_test_records", False))
        return identity

    @classmethod
    def prepare(cls, config: Any, encoders: EncoderSource | None) -> None:
        """Get what the model needs before its cells run: its encoder (:meth:`encoder_need`), trained or
        fetched once by the encoder source. Default: that, or nothing for a model without one."""
        need = cls.encoder_need(config)
        if need is not None:
            _encoder_source(cls, encoders).path(need)

    def encoder_path(self) -> Path:
        """The file of the encoder this model fine-tunes (from its encoder source)."""
        need = self.encoder_need(self.config)
        if need is None:
            raise ConfigError(f"{type(self).__name__} fine-tunes no pretrained encoder (pretraining_method is None)")
        return _encoder_source(type(self), self.encoders).path(need)

    @classmethod
    def describe(cls) -> str:
        """One line for listings: the first line of the class docstring."""
        doc = (cls.__doc__ or "").strip()
        return doc.splitlines()[0] if doc else cls.__name__


def _encoder_source(cls: type[Baseline], encoders: EncoderSource | None) -> EncoderSource:
    if encoders is None:
        raise ConfigError(f"{cls.__name__}: a pretrained model needs an encoder source (the runner provides one)")
    return encoders


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
    def build_shaped(cls, config: Any, pretrain: Any = None) -> Any:
        """The module a cell trains, with random weights: for a pretrained model, its encoder shaped as
        ``pretrain`` (the source's ``PretrainConfig``) trains it, without pretraining (speed benchmarks).
        Default: :meth:`build`."""
        return cls.build(config)

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

    name: ModelName  # as a cell names it, e.g. "resnet18-1d" or "mae:sim"
    entry: str  # the registry name, e.g. "mae"
    cls: type[Baseline]
    config: Any

    def __post_init__(self) -> None:
        object.__setattr__(self, "name", ModelName.parse(self.name))  # text given by a caller: parsed here, once

    @property
    def source(self) -> str:
        """The pretraining source of a pretrained model (``mae:sim`` -> ``sim``: its variant field); ``""`` for
        the other models."""
        if self.cls.role != "pretrained" or self.cls.variant_field is None:
            return ""
        return str(getattr(self.config, self.cls.variant_field))

    def encoder_need(self) -> EncoderNeed | None:
        """The encoder the model fine-tunes (:meth:`Baseline.encoder_need`); None for most models."""
        return self.cls.encoder_need(self.config)

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
    """Resolve a cell's model name (``"resnet18-1d"``, ``"mae:sim"``; text or a :class:`ModelName`) via the registry.

    ``overrides`` maps registry names to Config overrides (a suite's ``[baselines.<name>]`` tables).
    """
    name = ModelName.parse(name)
    cls = BASELINES.get(name.entry)
    settings = dict((overrides or {}).get(name.entry, {}))
    if name.variant:
        if cls.variant_field is None:
            raise ConfigError(f"model {name!r}: {name.entry} takes no ':<variant>' (it has no variant field)")
        settings[cls.variant_field] = name.variant
    return ModelSpec(name, name.entry, cls, cls.make_config(settings))


def expands_over_sources(name: str) -> bool:
    """Whether a grid's model ``name`` stands for one model per pretraining source: a registered model of
    role ``pretrained`` named without a variant (``mae``, not ``mae:sim``)."""
    name = ModelName.parse(name)
    return not name.variant and BASELINES.get(name.entry).role == "pretrained"


def expand_model(name: str, sources: Sequence[str]) -> list[ModelName]:
    """A grid's model name as the models its cells run: a pretrained model named without a variant
    stands for it pretrained on each of ``sources`` (``mae`` -> ``mae:sim``, ``mae:ptbxl``; any
    pretrained model alike); any other name is itself (``resnet18-1d``, ``mae:sim``)."""
    name = ModelName.parse(name)
    return [name.with_variant(source) for source in sources] if expands_over_sources(name) else [name]
