"""The XGBoost-on-ECG-features baseline: robust feature extraction, learning with early
stopping, and scikit-learn's own estimator checks."""

from __future__ import annotations

import neurokit2 as nk
import numpy as np
import pytest
from sklearn.base import clone
from sklearn.utils.estimator_checks import parametrize_with_checks

from baselines import ecg_features
from baselines.ecg_features import FEATURE_NAMES, extract_features, signal_features
from baselines.xgboost_features import ECGFeatureXGBClassifier
from simecg.registries import BASELINES
from simecg.signal import zscore


def simulated_ecgs(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Z-scored 10-s ECGs at 500 Hz: label 0 at 55-70 bpm, label 1 at 105-130 bpm."""
    rng = np.random.default_rng(seed)
    y = np.arange(n) % 2
    x = np.empty((n, 5000), dtype=np.float32)
    for i, label in enumerate(y):
        rate = rng.uniform(105, 130) if label else rng.uniform(55, 70)
        x[i] = nk.ecg_simulate(duration=10, sampling_rate=500, heart_rate=rate, noise=0.05,
                               method="simple", random_state=int(rng.integers(2**31)))
    return zscore(x), y


def feature(values: np.ndarray, name: str) -> float:
    return float(values[FEATURE_NAMES.index(name)])


def test_features_measure_heart_rate_intervals_and_amplitudes_of_a_simulated_ecg():
    x = zscore(nk.ecg_simulate(duration=10, sampling_rate=500, heart_rate=75, method="ecgsyn", random_state=3))
    values = signal_features(x)
    assert values.shape == (len(FEATURE_NAMES),)
    assert 65 < feature(values, "heart_rate") < 85
    assert 700 < feature(values, "HRV_MeanNN") < 920
    assert 40 < feature(values, "qrs_duration_median") < 200
    assert 250 < feature(values, "qt_interval_median") < 550
    assert feature(values, "r_amplitude_median") > 1.0 > feature(values, "s_amplitude_median")
    assert np.isfinite(values).mean() > 0.9


@pytest.mark.parametrize(
    "signal",
    [np.zeros(5000), np.full(5000, np.nan), np.r_[np.nan, np.ones(4999)], np.random.default_rng(0).normal(size=5000),
     np.ones(700)],
    ids=["flat", "all-nan", "one-nan", "noise", "too-short"],
)
def test_unmeasurable_signals_give_nan_features_not_a_crash(signal: np.ndarray):
    values = signal_features(signal)
    assert values.shape == (len(FEATURE_NAMES),)
    assert not np.isinf(values).any()  # every feature is a number or NaN (unmeasurable), never inf
    if not np.isfinite(signal).any():
        assert np.isnan(values).all()


def test_a_failing_neurokit2_step_leaves_nans_and_keeps_the_amplitude_statistics(monkeypatch):
    def broken(*args, **kwargs):
        raise IndexError("simulated neurokit2 failure")

    monkeypatch.setattr(nk, "ecg_delineate", broken)
    x = zscore(nk.ecg_simulate(duration=10, sampling_rate=500, heart_rate=70, method="simple", random_state=1))
    values = signal_features(x)
    assert np.isnan(feature(values, "qrs_duration_median"))
    assert np.isfinite(feature(values, "max")) and np.isfinite(feature(values, "heart_rate"))


def test_features_are_cached_per_signal_so_overlapping_sets_extract_each_ecg_once(monkeypatch):
    x = np.random.default_rng(1).normal(size=(4, 600))
    first = extract_features(x)
    calls = []
    real = ecg_features.signal_features
    monkeypatch.setattr(ecg_features, "signal_features", lambda *a: calls.append(a) or real(*a))
    np.testing.assert_array_equal(extract_features(x[[2, 0]].copy()), first[[2, 0]])
    assert not calls
    shifted = extract_features(np.vstack([x[1], x[3] + 1.0]))
    assert len(calls) == 1  # only the changed signal is new
    np.testing.assert_array_equal(shifted[0], first[1])
    assert not np.array_equal(shifted[1], first[3])


@pytest.fixture(scope="module")
def ecg_sets() -> dict[str, tuple[np.ndarray, np.ndarray]]:
    return {"train": simulated_ecgs(40, seed=1), "val": simulated_ecgs(20, seed=2), "test": simulated_ecgs(20, seed=3)}


@pytest.mark.slow
def test_registered_estimator_learns_heart_rate_classes_from_raw_signals(ecg_sets):
    cls = BASELINES.get("xgboost-features")
    estimator = cls.make_estimator(cls.make_config({"n_estimators": 100}), seed=7)
    assert isinstance(estimator, ECGFeatureXGBClassifier) and estimator.random_state == 7
    (x, y), (xv, yv), (xt, yt) = ecg_sets["train"], ecg_sets["val"], ecg_sets["test"]
    assert estimator.fit(x, y, X_val=xv, y_val=yv) is estimator
    proba = estimator.predict_proba(xt)
    assert proba.shape == (len(xt), 2)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-5)
    assert list(estimator.classes_) == [0, 1]
    accuracy = float(np.mean(estimator.predict(xt) == yt))
    print(f"xgboost-features: held-out accuracy {accuracy:.2f}")
    assert accuracy >= 0.9


def test_early_stopping_on_validation_ends_before_the_round_limit(ecg_sets):
    (x, y), (xv, yv) = ecg_sets["train"], ecg_sets["val"]
    rounds = 400
    base = ECGFeatureXGBClassifier(n_estimators=rounds, early_stopping_rounds=5, learning_rate=0.3)
    shuffled = np.random.default_rng(0).permutation(yv)  # a validation set the trees cannot fit
    stopped = clone(base).fit(x, y, X_val=xv, y_val=shuffled)
    assert stopped.model_.get_booster().num_boosted_rounds() < rounds
    full = clone(base).fit(x, y)
    assert full.model_.get_booster().num_boosted_rounds() == rounds


def _applicable_checks():
    """scikit-learn's checks, minus the one about array-API inputs (neurokit2 and XGBoost are
    NumPy-only, so the estimator converts to NumPy and declares no array-API support).

    The checks feed small tabular arrays (2-10 columns), far shorter than an ECG: they exercise
    the estimator contract and the amplitude-statistics features; the beat-level features are
    covered by the tests above.
    """
    for estimator, check in parametrize_with_checks([ECGFeatureXGBClassifier(n_estimators=20)]).args[1]:
        name = getattr(check, "func", check).__name__
        if name != "check_array_api_input":
            yield pytest.param(estimator, check, id=name)


@pytest.mark.parametrize("estimator, check", list(_applicable_checks()))
def test_scikit_learn_estimator_checks(estimator, check):
    check(estimator)
