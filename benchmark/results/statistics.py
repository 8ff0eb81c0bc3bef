"""How sure is each number of the leaderboard, and is a gain more than noise?

Three sources of doubt, three tools, and the headline's own uncertainty:

* **The test records.** A test F1 is measured on a finite sample of records; with 20 positives one
  record more or less moves F1 by several points. :func:`bootstrap_intervals` gives a 95%
  percentile interval of test F1, AUROC and AUPRC by resampling the test records with
  replacement, *stratified by label* (positives among positives, negatives among negatives): every
  resample then has the test set's positives count, so F1, AUROC and AUPRC stay defined, and the
  interval is conditional on the observed prevalence, as the test split is (it is stratified too).
  Logged on every cell run (``test_f1_ci_low`` ...), seeded from the cell's seed.
* **The seed.** Initialisation, shuffling and the train/validation split move with the run seed.
  :func:`seed_interval`: mean, sd and a 95% t-interval over seeds (Student's t with n - 1 degrees
  of freedom; undefined for one seed).
* **Is a pretrained model better than the strongest baseline?** :func:`paired_f1_test`, a paired
  two-level bootstrap of the difference in mean test F1 over the seeds both models share. Each
  replicate redraws the seeds (with replacement, the same seeds for both models) and the test
  records (stratified by label, the same records for both models and for every seed: the test
  split is one for all seeds, so its records are one shared source of noise, not one per seed).
  The one-sided p-value is the share of replicates whose difference is <= 0 (with the usual +1
  in numerator and denominator, so it is never 0); significant when p < 0.05.
* **Does the headline hold over tasks?** The headline per pretrained model is its mean relative
  F1 gain over the strongest baseline and the number of tasks it wins (docs/protocol.md). Three
  statistics say how far to trust them (the leaderboard's summary):

  - :func:`mean_gain_interval`, a 95% percentile interval of the mean relative gain from a
    hierarchical bootstrap: each replicate draws the tasks with replacement and, for every task
    drawn, one replicate of that task's paired bootstrap (its seeds and its test records,
    stratified by label, the same for model and baseline). The strongest baseline of each task
    is the one the leaderboard names (chosen on the observed means), not chosen again per
    replicate: the interval is of the very gain the headline states, and choosing the best of
    five again on every resample would add the best-of-five bias (already against the model)
    a second time. Drawing records inside tasks counts their noise twice (it is already in the
    spread of the task gains), so the interval errs on the wide side.
  - :func:`sign_test`: exact binomial test of wins against losses, two-sided, ties (equal mean
    F1) left out.
  - :func:`wilcoxon_test`: Wilcoxon signed-rank test over tasks of the per-task relative gains
    (the numbers the mean averages), two-sided, zero gains left out (``zero_method="wilcox"``).

  Both tests are two-sided although the headline claims a direction: a model that loses most
  tasks shows as clearly as one that wins them, and for the claimed direction the p-value is
  about twice the one-sided one, the stricter reading.

F1 of a resample depends only on how often each record is drawn, so a resample is a row of draw
counts (:func:`stratified_counts`) and its F1, AUROC and AUPRC are weighted sums (equal to
sklearn's on the resampled records); the leaderboard draws one set of rows per task and tests
every pretrained model of the task on it: a thousand replicates of a 5-seed pair on 2,000 test
records take ~20 ms.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from benchmark.results.metrics import THRESHOLD

N_RESAMPLES = 1000
LEVEL = 0.95  # of every interval
ALPHA = 0.05  # significance level of the one-sided paired test
ALTERNATIVE_OVER_TASKS = "two-sided"  # of the sign test and the Wilcoxon signed-rank test over tasks
WILCOXON_ZEROS = "wilcox"  # scipy's zero_method: zero gains are left out before ranking
_STREAM = 0xB0075  # keeps the bootstrap's random stream apart from other users of a cell's seed
_CHUNK = 250  # replicates scored at once (bounds memory: chunk x records floats)


def rng_for(*keys: int | str) -> np.random.Generator:
    """A generator seeded from integers and strings (strings through a stable CRC32, not ``hash``)."""
    entropy = [k % (1 << 64) if isinstance(k, int) else zlib.crc32(k.encode()) for k in keys]
    return np.random.default_rng([_STREAM, *entropy])


# ----- resampling
def stratified_counts(labels: np.ndarray, n_resamples: int, rng: np.random.Generator) -> np.ndarray:
    """``(n_resamples, n)`` counts: how often each record is drawn, positives among positives and
    negatives among negatives (each resample keeps the numbers of positives and negatives)."""
    labels = np.asarray(labels).astype(bool)
    counts = np.zeros((n_resamples, len(labels)), dtype=np.float32)
    for members in (np.flatnonzero(labels), np.flatnonzero(~labels)):
        k = len(members)
        if k == 0:
            continue
        draws = rng.integers(0, k, size=(n_resamples, k)) + np.arange(n_resamples)[:, None] * k
        counts[:, members] = np.bincount(draws.ravel(), minlength=n_resamples * k).reshape(n_resamples, k)
    return counts


def weighted_metrics(labels: np.ndarray, scores: np.ndarray, weights: np.ndarray,
                     threshold: float = THRESHOLD) -> dict[str, np.ndarray]:
    """F1 (``score > threshold``), AUROC and AUPRC of each row of ``weights`` (record counts).

    With integer weights these equal sklearn's ``f1_score``, ``roc_auc_score`` and
    ``average_precision_score`` on the resampled records (ties handled as sklearn does).
    """
    labels = np.asarray(labels).astype(bool)
    scores = np.asarray(scores, dtype=float)
    weights = np.atleast_2d(weights)
    predicted = scores > threshold
    tp = weights[:, labels & predicted].sum(axis=1, dtype=np.float64)
    fp = weights[:, ~labels & predicted].sum(axis=1, dtype=np.float64)
    fn = weights[:, labels & ~predicted].sum(axis=1, dtype=np.float64)
    out = {"f1": _f1(tp, fp, fn)}
    n = len(weights)
    if labels.all() or not labels.any():
        out["auroc"] = out["auprc"] = np.full(n, math.nan)
        return out
    order = np.argsort(scores, kind="stable")  # ascending
    sorted_scores = scores[order]
    starts = np.flatnonzero(np.r_[True, sorted_scores[1:] != sorted_scores[:-1]])  # one group per distinct score
    w = weights[:, order].astype(np.float64)
    pos = np.add.reduceat(w * labels[order], starts, axis=1)
    neg = np.add.reduceat(w * ~labels[order], starts, axis=1)
    n_pos, n_neg = pos.sum(axis=1), neg.sum(axis=1)
    below = np.cumsum(neg, axis=1) - neg  # negatives scored lower than each group
    out["auroc"] = (pos * (below + 0.5 * neg)).sum(axis=1) / (n_pos * n_neg)
    # average precision: thresholds at distinct scores, highest first; sum over them of recall step x precision
    tp_at = np.cumsum(pos[:, ::-1], axis=1)
    seen = tp_at + np.cumsum(neg[:, ::-1], axis=1)
    precision = np.divide(tp_at, seen, out=np.zeros_like(tp_at), where=seen > 0)
    out["auprc"] = (pos[:, ::-1] * precision).sum(axis=1) / n_pos
    return out


def _f1(tp: np.ndarray, fp: np.ndarray, fn: np.ndarray) -> np.ndarray:
    denominator = 2 * tp + fp + fn
    return np.divide(2 * tp, denominator, out=np.zeros_like(tp, dtype=np.float64), where=denominator > 0)


def _pattern_draws(members: np.ndarray, n_resamples: int, rng: np.random.Generator) -> np.ndarray:
    """``(n_resamples, patterns)``: how many of ``members.sum()`` records drawn with replacement fall
    in each pattern. Multinomial draws when patterns are few; else the records themselves (faster)."""
    n = int(members.sum())
    if 12 * len(members) < n:
        return rng.multinomial(n, members / n, size=n_resamples)
    pattern_of = np.repeat(np.arange(len(members)), members)
    codes = pattern_of[rng.integers(0, n, size=(n_resamples, n))] + np.arange(n_resamples)[:, None] * len(members)
    return np.bincount(codes.ravel(), minlength=n_resamples * len(members)).reshape(n_resamples, len(members))


def _patterns(predictions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The distinct rows of a boolean matrix and how many times each occurs."""
    if predictions.shape[1] > 62:
        return np.unique(predictions, axis=0, return_counts=True)
    codes = predictions.astype(np.int64) @ (np.int64(1) << np.arange(predictions.shape[1], dtype=np.int64))
    _, first, members = np.unique(codes, return_index=True, return_counts=True)
    return predictions[first], members


def _percentiles(values: np.ndarray, level: float = LEVEL) -> tuple[float, float]:
    values = values[np.isfinite(values)]
    if len(values) == 0:
        return math.nan, math.nan
    tail = (1 - level) / 2 * 100
    low, high = np.percentile(values, [tail, 100 - tail])
    return float(low), float(high)


# ----- one cell
def bootstrap_intervals(labels: np.ndarray, scores: np.ndarray, seed: int = 0, n_resamples: int = N_RESAMPLES,
                        level: float = LEVEL, threshold: float = THRESHOLD) -> dict[str, float]:
    """Percentile intervals of test F1, AUROC and AUPRC over stratified resamples of the test records.

    Keys ``test_f1_ci_low``, ``test_f1_ci_high``, ``test_auroc_ci_*``, ``test_auprc_ci_*`` (NaN where
    the metric is undefined: AUROC/AUPRC without both classes). The counts the intervals rest on
    (``test_n``, ``test_n_pos``) come with the metrics (:func:`benchmark.results.metrics.binary_metrics`).
    """
    labels = np.asarray(labels).astype(bool)
    rng = rng_for(int(seed), "cell")
    values: dict[str, list[np.ndarray]] = {"f1": [], "auroc": [], "auprc": []}
    for start in range(0, n_resamples, _CHUNK):
        weights = stratified_counts(labels, min(_CHUNK, n_resamples - start), rng)
        for name, v in weighted_metrics(labels, scores, weights, threshold).items():
            values[name].append(v)
    out = {}
    for name, chunks in values.items():
        out[f"test_{name}_ci_low"], out[f"test_{name}_ci_high"] = _percentiles(np.concatenate(chunks), level)
    return out


# ----- over seeds
def seed_interval(values: Sequence[float], level: float = LEVEL,
                  bounds: tuple[float, float] = (0.0, 1.0)) -> tuple[float, float, float, float]:
    """Mean, sd (n - 1) and the t-interval ``mean ± t(n - 1) sd / sqrt(n)`` of per-seed values.

    NaN values are dropped; sd and the interval are NaN for fewer than two seeds. The interval is
    clipped to ``bounds``, the metric's range (F1 cannot exceed 1, however wide two seeds make it).
    """
    from scipy.stats import t

    v = np.asarray([x for x in values if not math.isnan(x)], dtype=float)
    if len(v) == 0:
        return math.nan, math.nan, math.nan, math.nan
    mean = float(v.mean())
    if len(v) < 2:
        return mean, math.nan, math.nan, math.nan
    sd = float(v.std(ddof=1))
    half = float(t.ppf(0.5 + level / 2, len(v) - 1)) * sd / math.sqrt(len(v))
    return mean, sd, max(bounds[0], mean - half), min(bounds[1], mean + half)


# ----- a pretrained model against the strongest baseline
@dataclass(frozen=True)
class PairedTest:
    """The paired bootstrap of mean F1(model) - mean F1(baseline) over shared seeds."""

    difference: float  # observed mean over shared seeds of F1(model) - F1(baseline)
    ci_low: float  # percentile interval of the difference over replicates
    ci_high: float
    p_value: float  # one-sided, H0: the difference is <= 0
    n_seeds: int
    n_records: int
    # per replicate: 100 x the mean F1 difference / the baseline's mean F1 over the drawn seeds (NaN where
    # that mean is 0): the within-task draws of the hierarchical bootstrap (:func:`mean_gain_interval`)
    relative_gains: np.ndarray = field(default_factory=lambda: np.empty(0), repr=False, compare=False)

    @property
    def significant(self) -> bool:
        return self.p_value < ALPHA


def paired_f1_test(labels: np.ndarray, model_scores: np.ndarray, baseline_scores: np.ndarray,
                   n_resamples: int = N_RESAMPLES, seed: int | str = 0, level: float = LEVEL,
                   threshold: float = THRESHOLD, record_counts: np.ndarray | None = None) -> PairedTest:
    """Is the model's mean test F1 over seeds above the baseline's, beyond test-record and seed noise?

    ``labels`` ``(n,)`` are the test records' labels; ``model_scores`` and ``baseline_scores`` are
    ``(seeds, n)``: row ``k`` holds both models' scores of the same records at the same seed.
    Each replicate draws the seeds with replacement (the same for both models) and the records,
    stratified by label (the same for both models and all seeds); the statistic is the mean over
    the drawn seeds of F1(model) - F1(baseline). p = (1 + #{replicates <= 0}) / (1 + replicates).

    ``record_counts`` (``(n_resamples, n)``, from :func:`stratified_counts`) gives the record draws
    instead: the leaderboard draws them once per task and tests every model of the task on them.
    """
    labels = np.asarray(labels).astype(bool)
    a = np.atleast_2d(np.asarray(model_scores, dtype=float)) > threshold
    b = np.atleast_2d(np.asarray(baseline_scores, dtype=float)) > threshold
    if a.shape != b.shape or a.shape[1] != len(labels):
        raise ValueError(f"scores {a.shape} and {b.shape} must both be (seeds, {len(labels)})")
    n_seeds = a.shape[0]
    if record_counts is not None and record_counts.shape != (n_resamples, len(labels)):
        raise ValueError(f"record_counts {record_counts.shape} must be ({n_resamples}, {len(labels)})")
    rng = rng_for(seed if isinstance(seed, int) else str(seed), "paired")
    predictions = np.concatenate([a, b]).T  # (records, 2 x seeds): model seeds, then baseline seeds
    tp = np.zeros((n_resamples, 2 * n_seeds))
    fp = np.zeros((n_resamples, 2 * n_seeds))
    for stratum, hits in ((labels, tp), (~labels, fp)):
        if not stratum.any():
            continue
        if record_counts is not None:
            hits += record_counts[:, stratum] @ predictions[stratum].astype(record_counts.dtype)
            continue
        # records with the same predictions under every model and seed are interchangeable: draw how
        # many of the stratum's records fall in each pattern (multinomial = resampling the records)
        patterns, members = _patterns(predictions[stratum])
        hits += _pattern_draws(members, n_resamples, rng) @ patterns.astype(float)
    fn = labels.sum() - tp
    f1 = _f1(tp, fp, fn)
    positive = labels[:, None]
    observed = _f1(*((predictions & positive).sum(axis=0).astype(float),
                     (predictions & ~positive).sum(axis=0).astype(float),
                     (~predictions & positive).sum(axis=0).astype(float)))
    return _paired_result(f1, observed, len(labels), rng, level)


def _paired_result(values: np.ndarray, observed: np.ndarray, n_records: int, rng: np.random.Generator,
                   level: float) -> PairedTest:
    """The paired test from each replicate's metric per model seed then baseline seed (``values``,
    ``(replicates, 2 x seeds)``) and the observed metrics (``(2 x seeds,)``): seeds drawn with
    replacement per replicate, the same for both models."""
    n_resamples, n_seeds = values.shape[0], values.shape[1] // 2
    differences = values[:, :n_seeds] - values[:, n_seeds:]  # (replicates, seeds)
    seed_draws = rng.integers(0, n_seeds, size=(n_resamples, n_seeds))
    replicates = np.take_along_axis(differences, seed_draws, axis=1).mean(axis=1)
    baseline = np.take_along_axis(values[:, n_seeds:], seed_draws, axis=1).mean(axis=1)
    relative_gains = np.divide(100.0 * replicates, baseline, out=np.full(n_resamples, math.nan), where=baseline > 0)
    low, high = _percentiles(replicates, level)
    p = (1 + int((replicates <= 0).sum())) / (1 + n_resamples)
    difference = float((observed[:n_seeds] - observed[n_seeds:]).mean())
    return PairedTest(difference, low, high, p, n_seeds, n_records, relative_gains)


def paired_test(labels: np.ndarray, model_scores: np.ndarray, baseline_scores: np.ndarray, metric: str = "f1",
                n_resamples: int = N_RESAMPLES, seed: int | str = 0, level: float = LEVEL,
                threshold: float = THRESHOLD, record_counts: np.ndarray | None = None) -> PairedTest:
    """:func:`paired_f1_test` for any of the metrics of :func:`weighted_metrics` (``f1``, ``auroc``,
    ``auprc``): the same seeds and stratified record draws, the mean difference of ``metric``.

    F1 takes the fast path (it depends only on each record's prediction); AUROC and AUPRC are
    scored on every replicate's record counts, per seed and model.
    """
    if metric == "f1":
        return paired_f1_test(labels, model_scores, baseline_scores, n_resamples=n_resamples, seed=seed,
                              level=level, threshold=threshold, record_counts=record_counts)
    labels = np.asarray(labels).astype(bool)
    a = np.atleast_2d(np.asarray(model_scores, dtype=float))
    b = np.atleast_2d(np.asarray(baseline_scores, dtype=float))
    if a.shape != b.shape or a.shape[1] != len(labels):
        raise ValueError(f"scores {a.shape} and {b.shape} must both be (seeds, {len(labels)})")
    rng = rng_for(seed if isinstance(seed, int) else str(seed), "paired")
    counts = record_counts if record_counts is not None else stratified_counts(labels, n_resamples, rng)
    if counts.shape != (n_resamples, len(labels)):
        raise ValueError(f"record_counts {counts.shape} must be ({n_resamples}, {len(labels)})")
    runs = [*a, *b]  # model seeds, then baseline seeds
    values = np.empty((n_resamples, len(runs)))
    for k, scores in enumerate(runs):
        for start in range(0, n_resamples, _CHUNK):
            chunk = counts[start : start + _CHUNK]
            values[start : start + len(chunk), k] = weighted_metrics(labels, scores, chunk, threshold)[metric]
    ones = np.ones((1, len(labels)))
    observed = np.array([weighted_metrics(labels, scores, ones, threshold)[metric][0] for scores in runs])
    return _paired_result(values, observed, len(labels), rng, level)


# ----- the headline over tasks
def mean_gain_interval(task_gains: Sequence[np.ndarray], seed: int | str = 0, n_resamples: int = N_RESAMPLES,
                       level: float = LEVEL) -> tuple[float, float]:
    """Percentile interval of the mean relative gain over tasks, by a hierarchical bootstrap.

    ``task_gains`` holds one array per task: the replicate relative gains of that task's paired
    bootstrap (:attr:`PairedTest.relative_gains`, seeds and test records drawn). Each of
    ``n_resamples`` replicates draws ``len(task_gains)`` tasks with replacement and, for each
    draw, one of its task's replicates (a task drawn twice gets two independent record draws); the
    replicate's statistic is their mean, over the draws whose gain is defined (a replicate whose
    baseline F1 is 0 has none, as the headline leaves such a task out of its mean). NaN for fewer
    than two tasks: resampling one task says nothing about other tasks.
    """
    if len(task_gains) < 2:
        return math.nan, math.nan
    pool = np.stack([np.asarray(g, dtype=float) for g in task_gains])  # (tasks, task replicates)
    n_tasks, n_inner = pool.shape
    rng = rng_for(seed if isinstance(seed, int) else str(seed), "tasks")
    tasks = rng.integers(0, n_tasks, size=(n_resamples, n_tasks))
    draws = pool[tasks, rng.integers(0, n_inner, size=(n_resamples, n_tasks))]
    defined = np.isfinite(draws)
    counts = defined.sum(axis=1)
    means = np.divide(np.where(defined, draws, 0.0).sum(axis=1), counts, out=np.full(n_resamples, math.nan),
                      where=counts > 0)
    return _percentiles(means, level)


def sign_test(wins: int, losses: int) -> float:
    """Two-sided exact binomial test of ``wins`` against ``losses`` (H0: a task is won or lost with
    probability 1/2); ties are not passed in (left out, the usual convention). NaN without a win or
    a loss."""
    from scipy.stats import binomtest

    if wins + losses == 0:
        return math.nan
    return float(binomtest(wins, wins + losses, 0.5, alternative=ALTERNATIVE_OVER_TASKS).pvalue)


def wilcoxon_test(gains: Sequence[float]) -> float:
    """Two-sided Wilcoxon signed-rank test over tasks of the per-task relative gains (H0: symmetric
    about 0). Zero gains are left out before ranking (Wilcoxon's own convention, scipy's
    ``zero_method="wilcox"``), and so are undefined (NaN) ones; NaN without a nonzero gain. On the
    rest, scipy's ``method="auto"``: the exact null distribution up to 50 tasks without tied ranks,
    an exact permutation test up to 13 tasks with ties, else the normal approximation with
    continuity correction; all deterministic."""
    from scipy.stats import wilcoxon

    values = np.asarray([g for g in gains if math.isfinite(g) and g != 0], dtype=float)
    if len(values) == 0:
        return math.nan
    return float(wilcoxon(values, zero_method=WILCOXON_ZEROS, alternative=ALTERNATIVE_OVER_TASKS).pvalue)


def format_p(value: float) -> str:
    """A p-value as text: three decimals, two significant digits below 0.001, "n/a" when undefined."""
    if value is None or math.isnan(value):
        return "n/a"
    return f"{value:.3f}" if value >= 0.001 else f"{value:.1e}"
