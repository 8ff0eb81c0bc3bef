"""Statistics of the results: bootstrap intervals per cell, intervals over seeds, the paired test, the headline's
interval and tests over tasks."""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy.stats import binomtest, wilcoxon
from sklearn.metrics import average_precision_score, f1_score, roc_auc_score

from benchmark.results.leaderboard import build_leaderboard
from benchmark.results.metrics import binary_metrics
from benchmark.results.statistics import (
    bootstrap_intervals,
    format_p,
    mean_gain_interval,
    paired_f1_test,
    seed_interval,
    sign_test,
    stratified_counts,
    weighted_metrics,
    wilcoxon_test,
)
from benchmark.tracking.tags import RunTags
from benchmark.tracking.tracker import Tracker


def _scores(labels: np.ndarray, accuracy: float, rng: np.random.Generator) -> np.ndarray:
    """Scores right (on the right side of 0.5) for a share ``accuracy`` of the records."""
    right = rng.random(len(labels)) < accuracy
    confident = rng.uniform(0.55, 1.0, len(labels))
    return np.where(right == labels.astype(bool), confident, 1 - confident)


def _labels(n: int, n_pos: int) -> np.ndarray:
    return np.r_[np.ones(n_pos, bool), np.zeros(n - n_pos, bool)]


def test_weighted_metrics_equal_sklearn_on_the_resampled_records() -> None:
    rng = np.random.default_rng(0)
    labels = rng.random(300) < 0.2
    scores = np.round(rng.random(300) * 0.6 + 0.4 * labels, 2)  # rounded: ties, as sklearn handles them
    counts = stratified_counts(labels, 4, rng)
    metrics = weighted_metrics(labels, scores, counts)
    for i, row in enumerate(counts):
        drawn = np.repeat(np.arange(len(labels)), row.astype(int))
        assert row.sum() == len(labels) and labels[drawn].sum() == labels.sum()  # stratified: same positives
        assert metrics["f1"][i] == pytest.approx(f1_score(labels[drawn], scores[drawn] > 0.5))
        assert metrics["auroc"][i] == pytest.approx(roc_auc_score(labels[drawn], scores[drawn]))
        assert metrics["auprc"][i] == pytest.approx(average_precision_score(labels[drawn], scores[drawn]))


def test_bootstrap_interval_contains_the_estimate_and_narrows_with_more_records() -> None:
    rng = np.random.default_rng(1)
    widths = []
    for n in (200, 2000):
        labels = _labels(n, n // 5)
        scores = _scores(labels, 0.85, rng)
        point = binary_metrics(labels, scores)
        ci = bootstrap_intervals(labels, scores, seed=3)
        for name in ("f1", "auroc", "auprc"):
            assert ci[f"test_{name}_ci_low"] < point[name] < ci[f"test_{name}_ci_high"]
        widths.append(ci["test_f1_ci_high"] - ci["test_f1_ci_low"])
    assert widths[1] < widths[0] / 2  # ~ 1/sqrt(10) as wide with 10x the records
    labels = _labels(200, 40)
    scores = _scores(labels, 0.85, rng)
    assert bootstrap_intervals(labels, scores, seed=3) == bootstrap_intervals(labels, scores, seed=3)  # seeded
    assert bootstrap_intervals(labels, scores, seed=3) != bootstrap_intervals(labels, scores, seed=4)


def test_bootstrap_of_a_test_set_without_negatives_has_no_auroc_interval() -> None:
    ci = bootstrap_intervals(np.ones(20, bool), np.linspace(0.1, 0.9, 20), seed=1)
    assert np.isnan(ci["test_auroc_ci_low"]) and np.isnan(ci["test_auprc_ci_high"])
    assert 0 < ci["test_f1_ci_low"] <= ci["test_f1_ci_high"] <= 1


def test_seed_interval_is_a_t_interval() -> None:
    mean, sd, low, high = seed_interval([0.80, 0.82, 0.84, 0.86, 0.88])
    assert mean == pytest.approx(0.84) and sd == pytest.approx(0.031623, abs=1e-6)
    assert (low, high) == pytest.approx((0.84 - 2.776445 * sd / 5**0.5, 0.84 + 2.776445 * sd / 5**0.5))
    assert seed_interval([0.70, 0.95])[2:] == (0.0, 1.0)  # two seeds: t = 12.7, clipped to F1's range
    one = seed_interval([0.5])
    assert one[0] == 0.5 and all(np.isnan(one[1:]))


def test_paired_test_detects_a_clearly_better_model_and_not_a_coin_flip() -> None:
    rng = np.random.default_rng(2)
    labels = _labels(600, 100)
    baseline = np.stack([_scores(labels, 0.80, rng) for _ in range(3)])
    better = np.stack([_scores(labels, 0.90, rng) for _ in range(3)])
    test = paired_f1_test(labels, better, baseline, seed="better")
    assert test.difference > 0.1 and test.p_value < 0.01 and test.significant
    assert test.ci_low > 0 and (test.n_seeds, test.n_records) == (3, 600)
    # a model no better than the baseline: same accuracy, fresh noise. Not significant in most draws
    # (about 5% of them are, by construction), never the baseline against itself.
    p_values = [paired_f1_test(labels, np.stack([_scores(labels, 0.80, rng) for _ in range(3)]), baseline,
                               seed=k).p_value for k in range(20)]
    assert sum(p < 0.05 for p in p_values) <= 3 and np.median(p_values) > 0.2
    same = paired_f1_test(labels, baseline, baseline)
    assert same.difference == 0 and same.p_value == 1.0 and not same.significant
    # and the worse model against the better one: p near 1
    assert paired_f1_test(labels, baseline, better).p_value > 0.99


def test_paired_test_counts_the_shared_test_records_once_not_once_per_seed() -> None:
    """Seeds share one test split: more seeds of the same predictions must not make a gain significant."""
    rng = np.random.default_rng(5)
    labels = _labels(200, 40)
    a, b = _scores(labels, 0.84, rng), _scores(labels, 0.80, rng)
    one = paired_f1_test(labels, a[None], b[None], seed=1)
    many = paired_f1_test(labels, np.stack([a] * 10), np.stack([b] * 10), seed=1)
    assert many.difference == pytest.approx(one.difference)
    assert many.p_value == pytest.approx(one.p_value, abs=0.03)


def test_paired_test_gives_the_relative_gain_of_each_replicate() -> None:
    rng = np.random.default_rng(11)
    labels = _labels(500, 100)
    model = np.stack([_scores(labels, 0.90, rng) for _ in range(3)])
    baseline = np.stack([_scores(labels, 0.80, rng) for _ in range(3)])
    test = paired_f1_test(labels, model, baseline, n_resamples=400, seed=3)
    observed = 100 * test.difference / np.mean([f1_score(labels, b > 0.5) for b in baseline])
    assert test.relative_gains.shape == (400,) and np.isfinite(test.relative_gains).all()
    assert observed > 10 and abs(np.median(test.relative_gains) - observed) < 0.15 * observed
    # a baseline that never predicts a positive has F1 0 in every replicate: no relative gain is defined
    never = paired_f1_test(labels, model, np.zeros_like(baseline), n_resamples=50)
    assert never.difference > 0 and np.isnan(never.relative_gains).all()


# ----- the headline over tasks: interval of the mean relative gain, sign test, Wilcoxon signed-rank test
def _task_gains(rng: np.random.Generator, true_gain: float, n: int = 300, n_pos: int = 60, seeds: int = 2,
                n_resamples: int = 300, specificity: float = 0.97) -> np.ndarray:
    """One simulated task: a baseline of population F1 U(0.55, 0.75) and a model whose population F1
    is ``1 + true_gain`` times it (same specificity, sensitivity solved for); the replicate relative
    gains of their paired bootstrap on a fresh test set."""
    labels = _labels(n, n_pos)
    prevalence, false_pos = n_pos / n, (1 - n_pos / n) * (1 - specificity)

    def predictions(f1: float) -> np.ndarray:  # F1 = 2 p se / (p se + p + fp)  =>  se = F1 (p + fp) / (p (2 - F1))
        sensitivity = f1 * (prevalence + false_pos) / (prevalence * (2 - f1))
        return np.stack([np.where(labels, rng.random(n) < sensitivity, rng.random(n) > specificity)
                         for _ in range(seeds)]).astype(float)

    base_f1 = rng.uniform(0.55, 0.75)
    model, baseline = predictions(base_f1 * (1 + true_gain)), predictions(base_f1)
    return paired_f1_test(labels, model, baseline, n_resamples=n_resamples, seed=int(rng.integers(1 << 30))
                          ).relative_gains


@pytest.mark.slow
def test_mean_gain_interval_covers_the_true_mean_gain_about_95_percent_of_the_time() -> None:
    """200 simulated boards of 12 tasks, each task's true relative gain drawn around a known mean of
    +5%: the interval holds the mean in about 95% of the boards (a little more: the record noise is
    counted at both levels), and it is not so wide that it always does."""
    rng = np.random.default_rng(20)
    mean_gain, task_sd, hits, widths = 0.05, 0.15, 0, []
    for board in range(200):
        gains = [_task_gains(rng, rng.normal(mean_gain, task_sd)) for _ in range(12)]
        low, high = mean_gain_interval(gains, seed=board, n_resamples=300)
        hits += low <= 100 * mean_gain <= high
        widths.append(high - low)
    assert 0.90 <= hits / 200 <= 0.99
    # width ~ 2 x 1.96 x the task sd / sqrt(12), in percent of gain: ~17 points, plus the record noise
    assert 15 < np.mean(widths) < 35


def test_mean_gain_interval_is_seeded_and_needs_two_tasks() -> None:
    rng = np.random.default_rng(4)
    gains = [rng.normal(g, 2.0, 500) for g in (1.0, 4.0, 7.0)]
    low, high = mean_gain_interval(gains, seed="mae:sim")
    assert low < 4.0 < high and (low, high) == mean_gain_interval(gains, seed="mae:sim")
    assert (low, high) != mean_gain_interval(gains, seed="mae:ptbxl")
    # every replicate the same: a point, whatever tasks are drawn
    assert mean_gain_interval([np.full(100, 3.0), np.full(100, 3.0)]) == (3.0, 3.0)
    # a replicate without a defined gain (baseline F1 0) is left out of its draw's mean, as the headline does
    with_undefined = [np.full(100, 2.0), np.r_[np.full(50, 6.0), np.full(50, np.nan)]]
    low, high = mean_gain_interval(with_undefined, n_resamples=400)
    assert 2.0 <= low < high <= 6.0
    for one in ([], [np.ones(100)]):
        assert all(np.isnan(mean_gain_interval(one)))


def test_sign_test_p_value_is_scipys_two_sided_binomial_test() -> None:
    assert sign_test(9, 1) == pytest.approx(22 / 1024)  # 2 x P(X >= 9 | n = 10, 1/2)
    assert sign_test(9, 1) == binomtest(9, 10, 0.5).pvalue == sign_test(1, 9)  # two-sided: symmetric
    assert sign_test(24, 2) == pytest.approx(binomtest(24, 26).pvalue) and sign_test(24, 2) < 1e-4
    assert sign_test(3, 3) == 1.0
    assert np.isnan(sign_test(0, 0))  # every task tied (ties are not passed in): no test


def test_wilcoxon_p_value_is_scipys_signed_rank_test_without_zero_gains() -> None:
    gains = [1.5, -0.5, 2.0, 3.0, 4.0, -1.0]
    # exact: ranks of |gain| 3, 1, 4, 5, 6, 2; R- = 1 + 2 = 3; P(T <= 3) = 5/64 (subsets of 1..6 summing to <= 3)
    assert wilcoxon_test(gains) == pytest.approx(10 / 64) == wilcoxon(gains).pvalue
    assert wilcoxon_test([*gains, 0.0, 0.0, float("nan")]) == wilcoxon_test(gains)  # zeros and undefined left out
    many = np.random.default_rng(5).normal(3.0, 5.0, 26)
    assert wilcoxon_test(many) == pytest.approx(wilcoxon(many).pvalue)
    assert wilcoxon_test([-g for g in gains]) == wilcoxon_test(gains)  # two-sided
    assert np.isnan(wilcoxon_test([0.0, 0.0])) and np.isnan(wilcoxon_test([]))


def test_p_values_are_printed_readably() -> None:
    assert (format_p(0.5), format_p(0.0123), format_p(3.8e-06), format_p(float("nan"))) == (
        "0.500", "0.012", "3.8e-06", "n/a")


# ----- end to end: cells with predictions in a store, the leaderboard's significance column
def _cell(tracker: Tracker, task: str, model: str, seed: int, labels: np.ndarray, scores: np.ndarray,
          fingerprint: str | None = None) -> None:
    tags = RunTags(kind="cell", fingerprint=fingerprint or f"{task}{model}{seed}", suite="stats", task=task,
                   model=model, lead="II", seed=seed)
    metrics = {f"test_{k}": v for k, v in binary_metrics(labels, scores).items()}
    with tracker.run("cell", tags) as run, tempfile.TemporaryDirectory() as tmp:
        run.log_metrics(metrics)
        path = Path(tmp) / "test_predictions.csv"
        pd.DataFrame({"record_id": [f"r{i}" for i in range(len(labels))], "label": labels.astype(int),
                      "score": scores}).to_csv(path, index=False)
        run.log_artifact(path)


@pytest.mark.slow
def test_leaderboard_tests_each_gain_against_the_strongest_baseline(tracking_uri: str) -> None:
    rng = np.random.default_rng(7)
    tracker = Tracker(tracking_uri, "stats")
    labels = _labels(400, 80)
    few = _labels(400, 3)
    for seed in (1, 2, 3):
        _cell(tracker, "ptbxl/AFIB", "mae:sim", seed, labels, _scores(labels, 0.93, rng))  # clearly better
        _cell(tracker, "ptbxl/AFIB", "resnet18-1d", seed, labels, _scores(labels, 0.80, rng))
        _cell(tracker, "ptbxl/AFIB", "mega", seed, labels, _scores(labels, 0.70, rng))
        _cell(tracker, "ptbxl/AFIB", "xgboost-features", seed, labels, _scores(labels, 0.99, rng))  # an extra
        _cell(tracker, "ptbxl/PVC", "mae:sim", seed, labels, _scores(labels, 0.80, rng))  # a coin flip
        _cell(tracker, "ptbxl/PVC", "resnet18-1d", seed, labels, _scores(labels, 0.80, rng))
        _cell(tracker, "ptbxl/PAC", "mae:sim", seed, few, _scores(few, 0.80, rng))  # 3 positives: not counted
        _cell(tracker, "ptbxl/PAC", "resnet18-1d", seed, few, _scores(few, 0.80, rng))
    board = build_leaderboard(tracking_uri, "stats")
    rows = board.rows.set_index(["task", "model"])
    afib, pvc, pac = (rows.loc[(t, "mae:sim")] for t in ("ptbxl/AFIB", "ptbxl/PVC", "ptbxl/PAC"))
    assert afib.best_baseline == "resnet18-1d"  # not XGBoost, though it scores higher
    assert afib.significant is True and afib.p_value < 0.01 and afib.f1_difference_ci_low > 0
    assert afib.f1_difference == pytest.approx(afib.test_f1 - rows.loc[("ptbxl/AFIB", "resnet18-1d"), "test_f1"])
    assert pvc.significant is not True and pvc.p_value > 0.05
    assert pac.few_positives and np.isnan(pac.p_value) and pac.significant is None
    summary = board.summary.set_index("model").loc["mae:sim"]
    assert (summary.significant_wins, summary.tasks_counted, summary.tasks_tested, summary.tasks_left_out) == (
        1, 2, 2, 1)
    assert "AFIB" in board.render("table") and f"+{afib.relative_gain_pct:.2f}%*" in board.render("table")
    # the headline over tasks: AFIB and PVC (PAC is left out), their test predictions resampled
    gains = [afib.relative_gain_pct, pvc.relative_gain_pct]
    assert summary.mean_relative_gain_pct == pytest.approx(np.mean(gains))
    assert summary.mean_relative_gain_ci_low < summary.mean_relative_gain_pct < summary.mean_relative_gain_ci_high
    assert summary.mean_relative_gain_ci_note == ""
    assert summary.wins + summary.losses + summary.ties == 2
    assert summary.sign_test_p == pytest.approx(binomtest(summary.wins, summary.wins + summary.losses).pvalue)
    assert summary.wilcoxon_p == pytest.approx(wilcoxon(gains).pvalue)
    interval = f"95% CI [{summary.mean_relative_gain_ci_low:+.2f}%, {summary.mean_relative_gain_ci_high:+.2f}%]"
    for fmt in ("table", "markdown"):
        assert interval in board.render(fmt) and f"sign test p = {format_p(summary.sign_test_p)}" in board.render(fmt)
