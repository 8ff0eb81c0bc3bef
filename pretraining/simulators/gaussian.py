"""The Gaussian-composition beat simulator of the study ("SimECG-N"), batched.

The defaults do what the authors' generator does (``src/prep/SimECG-N/gen_ecg.py`` with
``resources/syn_ecg-04.yaml`` and ``augment.py``; docs/protocol.md, "The two simulators"), read
from the code rather than from its comments or its YAML's unused keys:

* **Parameters.** Every parameter is ``base + N(0, sd_record)`` per ECG plus ``N(0, sd_beat)``
  per beat; wave centres are chained (Q after P, R and S after Q, T after S) at the record level
  only. Beat lengths are not clipped: a beat of length <= 0 s gives no sample and leaves the
  level where it was (the authors' ``np.arange`` is then empty), so it is skipped.
* **Beats.** Each beat is five Gaussians (P, Q-, R, S-, T) summed on a 1-s template of 500
  samples (``t = k / 500``), stretched to ``ceil(500 / (1 / length))`` samples by linear
  interpolation of the template at positions ``j / length`` (``np.interp``: the last template
  sample from position 499 on).
* **Block noises.** Two per beat, ``N(0, 1) / scaler`` held for ``int(width)`` samples, blocks
  counted from the beat's first sample; a trailing partial block is 0 (the authors pad with
  zeros). Noise 1: width 10 (sd 1 per record, 0.5 per beat), scaler 100 (10/5); noise 2: width 3
  (0.3/0.15), scaler 200 (20/2).
* **Baseline.** Each beat adds a ramp from its start level to ``start + N(0, 1) * drift`` (drift
  scale 0.5, sd 0.25/0.05), and the next beat starts at the previous beat's *last sample* --
  wave, noise and ramp included.
* **Record.** A zero sample, then beats until the record holds more than 1.5 x 5,000 samples;
  the window is the 5,000 samples from a start uniform over ``[0, total - 5000)`` (the zero
  sample is in it when the start is 0).
* **Augmentations** (``augment.py``; the YAML's ``augment_params`` are never read): a Poisson(2)
  number of them, in turn, on the 5,000-sample window, each of seven kinds chosen uniformly
  (:data:`AUGMENT_KINDS`): ``scale`` by U(0.25, 4); ``sine``: add ``m sin(phase)``, m ~ U(0, 1),
  f ~ U(0.001, 0.02) Hz; ``square``: add ``m square(phase)``, m ~ U(0, 1), f ~ U(0.001, 0.1)
  Hz; ``white``: add white noise of sd ~ U(0, 0.05); ``sine_partial`` / ``square_partial``: add
  the first ``width`` values of ``sin(phase)`` / ``square(phase)`` (amplitude 1, the same
  frequencies) at a uniform start, ``width = int(5000 * U(0, 1))``; ``white_partial``: add white
  noise of sd 1 over ``int(5000 * U(0, 0.2))`` samples at a uniform start (the authors also draw
  an amplitude U(0, 0.25) there and never use it). ``phase = linspace(0, 2 pi d f, 5000)`` with
  d = 10 s: f is in Hz, so the sine kinds are slow drifts (at most 0.2 cycles per record) and a
  square is an offset, or a step when f > 0.05 Hz. Values are in the model's units before
  z-scoring; the pretraining's z-scoring undoes ``scale``.

What differs from the authors, all of it without effect on the distribution: the random numbers
(compiled counter-based streams per ECG, so ECG i depends only on (config, seed, i), instead of
numpy's one global stream); the last full block of each block noise takes a value drawn with the
beat's parameters (the table of levels needs it before rendering) instead of the next value of
the noise stream; the authors' generator gives up on a record that takes over 5 s
(``max_process_time``) and leaves it out, which here is a record whose beat lengths need more
than :data:`MAX_LENGTH_DRAWS` draws (about 5 s of their loop on the reference machine; the
record length must be below about -0.2 s: 11 records in 400,000, where their generator, run on
a loaded machine, dropped 1 in 6,000), drawn again from fresh streams; scalers are
floored at 1 and block widths at 1 sample (both ~10 sd from their means; the authors' code
would divide by zero); wave widths are floored at 1e-6 s.

Every value above is a field of :class:`GaussianBeatConfig` (``--set
pretrain.corpus_options.gaussian.<field>=...``): e.g. ``augment_rate=0`` turns augmentation off,
``augment_kind_weights`` weights or removes kinds, ``beat_length_min``/``beat_length_max`` clip
beat lengths, ``noise_block_rounding=nearest`` rounds block widths instead of truncating them.

Beyond the paper, for the synthetic ``demo`` tasks, the config can add physiological
abnormalities (all off by default, so the corpus is the paper's): premature ventricular beats
(``pvc_probability``), atrial fibrillatory waves (``fibrillation_amplitude``) and an ST-segment
offset (``st_offset``); see :mod:`benchmark.data.demo` for their references.

Speed (``simecg-bench bench simulators``; about 7,000 ECGs per CPU-second on the 2-core reference
machine under load, where the version before the authors' seven augmentations -- which touch
about four times as many samples -- made 12,000): all random draws and all per-sample work --
beat lengths, parameters, templates, block noises, augmentations -- run in compiled loops
(:mod:`pretraining.simulators.kernels`), each ECG from its own counter-seeded streams, each
wave only over its support and without an ``exp`` per sample; the beat table in between is numpy
over batches of records with similar beat counts.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import numpy as np
from scipy.stats import poisson

from pretraining.simulators import kernels
from pretraining.simulators.base import as_indices, stream_key
from simecg.errors import ConfigError
from simecg.signal import FS, N_SAMPLES

WAVES = ("P", "Q", "R", "S", "T")
# The seven augmentations of the authors' augment.py, in its order (docs/protocol.md).
AUGMENT_KINDS = ("scale", "sine", "square", "white", "sine_partial", "square_partial", "white_partial")
# What each kind does to its segment (kernels.SCALE, SINE, SQUARE, WHITE).
_OPERATION = np.array([kernels.SCALE, kernels.SINE, kernels.SQUARE, kernels.WHITE,
                       kernels.SINE, kernels.SQUARE, kernels.WHITE])
MAX_LENGTH_DRAWS = 20_000  # beat-length draws before a record is drawn again (module docstring)
ATTEMPT_STRIDE = 1 << 48  # a redrawn record's streams: stream index = ECG index + attempt * stride
MAX_ATTEMPTS = 100  # redraws of one record before the beat lengths are declared unable to fill a record
BEAT_ROWS = 1 << 17  # at most records x beats simulated at once (_groups)
PADDING = 1.5  # a batch's beat table holds at most this many times the beats its records need (_groups)
MIN_WIDTH = 1e-6  # s: wave widths are floored here (a zero width would divide by zero)


@dataclass(frozen=True)
class GaussianBeatConfig:
    """Gaussian-composition beat simulator; tuples are (P, Q, R, S, T); times in seconds, amplitudes mV.

    Defaults: the authors' ``syn_ecg-04.yaml`` and ``augment.py``, as their code reads them.
    """

    peak: tuple[float, ...] = (0.3, 0.1, 1.5, 0.5, 0.45)
    peak_sd_record: tuple[float, ...] = (0.2, 0.15, 0.75, 0.7, 0.5)
    peak_sd_beat: tuple[float, ...] = (0.1, 0.016, 0.25, 0.05, 0.07)
    width: tuple[float, ...] = (0.03, 0.05, 0.0075, 0.04, 0.03)
    width_sd_record: tuple[float, ...] = (0.02, 0.05, 0.01, 0.04, 0.03)
    width_sd_beat: tuple[float, ...] = (0.005, 0.0125, 0.00187, 0.01, 0.0075)
    # centre of wave i = centre of wave centre_anchor[i] (none for -1) + centre[i]
    centre: tuple[float, ...] = (0.20, 0.10, 0.045, 0.14, 0.15)
    centre_anchor: tuple[int, ...] = (-1, 0, 1, 1, 3)
    centre_sd_record: tuple[float, ...] = (0.15, 0.1, 0.02, 0.05, 0.06)
    centre_sd_beat: tuple[float, ...] = (0.02, 0.01, 0.0045, 0.015, 0.015)
    sign: tuple[float, ...] = (1.0, -1.0, 1.0, -1.0, 1.0)
    beat_length: float = 0.8
    beat_length_sd_record: float = 0.25
    beat_length_sd_beat: float = 0.1
    beat_length_min: float = 0.0  # clip; 0: none (a beat <= 0 s is skipped), as the authors
    beat_length_max: float = math.inf  # clip; inf: none, as the authors
    drift_scale: float = 0.5
    drift_scale_sd_record: float = 0.25
    drift_scale_sd_beat: float = 0.05
    # Block noises, per beat: N(0, 1) / scaler held for int(block) samples, blocks counted from the
    # beat's start; scaler = math.inf turns a noise off.
    noise1_block: float = 10.0  # samples
    noise1_block_sd_record: float = 1.0
    noise1_block_sd_beat: float = 0.5
    noise1_scaler: float = 100.0  # sd 1/100
    noise1_scaler_sd_record: float = 10.0
    noise1_scaler_sd_beat: float = 5.0
    noise2_block: float = 3.0
    noise2_block_sd_record: float = 0.3
    noise2_block_sd_beat: float = 0.15
    noise2_scaler: float = 200.0  # sd 1/200
    noise2_scaler_sd_record: float = 20.0
    noise2_scaler_sd_beat: float = 2.0
    noise_block_rounding: str = "floor"  # "floor" (the authors' int()) or "nearest"; at least 1
    assemble_factor: float = 1.5  # beats are joined past this multiple of the length
    # Augmentations (augment.py): a Poisson(augment_rate) number, each of a kind drawn with
    # augment_kind_weights (AUGMENT_KINDS order), its values uniform over these ranges.
    augment_rate: float = 2.0
    augment_kind_weights: tuple[float, ...] = (1.0,) * 7
    augment_scale: tuple[float, float] = (0.25, 4.0)  # factor
    augment_sine_amplitude: tuple[float, float] = (0.0, 1.0)
    augment_sine_freq: tuple[float, float] = (0.001, 0.02)  # Hz (sine and sine_partial)
    augment_square_amplitude: tuple[float, float] = (0.0, 1.0)
    augment_square_freq: tuple[float, float] = (0.001, 0.1)  # Hz (square and square_partial)
    augment_white_sd: tuple[float, float] = (0.0, 0.05)
    augment_partial_amplitude: float = 1.0  # of sine_partial and square_partial
    augment_partial_width: tuple[float, float] = (0.0, 1.0)  # fraction of the record (sine/square_partial)
    augment_partial_white_sd: float = 1.0
    augment_partial_white_width: tuple[float, float] = (0.0, 0.2)  # fraction of the record
    # Abnormalities for the demo tasks (off = the paper's simulator).
    pvc_probability: float = 0.0  # chance that a beat is a premature ventricular complex
    pvc_coupling: float = 0.75  # the preceding beat is cut to this fraction (prematurity)
    pvc_qrs_widen: float = 3.0  # QRS widths of a PVC are multiplied by this
    fibrillation_amplitude: float = 0.0  # mV of 4-9 Hz atrial fibrillatory waves
    fibrillation_freq: tuple[float, float] = (4.0, 9.0)
    st_offset: float = 0.0  # mV between the J point and the T wave (elevation > 0)
    fs: int = FS
    length: int = N_SAMPLES

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if isinstance(value, tuple) and f.name in _FIVE and len(value) != 5:
                raise ConfigError(f"gaussian.{f.name} needs 5 values (P, Q, R, S, T), got {value}")
        if any(a >= i for i, a in enumerate(self.centre_anchor)):
            raise ConfigError(f"gaussian.centre_anchor must point to an earlier wave, got {self.centre_anchor}")
        if not 0 <= self.beat_length_min < self.beat_length_max:
            raise ConfigError(f"gaussian.beat_length_min must be >= 0 and below beat_length_max, got "
                              f"{self.beat_length_min} and {self.beat_length_max}")
        if self.assemble_factor < 1.0 or self.noise1_block < 1 or self.noise2_block < 1:
            raise ConfigError("gaussian.assemble_factor must be >= 1 and noise blocks >= 1 sample")
        if not (self.noise1_scaler > 0 and self.noise2_scaler > 0):
            raise ConfigError("gaussian.noise1_scaler and noise2_scaler must be positive (math.inf: no noise)")
        if self.noise_block_rounding not in _ROUNDING:
            raise ConfigError(f"gaussian.noise_block_rounding must be one of {sorted(_ROUNDING)}, "
                              f"got {self.noise_block_rounding!r}")
        self._check_augmentations()
        if not 0.0 <= self.pvc_probability <= 1.0 or not 0.3 <= self.pvc_coupling <= 1.0:
            raise ConfigError("gaussian.pvc_probability must be in [0, 1] and pvc_coupling in [0.3, 1]")

    def _check_augmentations(self) -> None:
        if not 0.0 <= self.augment_rate <= 50.0:
            raise ConfigError(f"gaussian.augment_rate must be in [0, 50] (Poisson mean), got {self.augment_rate}")
        weights = self.augment_kind_weights
        if len(weights) != len(AUGMENT_KINDS) or min(weights) < 0 or sum(weights) <= 0:
            raise ConfigError(f"gaussian.augment_kind_weights needs {len(AUGMENT_KINDS)} weights >= 0, not all 0 "
                              f"({', '.join(AUGMENT_KINDS)}), got {weights}")
        for name in _RANGES:
            value = getattr(self, name)
            if len(value) != 2 or not 0 <= value[0] <= value[1] < math.inf:
                raise ConfigError(f"gaussian.{name} must be a range (low, high) with 0 <= low <= high, got {value}")
        for name in ("augment_partial_width", "augment_partial_white_width"):
            if getattr(self, name)[1] > 1.0:
                raise ConfigError(f"gaussian.{name} is a fraction of the record: at most 1, got {getattr(self, name)}")
        for name in ("augment_partial_amplitude", "augment_partial_white_sd"):
            if not 0.0 <= getattr(self, name) < math.inf:
                raise ConfigError(f"gaussian.{name} must be a finite number >= 0, got {getattr(self, name)}")


_FIVE = {
    "peak", "peak_sd_record", "peak_sd_beat", "width", "width_sd_record", "width_sd_beat",
    "centre", "centre_anchor", "centre_sd_record", "centre_sd_beat", "sign",
}
_RANGES = ("augment_scale", "augment_sine_amplitude", "augment_sine_freq", "augment_square_amplitude",
           "augment_square_freq", "augment_white_sd", "augment_partial_width", "augment_partial_white_width")
_ROUNDING = {"floor": 0.0, "nearest": 0.5}  # added before flooring a block width

# Per-record parameters reported by simulate_with_parameters (record level, before per-beat jitter):
# noise*_sd = 1 / |scaler|, noise*_block the block width before rounding, beat_length unclipped,
# redraws the times the record was drawn again (MAX_LENGTH_DRAWS).
PARAMETERS = ("beat_length", "r_peak", "drift_scale", "noise1_sd", "noise2_sd", "n_augment", "n_pvc",
              "noise1_block", "noise2_block", "redraws")
AUG_U = 5  # uniforms per augmentation slot: kind, value, frequency, width, start
# record-level normals: peak 5, width 5, centre 5, drift, then noise 1 and 2 scalers, noise 1 and 2 block widths
N_RECORD = 20
# per-beat normals: peak 5, width 5, centre 5, drift scale, drift direction, the same 4 noise draws, then
# the value of each noise's last full block
N_BEAT = 23
# columns of noise 1 and 2: record scaler, record block width, beat scaler, beat block width, last block value
_NOISE_COLUMNS = ((16, 18, 17, 19, 21), (17, 19, 18, 20, 22))


class GaussianBeat:
    """Batched Gaussian-composition beat simulator (see the module docstring)."""

    Config = GaussianBeatConfig
    name = "gaussian"

    def __init__(self, config: GaussianBeatConfig | None = None):
        self.config = c = config or GaussianBeatConfig()
        rate = c.augment_rate
        # slots per record: Poisson(rate) exceeds this with probability < 1e-12
        self._max_augments = int(poisson.ppf(1 - 1e-12, rate)) + 1 if rate > 0 else 0
        self._poisson_cdf = poisson.cdf(np.arange(self._max_augments), rate) if rate > 0 else None

    def simulate(self, indices: np.ndarray, seed: int) -> np.ndarray:
        """ECGs at ``indices`` as float32 ``(n, length)`` mV; ECG i depends only on (config, seed, i)."""
        return self._simulate(indices, seed, with_parameters=False)[0]

    def simulate_with_parameters(self, indices: np.ndarray, seed: int) -> tuple[np.ndarray, dict]:
        """ECGs plus record-level ``PARAMETERS`` (arrays) and per-record lists (one array per ECG).

        Lists: ``r_peaks``, ``r_amplitudes``, ``beat_lengths`` (s), ``beat_samples`` and
        ``beat_starts`` (window sample where each beat in the window starts; the first is <= 0;
        the window's sample 0 is the record's leading zero when ``beat_starts[0] == 1``) of the
        beats in the window; ``levels`` (each of those beats' start level); ``noise1_blocks``/
        ``noise2_blocks`` and ``noise1_sds``/``noise2_sds``, those beats' block widths (samples)
        and noise sds; ``augment_kind`` (index into ``AUGMENT_KINDS``), ``augment_value``
        (scale factor, amplitude or sd), ``augment_freq`` (Hz; NaN for scale and white noise),
        ``augment_start`` and ``augment_length`` (samples; the whole window for a global one),
        in the order applied.
        """
        return self._simulate(indices, seed, with_parameters=True)

    def with_overrides(self, **changes: object) -> GaussianBeat:
        return GaussianBeat(dataclasses.replace(self.config, **changes))

    # -- batching ------------------------------------------------------------------------------
    def _simulate(self, indices: np.ndarray, seed: int, with_parameters: bool) -> tuple[np.ndarray, dict]:
        c = self.config
        indices = as_indices(indices)
        if len(indices) == 0:
            return np.zeros((0, c.length), np.float32), {k: np.zeros(0) for k in PARAMETERS}
        walk = self._walk(indices, seed)
        counts = walk["counts"]
        groups = _groups(counts, BEAT_ROWS)
        if len(groups) == 1:
            return self._simulate_group(walk, seed, with_parameters)
        x = np.empty((len(indices), c.length), np.float32)
        parts = []
        for rows in groups:
            k = int(counts[rows].max())
            part = {key: (value[rows, :k] if value.ndim == 2 else value[rows]) for key, value in walk.items()}
            x[rows], params = self._simulate_group(part, seed, with_parameters)
            parts.append((rows, params))
        return x, (_merge(parts, len(indices)) if with_parameters else {})

    def _walk(self, indices: np.ndarray, seed: int) -> dict:
        """Every record's beat lengths and the stream index of its other draws (:func:`kernels.beat_lengths`).

        Raises :class:`ConfigError` when the beat lengths cannot fill a record (after
        ``MAX_ATTEMPTS`` redraws of one record): the configured lengths are then mostly <= 0.
        """
        c = self.config
        attempts, counts, record_length, lengths, samples = kernels.beat_lengths(
            np.uint64(stream_key(seed, "gaussian-length")), indices, c.beat_length, c.beat_length_sd_record,
            c.beat_length_sd_beat, c.beat_length_min, c.beat_length_max, float(c.fs), c.assemble_factor * c.length,
            MAX_LENGTH_DRAWS, ATTEMPT_STRIDE, MAX_ATTEMPTS,
        )
        if np.any(attempts >= MAX_ATTEMPTS):
            raise ConfigError(
                f"gaussian: beat lengths (beat_length={c.beat_length}, beat_length_sd_record="
                f"{c.beat_length_sd_record}, beat_length_sd_beat={c.beat_length_sd_beat}) are too often <= 0 s to "
                f"fill a record of {c.assemble_factor * c.length:.0f} samples in {MAX_LENGTH_DRAWS} beats, "
                f"{MAX_ATTEMPTS} times in a row; raise beat_length or set beat_length_min > 0")
        return {"ids": indices + attempts * ATTEMPT_STRIDE, "redraws": attempts, "counts": counts,
                "record_length": record_length, "lengths": lengths, "samples": samples}

    def _simulate_group(self, walk: dict, seed: int, with_parameters: bool) -> tuple[np.ndarray, dict]:
        """ECGs (and parameters) of records whose beat lengths are drawn (``walk``)."""
        c = self.config
        d = self._draw(walk, seed)
        beats = self._beats(d)
        x = self._render(beats, d["ids"], d["noise_keys"])
        if c.fibrillation_amplitude > 0:
            x += self._fibrillation(d)
        plan = self._plan_augments(d)
        if plan is not None:
            kernels.apply_augments(x, plan["n"], _OPERATION[plan["kind"]], plan["lo"], plan["seg"], plan["value"],
                                   plan["step"], d["augment_key"], d["ids"])
        if not with_parameters:
            return x, {}
        batch = len(x)
        params = {k: np.asarray(beats[k], dtype=np.float64) for k in PARAMETERS if k in beats}
        params["n_augment"] = np.zeros(batch) if plan is None else plan["n"].astype(np.float64)
        params["redraws"] = walk["redraws"].astype(np.float64)
        params.update(self._window_lists(beats))
        params.update(_augment_lists(plan, batch))
        return x, params

    # -- random draws --------------------------------------------------------------------------
    def _draw(self, walk: dict, seed: int) -> dict:
        """Every random draw of the group but the block noises' and augmentations' (drawn while
        applied), each record from its own streams keyed by (seed, purpose) and its stream index."""
        c = self.config
        ids = walk["ids"]
        k = walk["lengths"].shape[1]
        rec, uniforms = kernels.record_draws(np.uint64(stream_key(seed, "gaussian")), ids, N_RECORD,
                                             4 + self._max_augments * AUG_U)
        shapes = kernels.beat_draws(np.uint64(stream_key(seed, "gaussian-beat")), ids, walk["counts"], k, N_BEAT)
        pvc_u = np.ones((len(ids), k))
        if c.pvc_probability > 0:
            pvc_u = kernels.uniforms(np.uint64(stream_key(seed, "gaussian-pvc")), ids, k)
        fib = None
        if c.fibrillation_amplitude > 0:  # 8 knots of the f waves' wandering phase
            fib = kernels.normals(np.uint64(stream_key(seed, "gaussian-fib")), ids, 8)
        noise_keys = (np.uint64(stream_key(seed, "gaussian-noise1")), np.uint64(stream_key(seed, "gaussian-noise2")))
        return {**walk, "rec": rec, "shapes": shapes, "uniforms": uniforms, "pvc_u": pvc_u, "fib": fib,
                "noise_keys": noise_keys, "augment_key": np.uint64(stream_key(seed, "gaussian-aug"))}

    def _plan_augments(self, d: dict) -> dict | None:
        """Every record's augmentations from its uniforms, as (batch, slots) tables (None if off).

        As ``augment.py``: a kind per slot, its value and frequency uniform over the kind's
        ranges, a partial kind's width ``int(length * fraction)`` at start ``int(u * (length -
        width))``; a global kind covers the record. The phase advances by ``2 pi d f / (length -
        1)`` per sample, ``d = length / fs`` (``np.linspace(0, 2 pi d f, length)``).
        """
        c = self.config
        if self._poisson_cdf is None:
            return None
        u = d["uniforms"]
        n = np.minimum(np.searchsorted(self._poisson_cdf, u[:, 3], side="right"), self._max_augments)
        slots = u[:, 4:].reshape(len(u), self._max_augments, AUG_U)
        kind_u, value_u, freq_u, width_u, start_u = np.moveaxis(slots, -1, 0)
        weights = np.cumsum(c.augment_kind_weights)
        kind = np.minimum(np.searchsorted(weights / weights[-1], kind_u, side="right"), len(AUGMENT_KINDS) - 1)
        partial, white = (c.augment_partial_amplitude,) * 2, (c.augment_partial_white_sd,) * 2
        values = np.array([c.augment_scale, c.augment_sine_amplitude, c.augment_square_amplitude, c.augment_white_sd,
                           partial, partial, white])[kind]
        none, whole = (0.0, 0.0), (1.0, 1.0)
        freqs = np.array([none, c.augment_sine_freq, c.augment_square_freq, none, c.augment_sine_freq,
                          c.augment_square_freq, none])[kind]
        widths = np.array([whole, whole, whole, whole, c.augment_partial_width, c.augment_partial_width,
                           c.augment_partial_white_width])[kind]
        value, freq, fraction = (r[..., 0] + v * (r[..., 1] - r[..., 0]) for r, v in (
            (values, value_u), (freqs, freq_u), (widths, width_u)))
        seg = (c.length * fraction).astype(np.int64)
        lo = (start_u * (c.length - seg)).astype(np.int64)
        step = 2 * math.pi * (c.length / c.fs) * freq / (c.length - 1)
        return {"n": n, "kind": kind, "lo": lo, "seg": seg, "value": value, "freq": freq, "step": step}

    # -- vectorised beat table ---------------------------------------------------------------------
    def _beats(self, d: dict) -> dict:
        """The (batch, beats) table: wave parameters, block noises, levels and the window's beats."""
        c = self.config
        rec, z = d["rec"], d["shapes"]
        n_samples = d["samples"].copy()
        valid = n_samples > 0
        batch, k = n_samples.shape
        rec_peak = np.asarray(c.peak) + np.asarray(c.peak_sd_record) * rec[:, 0:5]
        rec_width = np.asarray(c.width) + np.asarray(c.width_sd_record) * rec[:, 5:10]
        offsets = np.asarray(c.centre) + np.asarray(c.centre_sd_record) * rec[:, 10:15]
        rec_centre = np.zeros((batch, 5))
        for i, anchor in enumerate(c.centre_anchor):
            rec_centre[:, i] = offsets[:, i] + (rec_centre[:, anchor] if anchor >= 0 else 0.0)
        rec_drift = c.drift_scale + c.drift_scale_sd_record * rec[:, 15]
        peak = rec_peak[:, None, :] + np.asarray(c.peak_sd_beat) * z[..., 0:5]
        width = np.maximum(np.abs(rec_width[:, None, :] + np.asarray(c.width_sd_beat) * z[..., 5:10]), MIN_WIDTH)
        centre = rec_centre[:, None, :] + np.asarray(c.centre_sd_beat) * z[..., 10:15]
        drift = (rec_drift[:, None] + c.drift_scale_sd_beat * z[..., 15]) * z[..., 16]
        amp = peak * np.asarray(c.sign)
        pvc = np.zeros((batch, k), dtype=bool)
        if c.pvc_probability > 0:
            n_samples, pvc = self._premature_beats(d["pvc_u"] < c.pvc_probability, valid, n_samples, amp, width)
        step = 1.0 / np.where(valid, d["lengths"], 1.0)  # template samples per beat sample (a PVC keeps its own)
        beats = {"amp": amp, "q": -0.5 / (width * c.fs) ** 2, "k0": centre * c.fs, "step": step, "drift": drift,
                 "n_samples": n_samples, "j_point": centre[..., 3], "t_centre": centre[..., 4] + width[..., 4]}
        beats.update(self._block_noises(rec, z))
        slope = drift / np.maximum(n_samples - 1, 1)
        tail = self._tail(beats)
        steps = np.where(valid, slope * np.maximum(n_samples - 1, 0) + tail, 0.0)
        level = np.zeros((batch, k))
        level[:, 1:] = np.cumsum(steps, axis=1)[:, :-1]
        ends = 1 + np.cumsum(n_samples, axis=1)  # sample 0 is the record's leading zero
        starts = ends - n_samples
        n_beats = (ends <= c.assemble_factor * c.length).sum(axis=1) + 1
        total = ends[np.arange(batch), np.minimum(n_beats, k) - 1]
        start = np.floor(d["uniforms"][:, 0] * (total - c.length)).astype(np.int64)
        counts = np.clip(np.minimum(ends, (start + c.length)[:, None]) - np.maximum(starts, start[:, None]), 0, None)
        beats.update(
            level=level, slope=slope, starts=starts, start=start, counts=counts, lead=(start == 0).astype(np.int64),
            lo=np.maximum(start[:, None] - starts, 0), pvc=pvc, peak=peak, lengths=d["lengths"],
            beat_length=d["record_length"], r_peak=rec_peak[:, 2], drift_scale=rec_drift,
            n_pvc=(pvc & (counts > 0)).sum(axis=1), window=np.nonzero(counts > 0),
        )
        return beats

    def _premature_beats(self, raw: np.ndarray, valid: np.ndarray, n_samples: np.ndarray, amp: np.ndarray,
                         width: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Premature ventricular beats (demo only): beats drawn ``raw``, never the first nor two in a row.

        The beat before a PVC is cut to ``pvc_coupling`` of its samples and the PVC gets the cut
        samples back as a pause; a PVC has no P wave, a discordant T and a QRS ``pvc_qrs_widen``
        times wider (``amp`` and ``width`` are changed in place). Returns (samples, PVC mask).
        """
        c = self.config
        pvc = raw & valid
        pvc[:, 0] = False
        pvc[:, 1:] &= ~raw[:, :-1]  # never two in a row
        before = np.zeros_like(pvc)
        before[:, :-1] = pvc[:, 1:]
        cut = np.ceil(n_samples * c.pvc_coupling).astype(np.int64)
        pause = np.zeros_like(n_samples)
        pause[:, 1:] = np.where(pvc[:, 1:], n_samples[:, :-1] - cut[:, :-1], 0)
        amp[..., 0] = np.where(pvc, 0.0, amp[..., 0])  # no P wave
        amp[..., 4] = np.where(pvc, -amp[..., 4], amp[..., 4])  # discordant T
        width[..., 1:4] *= np.where(pvc, c.pvc_qrs_widen, 1.0)[..., None]  # wide QRS
        return np.where(before, cut, n_samples) + pause, pvc

    def _block_noises(self, rec: np.ndarray, z: np.ndarray) -> dict:
        """Block widths (whole samples), sds and last-block normals of the two noises, per beat.

        ``scaler = base + sd_record * N + sd_beat * N`` and sd ``1 / max(|scaler|, 1)``; ``block =
        base + sd_record * N + sd_beat * N``, floored (``noise_block_rounding``) to at least 1
        sample. Also the record-level values reported as parameters.
        """
        c = self.config
        out = {}
        for i, (rec_scaler_col, rec_block_col, scaler_col, block_col, last_col) in enumerate(_NOISE_COLUMNS, 1):
            spreads = ("", "_sd_record", "_sd_beat")
            scaler, scaler_rec, scaler_beat = (getattr(c, f"noise{i}_scaler{s}") for s in spreads)
            block, block_rec, block_beat = (getattr(c, f"noise{i}_block{s}") for s in spreads)
            rec_scaler = scaler + scaler_rec * rec[:, rec_scaler_col]
            rec_block = block + block_rec * rec[:, rec_block_col]
            beat_scaler = rec_scaler[:, None] + scaler_beat * z[..., scaler_col]
            beat_block = rec_block[:, None] + block_beat * z[..., block_col] + _ROUNDING[c.noise_block_rounding]
            out[f"noise{i}_sd"] = 1.0 / np.maximum(np.abs(rec_scaler), 1.0)
            out[f"noise{i}_block"] = rec_block
            out[f"sd{i}"] = 1.0 / np.maximum(np.abs(beat_scaler), 1.0)
            out[f"block{i}"] = np.clip(np.floor(beat_block), 1, c.length).astype(np.int64)
            out[f"last{i}"] = z[..., last_col]
        return out

    def _template(self, beats: dict, index: np.ndarray) -> np.ndarray:
        """Each beat's template at integer template samples ``index`` (``(batch, k, m)``), as the kernel sums it."""
        c = self.config
        d = index[..., None] - beats["k0"][..., None, :]
        out = (beats["amp"][..., None, :] * np.exp(beats["q"][..., None, :] * d * d)).sum(axis=-1)
        if c.st_offset:
            out = out + c.st_offset * _plateau(index / c.fs, beats["j_point"][..., None], beats["t_centre"][..., None])
        return out

    def _tail(self, beats: dict) -> np.ndarray:
        """Each beat's last sample minus its ramp: the interpolated template plus the block noises there.

        The next beat starts at the level of this beat's last sample (``start_val = p_ecg[-1]`` in
        the authors' code), so the beat table needs it for every beat, in the window or not; a
        block noise is non-zero there only when the beat ends on a full block (its last one).
        """
        c = self.config
        n = beats["n_samples"]
        position = np.maximum(n - 1, 0) * beats["step"]
        at_end = np.floor(position) >= c.fs - 1
        left = np.minimum(np.floor(position).astype(np.int64), c.fs - 2)
        values = self._template(beats, np.stack([left, left + 1], axis=-1))
        wave = np.where(at_end, values[..., 1], values[..., 0] + (position - left) * (values[..., 1] - values[..., 0]))
        noise = sum(np.where((n % beats[f"block{i}"] == 0) & (n > 0), beats[f"sd{i}"] * beats[f"last{i}"], 0.0)
                    for i in (1, 2))
        return wave + noise

    def _render(self, beats: dict, ids: np.ndarray | None = None, noise_keys: tuple | None = None) -> np.ndarray:
        """Every beat inside each record's window with its two block noises, as float32 (compiled).

        The block noises are drawn there from each record's streams under ``noise_keys`` (stream
        indices ``ids``), or left out if None (the beat table's levels still hold their tails).
        """
        c = self.config
        counts = beats["counts"]
        batch = counts.shape[0]
        if np.any(counts.sum(axis=1) + beats["lead"] != c.length):  # the kernel fills each window from its beats
            raise RuntimeError("gaussian simulator: beats do not cover every window (a bug, please report it)")
        rec, beat = beats["window"]  # every beat in a window, record by record, in time order
        first = np.zeros(batch + 1, dtype=np.int64)
        np.cumsum(np.bincount(rec, minlength=batch), out=first[1:])

        def at(name: str) -> np.ndarray:
            return np.ascontiguousarray(beats[name][rec, beat])

        sds = (at("sd1"), at("sd2"))
        if noise_keys is None:
            ids, noise_keys, sds = np.zeros(batch, dtype=np.int64), (np.uint64(0), np.uint64(0)), (0 * sds[0],) * 2
        st = (at("j_point"), at("t_centre")) if c.st_offset else (np.zeros(0), np.zeros(0))
        out = np.empty((batch, c.length), dtype=np.float32)
        kernels.render_records(
            out, first, beats["lead"], counts[rec, beat], at("lo"), at("level"), at("slope"), at("amp"), at("q"),
            at("k0"), at("step"), at("n_samples"), int(c.fs), np.asarray(ids, dtype=np.int64),
            noise_keys[0], sds[0], at("block1"), at("last1"), noise_keys[1], sds[1], at("block2"), at("last2"),
            float(c.st_offset), *st,
        )
        return out

    def _fibrillation(self, d: dict) -> np.ndarray:
        """Atrial fibrillatory (f) waves: a 4-9 Hz oscillation with slowly wandering phase."""
        c = self.config
        t = np.arange(c.length) / c.fs
        u = d["uniforms"]
        freq = c.fibrillation_freq[0] + u[:, 1] * (c.fibrillation_freq[1] - c.fibrillation_freq[0])
        wobble = 0.5 * np.cumsum(d["fib"], axis=1)
        knots = np.linspace(0, t[-1], wobble.shape[1])
        pos = t / knots[1]
        i0 = np.minimum(pos.astype(np.int64), wobble.shape[1] - 2)
        frac = pos - i0
        drift = wobble[:, i0] * (1 - frac) + wobble[:, i0 + 1] * frac
        phase = 2 * np.pi * freq[:, None] * t[None, :] + drift + 2 * np.pi * u[:, 2, None]
        return (c.fibrillation_amplitude * np.sin(phase)).astype(np.float32)

    def _window_lists(self, beats: dict) -> dict[str, list[np.ndarray]]:
        """Per record, the beats in its window: R-wave positions and amplitudes, lengths, starts,
        levels and block noises (see ``simulate_with_parameters``)."""
        c = self.config
        offset = np.round(beats["k0"][..., 2] / beats["step"]).astype(np.int64)  # R centre, in beat samples
        pos = beats["starts"] + offset - beats["start"][:, None]
        inside = beats["counts"] > 0
        ok = inside & (offset >= 0) & (offset < beats["n_samples"]) & (pos >= 0) & (pos < c.length)
        rows = range(len(pos))
        per_beat = {"beat_lengths": beats["lengths"], "beat_samples": beats["n_samples"],
                    "beat_starts": beats["starts"] - beats["start"][:, None], "levels": beats["level"],
                    "noise1_blocks": beats["block1"], "noise2_blocks": beats["block2"],
                    "noise1_sds": beats["sd1"], "noise2_sds": beats["sd2"]}
        return {"r_peaks": [pos[b][ok[b]] for b in rows],
                "r_amplitudes": [beats["peak"][b, :, 2][ok[b]] for b in rows],
                **{key: [value[b][inside[b]] for b in rows] for key, value in per_beat.items()}}


def _groups(counts: np.ndarray, budget: int, padding: float = PADDING) -> list[np.ndarray]:
    """Records in batches by beat count: the (records x most beats) table of a batch holds at most
    ``padding`` times the beats it needs, and at most ``budget`` rows.

    Beat counts run from ~10 (slow records) to hundreds (a rare record of very short beats, as
    the authors' unclipped lengths allow): one table for all would mostly hold padding.
    """
    order = np.argsort(counts, kind="stable")
    groups, lo = [], 0
    while lo < len(order):
        hi, needed = lo + 1, int(counts[order[lo]])
        while hi < len(order):
            widest, size = int(counts[order[hi]]), hi + 1 - lo
            if size * widest > min(budget, padding * (needed + widest)):
                break
            needed += widest
            hi += 1
        groups.append(np.sort(order[lo:hi]))
        lo = hi
    return groups


def _merge(parts: list[tuple[np.ndarray, dict]], total: int) -> dict:
    """One parameter dict from the batches' (rows, params), in the original record order."""
    out: dict = {}
    for key, first in parts[0][1].items():
        if isinstance(first, np.ndarray):
            merged = np.empty(total, dtype=first.dtype)
            for rows, params in parts:
                merged[rows] = params[key]
            out[key] = merged
        else:
            values: list = [None] * total
            for rows, params in parts:
                for j, row in enumerate(rows):
                    values[row] = params[key][j]
            out[key] = values
    return out


def _augment_lists(plan: dict | None, batch: int) -> dict[str, list[np.ndarray]]:
    """Each record's augmentations, in the order applied (see ``simulate_with_parameters``)."""
    if plan is None:
        empty = [np.zeros(0) for _ in range(batch)]
        return {"augment_kind": [np.zeros(0, np.int64) for _ in range(batch)], "augment_value": empty,
                "augment_freq": empty, "augment_start": empty, "augment_length": empty}
    n = plan["n"]
    periodic = np.isin(_OPERATION[plan["kind"]], (kernels.SINE, kernels.SQUARE))
    freq = np.where(periodic, plan["freq"], np.nan)
    return {name: [values[b, : n[b]] for b in range(batch)] for name, values in (
        ("augment_kind", plan["kind"]), ("augment_value", plan["value"]), ("augment_freq", freq),
        ("augment_start", plan["lo"]), ("augment_length", plan["seg"]))}


def _plateau(tau: np.ndarray, start: np.ndarray, stop: np.ndarray) -> np.ndarray:
    """A smooth box from the S wave's centre to the end of the T wave (template seconds): the shifted ST-T.

    The beat table's end-of-beat values use this; the compiled renderer evaluates the same formula.
    """
    rise = 0.5 * (1 + np.tanh((tau - start) / kernels.ST_RISE))
    fall = 0.5 * (1 + np.tanh((tau - stop) / kernels.ST_FALL))
    return rise - fall
