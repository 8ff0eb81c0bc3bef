"""Signal conventions shared by every stage: 500 Hz, 10 s, per-sample z-score."""

from __future__ import annotations

import numpy as np

FS = 500
DURATION_S = 10
N_SAMPLES = FS * DURATION_S
LEADS = ("I", "II", "III", "aVR", "aVL", "aVF", "V1", "V2", "V3", "V4", "V5", "V6")


def zscore(x: np.ndarray, axis: int = -1, eps: float = 1e-6) -> np.ndarray:
    """``(x - mean) / std`` along ``axis`` (float32); flat signals map to zeros, not NaN."""
    x = np.asarray(x, dtype=np.float32)
    mean = x.mean(axis=axis, keepdims=True)
    std = x.std(axis=axis, keepdims=True)
    return ((x - mean) / np.maximum(std, eps)).astype(np.float32)
