"""Corpus quality report: how each pretraining source looks beside real, held-out ECGs.

The leaderboard says which pretraining corpus gives the better encoder; this report says what the
corpora *are*, so a reader can relate a gain (or a loss) to a property of the ECGs: are there
heart beats at all, at plausible rates, with a real ECG's spectrum and amplitudes, and how far is
the corpus, as a whole, from real PTB-XL records that no pretraining ever sees?
``simecg-bench corpus compare sim ecgsyn ptbxl vae gan --out DIR`` runs :func:`compare_corpora`.

For each corpus, ``n`` ECGs are drawn (indices from a seeded generator over the corpus as a
default pretraining run would build it: size ``PretrainConfig().corpus_size``, seed ``seed``; a
smaller corpus, e.g. ``ptbxl`` or a ``folder``, gives what it holds) and measured:

* **heart rate** -- R peaks by neurokit2 (``nk.ecg_peaks`` on ``nk.ecg_clean``, 500 Hz, the
  default "neurokit" methods); an ECG's rate is 60 / its median RR interval. R peaks are
  *found* when there are >= 2 peaks and the rate is plausible (20-250 bpm, :data:`HR_RANGE`).
  ``hr_median``/``hr_iqr`` are over the ECGs where they are found, ``r_peak_share`` is that share.
* **spectrum** -- Welch PSD (``scipy.signal.welch``, Hann windows of 2,048 samples = 0.24 Hz bins,
  50% overlap) of each z-scored ECG; ``power_<band>`` is the mean over ECGs of the share of the
  ECG's power in each band of :data:`BANDS` (baseline < 0.5 Hz, 0.5-5, 5-15, 15-40, > 40 Hz).
  The mean PSD per corpus is plotted and written to ``corpus_psd.csv``.
* **amplitude** (raw signals, mV) -- each ECG's mean, standard deviation and peak-to-peak;
  their median and IQR over the corpus; ``flat_share`` (peak-to-peak below
  :data:`FLAT_PTP_MV`) and ``nonfinite_share`` (any NaN/inf sample; such ECGs are left out of
  every other measure).
* **distance to held-out real ECGs** -- the reference set is lead II of PTB-XL records in the
  union of the test splits of the PTB-XL tasks (``paper`` split, test seed 123): exactly the
  records the ``ptbxl`` corpus leaves out (:func:`benchmark.corpora.ptbxl.eligible_records`
  decides both), sampled like a corpus. Each ECG becomes the feature vector :data:`FEATURES`
  (see :func:`ecg_features`), standardised with the reference set's per-feature mean and sd:
  log band powers (Welch, and the whole record's DCT below 0.5 Hz: trends, steps, slow drifts),
  rhythm and beat shape (heart rate, RR variability, how alike the beats are), *scale-free*
  amplitude statistics (crest factor, kurtosis, skewness) and local ones (a 1-s window's
  high-frequency energy against the record's median: bursts of noise; the largest jump of the
  level between 0.5-s windows: steps). Scale-free because pretraining z-scores every ECG, so a
  corpus's gain never reaches the encoder (and ``vae``/``gan`` generate z-scored ECGs by
  design): raw mV amplitudes are reported in the ``amp_*`` columns but kept out of the
  distances. Then

  - ``mmd2``: the unbiased estimate of the squared maximum mean discrepancy with the RBF kernel
    ``k(x, y) = exp(-|x - y|^2 / (2 sigma^2))`` (Gretton et al. 2012, eq. 3), ``sigma`` = the
    median pairwise Euclidean distance between reference feature vectors (the median heuristic,
    on the reference alone so that one kernel serves every corpus and rows are comparable).
    0 in expectation for a corpus distributed like the reference (it can come out slightly
    negative); at most 2.
  - ``frechet``: the Fréchet (2-Wasserstein) distance between Gaussians fitted to the two sets of
    feature vectors, ``|mu_c - mu_r|^2 + Tr(S_c + S_r - 2 (S_c S_r)^(1/2))`` -- the FID formula
    on these hand-made features instead of Inception activations.
  - two-sample tests (:func:`two_sample_test`), which say whether a distance is more than
    sampling noise: ``mmd2_pvalue``, the permutation p-value of ``mmd2``; ``c2st_auroc``, the
    out-of-fold AUROC of a classifier told to separate the two sets (Lopez-Paz & Oquab 2017:
    0.5 when they are indistinguishable, 1 when any feature separates them), and its p-value
    ``c2st_pvalue`` (one-sided Mann-Whitney U of the scores).

  Without PTB-XL data the distance columns are NaN (one warning) and the rest is unchanged. A
  corpus that contains the reference records (``ptbxl-authors``) is marked ``sees_test_records``:
  its distances are then optimistic.

Outputs in ``out_dir``: ``corpus_report.csv`` / ``.json`` (one row per corpus; the JSON adds the
settings, the reference set and the kernel bandwidth), ``corpus_psd.csv``, and the plots
``hr_histograms.png``, ``mean_psd.png``, ``amplitude_boxplots.png``, ``sample_ecgs.png``;
with a tracker, one MLflow run (kind ``report``) holding the table as metrics
``<corpus>.<column>`` and the files as artifacts.
"""

from __future__ import annotations

import dataclasses
import io
import json
import logging
import math
import time
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from benchmark.tracking.tags import RunTags
from pretraining.corpora.base import TrainedCorpus
from simecg.errors import ConfigError, DataMissingError
from simecg.registries import CORPORA
from simecg.seeding import rng_for
from simecg.signal import FS, N_SAMPLES

log = logging.getLogger(__name__)

MIN_N = 10
HR_RANGE = (20.0, 250.0)  # bpm: a rate outside it is a detection failure, not a heart rate
FLAT_PTP_MV = 0.01  # an ECG whose peak-to-peak is below 10 uV shows no cardiac activity
WELCH_NPERSEG = 2048  # 4.1 s Hann windows: 0.24 Hz bins, so the < 0.5 Hz band holds two of them
BANDS: tuple[tuple[str, float, float], ...] = (
    ("power_lt0.5Hz", 0.0, 0.5),  # baseline wander
    ("power_0.5-5Hz", 0.5, 5.0),  # P and T waves, the rhythm
    ("power_5-15Hz", 5.0, 15.0),  # QRS complexes
    ("power_15-40Hz", 15.0, 40.0),  # QRS detail, muscle noise
    ("power_gt40Hz", 40.0, math.inf),  # mains, muscle and white noise
)
LOG_FLOOR = 1e-6  # band shares are logged as log10(share + LOG_FLOOR); a flat ECG gets -6
CREST_FLOOR = 1e-3  # the crest factor is logged as log10(ptp / std + CREST_FLOOR); a flat ECG gets -3
# The whole record's DCT-II resolves 0.05 Hz (half a cycle per 10 s), where Welch's 4-s windows
# hold one bin below 0.5 Hz: these bands see trends, offset steps and slow drifts.
DCT_BANDS: tuple[tuple[str, float, float], ...] = (
    ("dct_le0.1Hz", 0.0, 0.1),  # a trend, a step, at most one slow cycle per record
    ("dct_0.1-0.5Hz", 0.1, 0.5),  # slow baseline wander
)
BURST_WINDOW = FS  # samples: 1-s windows of high-frequency energy (each holds about one beat)
BURST_FACTOR = 3.0  # a window whose energy is this many times the record's median is a burst
STEP_WINDOW = FS // 2  # samples: the level (median) of 0.5-s windows, for the largest step
BEAT_HALF = FS // 5  # samples each side of an R peak in a beat's shape (0.2 s)
MISSING = -1.0  # rr_cv and beat_corr of an ECG with too few R peaks (both are >= 0 for most ECGs)
FEATURES: tuple[str, ...] = (
    *(f"log10_{name}" for name, _, _ in BANDS),  # the spectrum's shape, gain-free
    *(f"log10_{name}" for name, _, _ in DCT_BANDS),  # its very low frequencies
    "hr_bpm",  # the detected rate; 0 when no R peaks are found (far from any real rate)
    "rr_cv",  # sd / mean of the RR intervals: rhythm regularity (MISSING below 3 R peaks)
    "beat_corr",  # mean correlation of each beat with the median beat: stable shape (MISSING below 2)
    "log10_crest",  # peak-to-peak / std: how much the R peaks stand out of the rest
    "kurtosis",  # excess kurtosis of the samples: peaky beats (real ECGs ~5-20) vs noise (~0)
    "skewness",  # of the samples: R waves up (> 0) or down, asymmetric waves
    "log10_burst_ratio",  # the loudest 1-s window's high-frequency energy over the median window's
    "burst_share",  # share of 1-s windows above BURST_FACTOR x the median: local noise bursts
    "max_step",  # largest jump of the z-scored level between consecutive 0.5-s windows: steps
)  # gain-free: no raw std, ptp or mean (PTB-XL offsets are ~0 +- 0.004 mV: any offset would dominate)
LOCAL = ("rr_cv", "beat_corr", "skewness", "burst_ratio", "burst_share", "max_step")  # table columns
MMD_PERMUTATIONS = 200  # label permutations behind mmd2_pvalue
C2ST_FOLDS = 5  # cross-validation folds of the classifier two-sample test
REFERENCE = "ptbxl-test"  # how the held-out reference set is named in plots and the JSON
ALL_FOLDS = tuple(range(-1, 11))  # every PTB-XL strat_fold (-1: unknown)
PARALLEL_MIN = 1500  # fewer ECGs: R peaks in-process (see heart_rates)
CHUNK = 250
COLUMNS = (
    "corpus", "n", "hr_median", "hr_iqr", "r_peak_share", *(name for name, _, _ in BANDS),
    "amp_mean_median", "amp_mean_iqr", "amp_std_median", "amp_std_iqr", "amp_ptp_median", "amp_ptp_iqr",
    "flat_share", "nonfinite_share", "mmd2", "frechet", "mmd2_pvalue", "c2st_auroc", "c2st_pvalue",
    "sees_test_records",
)
FORMATS = ("table", "csv", "json")
PLOTS = ("hr_histograms.png", "mean_psd.png", "amplitude_boxplots.png", "sample_ecgs.png")


# ----------------------------------------------------------------------------------- measuring
@dataclass
class Measurements:
    """Per-ECG measures of one set of ECGs (a corpus sample or the reference), and its mean PSD.

    ``table`` has one row per ECG: ``hr`` (NaN unless R peaks are found), ``r_found``, ``mean``,
    ``std``, ``ptp`` (raw, mV; NaN for a non-finite ECG), ``kurtosis`` (0 for a flat ECG),
    ``flat``, ``finite``, the band shares (:data:`BANDS`, :data:`DCT_BANDS`) and the
    :data:`LOCAL` statistics (``rr_cv``/``beat_corr`` NaN with too few R peaks).
    """

    name: str
    table: pd.DataFrame
    freqs: np.ndarray
    mean_psd: np.ndarray
    examples: np.ndarray  # the first three ECGs, for the sample grid

    def features(self) -> np.ndarray:
        """:data:`FEATURES` of every finite ECG (see :func:`ecg_features`)."""
        return ecg_features(self.table)


def _heart_rate_chunk(signals: np.ndarray) -> np.ndarray:
    """``(n, 4)`` per ECG: heart rate in bpm (NaN without >= 2 R peaks), the number of R peaks, and
    the beat statistics of :func:`beat_statistics` (NaN without enough peaks)."""
    import neurokit2 as nk

    out = np.full((len(signals), 4), np.nan)
    out[:, 1] = 0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # neurokit2 warns on flat or very short signals
        for i, signal in enumerate(signals):
            try:
                cleaned = nk.ecg_clean(signal, sampling_rate=FS)
                _, info = nk.ecg_peaks(cleaned, sampling_rate=FS)
                peaks = np.asarray(info["ECG_R_Peaks"], dtype=np.int64)
            except Exception:  # neurokit2 raises on degenerate input: no peaks found
                continue
            out[i, 1] = len(peaks)
            if len(peaks) >= 2:
                out[i, 0] = 60.0 * FS / float(np.median(np.diff(peaks)))
            out[i, 2:] = beat_statistics(signal, peaks)
    return out


def beat_statistics(signal: np.ndarray, peaks: np.ndarray) -> tuple[float, float]:
    """(RR coefficient of variation, mean correlation of each beat with the median beat) of one ECG.

    The RR CV (sd / mean of the intervals between R ``peaks``) needs 3 peaks; the beats are the
    ``2 * BEAT_HALF`` samples around each peak that lie inside the ECG, and need 2. NaN otherwise.
    Both are gain- and offset-free (a correlation removes each beat's own mean and scale).
    """
    rr = np.diff(np.asarray(peaks, dtype=np.float64))
    rr_cv = float(rr.std() / rr.mean()) if len(rr) >= 2 and rr.mean() > 0 else math.nan
    inside = [p for p in peaks if BEAT_HALF <= p <= len(signal) - BEAT_HALF]
    if len(inside) < 2:
        return rr_cv, math.nan
    beats = np.stack([signal[p - BEAT_HALF : p + BEAT_HALF] for p in inside]).astype(np.float64)
    beats -= beats.mean(axis=1, keepdims=True)
    median = np.median(beats, axis=0)
    median -= median.mean()
    norms = np.linalg.norm(beats, axis=1) * np.linalg.norm(median)
    corr = np.divide(beats @ median, norms, out=np.zeros(len(beats)), where=norms > 0)
    return rr_cv, float(corr.mean())


def heart_rates(signals: np.ndarray, n_jobs: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Heart rate (bpm) and whether R peaks are found (>= 2 peaks, rate in :data:`HR_RANGE`), per ECG."""
    rhythm = rhythms(signals, n_jobs)
    return rhythm[:, 0], rhythm[:, 1].astype(bool)


def rhythms(signals: np.ndarray, n_jobs: int | None = None) -> np.ndarray:
    """``(n, 4)`` per ECG: heart rate (bpm), whether R peaks are found (>= 2 peaks, rate in
    :data:`HR_RANGE`), RR coefficient of variation and beat correlation (:func:`beat_statistics`).

    neurokit2 takes ~3 ms per 10-s ECG (1,000 ECGs: ~3 s on the 2-core reference machine), while
    starting joblib workers that import neurokit2 took ~7 s there; so below :data:`PARALLEL_MIN`
    ECGs (or with ``n_jobs=1``) they run in this process, beyond it chunks of :data:`CHUNK` ECGs go
    to ``n_jobs`` joblib processes (default: every core). Same results either way.
    The rate is NaN where R peaks are not found; a non-finite ECG is not searched.
    """
    signals = np.asarray(signals, dtype=np.float64)
    result = np.full((len(signals), 4), np.nan)
    result[:, 1] = 0
    finite = np.isfinite(signals).all(axis=1)
    todo = signals[finite]
    if len(todo) >= PARALLEL_MIN and (n_jobs is None or n_jobs > 1):
        from joblib import Parallel, delayed

        chunks = [todo[i : i + CHUNK] for i in range(0, len(todo), CHUNK)]
        parts = Parallel(n_jobs=n_jobs or -1)(delayed(_heart_rate_chunk)(chunk) for chunk in chunks)
        result[finite] = np.concatenate(parts)
    elif len(todo):
        result[finite] = _heart_rate_chunk(todo)
    hr, n_peaks = result[:, 0], result[:, 1]
    found = (n_peaks >= 2) & (hr >= HR_RANGE[0]) & (hr <= HR_RANGE[1])
    return np.column_stack([np.where(found, hr, np.nan), found, result[:, 2], result[:, 3]])


def power_spectra(signals: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Frequencies (Hz) and Welch PSD of each z-scored ECG (``(n, n_freqs)``); flat ECGs give zeros.

    Z-scoring first makes spectra of corpora with different gains comparable: each ECG's PSD then
    integrates to ~1, so band powers are shares of the ECG's power.
    """
    from scipy.signal import welch

    z = zscored(signals)
    freqs, psd = welch(z, fs=FS, nperseg=min(WELCH_NPERSEG, z.shape[1]), axis=-1)
    return freqs, psd


def zscored(signals: np.ndarray) -> np.ndarray:
    """Each ECG as pretraining sees it, ``(x - mean) / std`` (float64); a flat ECG (peak-to-peak
    below :data:`FLAT_PTP_MV`) becomes zeros."""
    x = np.asarray(signals, dtype=np.float64)
    centred = x - x.mean(axis=1, keepdims=True)
    std = centred.std(axis=1, keepdims=True)
    flat = np.ptp(x, axis=1, keepdims=True) < FLAT_PTP_MV
    return np.where(flat, 0.0, centred / np.where(flat | (std == 0), 1.0, std))


def dct_shares(z: np.ndarray) -> np.ndarray:
    """``(n, len(DCT_BANDS))``: the share of each z-scored ECG's power in each band of :data:`DCT_BANDS`.

    From the orthonormal DCT-II of the whole record (Parseval: the squared coefficients sum to
    the power), coefficient ``k`` at ``k * fs / (2 * length)`` Hz (0.05 Hz steps for 10 s); the
    mean (``k = 0``) is left out. All 0 for a flat ECG.
    """
    from scipy.fft import dct

    power = dct(z, type=2, norm="ortho", axis=1) ** 2
    freqs = np.arange(z.shape[1]) * FS / (2 * z.shape[1])
    total = power[:, 1:].sum(axis=1, keepdims=True)
    bands = np.stack([power[:, (freqs > lo) & (freqs <= hi)].sum(axis=1) for _, lo, hi in DCT_BANDS], axis=1)
    return np.divide(bands, total, out=np.zeros_like(bands), where=total > 0)


def local_statistics(z: np.ndarray) -> dict[str, np.ndarray]:
    """Per z-scored ECG: ``skewness``; ``burst_ratio`` and ``burst_share`` (1-s windows' RMS of the
    first difference, i.e. high-frequency energy, against the median window's: a burst of noise
    lifts one window far above the rest); ``max_step`` (largest jump between the medians of
    consecutive 0.5-s windows: a level step). A flat ECG gives 1, 0, 0 and 0."""
    from scipy.stats import skew

    n, length = z.shape
    diff = np.diff(z, axis=1, append=z[:, -1:])
    windows = length // BURST_WINDOW
    rms = np.sqrt((diff[:, : windows * BURST_WINDOW].reshape(n, windows, BURST_WINDOW) ** 2).mean(axis=2))
    median = np.median(rms, axis=1, keepdims=True)
    ratio = np.divide(rms.max(axis=1, keepdims=True), median, out=np.ones_like(median), where=median > 0)[:, 0]
    share = (rms > BURST_FACTOR * median).mean(axis=1) * (median[:, 0] > 0)
    steps = length // STEP_WINDOW
    levels = np.median(z[:, : steps * STEP_WINDOW].reshape(n, steps, STEP_WINDOW), axis=2)
    skewness = np.zeros(n)
    moving = z.std(axis=1) > 0
    skewness[moving] = skew(z[moving], axis=1)
    return {"skewness": skewness, "burst_ratio": ratio, "burst_share": share,
            "max_step": np.abs(np.diff(levels, axis=1)).max(axis=1)}


def band_shares(freqs: np.ndarray, psd: np.ndarray) -> np.ndarray:
    """``(n, len(BANDS))``: the share of each ECG's power in each band (all 0 for an ECG without power)."""
    total = psd.sum(axis=1, keepdims=True)
    powers = np.stack([psd[:, (freqs >= lo) & (freqs < hi)].sum(axis=1) for _, lo, hi in BANDS], axis=1)
    return np.divide(powers, total, out=np.zeros_like(powers), where=total > 0)


def measure(signals: np.ndarray, name: str = "", n_jobs: int | None = None) -> Measurements:
    """Every per-ECG measure of the report for ``signals`` (raw, ``(n, 5000)``, 500 Hz)."""
    from scipy.stats import kurtosis

    signals = np.asarray(signals, dtype=np.float32)
    finite = np.isfinite(signals).all(axis=1)
    good = signals[finite].astype(np.float64)
    table = pd.DataFrame({"finite": finite})
    for column in ("hr", "mean", "std", "ptp", "kurtosis", *(b for b, _, _ in (*BANDS, *DCT_BANDS)), *LOCAL):
        table[column] = np.nan
    table["r_found"] = False
    table["flat"] = False
    rhythm = rhythms(signals, n_jobs)
    table["hr"], table["r_found"] = rhythm[:, 0], rhythm[:, 1].astype(bool)
    table["rr_cv"], table["beat_corr"] = rhythm[:, 2], rhythm[:, 3]
    freqs = np.fft.rfftfreq(WELCH_NPERSEG, 1 / FS)
    mean_psd = np.full(len(freqs), np.nan)
    if len(good):
        table.loc[finite, "mean"] = good.mean(axis=1)
        table.loc[finite, "std"] = good.std(axis=1)
        table.loc[finite, "ptp"] = np.ptp(good, axis=1)
        flat = np.ptp(good, axis=1) < FLAT_PTP_MV
        table.loc[finite, "flat"] = flat
        kurt = np.zeros(len(good))
        if (~flat).any():
            kurt[~flat] = np.nan_to_num(kurtosis(good[~flat], axis=1))
        table.loc[finite, "kurtosis"] = kurt
        freqs, psd = power_spectra(good)
        table.loc[finite, [b for b, _, _ in BANDS]] = band_shares(freqs, psd)
        mean_psd = psd.mean(axis=0)
        z = zscored(good)
        table.loc[finite, [b for b, _, _ in DCT_BANDS]] = dct_shares(z)
        for column, values in local_statistics(z).items():
            table.loc[finite, column] = values
    return Measurements(name, table, freqs, mean_psd, signals[:3].copy())


def ecg_features(table: pd.DataFrame) -> np.ndarray:
    """The fixed feature vector :data:`FEATURES` of each finite ECG of a :class:`Measurements` table.

    Per ECG: log10(share + 1e-6) of its z-scored power in each of the 5 Welch bands and the 2 DCT
    bands, its heart rate in bpm (0 when R peaks are not found), RR CV and beat correlation
    (:data:`MISSING` with too few R peaks), log10(peak-to-peak / std + 1e-3) (the crest factor; 0
    / a flat ECG: -3), the excess (Fisher) kurtosis and the skewness of its samples (0 for a flat
    ECG), log10 of the burst ratio, the burst share and the largest step (:func:`local_statistics`).
    All are unchanged by the ECG's gain and offset, as the z-scored input of pretraining is.
    Unstandardised: the report standardises them with the reference set's mean and sd before
    measuring distances.
    """
    rows = table[table["finite"]]

    def column(name: str) -> np.ndarray:
        return rows[name].to_numpy(float)

    columns = [np.log10(column(b) + LOG_FLOOR) for b, _, _ in (*BANDS, *DCT_BANDS)]
    columns.append(np.nan_to_num(column("hr"), nan=0.0))
    columns += [np.nan_to_num(column(name), nan=MISSING) for name in ("rr_cv", "beat_corr")]
    std, ptp = column("std"), column("ptp")
    crest = np.divide(ptp, std, out=np.zeros_like(ptp), where=~rows["flat"].to_numpy(bool) & (std > 0))
    columns.append(np.log10(crest + CREST_FLOOR))
    columns += [column("kurtosis"), column("skewness"), np.log10(column("burst_ratio")), column("burst_share"),
                column("max_step")]
    return np.stack(columns, axis=1) if len(rows) else np.zeros((0, len(FEATURES)))


# ----------------------------------------------------------------------------------- distances
def _sq_dists(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    d = (a * a).sum(1)[:, None] + (b * b).sum(1)[None, :] - 2.0 * a @ b.T
    return np.maximum(d, 0.0)


def median_bandwidth(x: np.ndarray, max_points: int = 2000) -> float:
    """The median heuristic: the median Euclidean distance between distinct rows of ``x`` (at most
    ``max_points`` rows, the first ones); 1.0 when it is 0 (e.g. identical rows)."""
    x = np.asarray(x, dtype=np.float64)[:max_points]
    if len(x) < 2:
        return 1.0
    d = np.sqrt(_sq_dists(x, x)[np.triu_indices(len(x), k=1)])
    sigma = float(np.median(d))
    return sigma if sigma > 0 else 1.0


def _kernel_sum(a: np.ndarray, b: np.ndarray, gamma: float, block: int = 1024) -> float:
    """Sum of ``exp(-gamma |a_i - b_j|^2)`` over all pairs, in blocks (memory O(block x len(b)))."""
    return float(sum(np.exp(-gamma * _sq_dists(a[i : i + block], b)).sum() for i in range(0, len(a), block)))


def mmd2_rbf(x: np.ndarray, y: np.ndarray, bandwidth: float | None = None) -> float:
    """Unbiased MMD² between samples ``x`` (m, d) and ``y`` (n, d) with an RBF kernel of width ``bandwidth``.

    ``MMD²_u = 1/(m(m-1)) sum_{i!=j} k(x_i, x_j) + 1/(n(n-1)) sum_{i!=j} k(y_i, y_j)
    - 2/(mn) sum_{i,j} k(x_i, y_j)``, ``k(a, b) = exp(-|a - b|² / (2 bandwidth²))``
    (Gretton et al. 2012). ``bandwidth`` None: the median heuristic on the pooled samples. NaN
    when either sample has fewer than 2 rows. Unbiased, so it can be slightly below 0.
    """
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    m, n = len(x), len(y)
    if m < 2 or n < 2:
        return math.nan
    sigma = median_bandwidth(np.concatenate([x, y])) if bandwidth is None else float(bandwidth)
    gamma = 1.0 / (2.0 * sigma * sigma)
    kxx = (_kernel_sum(x, x, gamma) - m) / (m * (m - 1))  # the diagonal holds m ones
    kyy = (_kernel_sum(y, y, gamma) - n) / (n * (n - 1))
    kxy = _kernel_sum(x, y, gamma) / (m * n)
    return float(kxx + kyy - 2.0 * kxy)


def frechet_distance(x: np.ndarray, y: np.ndarray) -> float:
    """Fréchet distance between Gaussians fitted to ``x`` and ``y`` (rows = samples):
    ``|mu_x - mu_y|² + Tr(S_x + S_y - 2 (S_x S_y)^(1/2))``, as FID. NaN with fewer than 2 rows."""
    from scipy import linalg

    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    if len(x) < 2 or len(y) < 2:
        return math.nan
    mu = x.mean(0) - y.mean(0)
    sx, sy = np.atleast_2d(np.cov(x, rowvar=False)), np.atleast_2d(np.cov(y, rowvar=False))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", linalg.LinAlgWarning)  # singular (e.g. a constant feature): handled below
        covmean = linalg.sqrtm(sx @ sy)
        if not np.isfinite(covmean).all():  # regularise as FID implementations do
            eps = 1e-6 * np.eye(len(sx))
            covmean = linalg.sqrtm((sx + eps) @ (sy + eps))
    value = float(mu @ mu + np.trace(sx) + np.trace(sy) - 2.0 * np.trace(np.real(covmean)))
    return max(value, 0.0)


def mmd2_permutation_test(x: np.ndarray, y: np.ndarray, bandwidth: float | None = None,
                          n_permutations: int = MMD_PERMUTATIONS, seed: int = 0,
                          block: int = 1024) -> tuple[float, float]:
    """:func:`mmd2_rbf` of ``x`` and ``y`` and its permutation p-value.

    Why: an MMD² means little without the spread it has between two samples of one distribution.
    The pooled rows are split again at random ``n_permutations`` times (labels drawn with
    ``seed``); the p-value is ``(1 + #{split MMD² >= observed}) / (1 + n_permutations)``. One
    pass over the kernel matrix, in row blocks (memory O(block x rows)), serves every split
    (``s`` marks the rows of ``x``: ``s'Ks``, ``s'K1`` give the three sums of the estimator).
    (NaN, NaN) when either sample has fewer than 2 rows.
    """
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    m, n = len(x), len(y)
    if m < 2 or n < 2:
        return math.nan, math.nan
    pooled = np.concatenate([x, y])
    sigma = median_bandwidth(pooled) if bandwidth is None else float(bandwidth)
    rng = rng_for(seed, "corpus-report", "mmd-permutations")
    observed = np.r_[np.ones(m), np.zeros(n)]
    labels = np.stack([observed, *(rng.permutation(observed) for _ in range(n_permutations))], axis=1)
    kernel_labels, row_sums = np.empty_like(labels), np.empty(len(pooled))
    for lo in range(0, len(pooled), block):
        rows = np.exp(-_sq_dists(pooled[lo : lo + block], pooled) / (2.0 * sigma * sigma))
        rows[np.arange(len(rows)), lo + np.arange(len(rows))] = 0.0  # the unbiased estimator leaves out i == j
        kernel_labels[lo : lo + block] = rows @ labels
        row_sums[lo : lo + block] = rows.sum(axis=1)
    within_x = (labels * kernel_labels).sum(axis=0)  # s'Ks
    x_to_all = row_sums @ labels  # s'K1
    within_y = row_sums.sum() - 2.0 * x_to_all + within_x
    stats = within_x / (m * (m - 1)) + within_y / (n * (n - 1)) - 2.0 * (x_to_all - within_x) / (m * n)
    return float(stats[0]), float((1 + np.sum(stats[1:] >= stats[0])) / (1 + n_permutations))


def classifier_two_sample_test(x: np.ndarray, y: np.ndarray, seed: int = 0,
                               folds: int = C2ST_FOLDS) -> tuple[float, float]:
    """(AUROC, p-value) of a classifier two-sample test (Lopez-Paz & Oquab, ICLR 2017) of rows ``x`` vs ``y``.

    A gradient-boosted tree classifier (scikit-learn's HistGradientBoostingClassifier, fixed
    settings, no early stopping) learns to tell ``y`` from ``x``; each row is scored by the model
    of the fold that did not train on it (``folds`` stratified folds, shuffled with ``seed``).
    The AUROC of those scores is 0.5 when the two samples are distributed alike; the p-value is
    the one-sided Mann-Whitney U test of ``y``'s scores above ``x``'s (approximate: the folds'
    models differ). (NaN, NaN) when either sample has fewer than ``folds`` rows.
    """
    from scipy.stats import mannwhitneyu
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.metrics import roc_auc_score
    from sklearn.model_selection import StratifiedKFold, cross_val_predict

    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    if len(x) < folds or len(y) < folds:
        return math.nan, math.nan
    features, labels = np.concatenate([x, y]), np.r_[np.zeros(len(x)), np.ones(len(y))]
    model = HistGradientBoostingClassifier(max_iter=100, max_leaf_nodes=15, early_stopping=False, random_state=seed)
    cv = StratifiedKFold(folds, shuffle=True, random_state=seed)
    scores = cross_val_predict(model, features, labels, cv=cv, method="predict_proba")[:, 1]
    p_value = mannwhitneyu(scores[labels == 1], scores[labels == 0], alternative="greater").pvalue
    return float(roc_auc_score(labels, scores)), float(p_value)


def two_sample_test(x: np.ndarray, y: np.ndarray, bandwidth: float | None = None, seed: int = 0,
                    n_permutations: int = MMD_PERMUTATIONS) -> dict[str, float]:
    """Every distance and test of the report between feature rows ``x`` (the reference) and ``y``:
    ``mmd2`` with ``mmd2_pvalue`` (:func:`mmd2_permutation_test`), ``frechet``, and ``c2st_auroc``
    with ``c2st_pvalue`` (:func:`classifier_two_sample_test`). Rows should be standardised alike
    (e.g. by :class:`FeatureScale` of the reference)."""
    mmd2, mmd2_pvalue = mmd2_permutation_test(x, y, bandwidth, n_permutations, seed)
    auroc, c2st_pvalue = classifier_two_sample_test(x, y, seed)
    return {"mmd2": mmd2, "mmd2_pvalue": mmd2_pvalue, "frechet": frechet_distance(y, x), "c2st_auroc": auroc,
            "c2st_pvalue": c2st_pvalue}


@dataclass
class FeatureScale:
    """Standardisation and kernel bandwidth fixed by the reference set (one per report)."""

    mean: np.ndarray
    sd: np.ndarray
    bandwidth: float

    @classmethod
    def of(cls, reference_features: np.ndarray) -> FeatureScale:
        mean = reference_features.mean(axis=0)
        sd = reference_features.std(axis=0)
        sd = np.where(sd > 0, sd, 1.0)
        return cls(mean, sd, median_bandwidth((reference_features - mean) / sd))

    def __call__(self, features: np.ndarray) -> np.ndarray:
        return (features - self.mean) / self.sd


# ----------------------------------------------------------------------------------- the data
def reference_signals(n: int, seed: int = 0, data_dir: Path | str | None = None,
                      cache_dir: Path | str | None = None) -> tuple[np.ndarray, dict[str, Any]]:
    """Up to ``n`` held-out real ECGs (raw lead II, mV) and a description of where they come from.

    The reference set is every usable PTB-XL record in the test split of some PTB-XL task, i.e.
    exactly the records ``eligible_records(..., exclude_test_splits=True)`` removes for the
    ``ptbxl`` corpus: computed as the records eligible with every fold and no exclusion minus those
    eligible with every fold and the exclusion, so the split logic stays in one place. ``n`` of them
    are drawn with ``seed``. Raises :class:`DataMissingError` without PTB-XL data.
    """
    from benchmark.corpora.ptbxl import PTBXLCorpus, PTBXLOptions, eligible_records

    options = PTBXLOptions(folds=ALL_FOLDS, exclude_test_splits=False, data_dir=data_dir,
                           cache_dir=None if cache_dir is None else str(cache_dir))
    everything = PTBXLCorpus(size=None, seed=0, options=options)
    kept, _ = eligible_records(dataclasses.replace(options, exclude_test_splits=True))
    train_ids = set(kept["record_id"].astype(str))
    test = np.array([i for i, rid in enumerate(everything.record_ids) if rid not in train_ids], dtype=np.int64)
    if len(test) == 0:
        raise DataMissingError("no PTB-XL record of any task's test split found; the reference set is empty")
    chosen = np.sort(rng_for(seed, "corpus-report", "reference").permutation(test)[:n])
    info = {"name": REFERENCE, "dataset": "ptbxl", "lead": "II", "available": int(len(test)), "n": int(len(chosen)),
            "data_version": everything.data_version, "record_ids": [everything.record_ids[i] for i in chosen],
            "definition": "PTB-XL records in the union of the PTB-XL tasks' test splits (paper preset, test "
                          "seed 123): the records the ptbxl corpus excludes"}
    return everything.get_batch(chosen), info


def build_named_corpus(name: str, seed: int, settings: Mapping[str, Any] | None = None,
                       data_dir: Path | str | None = None):
    """Corpus ``name`` as a default pretraining run builds it (``PretrainConfig().corpus_size``, which a
    fixed collection caps at what it holds), with ``seed`` as its seed and ``settings`` as its options
    (``{"corpus_options.KEY": value}``, as :func:`benchmark.suites.config.route_set` gives them);
    ``data_dir`` reaches corpora of real data (``ptbxl``, ``vae``, ``gan``). ``prepare()`` is called
    when the corpus has one (generators train or load their model there)."""
    from benchmark.suites.config import corpus_config
    from pretraining.config import PretrainConfig, build_corpus

    config = corpus_config(name, PretrainConfig().corpus_size, seed, settings or {})
    if data_dir is not None and "data_dir" in {f.name for f in dataclasses.fields(config)}:
        config = dataclasses.replace(config, data_dir=str(data_dir))  # build_corpus hands it to the corpus
    corpus = build_corpus(config)
    if isinstance(corpus, TrainedCorpus):
        corpus.prepare()
    return corpus


def sample_indices(size: int, n: int, seed: int, name: str) -> np.ndarray:
    """``min(n, size)`` distinct indices of a corpus of ``size``, sorted, drawn with ``(seed, name)``."""
    if size <= n:
        return np.arange(size, dtype=np.int64)
    return np.sort(rng_for(seed, "corpus-report", name).choice(size, size=n, replace=False)).astype(np.int64)


# ----------------------------------------------------------------------------------- the report
def summarize(m: Measurements) -> dict[str, Any]:
    """One report row (without distances) from per-ECG measurements."""
    t = m.table

    def median_iqr(values: pd.Series) -> tuple[float, float]:
        v = values.dropna().to_numpy(float)
        if not len(v):
            return math.nan, math.nan
        q1, med, q3 = np.percentile(v, [25, 50, 75])
        return float(med), float(q3 - q1)

    row: dict[str, Any] = {"corpus": m.name, "n": len(t)}
    row["hr_median"], row["hr_iqr"] = median_iqr(t["hr"])
    row["r_peak_share"] = float(t["r_found"].mean()) if len(t) else math.nan
    for band, _, _ in BANDS:
        row[band] = float(t[band].mean()) if t["finite"].any() else math.nan
    for column in ("mean", "std", "ptp"):
        row[f"amp_{column}_median"], row[f"amp_{column}_iqr"] = median_iqr(t[column])
    row["flat_share"] = float(t["flat"].mean()) if len(t) else math.nan
    row["nonfinite_share"] = float((~t["finite"]).mean()) if len(t) else math.nan
    return row


def check_request(names: Sequence[str], n: int) -> list[str]:
    """``names`` as a list once they are known, distinct corpus names and ``n`` an integer >= 10, else
    :class:`ConfigError` (the unknown names and every known one); cheap, so the CLI checks first."""
    names = [str(name) for name in names]
    if not names:
        raise ConfigError("name at least one corpus to compare (see `simecg-bench list corpora`)")
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < MIN_N:
        raise ConfigError(f"--n must be an integer of at least {MIN_N} (ECGs per corpus), got {n!r}")
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
        raise ConfigError(f"corpus {duplicates[0]!r} is named twice; name each corpus once")
    unknown = [name for name in names if name not in CORPORA]
    if unknown:
        raise ConfigError(f"unknown corpus {', '.join(map(repr, unknown))}; known: {', '.join(CORPORA.names())} "
                          "(see `simecg-bench list corpora`)")
    return names


def compare_corpora(names: Sequence[str], n: int, seed: int, out_dir: Path | str,
                    data_dir: Path | str | None = None, overrides: Sequence[str] | None = None,
                    tracker: Any = None, n_jobs: int | None = None) -> pd.DataFrame:
    """The corpus quality report: one row per corpus of ``names`` (columns :data:`COLUMNS`).

    Why: pretraining sources differ in ways the leaderboard cannot show (no beats, implausible
    rates, missing baseline wander or noise, gain); this puts numbers and plots on them, and a
    distance to real ECGs that pretraining never saw (see the module docstring for every measure).

    ``n`` ECGs (at least 10) are drawn per corpus with ``seed`` (also the corpus seed);
    ``overrides`` are ``--set`` items (``pretrain.corpus_options.KEY=VALUE``, or
    ``sources.NAME.corpus_options.KEY=VALUE`` for one corpus: :func:`benchmark.suites.config.route_set`);
    ``data_dir`` is where PTB-XL is (default ``$SIMECG_DATA`` or the
    cache). Files go to ``out_dir``; with ``tracker`` (a :class:`benchmark.tracking.tracker.Tracker`),
    one MLflow run of kind ``report`` gets the table as metrics ``<corpus>.<column>`` and the files
    as artifacts. Unknown corpus names raise :class:`ConfigError` listing the known ones before
    any work, and a named corpus that cannot be built (``ptbxl`` without data) raises its own error;
    without PTB-XL data the reference is missing, so ``mmd2`` and ``frechet`` are NaN (one warning).
    The returned frame's ``attrs`` hold the JSON's settings, reference and distance description.
    """
    from benchmark.suites.config import route_set

    names = check_request(names, n)
    routed = route_set(list(overrides or []), "corpora", names)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    settings = {"corpora": names, "n": int(n), "seed": int(seed), "overrides": list(overrides or []),
                "data_dir": None if data_dir is None else str(data_dir)}
    if tracker is None:
        return _report(names, int(n), int(seed), out, data_dir, routed, settings, None, n_jobs)

    params = {**settings, "features": ",".join(FEATURES), "bands": ",".join(b for b, _, _ in BANDS),
              "hr_range": HR_RANGE, "flat_ptp_mv": FLAT_PTP_MV, "welch_nperseg": WELCH_NPERSEG}
    with tracker.run("corpus-report", RunTags(kind="report", corpora=",".join(names)), params=params) as run:
        return _report(names, int(n), int(seed), out, data_dir, routed, settings, run, n_jobs)


def _report(names: list[str], n: int, seed: int, out: Path, data_dir: Path | str | None,
            routed: dict[str, dict[str, str]], settings: dict[str, Any], run: Any, n_jobs: int | None) -> pd.DataFrame:
    started = time.perf_counter()
    corpora = {name: build_named_corpus(name, seed, routed[name], data_dir) for name in names}
    measured: dict[str, Measurements] = {}
    extra: dict[str, dict[str, Any]] = {}
    for name, corpus in corpora.items():
        t0 = time.perf_counter()
        indices = sample_indices(len(corpus), n, seed, name)
        if len(indices) < n:
            log.info("corpus %s holds %d ECGs, fewer than --n %d: all of them are measured", name, len(indices), n)
        measured[name] = measure(corpus.get_batch(indices), name, n_jobs)
        extra[name] = {"sees_test_records": bool(corpus.sees_test_records)}
        log.info("corpus %s: %d ECGs measured in %.1f s", name, len(indices), time.perf_counter() - t0)

    reference: Measurements | None = None
    reference_info: dict[str, Any] = {"name": REFERENCE, "n": 0}
    try:
        signals, reference_info = reference_signals(n, seed, data_dir)
        reference = measure(signals, REFERENCE, n_jobs)
    except DataMissingError as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        log.warning("no held-out PTB-XL reference, so mmd2 and frechet are NaN: %s", first)
        reference_info["error"] = first

    distance: dict[str, Any] = {"features": list(FEATURES), "kernel": "rbf exp(-|x-y|^2 / (2 sigma^2))",
                                "estimator": "unbiased MMD^2", "bandwidth": None,
                                "standardisation": "per feature, with the reference set's mean and sd",
                                "mmd2_pvalue": f"{MMD_PERMUTATIONS} label permutations",
                                "c2st": f"HistGradientBoostingClassifier, {C2ST_FOLDS}-fold out-of-fold AUROC, "
                                        "one-sided Mann-Whitney U p-value"}
    scale = None
    if reference is not None and len(ref_features := reference.features()) >= 2:
        scale = FeatureScale.of(ref_features)
        distance["bandwidth"] = scale.bandwidth
        distance["feature_mean"] = dict(zip(FEATURES, scale.mean.tolist(), strict=True))
        distance["feature_sd"] = dict(zip(FEATURES, scale.sd.tolist(), strict=True))
    rows = []
    for name, m in measured.items():
        row = summarize(m)
        row.update(dict.fromkeys(("mmd2", "frechet", "mmd2_pvalue", "c2st_auroc", "c2st_pvalue"), math.nan))
        if scale is not None:
            row.update(two_sample_test(scale(ref_features), scale(m.features()), scale.bandwidth, seed))
        row.update(extra[name])
        rows.append(row)
    frame = pd.DataFrame(rows, columns=list(COLUMNS))
    meta = {"settings": settings, "reference": reference_info, "distance": distance,
            "seconds": round(time.perf_counter() - started, 2)}
    frame.attrs.update(meta)

    files = _write_files(frame, meta, measured, reference, out)
    if run is not None:
        metrics = {f"{row['corpus']}.{column}": row[column] for row in rows for column in COLUMNS
                   if column != "corpus" and isinstance(row[column], (int, float, np.number))}
        metrics["reference.n"] = reference_info.get("n", 0)
        run.log_metrics(metrics)
        for path in files:
            run.log_artifact(path)
    return frame


# ----------------------------------------------------------------------------------- outputs
def _json_ready(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _json_ready(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_ready(v) for v in value]
    if isinstance(value, (np.floating, float)):
        return None if not math.isfinite(float(value)) else float(value)
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, np.bool_):
        return bool(value)
    return value


def _write_files(frame: pd.DataFrame, meta: dict[str, Any], measured: dict[str, Measurements],
                 reference: Measurements | None, out: Path) -> list[Path]:
    csv_path = out / "corpus_report.csv"
    frame.to_csv(csv_path, index=False, float_format="%.6g")
    json_path = out / "corpus_report.json"
    json_path.write_text(json.dumps(_json_ready({**meta, "rows": frame.to_dict("records")}), indent=2) + "\n")
    sets = [*measured.values(), *([reference] if reference is not None else [])]
    psd_path = out / "corpus_psd.csv"
    psd = pd.DataFrame({"freq_hz": sets[0].freqs, **{m.name: m.mean_psd for m in sets}})
    psd.to_csv(psd_path, index=False, float_format="%.6g")
    return [csv_path, json_path, psd_path, *plot_report(list(measured.values()), reference, out)]


def plot_report(measured: list[Measurements], reference: Measurements | None, out: Path) -> list[Path]:
    """The four figures of the report (:data:`PLOTS`) in ``out``; the reference set drawn in black."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    sets = [*measured, *([reference] if reference is not None else [])]
    colors = {m.name: plt.get_cmap("tab10")(i % 10) for i, m in enumerate(measured)}
    if reference is not None:
        colors[reference.name] = "black"
    label = {m.name: m.name + (" (held-out real)" if m is reference else "") for m in sets}
    paths = []

    fig, ax = plt.subplots(figsize=(7, 4))
    bins = np.arange(HR_RANGE[0], HR_RANGE[1] + 5, 5)
    for m in sets:
        hr = m.table["hr"].dropna().to_numpy()
        share = m.table["r_found"].mean() if len(m.table) else 0.0
        style = {"color": colors[m.name], "ls": "--" if m is reference else "-",
                 "label": f"{label[m.name]}: R peaks in {share:.0%}"}
        if len(hr):
            ax.hist(hr, bins=bins, density=True, histtype="step", lw=1.6, **style)
        else:  # nothing to draw, but the legend says so
            ax.plot([], [], lw=1.6, **style)
    ax.set(xlabel="heart rate (bpm, 60 / median RR)", ylabel="density",
           title="Heart rate (neurokit2 R peaks; ECGs without R peaks not shown)")
    ax.legend(fontsize=7)
    paths.append(_save(fig, out / PLOTS[0]))

    fig, ax = plt.subplots(figsize=(7, 4))
    for m in sets:
        keep = m.mean_psd > 0
        ax.semilogy(m.freqs[keep], m.mean_psd[keep], lw=1.2, color=colors[m.name],
                    ls="--" if m is reference else "-", label=label[m.name])
    for _, lo, _ in BANDS[1:]:
        ax.axvline(lo, color="grey", lw=0.6, ls=":")
    ax.set(xlabel="frequency (Hz)", ylabel="PSD of z-scored ECG (1/Hz)", xlim=(0, FS / 2),
           title="Mean Welch PSD (dotted: band edges 0.5, 5, 15, 40 Hz)")
    ax.legend(fontsize=7)
    paths.append(_save(fig, out / PLOTS[1]))

    fig, axes = plt.subplots(1, 3, figsize=(3 * max(3.0, 0.9 * len(sets)), 4))
    for ax, column, title in zip(axes, ("mean", "std", "ptp"), ("mean", "std", "peak-to-peak"), strict=True):
        data = [m.table[column].dropna().to_numpy() for m in sets]
        ax.boxplot([d if len(d) else [np.nan] for d in data], showfliers=False)
        ax.set_xticks(range(1, len(sets) + 1), [m.name for m in sets], rotation=30, fontsize=7)
        ax.set_title(f"{title} (mV, raw)", fontsize=9)
        ax.grid(alpha=0.3, axis="y")
    fig.suptitle("Amplitude per ECG (boxes: IQR, whiskers 1.5 IQR, outliers hidden)", fontsize=9)
    paths.append(_save(fig, out / PLOTS[2]))

    fig, axes = plt.subplots(len(sets), 3, figsize=(13, 1.5 * len(sets) + 0.6), squeeze=False, sharex=True)
    t = np.arange(N_SAMPLES) / FS
    for row, m in zip(axes, sets, strict=True):
        for k, ax in enumerate(row):
            if k < len(m.examples):
                ax.plot(t, m.examples[k], lw=0.5, color=colors[m.name])
            ax.tick_params(labelsize=6)
            ax.grid(alpha=0.3, lw=0.4)
        row[0].set_ylabel(label[m.name], fontsize=7)
    for ax in axes[-1]:
        ax.set_xlabel("s", fontsize=7)
    fig.suptitle("Sample ECGs per corpus (raw, mV, lead II, 500 Hz)", fontsize=9)
    paths.append(_save(fig, out / PLOTS[3]))
    return paths


def _save(fig: Any, path: Path) -> Path:
    import matplotlib.pyplot as plt

    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def render(frame: pd.DataFrame, fmt: str = "table") -> str:
    """The report as terminal text: an aligned ``table``, ``csv`` or ``json`` (records; NaN as null)."""
    if fmt not in FORMATS:
        raise ConfigError(f"--format must be one of {', '.join(FORMATS)}, got {fmt!r}")
    if fmt == "csv":
        buffer = io.StringIO()
        frame.to_csv(buffer, index=False, float_format="%.6g")
        return buffer.getvalue().rstrip("\n")
    if fmt == "json":
        return json.dumps(_json_ready(frame.to_dict("records")), indent=2)
    return frame.to_string(index=False, float_format=lambda v: f"{v:.4g}", na_rep="nan")


__all__ = [
    "BANDS", "COLUMNS", "DCT_BANDS", "FEATURES", "Measurements", "beat_statistics", "check_request",
    "classifier_two_sample_test", "compare_corpora", "dct_shares", "ecg_features", "frechet_distance", "heart_rates",
    "local_statistics", "measure", "median_bandwidth", "mmd2_permutation_test", "mmd2_rbf", "power_spectra",
    "reference_signals", "render", "rhythms", "two_sample_test", "zscored",
]
