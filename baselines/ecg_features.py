"""Hand-crafted ECG features for the classical baseline: intervals, amplitudes and HRV.

Per signal, neurokit2 cleans the ECG, finds R peaks, delineates P/QRS/T waves (discrete wavelet
method) and computes time-domain heart-rate variability; per-beat intervals and amplitudes
are summarised by their median (and spread). A short amplitude-distribution summary, defined
for any input length, comes first. Extraction never raises for a bad signal: whatever cannot
be measured (no peaks, a too-short or non-finite signal, a neurokit2 failure) is NaN, which
gradient-boosted trees handle natively.
"""

from __future__ import annotations

import hashlib
import logging
import warnings
from collections import OrderedDict

import numpy as np

from simecg.signal import FS

log = logging.getLogger(__name__)

STAT_FEATURES = ("min", "max", "p01", "p05", "p25", "median", "p75", "p95", "p99", "skewness", "kurtosis",
                 "line_length")
RHYTHM_FEATURES = ("n_beats", "heart_rate", "rr_min", "rr_max")
HRV_FEATURES = ("HRV_MeanNN", "HRV_SDNN", "HRV_RMSSD", "HRV_SDSD", "HRV_CVNN", "HRV_MedianNN", "HRV_MadNN",
                "HRV_IQRNN", "HRV_pNN50", "HRV_pNN20")
INTERVALS = {  # name: (end wave, start wave), durations in ms, per beat
    "pr_interval": ("ECG_R_Onsets", "ECG_P_Onsets"),
    "p_duration": ("ECG_P_Offsets", "ECG_P_Onsets"),
    "qrs_duration": ("ECG_R_Offsets", "ECG_R_Onsets"),
    "qt_interval": ("ECG_T_Offsets", "ECG_R_Onsets"),
    "t_duration": ("ECG_T_Offsets", "ECG_T_Onsets"),
    "st_segment": ("ECG_T_Onsets", "ECG_R_Offsets"),
}
AMPLITUDES = {"p_amplitude": "ECG_P_Peaks", "q_amplitude": "ECG_Q_Peaks", "r_amplitude": None,
              "s_amplitude": "ECG_S_Peaks", "t_amplitude": "ECG_T_Peaks"}
WAVE_FEATURES = (
    *(f"{name}_{stat}" for name in INTERVALS for stat in ("median", "iqr")),
    "qtc_bazett",
    *(f"{name}_{stat}" for name in AMPLITUDES for stat in ("median", "iqr")),
    "p_wave_fraction",
)
FEATURE_NAMES: tuple[str, ...] = (*STAT_FEATURES, *RHYTHM_FEATURES, *HRV_FEATURES, *WAVE_FEATURES)

MIN_SECONDS = 2.0  # below this no beat-level feature is attempted
CACHE_ROWS = 100_000  # about 50 MB of cached feature rows
_CACHE: OrderedDict[bytes, np.ndarray] = OrderedDict()


def signal_features(signal: np.ndarray, sampling_rate: int = FS) -> np.ndarray:
    """Feature vector (``len(FEATURE_NAMES)``,) of one single-lead signal; NaN where not measurable."""
    x = np.asarray(signal, dtype=np.float64).ravel()
    out = dict.fromkeys(FEATURE_NAMES, np.nan)
    out.update(_amplitude_stats(x))
    if x.size >= MIN_SECONDS * sampling_rate and np.all(np.isfinite(x)) and np.ptp(x) > 0:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                with np.errstate(all="ignore"):
                    out.update(_beat_features(x, sampling_rate))
        except Exception as exc:  # neurokit2 fails in many ways on odd signals: a NaN, never a crash
            log.debug("ECG feature extraction failed: %s", exc)
    return np.array([out[name] for name in FEATURE_NAMES], dtype=np.float64)


def extract_features(signals: np.ndarray, sampling_rate: int = FS, n_jobs: int = 1) -> np.ndarray:
    """Features of every row of ``signals`` (n, length) -> (n, len(FEATURE_NAMES)).

    Each row's features are kept in memory by the row's content hash (up to ``CACHE_ROWS``
    rows), so tuning trials, seeds and tasks that share records extract each ECG once.
    ``n_jobs`` > 1 (or -1 for all cores) extracts the missing rows in parallel processes.
    """
    signals = np.asarray(signals)
    if signals.ndim != 2:
        raise ValueError(f"expected signals of shape (n, length), got {signals.shape}")
    keys = [_row_key(row, sampling_rate) for row in signals]
    missing = [i for i, key in enumerate(keys) if key not in _CACHE]
    if n_jobs == 1 or len(missing) < 2:
        rows = [signal_features(signals[i], sampling_rate) for i in missing]
    else:
        from joblib import Parallel, delayed

        rows = Parallel(n_jobs=n_jobs)(delayed(signal_features)(signals[i], sampling_rate) for i in missing)
    fresh = dict(zip((keys[i] for i in missing), rows, strict=True))
    out = np.empty((len(signals), len(FEATURE_NAMES)), dtype=np.float64)
    for i, key in enumerate(keys):
        if key in fresh:
            out[i] = fresh[key]
        else:
            out[i] = _CACHE[key]
            _CACHE.move_to_end(key)
    for key, row in fresh.items():
        _CACHE[key] = row
    while len(_CACHE) > CACHE_ROWS:
        _CACHE.popitem(last=False)
    return out


def _row_key(row: np.ndarray, sampling_rate: int) -> bytes:
    data = np.ascontiguousarray(row)
    digest = hashlib.blake2b(data.view(np.uint8), digest_size=16)
    digest.update(f"{data.dtype.str}:{sampling_rate}".encode())
    return digest.digest()


def _amplitude_stats(x: np.ndarray) -> dict[str, float]:
    finite = x[np.isfinite(x)]
    if finite.size == 0:
        return {}
    q = np.percentile(finite, [1, 5, 25, 50, 75, 95, 99])
    centred = finite - finite.mean()
    std = finite.std()
    skew = float(np.mean(centred**3) / std**3) if std > 0 else 0.0
    kurt = float(np.mean(centred**4) / std**4 - 3.0) if std > 0 else 0.0
    line = float(np.mean(np.abs(np.diff(finite)))) if finite.size > 1 else 0.0
    values = [finite.min(), finite.max(), *q, skew, kurt, line]
    return dict(zip(STAT_FEATURES, (float(v) for v in values), strict=True))


def _beat_features(x: np.ndarray, fs: int) -> dict[str, float]:
    """R peaks first; then rhythm, HRV and wave delineation, each failing on its own (NaNs)."""
    import neurokit2 as nk

    cleaned = nk.ecg_clean(x, sampling_rate=fs)
    _, info = nk.ecg_peaks(cleaned, sampling_rate=fs)
    rpeaks = np.asarray(info["ECG_R_Peaks"], dtype=int)
    out: dict[str, float] = {"n_beats": float(len(rpeaks))}
    if len(rpeaks) < 3:
        return out
    for stage in (_rhythm_features, _hrv_features, _wave_features):
        try:
            out.update(stage(cleaned, rpeaks, fs))
        except Exception as exc:  # one failing neurokit2 step costs only its own features
            log.debug("ECG feature stage %s failed: %s", stage.__name__, exc)
    return out


def _rhythm_features(cleaned: np.ndarray, rpeaks: np.ndarray, fs: int) -> dict[str, float]:
    rr = np.diff(rpeaks) / fs * 1000.0
    r_median, r_iqr = _median_iqr(cleaned[rpeaks])
    return {"heart_rate": 60000.0 / float(np.mean(rr)), "rr_min": float(rr.min()), "rr_max": float(rr.max()),
            "r_amplitude_median": r_median, "r_amplitude_iqr": r_iqr}


def _hrv_features(cleaned: np.ndarray, rpeaks: np.ndarray, fs: int) -> dict[str, float]:
    import neurokit2 as nk

    hrv = nk.hrv_time(rpeaks, sampling_rate=fs)
    return {name: float(hrv[name].iloc[0]) for name in HRV_FEATURES if name in hrv}


def _wave_features(cleaned: np.ndarray, rpeaks: np.ndarray, fs: int) -> dict[str, float]:
    import neurokit2 as nk

    out: dict[str, float] = {}
    _, waves = nk.ecg_delineate(cleaned, rpeaks, sampling_rate=fs, method="dwt")
    for name, (end, start) in INTERVALS.items():
        if end in waves and start in waves:
            durations = (_as_float(waves[end]) - _as_float(waves[start])) / fs * 1000.0
            out[f"{name}_median"], out[f"{name}_iqr"] = _median_iqr(durations[durations > 0])
    qt = out.get("qt_interval_median", np.nan)
    rr_median_s = float(np.median(np.diff(rpeaks))) / fs
    out["qtc_bazett"] = qt / np.sqrt(rr_median_s) if np.isfinite(qt) else np.nan
    for name, wave in AMPLITUDES.items():
        if wave is None or wave not in waves:
            continue
        idx = _as_float(waves[wave])
        idx = idx[np.isfinite(idx)].astype(int)
        idx = idx[(idx >= 0) & (idx < len(cleaned))]
        out[f"{name}_median"], out[f"{name}_iqr"] = _median_iqr(cleaned[idx])
    if "ECG_P_Peaks" in waves:
        out["p_wave_fraction"] = float(np.mean(np.isfinite(_as_float(waves["ECG_P_Peaks"]))))
    return out


def _as_float(values: object) -> np.ndarray:
    return np.asarray(values, dtype=np.float64)


def _median_iqr(values: np.ndarray) -> tuple[float, float]:
    values = np.asarray(values, dtype=np.float64)
    values = values[np.isfinite(values)]
    if values.size == 0:
        return np.nan, np.nan
    q25, q50, q75 = np.percentile(values, [25, 50, 75])
    return float(q50), float(q75 - q25)
