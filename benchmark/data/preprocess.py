"""From a record's mV samples to the model's input: 500 Hz, z-scored, 10-s windows.

The protocol fixes 500 Hz and 5,000-sample windows (docs/protocol.md, "Signals"). Records at
another rate are resampled with ``scipy.signal.resample_poly`` (polyphase, anti-aliased).

PTB-XL and G12EC records are one window each (the paper keeps only those of exactly 10 s), the
window z-scored. CPSC2018 records (6-60 s) are handled as the authors' fine-tuning code does:

- the whole record is z-scored once ((x - mean) / std over all its samples), then kept whole;
- training: every epoch draws a fresh random 10-s crop of it (:class:`RandomCrops`, seeded, the
  same for the same (seed, epoch)); a record of at most 10 s is its zero-padded self;
- evaluation (validation and test): windows start at 0, 2.5k, 5k, ... samples (every half
  window), over the record zero-padded by ``stride - length % stride`` samples (a full stride when
  the length is a multiple of it), keeping every window that fits: a 6-s record gives one window,
  a 10-s record two (0-10 s and 5-15 s, the second half zeros), a 60-s record twelve; the
  record's score is the max over its windows (:func:`window_starts`, ``tail="pad"``).

Zero padding is added after z-scoring, so padded samples are exactly 0.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction

import numpy as np

from simecg.errors import ConfigError
from simecg.seeding import rng_for
from simecg.signal import FS, N_SAMPLES, zscore

# Bump when the arithmetic below changes: it is part of every cache key, and of the data version of
# data with records cut into windows (:meth:`PreprocessConfig.content_identity`; a change to the
# arithmetic of one-window records must also change that method's one-window payload).
# 2: evaluation windows at a stride of half a window with a zero-padded last one (was: consecutive
# windows and an end-aligned last one), and records longer than a window kept whole for crops.
# 3: such records are z-scored once over the whole record (was: each window and crop on its own),
# their evaluation windows are the authors' (a record of exactly 10 s gives two, was one), and
# CPSC2018 records of at most 10 s are windowed by the same rule.
PREPROCESS_VERSION = 3


@dataclass(frozen=True)
class PreprocessConfig:
    """How raw mV records become windows; its hash is part of the cache key and data version.

    Attributes:
        fs: target sampling rate (Hz).
        window: samples per window.
        tail: the evaluation windows of a record cut into windows: "pad" (paper) takes every
            ``stride`` step of the record zero-padded by ``stride - length % stride`` samples
            (:func:`window_starts`); "end" steps until a window reaches the record's end and aligns
            the last one to that end; "drop" keeps only full windows (the remainder is not evaluated).
        bandpass: optional (low, high) Hz for a zero-phase 3rd-order Butterworth band-pass;
            None (the paper's setting) filters nothing.
        normalize: z-score (the protocol): a one-window record as a window, a record cut into
            windows once over all its samples; False keeps mV (pretraining corpora).
        stride: samples between the starts of a record's evaluation windows: half a window
            (5 s, the paper's); ``stride = window`` gives consecutive windows.
    """

    fs: int = FS
    window: int = N_SAMPLES
    tail: str = "pad"
    bandpass: tuple[float, float] | None = None
    normalize: bool = True
    stride: int = N_SAMPLES // 2

    def content_identity(self, windowed: bool) -> dict:
        """What of this config shaped a dataset's stored arrays: the part its data version hashes.

        Records kept as one window (PTB-XL's, G12EC's) are shaped by ``fs``, ``window``,
        ``bandpass`` and ``normalize`` alone, by arithmetic unchanged since data versions were
        first written; the layout of records cut into windows (``stride``, ``tail``,
        :data:`PREPROCESS_VERSION`) enters only when the data has such records (``windowed``).
        Without them the payload is the one those data versions were written with (``tail`` then
        reads "end", its old default, which shapes nothing in such data), so a data version
        changes exactly when the arrays do: PTB-XL's stays, and so do the encoders and generators
        built on it.
        """
        shaped = {"fs": self.fs, "window": self.window, "bandpass": self.bandpass, "normalize": self.normalize}
        if not windowed:
            return {**shaped, "tail": "end"}
        return {**shaped, "tail": self.tail, "stride": self.stride, "version": PREPROCESS_VERSION}

    def __post_init__(self) -> None:
        if self.tail not in ("pad", "end", "drop"):
            raise ConfigError(f"preprocess.tail: expected 'pad', 'end' or 'drop', got {self.tail!r}")
        if not 0 < self.stride <= self.window:
            raise ConfigError(f"preprocess.stride must be in (0, window={self.window}], got {self.stride}")
        if self.bandpass is not None:
            low, high = self.bandpass
            if not 0 < low < high < self.fs / 2:
                raise ConfigError(f"preprocess.bandpass: need 0 < low < high < {self.fs / 2} Hz, got {self.bandpass}")


def _ratio(fs_in: float, fs_out: int) -> Fraction:
    return Fraction(fs_out) / Fraction(fs_in).limit_denominator(1000)


def resample(x: np.ndarray, fs_in: float, fs_out: int) -> np.ndarray:
    """Resample along the first axis from ``fs_in`` to ``fs_out`` Hz (no-op when equal)."""
    if fs_in == fs_out:
        return x
    import scipy.signal  # imported on use: it takes ~1 s, and most loads hit the cache

    ratio = _ratio(fs_in, fs_out)
    return scipy.signal.resample_poly(x, ratio.numerator, ratio.denominator, axis=0).astype(np.float32)


def resampled_length(n: int, fs_in: float, fs_out: int) -> int:
    """Samples :func:`resample` makes of ``n`` samples at ``fs_in`` (``ceil(n * up / down)``), without resampling."""
    if fs_in == fs_out:
        return int(n)
    ratio = _ratio(fs_in, fs_out)
    return math.ceil(n * ratio.numerator / ratio.denominator)


def bandpass(x: np.ndarray, fs: int, low: float, high: float) -> np.ndarray:
    """Zero-phase Butterworth band-pass along the first axis."""
    import scipy.signal

    sos = scipy.signal.butter(3, [low, high], btype="bandpass", fs=fs, output="sos")
    return scipy.signal.sosfiltfilt(sos, x, axis=0).astype(np.float32)


def window_starts(n: int, window: int, stride: int | None = None, tail: str = "pad") -> list[int]:
    """Start indices of the evaluation windows of an ``n``-sample record (at least one window).

    ``stride`` defaults to half a window (the paper's 5 s of 10). ``tail="pad"`` is the authors'
    rule (docs/protocol.md, "Signals"): the record is zero-padded by ``stride - n % stride``
    samples (a full stride when ``n`` is a multiple of it) and every stride step whose window fits
    in the padded record starts one, so there are ``n // stride`` windows: 2 for a 10-s record, 12
    for 60 s (a record shorter than a stride still gets one). ``"end"`` steps until a window
    reaches the record's end and aligns that last one to the end; ``"drop"`` keeps full windows
    only; with both, a record of at most one window is one window.
    """
    stride = window // 2 if stride is None else stride
    if tail == "pad":
        padded = n + stride - n % stride
        return [s for s in range(0, n, stride) if s + window <= padded] or [0]
    if n <= window:
        return [0]
    starts = list(range(0, n - window + 1, stride))
    if starts[-1] + window < n and tail == "end":
        starts.append(n - window)
    return starts


def prepare_record(x: np.ndarray, fs_in: float, config: PreprocessConfig = PreprocessConfig()) -> np.ndarray:
    """One lead ``(n_samples,)`` in mV at ``fs_in`` -> the whole record at ``config.fs``, filtered, not z-scored."""
    x = resample(np.asarray(x, dtype=np.float32), fs_in, config.fs)
    if config.bandpass is not None:
        x = bandpass(x, config.fs, *config.bandpass)
    return np.asarray(x, dtype=np.float32)


def as_input(piece: np.ndarray, window: int, normalize: bool = True) -> np.ndarray:
    """A model input from up to ``window`` samples: z-scored on its own samples, then zero-padded."""
    piece = zscore(piece) if normalize else np.asarray(piece, dtype=np.float32)
    return _padded(piece, window)


def _padded(piece: np.ndarray, window: int) -> np.ndarray:
    """``piece`` zero-padded at its end to ``window`` samples."""
    piece = np.asarray(piece, dtype=np.float32)
    return np.pad(piece, (0, window - len(piece))) if len(piece) < window else piece


def whole_record(x: np.ndarray, config: PreprocessConfig = PreprocessConfig()) -> np.ndarray:
    """A prepared record (:func:`prepare_record`) as windows and crops are cut from it: z-scored as a whole."""
    return zscore(x) if config.normalize else np.asarray(x, dtype=np.float32)


def single_window(x: np.ndarray, config: PreprocessConfig = PreprocessConfig()) -> np.ndarray:
    """A prepared record of at most one window as its only window ``(1, window)`` (z-scored, zero-padded)."""
    return as_input(x[: config.window], config.window, config.normalize)[None, :]


def record_windows(x: np.ndarray, config: PreprocessConfig = PreprocessConfig()) -> np.ndarray:
    """A prepared record cut into its evaluation windows ``(n_windows, window)`` float32.

    The record is z-scored once as a whole (:func:`whole_record`); each window is a slice of it,
    zero-padded past the record's end, as the authors' evaluation does for CPSC2018.
    """
    whole = whole_record(x, config)
    starts = window_starts(len(x), config.window, config.stride, config.tail)
    return np.stack([_padded(whole[s : s + config.window], config.window) for s in starts]).astype(np.float32)


def to_windows(x: np.ndarray, fs_in: float, config: PreprocessConfig = PreprocessConfig()) -> np.ndarray:
    """One lead ``(n_samples,)`` in mV at ``fs_in`` -> its evaluation windows ``(n_windows, window)`` float32."""
    return record_windows(prepare_record(x, fs_in, config), config)


class RandomCrops:
    """Training samples of records that may be longer than a window: a random crop per record and epoch.

    docs/protocol.md (CPSC2018): each epoch draws a random 10-s crop of every training record.
    Record ``i`` is either one fixed window (``signals[window_index[i]]``: records of at most one
    window, the same every epoch) or a whole record, ``samples[offset : offset + length]`` with
    ``span[i] = (offset, length)`` and ``length > window``, already z-scored over the whole record
    (:func:`whole_record`), cropped at a start drawn uniformly from ``[0, length - window)``: the
    authors draw ``randint(0, length - window)``, whose upper bound is excluded. The starts of an
    epoch are drawn for all records at once from ``rng_for(seed, "train-crop", epoch)``, so a crop
    depends only on (seed, epoch, record): not on batch size, order or process.

    Implements :class:`baselines.training.TrainingSamples` (``labels``, ``len``, ``batch``).
    """

    def __init__(self, signals: np.ndarray, window_index: np.ndarray, samples: np.ndarray, span: np.ndarray,
                 labels: np.ndarray, seed: int):
        self.signals = signals
        self.window = int(signals.shape[1])
        self.window_index = np.asarray(window_index, dtype=np.int64)
        self.samples = samples
        self.span = np.asarray(span, dtype=np.int64).reshape(-1, 2)
        self.labels = np.asarray(labels, dtype=np.float32)
        self.seed = int(seed)
        n = len(self.labels)
        if not len(self.window_index) == len(self.span) == n:
            raise ConfigError(f"random crops: {n} labels, {len(self.window_index)} windows, {len(self.span)} spans")
        fixed = self.window_index >= 0
        if np.any(fixed == (self.span[:, 1] > self.window)):
            raise ConfigError("random crops: each record needs exactly one of a fixed window or a span > window")
        self._epoch, self._starts = -1, np.zeros(n, dtype=np.int64)

    def __len__(self) -> int:
        return len(self.labels)

    def starts(self, epoch: int) -> np.ndarray:
        """Crop start of every record (within its span) in ``epoch``; 0 for fixed windows."""
        if epoch != self._epoch:
            room = np.maximum(self.span[:, 1] - self.window, 1)
            self._starts = rng_for(self.seed, "train-crop", epoch).integers(0, room).astype(np.int64)
            self._epoch = epoch
        return self._starts

    def batch(self, index: np.ndarray, epoch: int) -> np.ndarray:
        starts = self.starts(epoch)
        out = np.empty((len(index), self.window), dtype=np.float32)
        for row, i in enumerate(np.asarray(index, dtype=np.int64)):
            if self.window_index[i] >= 0:
                out[row] = self.signals[self.window_index[i]]
            else:
                begin = self.span[i, 0] + starts[i]
                out[row] = self.samples[begin : begin + self.window]
        return out
