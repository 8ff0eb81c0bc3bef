"""From a record's mV samples to the model's input: 500 Hz, 10-s windows, z-scored per window.

The protocol fixes 500 Hz and 5,000-sample windows (PROTOCOL.md, "Signals"). Records at another
rate are resampled with ``scipy.signal.resample_poly`` (polyphase, anti-aliased). Records longer
than one window (CPSC2018: 6-60 s) are cut into consecutive windows; when the length is not a
multiple of 10 s, a last window aligned to the record's end keeps the tail (``tail="end"``), so
no part of a record is dropped and a record's score is the max over all of its windows.
Records shorter than a window are z-scored on their own samples and zero-padded at the end.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction

import numpy as np

from simecg.errors import ConfigError
from simecg.signal import FS, N_SAMPLES, zscore

PREPROCESS_VERSION = 1  # bump when the arithmetic below changes: it is part of every cache key


@dataclass(frozen=True)
class PreprocessConfig:
    """How raw mV records become windows; its hash is part of the cache key and data version.

    Attributes:
        fs: target sampling rate (Hz).
        window: samples per window.
        tail: "end" adds a last window aligned to the record end when the length is not a
            multiple of ``window``; "drop" discards the remainder.
        bandpass: optional (low, high) Hz for a zero-phase 3rd-order Butterworth band-pass;
            None (the paper's setting) filters nothing.
        normalize: z-score each window (the protocol); False keeps mV (pretraining corpora).
    """

    fs: int = FS
    window: int = N_SAMPLES
    tail: str = "end"
    bandpass: tuple[float, float] | None = None
    normalize: bool = True

    def __post_init__(self) -> None:
        if self.tail not in ("end", "drop"):
            raise ConfigError(f"preprocess.tail: expected 'end' or 'drop', got {self.tail!r}")
        if self.bandpass is not None:
            low, high = self.bandpass
            if not 0 < low < high < self.fs / 2:
                raise ConfigError(f"preprocess.bandpass: need 0 < low < high < {self.fs / 2} Hz, got {self.bandpass}")


def resample(x: np.ndarray, fs_in: float, fs_out: int) -> np.ndarray:
    """Resample along the first axis from ``fs_in`` to ``fs_out`` Hz (no-op when equal)."""
    if fs_in == fs_out:
        return x
    import scipy.signal  # imported on use: it takes ~1 s, and most loads hit the cache

    ratio = Fraction(fs_out) / Fraction(fs_in).limit_denominator(1000)
    return scipy.signal.resample_poly(x, ratio.numerator, ratio.denominator, axis=0).astype(np.float32)


def bandpass(x: np.ndarray, fs: int, low: float, high: float) -> np.ndarray:
    """Zero-phase Butterworth band-pass along the first axis."""
    import scipy.signal

    sos = scipy.signal.butter(3, [low, high], btype="bandpass", fs=fs, output="sos")
    return scipy.signal.sosfiltfilt(sos, x, axis=0).astype(np.float32)


def window_starts(n: int, window: int, tail: str = "end") -> list[int]:
    """Start indices of the windows of an ``n``-sample record (at least one window)."""
    if n <= window:
        return [0]
    starts = list(range(0, n - window + 1, window))
    if tail == "end" and starts[-1] + window < n:
        starts.append(n - window)
    return starts


def to_windows(x: np.ndarray, fs_in: float, config: PreprocessConfig = PreprocessConfig()) -> np.ndarray:
    """One lead ``(n_samples,)`` in mV at ``fs_in`` -> ``(n_windows, window)`` float32."""
    x = resample(np.asarray(x, dtype=np.float32), fs_in, config.fs)
    if config.bandpass is not None:
        x = bandpass(x, config.fs, *config.bandpass)
    out = []
    for start in window_starts(len(x), config.window, config.tail):
        piece = x[start : start + config.window]
        if config.normalize:
            piece = zscore(piece)
        if len(piece) < config.window:
            piece = np.pad(piece, (0, config.window - len(piece)))
        out.append(piece)
    return np.stack(out).astype(np.float32)
