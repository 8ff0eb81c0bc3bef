"""XGBoost on hand-crafted ECG features: the classical gradient-boosted baseline.

:class:`ECGFeatureXGBClassifier` is a scikit-learn classifier on raw signals: it extracts
intervals, amplitudes and HRV with neurokit2 (``baselines.ecg_features``; unmeasurable values
are NaN, which the trees route natively) and fits an ``xgboost.XGBClassifier`` on them, with
early stopping on a validation set when one is given to :meth:`fit`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.preprocessing import LabelEncoder
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted, validate_data

from baselines.base import EstimatorBaseline
from baselines.ecg_features import FEATURE_NAMES, extract_features
from simecg.signal import FS


class ECGFeatureXGBClassifier(ClassifierMixin, BaseEstimator):
    """Gradient-boosted trees on neurokit2 ECG features of raw ``(n, length)`` signals.

    Args:
        n_estimators: maximum number of boosting rounds (early stopping may use fewer).
        max_depth, learning_rate, subsample, colsample_bytree, min_child_weight, reg_lambda:
            passed to ``xgboost.XGBClassifier``.
        early_stopping_rounds: rounds without validation improvement before stopping; used only
            when ``fit`` receives ``X_val``/``y_val``.
        sampling_rate: of the input signals, in Hz.
        n_jobs: threads for XGBoost and processes for feature extraction.
        random_state: seed of XGBoost's row/column subsampling.
        device: where XGBoost trains and predicts (``"cpu"``, ``"cuda"``, ``"cuda:1"``); features
            are extracted on the CPU either way.
    """

    def __init__(
        self,
        n_estimators: int = 500,
        max_depth: int = 4,
        learning_rate: float = 0.05,
        subsample: float = 0.8,
        colsample_bytree: float = 0.8,
        min_child_weight: float = 1.0,
        reg_lambda: float = 1.0,
        early_stopping_rounds: int = 25,
        sampling_rate: int = FS,
        n_jobs: int = 1,
        random_state: int = 0,
        device: str = "cpu",
    ):
        self.n_estimators = n_estimators
        self.max_depth = max_depth
        self.learning_rate = learning_rate
        self.subsample = subsample
        self.colsample_bytree = colsample_bytree
        self.min_child_weight = min_child_weight
        self.reg_lambda = reg_lambda
        self.early_stopping_rounds = early_stopping_rounds
        self.sampling_rate = sampling_rate
        self.n_jobs = n_jobs
        self.random_state = random_state
        self.device = device

    def fit(
        self, X: Any, y: Any, X_val: Any | None = None, y_val: Any | None = None
    ) -> ECGFeatureXGBClassifier:
        """Extract features and fit; with ``X_val``/``y_val``, stop early on their log-loss."""
        from xgboost import XGBClassifier

        X, y = validate_data(self, X, y, ensure_all_finite="allow-nan")
        check_classification_targets(y)
        self._encoder = LabelEncoder().fit(y)
        self.classes_ = self._encoder.classes_
        if len(self.classes_) < 2:
            raise ValueError(
                f"{type(self).__name__} needs samples of at least 2 classes; y has 1 class ({self.classes_[0]!r})"
            )
        features = self._features(X)
        eval_set = None
        if X_val is not None and y_val is not None:
            X_val = validate_data(self, X_val, ensure_all_finite="allow-nan", reset=False)
            eval_set = [(self._features(X_val), self._encoder.transform(np.asarray(y_val).ravel()))]
        self.model_ = XGBClassifier(
            n_estimators=self.n_estimators,
            max_depth=self.max_depth,
            learning_rate=self.learning_rate,
            subsample=self.subsample,
            colsample_bytree=self.colsample_bytree,
            min_child_weight=self.min_child_weight,
            reg_lambda=self.reg_lambda,
            early_stopping_rounds=self.early_stopping_rounds if eval_set else None,
            tree_method="hist",
            n_jobs=self.n_jobs,
            random_state=self.random_state,
            device=self.device,
        )
        self.model_.fit(features, self._encoder.transform(y), eval_set=eval_set, verbose=False)
        self.feature_names_ = FEATURE_NAMES  # the columns the trees see
        self.best_iteration_ = int(getattr(self.model_, "best_iteration", self.n_estimators - 1) or 0)
        return self

    def predict_proba(self, X: Any) -> np.ndarray:
        """Class probabilities ``(n, n_classes)``, columns in the order of ``classes_``."""
        check_is_fitted(self, "model_")
        X = validate_data(self, X, ensure_all_finite="allow-nan", reset=False)
        return self.model_.predict_proba(self._features(X))

    def predict(self, X: Any) -> np.ndarray:
        proba = self.predict_proba(X)
        return self.classes_[np.argmax(proba, axis=1)]

    def _features(self, X: np.ndarray) -> np.ndarray:
        return extract_features(X, self.sampling_rate, n_jobs=self.n_jobs)

    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = True  # a NaN sample just yields NaN features
        return tags


@dataclass(frozen=True)
class XGBoostFeaturesConfig:
    """Parameters of :class:`ECGFeatureXGBClassifier` (a common, shallow-tree default)."""

    n_estimators: int = 500
    max_depth: int = 4
    learning_rate: float = 0.05
    subsample: float = 0.8
    colsample_bytree: float = 0.8
    min_child_weight: float = 1.0
    reg_lambda: float = 1.0
    early_stopping_rounds: int = 25
    n_jobs: int = 1


class XGBoostFeatures(EstimatorBaseline):
    """XGBoost on neurokit2 ECG features (intervals, amplitudes, HRV), early-stopped on validation."""

    Config = XGBoostFeaturesConfig
    role = "extra"  # shown beside the five supervised baselines, never "the strongest baseline" (docs/protocol.md)
    check_overrides = {"n_estimators": 50}

    @staticmethod
    def make_estimator(config: XGBoostFeaturesConfig, seed: int) -> ECGFeatureXGBClassifier:
        return ECGFeatureXGBClassifier(**asdict(config), random_state=seed)

    @staticmethod
    def on_device(estimator: ECGFeatureXGBClassifier, device: Any) -> ECGFeatureXGBClassifier:
        """Trees grown on the GPU when fine-tuning runs on one (``finetune.device``); the CPU otherwise."""
        return estimator.set_params(device=str(device)) if device.type == "cuda" else estimator

    @staticmethod
    def search_space(trial: Any) -> dict[str, Any]:
        return {
            "max_depth": trial.suggest_int("max_depth", 2, 8),
            "learning_rate": trial.suggest_float("learning_rate", 0.01, 0.3, log=True),
            "subsample": trial.suggest_float("subsample", 0.5, 1.0),
            "colsample_bytree": trial.suggest_float("colsample_bytree", 0.5, 1.0),
            "min_child_weight": trial.suggest_float("min_child_weight", 0.5, 10.0, log=True),
        }
