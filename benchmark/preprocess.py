"""From a record's mV samples to the model's input: 500 Hz, 10-s windows, z-scored per window.

The protocol fixes 500 Hz and 5,000-sample windows (PROTOCOL.md, "Signals"). Records at another
rate are resampled with ``scipy.signal.resample_poly`` (polyphase, anti-aliased). Records longer
than one window (CPSC2018: 6-60 s) are kept whole and used two ways, as the authors did:

- evaluation (validation and test): the record is cut into 10-s windows at a stride of 5 s
  (half a window, ``stride``), the last one zero-padded (``tail="pad"``), and the record's score
  is the max over its windows;
- training: every epoch draws a fresh random 10-s crop of each record (:class:`RandomCrops`,
  seeded, the same for the same (seed, epoch)).

Records shorter than a window are z-scored on their own samples and zero-padded at the end; so is
a padded last window. Records of exactly one window (PTB-XL, G12EC) are that window everywhere.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction

import numpy as np

from simecg.errors import ConfigError
from simecg.seeding import rng_for
from simecg.signal import FS, N_SAMPLES, zscore

# Bump when the arithmetic below changes: it is part of every cache key, and of the data version of
# data with records longer than a window (:meth:`PreprocessConfig.content_identity`; a change to the
# arithmetic of one-window records must also change that method's one-window payload).
# 2: evaluation windows at a stride of half a window with a zero-padded last one (was: consecutive
# windows and an end-aligned last one), and records longer than a window kept whole for crops.
PREPROCESS_VERSION = 2


@dataclass(frozen=True)
class PreprocessConfig:
    """How raw mV records become windows; its hash is part of the cache key and data version.

    Attributes:
        fs: target sampling rate (Hz).
        window: samples per window.
        tail: the last evaluation window of a record longer than ``window``: "pad" (paper) starts
            it at the next stride step and zero-pads it; "end" aligns it to the record's end;
            "drop" keeps only full windows (the remainder is not evaluated).
        bandpass: optional (low, high) Hz for a zero-phase 3rd-order Butterworth band-pass;
            None (the paper's setting) filters nothing.
        normalize: z-score each window (the protocol); False keeps mV (pretraining corpora).
        stride: samples between the starts of a long record's evaluation windows: half a window
            (5 s, the paper's); ``stride = window`` gives consecutive windows.
    """

    fs: int = FS
    window: int = N_SAMPLES
    tail: str = "pad"
    bandpass: tuple[float, float] | None = None
    normalize: bool = True
    stride: int = N_SAMPLES // 2

    def content_identity(self, long_records: bool) -> dict:
        """What of this config shaped a dataset's stored arrays: the part its data version hashes.

        Records of at most one window are shaped by ``fs``, ``window``, ``bandpass`` and
        ``normalize`` alone, by arithmetic unchanged since data versions were first written; the
        layout of longer records (``stride``, ``tail``, :data:`PREPROCESS_VERSION`) enters only
        when the data has such records. Without them the payload is the one those data versions
        were written with (``tail`` then reads "end", its old default, which shapes nothing in
        such data), so a data version changes exactly when the arrays do: PTB-XL's stays, and so
        do the encoders and generators built on it.
        """
        shaped = {"fs": self.fs, "window": self.window, "bandpass": self.bandpass, "normalize": self.normalize}
        if not long_records:
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


def window_starts(n: int, window: int, stride: int | None = None, tail: str = "pad") -> list[int]:
    """Start indices of the evaluation windows of an ``n``-sample record (at least one window).

    ``stride`` defaults to half a window (the paper's 5 s of 10). ``tail="pad"`` adds windows until
    one reaches the record's end (that last one zero-padded); ``"end"`` aligns a last window to the
    end instead; ``"drop"`` keeps full windows only.
    """
    stride = window // 2 if stride is None else stride
    if n <= window:
        return [0]
    starts = list(range(0, n - window + 1, stride))
    if starts[-1] + window < n:
        if tail == "pad":
            starts.append(starts[-1] + stride)
        elif tail == "end":
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
    if len(piece) < window:
        piece = np.pad(piece, (0, window - len(piece)))
    return piece


def record_windows(x: np.ndarray, config: PreprocessConfig = PreprocessConfig()) -> np.ndarray:
    """A prepared record (:func:`prepare_record`) -> its evaluation windows ``(n_windows, window)`` float32."""
    starts = window_starts(len(x), config.window, config.stride, config.tail)
    return np.stack([as_input(x[s : s + config.window], config.window, config.normalize) for s in starts]
                    ).astype(np.float32)


def to_windows(x: np.ndarray, fs_in: float, config: PreprocessConfig = PreprocessConfig()) -> np.ndarray:
    """One lead ``(n_samples,)`` in mV at ``fs_in`` -> its evaluation windows ``(n_windows, window)`` float32."""
    return record_windows(prepare_record(x, fs_in, config), config)


class RandomCrops:
    """Training samples of records that may be longer than a window: a random crop per record and epoch.

    PROTOCOL.md (CPSC2018): each epoch draws a random 10-s crop of every training record. Record
    ``i`` is either one fixed window (``signals[window_index[i]]``: records of at most one
    window, the same every epoch) or a whole record, ``samples[offset : offset + length]`` with
    ``span[i] = (offset, length)`` and ``length > window``, cropped at a start drawn uniformly
    from ``[0, length - window]``. The starts of an epoch are drawn for all records at once from
    ``rng_for(seed, "train-crop", epoch)``, so a crop depends only on (seed, epoch, record):
    not on batch size, order or process. Crops are z-scored when ``normalize``.

    Implements :class:`baselines.training.TrainingSamples` (``labels``, ``len``, ``batch``).
    """

    def __init__(self, signals: np.ndarray, window_index: np.ndarray, samples: np.ndarray, span: np.ndarray,
                 labels: np.ndarray, seed: int, normalize: bool = True):
        self.signals = signals
        self.window = int(signals.shape[1])
        self.window_index = np.asarray(window_index, dtype=np.int64)
        self.samples = samples
        self.span = np.asarray(span, dtype=np.int64).reshape(-1, 2)
        self.labels = np.asarray(labels, dtype=np.float32)
        self.seed = int(seed)
        self.normalize = normalize
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
            room = np.maximum(self.span[:, 1] - self.window, 0) + 1
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
                out[row] = as_input(np.asarray(self.samples[begin : begin + self.window]), self.window, self.normalize)
        return out
