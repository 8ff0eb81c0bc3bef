"""The Gaussian-composition beat simulator of the study ("SimECG-N"), batched.

Each beat is a sum of five Gaussians -- P, Q (negative), R, S (negative), T -- on a 1-s
template axis, stretched to the beat's length (the authors interpolate a 500-Hz template; here
the stretched Gaussians are evaluated exactly at the same time points). Every parameter is
``base + N(0, sd_record)`` per ECG plus ``N(0, sd_beat)`` per beat; wave centres are chained
(Q after P, R and S after Q, T after S) at the record level. The baseline of each beat is a ramp
from where the previous beat ended by ``N(0, drift_scale)``. Each beat gets two piecewise-constant
white noises (PROTOCOL.md, "The two simulators", and the authors' ``syn_ecg-04.yaml``); beats are
joined until the record passes 1.5 x 5,000 samples and a random 5,000-sample window is cut; then
Poisson(2) random augmentations (amplitude scaling, sine, rectangular or white noise, each global
or on a random segment).

The block noises, as read from PROTOCOL.md ("block width 10 samples (per-record sd 0.5) at scale
1/100 (sd 10/5), and block width 3 (sd 0.3/0.15) at scale 1/200 (sd 20/2)"): the ``(sd a/b)``
pairs are ``sd_record/sd_beat`` of the number before them, as in the rest of the table, and
"scale 1/100" is a divisor: each beat's noise is ``N(0, 1) / scaler`` held for ``block``
samples -- the authors' ``white_noise(n, int(width), scaler)`` computes ``randn(n // width) /
scaler`` repeated ``width`` times, per beat. So per beat

* noise 1: ``block = int(10 + N(0, 0.5) + N(0, 0.25))`` samples, ``scaler = 100 + N(0, 10) +
  N(0, 5)``, sd ``1 / scaler`` (0.01 mV typical, 0.009-0.011 across records);
* noise 2: ``block = int(3 + N(0, 0.3) + N(0, 0.15))``, ``scaler = 200 + N(0, 20) + N(0, 2)``,
  sd ``1 / scaler`` (0.005 mV typical).

Blocks restart at each beat's first sample (the block width changes per beat); ``int`` truncates
as the authors' code does, so widths are 9 or 10 (and 2 or 3) about equally often.

Defaults are PROTOCOL.md's (the authors' SimECG-N config). Choices it leaves open, marked
*inferred* and configurable: the per-beat sd of noise 1's block width (0.25, half its per-record
sd like noise 2's), the truncation of block widths (``noise_block_rounding``), a beat's last,
partial block keeping its own value (the authors' code leaves it at zero), the floor of 1 on
``|scaler|``, the distributions inside the augmentation ranges (uniform), the rectangular noise's
amplitude and frequency, the kind weights, the chance of a local augmentation and its segment
length, and the clip of beat lengths to [0.25, 2.5] s (the authors' code would emit an empty beat
for a non-positive length).

Beyond the paper, for the synthetic ``demo`` tasks, the config can add physiological
abnormalities (all off by default, so the corpus is the paper's): premature ventricular beats
(``pvc_probability``), atrial fibrillatory waves (``fibrillation_amplitude``) and an ST-segment
offset (``st_offset``); see :mod:`benchmark.datasets.demo` for their references.

Speed (about 10,000 ECGs per CPU-second; ``simecg-bench bench simulators``): all random draws and
all per-sample work -- parameters, ~2,500 block-noise normals per ECG, waves, ramps, block noises,
augmentations -- run in compiled loops (:mod:`pretraining.simulators.kernels`), each ECG from its
own counter-seeded streams, each wave only over its support and without an ``exp`` per sample;
the beat table in between is numpy over the whole batch.
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
# Columns of the per-beat parameter table.
PEAK, WIDTH, CENTRE = slice(0, 5), slice(5, 10), slice(10, 15)
LENGTH, DRIFT, P_GAIN, QRS_WIDEN, T_SIGN = 15, 16, 17, 18, 19
N_COLS = 20


@dataclass(frozen=True)
class GaussianBeatConfig:
    """Gaussian-composition beat simulator; tuples are (P, Q, R, S, T); times in seconds, amplitudes mV."""

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
    beat_length_min: float = 0.25  # inferred clip
    beat_length_max: float = 2.5
    drift_scale: float = 0.5
    drift_scale_sd_record: float = 0.25
    drift_scale_sd_beat: float = 0.05
    # Block noises, per beat (module docstring): N(0, 1) / scaler held for int(block) samples,
    # blocks counted from the beat's start; scaler = math.inf turns a noise off.
    noise1_block: float = 10.0  # samples
    noise1_block_sd_record: float = 0.5
    noise1_block_sd_beat: float = 0.25  # inferred (half the per-record sd, as for noise 2)
    noise1_scaler: float = 100.0  # "scale 1/100": sd 1/100 mV
    noise1_scaler_sd_record: float = 10.0
    noise1_scaler_sd_beat: float = 5.0
    noise2_block: float = 3.0
    noise2_block_sd_record: float = 0.3
    noise2_block_sd_beat: float = 0.15
    noise2_scaler: float = 200.0  # "scale 1/200": sd 1/200 mV
    noise2_scaler_sd_record: float = 20.0
    noise2_scaler_sd_beat: float = 2.0
    noise_block_rounding: str = "floor"  # inferred: "floor" (the authors' int()) or "nearest"; at least 1
    assemble_factor: float = 1.5  # beats are joined past this multiple of the length
    augment_rate: float = 2.0  # Poisson mean of the number of augmentations
    # Augmentation values, each uniform over its range (uniform: inferred).
    augment_scale: tuple[float, float] = (0.5, 1.25)  # amplitude factor
    augment_sine_amplitude: tuple[float, float] = (0.0, 0.2)  # mV
    augment_sine_freq: tuple[float, float] = (0.5, 10.0)  # Hz: 0.001-0.02 cycles per sample at 500 Hz
    augment_rect_amplitude: tuple[float, float] = (0.0, 0.2)  # inferred (the sine's), mV
    augment_rect_freq: tuple[float, float] = (0.5, 50.0)  # inferred (authors' augment code: 0.001-0.1/sample), Hz
    augment_white_amplitude: tuple[float, float] = (0.0, 0.005)  # sd of the added white noise, mV
    augment_kind_weights: tuple[float, ...] = (1.0, 1.0, 1.0, 1.0)  # inferred: scale, sine, rect, white
    augment_local_probability: float = 0.5  # inferred: chance an augmentation is on a segment only
    augment_segment: tuple[float, float] = (0.1, 0.5)  # inferred: local segment, fraction of the length
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
        if not 0 < self.beat_length_min < self.beat_length_max:
            raise ConfigError("gaussian.beat_length_min must be positive and below beat_length_max")
        if self.assemble_factor < 1.0 or self.noise1_block < 1 or self.noise2_block < 1:
            raise ConfigError("gaussian.assemble_factor must be >= 1 and noise blocks >= 1 sample")
        if not (self.noise1_scaler > 0 and self.noise2_scaler > 0):
            raise ConfigError("gaussian.noise1_scaler and noise2_scaler must be positive (math.inf: no noise)")
        if self.noise_block_rounding not in _ROUNDING:
            raise ConfigError(f"gaussian.noise_block_rounding must be one of {sorted(_ROUNDING)}, "
                              f"got {self.noise_block_rounding!r}")
        ranges = ("augment_scale", "augment_sine_amplitude", "augment_sine_freq", "augment_rect_amplitude",
                  "augment_rect_freq", "augment_white_amplitude", "augment_segment")
        for name in ranges:
            value = getattr(self, name)
            if len(value) != 2 or not 0 <= value[0] <= value[1]:
                raise ConfigError(f"gaussian.{name} must be a range (low, high) with 0 <= low <= high, got {value}")
        weights = self.augment_kind_weights
        if len(weights) != 4 or min(weights) < 0 or sum(weights) <= 0:
            raise ConfigError(f"gaussian.augment_kind_weights needs 4 weights >= 0 (scale, sine, rect, white), "
                              f"not all 0, got {weights}")
        if not 0.0 <= self.augment_local_probability <= 1.0 or self.augment_segment[1] > 1.0:
            raise ConfigError("gaussian.augment_local_probability and augment_segment must lie in [0, 1]")
        if not 0.0 <= self.pvc_probability <= 1.0 or not 0.3 <= self.pvc_coupling <= 1.0:
            raise ConfigError("gaussian.pvc_probability must be in [0, 1] and pvc_coupling in [0.3, 1]")


_FIVE = {
    "peak", "peak_sd_record", "peak_sd_beat", "width", "width_sd_record", "width_sd_beat",
    "centre", "centre_anchor", "centre_sd_record", "centre_sd_beat", "sign",
}

_ROUNDING = {"floor": 0.0, "nearest": 0.5}  # added before flooring a block width

# Per-record parameters reported by simulate_with_parameters (record level, before per-beat jitter):
# noise*_sd = 1 / |scaler|, noise*_block the block width before rounding.
PARAMETERS = ("beat_length", "r_peak", "drift_scale", "noise1_sd", "noise2_sd", "n_augment", "n_pvc",
              "noise1_block", "noise2_block")
AUGMENT_KINDS = ("scale", "sine", "rect", "white")
MAX_AUGMENTS = 12  # Poisson(2) exceeds this with probability < 1e-6
AUG_U = 7  # uniforms per augmentation slot
# record-level normals: peak 5, width 5, centre 5, length (15, read by the draw kernel), drift,
# then noise 1 and 2 scalers, noise 1 and 2 block widths
N_RECORD = 21
# per-beat normals: peak 5, width 5, centre 5, drift scale, drift direction, then the same 4 noise draws
N_BEAT = 21


class GaussianBeat:
    """Batched Gaussian-composition beat simulator (see the module docstring)."""

    Config = GaussianBeatConfig
    name = "gaussian"

    def __init__(self, config: GaussianBeatConfig | None = None):
        self.config = c = config or GaussianBeatConfig()
        self._k_max = int(np.ceil(c.assemble_factor * c.length / (c.beat_length_min * c.fs))) + 2
        rate = c.augment_rate
        self._poisson_cdf = poisson.cdf(np.arange(MAX_AUGMENTS), rate).tolist() if rate > 0 else None

    def simulate(self, indices: np.ndarray, seed: int) -> np.ndarray:
        """ECGs at ``indices`` as float32 ``(n, length)`` mV; ECG i depends only on (config, seed, i)."""
        return self._simulate(indices, seed, with_parameters=False)[0]

    def simulate_with_parameters(self, indices: np.ndarray, seed: int) -> tuple[np.ndarray, dict]:
        """ECGs plus record-level ``PARAMETERS`` (arrays) and per-record lists (one array per ECG).

        Lists: ``r_peaks``, ``r_amplitudes``, ``beat_lengths`` (s) and ``beat_starts`` (window
        sample where each beat in the window starts; the first is <= 0) of the beats in the
        window; ``noise1_blocks``/``noise2_blocks`` and ``noise1_sds``/``noise2_sds``, those
        beats' block widths (samples) and noise sds (mV); ``augment_kind`` (index into
        ``AUGMENT_KINDS``), ``augment_value`` (scale factor or amplitude, mV),
        ``augment_freq`` (Hz; NaN for scale and white noise), ``augment_start`` and
        ``augment_length`` (samples; the whole window for a global one), in the order applied.
        """
        return self._simulate(indices, seed, with_parameters=True)

    def _simulate(self, indices: np.ndarray, seed: int, with_parameters: bool) -> tuple[np.ndarray, dict]:
        c = self.config
        d = self._draw(as_indices(indices), seed)
        batch = len(d["rec"])
        if batch == 0:
            return np.zeros((0, c.length), np.float32), {k: np.zeros(0) for k in PARAMETERS}
        beats = self._beats(d)
        x = self._render(beats, d["indices"], d["noise_keys"])
        if c.fibrillation_amplitude > 0:
            x += self._fibrillation(d)
        plan = self._plan_augments(d)
        if plan is not None:
            kernels.apply_augments(x, plan["n"], plan["kind"], plan["lo"], plan["seg"], plan["value"],
                                   plan["freq"], plan["phase"], d["augment_key"], d["indices"], float(c.fs))
        if not with_parameters:
            return x, {}
        params = {k: np.asarray(beats[k], dtype=np.float64) for k in PARAMETERS}
        params["n_augment"] = np.zeros(batch) if plan is None else plan["n"].astype(np.float64)
        params.update(self._r_waves(beats))
        params.update(_augment_lists(plan, batch))
        return x, params

    # -- random draws --------------------------------------------------------------------------
    def _draw(self, indices: np.ndarray, seed: int) -> dict:
        """Every random draw of the batch, each ECG from its own streams keyed by (seed, index)."""
        c = self.config
        normals, lengths, shapes, uniforms, pvc_u, n_drawn = kernels.draw_parameters(
            np.uint64(stream_key(seed, "gaussian")), indices, N_RECORD, self._k_max, N_BEAT,
            4 + MAX_AUGMENTS * AUG_U, c.pvc_probability > 0, c.beat_length, c.beat_length_sd_record,
            c.beat_length_sd_beat, c.beat_length_min, c.beat_length_max, float(c.fs), c.assemble_factor * c.length,
        )
        k = int(n_drawn.max(initial=0))
        fib = None
        if c.fibrillation_amplitude > 0:  # 8 knots of the f waves' wandering phase
            fib = kernels.normals(np.uint64(stream_key(seed, "gaussian-fib")), indices, 8)
        noise_keys = (np.uint64(stream_key(seed, "gaussian-noise1")), np.uint64(stream_key(seed, "gaussian-noise2")))
        return {"rec": normals[:, :N_RECORD], "lengths": lengths[:, :k], "shapes": shapes[:, :k],
                "uniforms": uniforms, "noise_keys": noise_keys, "fib": fib, "pvc_u": pvc_u[:, :k],
                "indices": indices, "augment_key": np.uint64(stream_key(seed, "gaussian-aug"))}

    def _plan_augments(self, d: dict) -> dict | None:
        """Every record's augmentations from its uniforms, as (batch, MAX_AUGMENTS) tables (None if off)."""
        c = self.config
        if self._poisson_cdf is None:
            return None
        u = d["uniforms"]
        n = np.minimum(np.searchsorted(np.asarray(self._poisson_cdf), u[:, 3], side="right"), MAX_AUGMENTS)
        slots = u[:, 4 : 4 + MAX_AUGMENTS * AUG_U].reshape(len(u), MAX_AUGMENTS, AUG_U)
        kind_u, local_u, seg_u, pos_u, value_u, freq_u, phase_u = np.moveaxis(slots, -1, 0)
        weights = np.cumsum(c.augment_kind_weights)
        kind = np.minimum(np.searchsorted(weights / weights[-1], kind_u, side="right"), 3)
        seg_lo, seg_hi = c.augment_segment
        local = local_u < c.augment_local_probability
        seg = np.where(local, np.maximum(1, ((seg_lo + seg_u * (seg_hi - seg_lo)) * c.length).astype(np.int64)),
                       c.length)
        lo = np.where(local, np.minimum((pos_u * (c.length - seg + 1)).astype(np.int64), c.length - seg), 0)
        values = np.array([c.augment_scale, c.augment_sine_amplitude, c.augment_rect_amplitude,
                           c.augment_white_amplitude])[kind]  # (batch, slots, low/high) per kind
        freqs = np.array([(0.0, 0.0), c.augment_sine_freq, c.augment_rect_freq, (0.0, 0.0)])[kind]
        value = values[..., 0] + value_u * (values[..., 1] - values[..., 0])
        freq = freqs[..., 0] + freq_u * (freqs[..., 1] - freqs[..., 0])
        return {"n": n, "kind": kind, "lo": lo, "seg": seg, "value": value, "freq": freq,
                "phase": 2 * math.pi * phase_u}

    # -- vectorised beat table ---------------------------------------------------------------------
    def _beats(self, d: dict) -> dict:
        c = self.config
        rec, z = d["rec"], d["shapes"]
        batch, k = z.shape[:2]
        rec_peak = np.asarray(c.peak) + np.asarray(c.peak_sd_record) * rec[:, 0:5]
        rec_width = np.asarray(c.width) + np.asarray(c.width_sd_record) * rec[:, 5:10]
        offsets = np.asarray(c.centre) + np.asarray(c.centre_sd_record) * rec[:, 10:15]
        rec_centre = np.zeros((batch, 5))
        for i, anchor in enumerate(c.centre_anchor):
            rec_centre[:, i] = offsets[:, i] + (rec_centre[:, anchor] if anchor >= 0 else 0.0)
        rec_drift = c.drift_scale + c.drift_scale_sd_record * rec[:, 16]
        lengths = d["lengths"]
        peak = rec_peak[:, None, :] + np.asarray(c.peak_sd_beat) * z[..., 0:5]
        width = np.maximum(np.abs(rec_width[:, None, :] + np.asarray(c.width_sd_beat) * z[..., 5:10]), 1e-4)
        centre = rec_centre[:, None, :] + np.asarray(c.centre_sd_beat) * z[..., 10:15]
        drift = (rec_drift[:, None] + c.drift_scale_sd_beat * z[..., 15]) * z[..., 16]
        amp = peak * np.asarray(c.sign)
        n_samples = np.ceil(lengths * c.fs).astype(np.int64)
        pvc = np.zeros((batch, k), dtype=bool)
        if c.pvc_probability > 0:
            raw = d["pvc_u"] < c.pvc_probability
            pvc = raw.copy()
            pvc[:, 0] = False
            pvc[:, 1:] &= ~raw[:, :-1]  # never two in a row
            before = np.zeros_like(pvc)
            before[:, :-1] = pvc[:, 1:]
            cut = np.ceil(n_samples * c.pvc_coupling).astype(np.int64)
            pause = np.zeros_like(n_samples)
            pause[:, 1:] = np.where(pvc[:, 1:], n_samples[:, :-1] - cut[:, :-1], 0)
            n_samples = np.where(before, cut, n_samples) + pause
            amp[..., 0] = np.where(pvc, 0.0, amp[..., 0])  # no P wave
            amp[..., 4] = np.where(pvc, -amp[..., 4], amp[..., 4])  # discordant T
            width[..., 1:4] *= np.where(pvc, c.pvc_qrs_widen, 1.0)[..., None]  # wide QRS
        scale = 1.0 / (c.fs * lengths)  # template seconds per sample
        beats = {"amp": amp, "inv2": -0.5 / width**2, "centre": centre, "scale": scale, "drift": drift,
                 "n_samples": n_samples, "j_point": centre[..., 3], "t_centre": centre[..., 4] + width[..., 4]}
        tail = self._waves_table(beats, ((n_samples - 1) * scale)[..., None])[..., 0]
        steps = drift + tail
        level = np.zeros_like(steps)
        level[:, 1:] = np.cumsum(steps, axis=1)[:, :-1]
        ends = np.cumsum(n_samples, axis=1)
        starts = ends - n_samples
        n_beats = (ends <= c.assemble_factor * c.length).sum(axis=1) + 1
        total = ends[np.arange(batch), np.minimum(n_beats, k) - 1]
        start = np.floor(d["uniforms"][:, 0] * (total - c.length)).astype(np.int64)
        counts = np.clip(np.minimum(ends, (start + c.length)[:, None]) - np.maximum(starts, start[:, None]), 0, None)
        beats.update(
            level=level, starts=starts, start=start, counts=counts, lo=np.maximum(start[:, None] - starts, 0),
            pvc=pvc, peak=peak, lengths=lengths, beat_length=rec_peak[:, 0] * 0 + (c.beat_length
            + c.beat_length_sd_record * rec[:, 15]), r_peak=rec_peak[:, 2], drift_scale=rec_drift,
            n_pvc=(pvc & (counts > 0)).sum(axis=1), n_augment=np.zeros(batch),
        )
        window = np.nonzero(counts > 0)  # every beat in a window, record by record, in time order
        beats.update(self._block_noises(rec, z, window), window=window)
        return beats

    def _block_noises(self, rec: np.ndarray, z: np.ndarray, window: tuple[np.ndarray, np.ndarray]) -> dict:
        """Block widths (whole samples) and sds of the two noises: per record, and per beat in a window.

        ``rec`` holds the record-level normals, ``z`` the per-beat ones; the per-beat values are
        flat, for the beats ``window`` lists (only those are drawn by the renderer).
        ``scaler = base + sd_record * N + sd_beat * N`` and sd ``1 / max(|scaler|, 1)``;
        ``block = base + sd_record * N + sd_beat * N``, floored (``noise_block_rounding``) to at
        least 1 sample.
        """
        c = self.config
        records, z = window[0], z[window]
        out = {}
        for i, (col_scaler, col_block) in enumerate(((17, 19), (18, 20)), start=1):
            spreads = ("", "_sd_record", "_sd_beat")
            scaler, scaler_rec, scaler_beat = (getattr(c, f"noise{i}_scaler{s}") for s in spreads)
            block, block_rec, block_beat = (getattr(c, f"noise{i}_block{s}") for s in spreads)
            rec_scaler = scaler + scaler_rec * rec[:, col_scaler]
            rec_block = block + block_rec * rec[:, col_block]
            beat_scaler = rec_scaler[records] + scaler_beat * z[:, col_scaler]
            beat_block = rec_block[records] + block_beat * z[:, col_block] + _ROUNDING[c.noise_block_rounding]
            out[f"noise{i}_sd"] = 1.0 / np.maximum(np.abs(rec_scaler), 1.0)
            out[f"noise{i}_block"] = rec_block
            out[f"noise{i}_sds"] = 1.0 / np.maximum(np.abs(beat_scaler), 1.0)
            out[f"noise{i}_blocks"] = np.clip(np.floor(beat_block), 1, c.length).astype(np.int64)
        return out

    def _waves_table(self, beats: dict, tau: np.ndarray) -> np.ndarray:
        """Wave sum at template times ``tau`` (``(batch, k, m)``) for the (batch, k) beat table."""
        d = tau[..., None] - beats["centre"][..., None, :]
        out = (beats["amp"][..., None, :] * np.exp(d * d * beats["inv2"][..., None, :])).sum(axis=-1)
        if self.config.st_offset:
            out = out + self.config.st_offset * _plateau(tau, beats["j_point"][..., None], beats["t_centre"][..., None])
        return out

    def _render(self, beats: dict, indices: np.ndarray | None = None, noise_keys: tuple | None = None) -> np.ndarray:
        """Every beat inside each record's window with its two block noises, as float32 (compiled).

        Waves are evaluated in sample units, ``amp * exp(q * (k - k0)**2)`` with
        ``q = inv2 * scale**2`` and ``k0 = centre / scale``, only over each wave's support and by
        recurrence (see :mod:`pretraining.simulators.kernels`); the block noises are drawn there
        from each ECG's streams under ``noise_keys`` (ECG ``indices``), or left out if None.
        """
        c = self.config
        counts = beats["counts"]
        batch = counts.shape[0]
        if np.any(counts.sum(axis=1) != c.length):  # the kernel fills each window from its beats alone
            raise RuntimeError("gaussian simulator: beats do not cover every window (a bug, please report it)")
        rec, beat = beats["window"]  # every beat in a window, record by record, in time order
        first = np.zeros(batch + 1, dtype=np.int64)
        np.cumsum(np.bincount(rec, minlength=batch), out=first[1:])
        scale = beats["scale"][rec, beat]
        centre = beats["centre"][rec, beat]
        q = np.ascontiguousarray(beats["inv2"][rec, beat] * (scale**2)[:, None])
        k0 = np.ascontiguousarray(centre / scale[:, None])
        slope = beats["drift"][rec, beat] / np.maximum(beats["n_samples"][rec, beat] - 1, 1)
        none = np.zeros(0)
        st = (scale, beats["j_point"][rec, beat], beats["t_centre"][rec, beat]) if c.st_offset else (none,) * 3
        if noise_keys is None:
            indices, noise_keys = np.zeros(batch, dtype=np.int64), (np.uint64(0), np.uint64(0))
            sd1 = sd2 = np.zeros(len(rec))
        else:
            sd1, sd2 = beats["noise1_sds"], beats["noise2_sds"]
        out = np.empty((batch, c.length), dtype=np.float32)
        kernels.render_records(
            out, first, counts[rec, beat], beats["lo"][rec, beat], beats["level"][rec, beat], slope,
            np.ascontiguousarray(beats["amp"][rec, beat]), q, k0, indices,
            noise_keys[0], sd1, beats["noise1_blocks"], noise_keys[1], sd2, beats["noise2_blocks"],
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

    def _r_waves(self, beats: dict) -> dict[str, list[np.ndarray]]:
        """True R-wave positions and amplitudes inside each window, and the window's beats' lengths,
        starts and block noises."""
        c = self.config
        offset = np.round(beats["centre"][..., 2] / beats["scale"]).astype(np.int64)
        pos = beats["starts"] + offset - beats["start"][:, None]
        ok = (beats["counts"] > 0) & (offset >= 0) & (offset < beats["n_samples"]) & (pos >= 0) & (pos < c.length)
        inside = beats["counts"] > 0
        return {
            "r_peaks": [pos[b][ok[b]] for b in range(len(pos))],
            "r_amplitudes": [beats["peak"][b, :, 2][ok[b]] for b in range(len(pos))],
            "beat_lengths": [beats["lengths"][b][inside[b]] for b in range(len(pos))],
            "beat_starts": [(beats["starts"][b] - beats["start"][b])[inside[b]] for b in range(len(pos))],
            **{key: np.split(beats[key], np.cumsum(inside.sum(axis=1))[:-1])
               for key in ("noise1_blocks", "noise2_blocks", "noise1_sds", "noise2_sds")},
        }

    def with_overrides(self, **changes: object) -> GaussianBeat:
        return GaussianBeat(dataclasses.replace(self.config, **changes))


def _augment_lists(plan: dict | None, batch: int) -> dict[str, list[np.ndarray]]:
    """Each record's augmentations, in the order applied (see ``simulate_with_parameters``)."""
    if plan is None:
        empty = [np.zeros(0) for _ in range(batch)]
        return {"augment_kind": [np.zeros(0, np.int64) for _ in range(batch)], "augment_value": empty,
                "augment_freq": empty, "augment_start": empty, "augment_length": empty}
    n = plan["n"]
    freq = np.where((plan["kind"] == 1) | (plan["kind"] == 2), plan["freq"], np.nan)
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
