"""The Gaussian-composition beat simulator of the study ("SimECG-N"), batched.

Each beat is a sum of five Gaussians -- P, Q (negative), R, S (negative), T -- on a 1-s
template axis, stretched to the beat's length (the authors interpolate a 500-Hz template; here
the stretched Gaussians are evaluated exactly at the same time points). Every parameter is
``base + N(0, sd_record)`` per ECG plus ``N(0, sd_beat)`` per beat; wave centres are chained
(Q after P, R and S after Q, T after S) at the record level. The baseline of each beat is a ramp
from where the previous beat ended by ``N(0, drift_scale)``; two piecewise-constant white noises
(blocks of 10 and 3 samples) are added; beats are joined until the record passes 1.5 x 5,000
samples and a random 5,000-sample window is cut; then Poisson(2) random augmentations (amplitude
scaling, sine, rectangular or white noise, each global or on a random segment).

Defaults are PROTOCOL.md's table (the authors' SimECG-N config). Choices the table leaves open,
marked *inferred*: the per-record spread of the two noise levels, the augmentation amplitudes,
frequencies and segment lengths, and the clip of beat lengths to [0.25, 2.5] s (the authors'
code would emit an empty beat for a non-positive length).

Beyond the paper, for the synthetic ``demo`` tasks, the config can add physiological
abnormalities (all off by default, so the corpus is the paper's): premature ventricular beats
(``pvc_probability``), atrial fibrillatory waves (``fibrillation_amplitude``) and an ST-segment
offset (``st_offset``); see :mod:`benchmark.datasets.demo` for their references.

Speed (about 10,000 ECGs per CPU-second; ``simecg-bench bench simulators``): all random draws and
all per-sample work -- parameters, ~2,200 white-noise normals per ECG, waves, ramps, block noises,
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
    noise1_sd: float = 0.01  # white noise held for noise1_block samples (scale 1/100)
    noise1_sd_record: float = 0.005  # inferred
    noise1_block: int = 10
    noise2_sd: float = 0.005  # scale 1/200
    noise2_sd_record: float = 0.0025  # inferred
    noise2_block: int = 3
    assemble_factor: float = 1.5  # beats are joined past this multiple of the length
    augment_rate: float = 2.0  # Poisson mean of the number of augmentations
    augment_scale: tuple[float, float] = (0.5, 1.25)
    augment_amplitude: tuple[float, float] = (0.02, 0.3)  # inferred: sine / rectangular / white noise, mV
    augment_freq: tuple[float, float] = (0.1, 50.0)  # inferred: Hz, log-uniform
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
        if not 0.0 <= self.pvc_probability <= 1.0 or not 0.3 <= self.pvc_coupling <= 1.0:
            raise ConfigError("gaussian.pvc_probability must be in [0, 1] and pvc_coupling in [0.3, 1]")


_FIVE = {
    "peak", "peak_sd_record", "peak_sd_beat", "width", "width_sd_record", "width_sd_beat",
    "centre", "centre_anchor", "centre_sd_record", "centre_sd_beat", "sign",
}

PARAMETERS = ("beat_length", "r_peak", "drift_scale", "noise1_sd", "noise2_sd", "n_augment", "n_pvc")
MAX_AUGMENTS = 12  # Poisson(2) exceeds this with probability < 1e-6
AUG_U = 7  # uniforms per augmentation slot
N_RECORD = 19  # record-level normals: peak 5, width 5, centre 5, length, drift, noise1, noise2
N_BEAT = 17  # per-beat normals: peak 5, width 5, centre 5, drift scale, drift direction


class GaussianBeat:
    """Batched Gaussian-composition beat simulator (see the module docstring)."""

    Config = GaussianBeatConfig
    name = "gaussian"

    def __init__(self, config: GaussianBeatConfig | None = None):
        self.config = c = config or GaussianBeatConfig()
        self._k_max = int(np.ceil(c.assemble_factor * c.length / (c.beat_length_min * c.fs))) + 2
        self._n1 = -(-c.length // c.noise1_block)
        self._n2 = -(-c.length // c.noise2_block)
        rate = c.augment_rate
        self._poisson_cdf = poisson.cdf(np.arange(MAX_AUGMENTS), rate).tolist() if rate > 0 else None

    def simulate(self, indices: np.ndarray, seed: int) -> np.ndarray:
        """ECGs at ``indices`` as float32 ``(n, length)`` mV; ECG i depends only on (config, seed, i)."""
        return self._simulate(indices, seed, with_parameters=False)[0]

    def simulate_with_parameters(self, indices: np.ndarray, seed: int) -> tuple[np.ndarray, dict]:
        """ECGs plus record-level parameters and per-record lists ``r_peaks``, ``r_amplitudes``, ``rr``."""
        return self._simulate(indices, seed, with_parameters=True)

    def _simulate(self, indices: np.ndarray, seed: int, with_parameters: bool) -> tuple[np.ndarray, dict]:
        c = self.config
        d = self._draw(as_indices(indices), seed)
        batch = len(d["rec"])
        if batch == 0:
            return np.zeros((0, c.length), np.float32), {k: np.zeros(0) for k in PARAMETERS}
        beats = self._beats(d)
        x = self._render(beats, d["noise"])
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
        noise = kernels.normals(np.uint64(stream_key(seed, "gaussian-noise")), indices, self._n1 + self._n2 + 8)
        return {"rec": normals[:, :N_RECORD], "lengths": lengths[:, :k], "shapes": shapes[:, :k],
                "uniforms": uniforms, "noise": noise, "pvc_u": pvc_u[:, :k], "indices": indices,
                "augment_key": np.uint64(stream_key(seed, "gaussian-aug"))}

    def _plan_augments(self, d: dict) -> dict | None:
        """Every record's augmentations from its uniforms, as (batch, MAX_AUGMENTS) tables (None if off)."""
        c = self.config
        if self._poisson_cdf is None:
            return None
        u = d["uniforms"]
        n = np.minimum(np.searchsorted(np.asarray(self._poisson_cdf), u[:, 3], side="right"), MAX_AUGMENTS)
        slots = u[:, 4 : 4 + MAX_AUGMENTS * AUG_U].reshape(len(u), MAX_AUGMENTS, AUG_U)
        kind_u, local_u, seg_u, pos_u, value_u, freq_u, phase_u = np.moveaxis(slots, -1, 0)
        kind = np.minimum((kind_u * 4).astype(np.int64), 3)
        seg_lo, seg_hi = c.augment_segment
        local = local_u < 0.5
        seg = np.where(local, np.maximum(1, ((seg_lo + seg_u * (seg_hi - seg_lo)) * c.length).astype(np.int64)),
                       c.length)
        lo = np.where(local, np.minimum((pos_u * (c.length - seg + 1)).astype(np.int64), c.length - seg), 0)
        (s0, s1), (a0, a1) = c.augment_scale, c.augment_amplitude
        value = np.where(kind == 0, s0 + value_u * (s1 - s0), a0 + value_u * (a1 - a0))
        log_f0, log_f1 = math.log(c.augment_freq[0]), math.log(c.augment_freq[1])
        freq = np.exp(log_f0 + freq_u * (log_f1 - log_f0))
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
            noise1_sd=np.abs(c.noise1_sd + c.noise1_sd_record * rec[:, 17]),
            noise2_sd=np.abs(c.noise2_sd + c.noise2_sd_record * rec[:, 18]),
            n_pvc=(pvc & (counts > 0)).sum(axis=1), n_augment=np.zeros(batch),
        )
        return beats

    def _waves_table(self, beats: dict, tau: np.ndarray) -> np.ndarray:
        """Wave sum at template times ``tau`` (``(batch, k, m)``) for the (batch, k) beat table."""
        d = tau[..., None] - beats["centre"][..., None, :]
        out = (beats["amp"][..., None, :] * np.exp(d * d * beats["inv2"][..., None, :])).sum(axis=-1)
        if self.config.st_offset:
            out = out + self.config.st_offset * _plateau(tau, beats["j_point"][..., None], beats["t_centre"][..., None])
        return out

    def _render(self, beats: dict, noise: np.ndarray | None = None) -> np.ndarray:
        """Every beat inside each record's window plus the two block noises, as float32 (compiled).

        Waves are evaluated in sample units, ``amp * exp(q * (k - k0)**2)`` with
        ``q = inv2 * scale**2`` and ``k0 = centre / scale``, only over each wave's support and by
        recurrence (see :mod:`pretraining.simulators.kernels`); ``noise`` holds each record's
        standard-normal block values (``noise1`` blocks, then ``noise2`` blocks), or None for none.
        """
        c = self.config
        counts = beats["counts"]
        batch = counts.shape[0]
        if np.any(counts.sum(axis=1) != c.length):  # the kernel fills each window from its beats alone
            raise RuntimeError("gaussian simulator: beats do not cover every window (a bug, please report it)")
        rec, beat = np.nonzero(counts > 0)  # every beat in a window, record by record, in time order
        first = np.zeros(batch + 1, dtype=np.int64)
        np.cumsum(np.bincount(rec, minlength=batch), out=first[1:])
        scale = beats["scale"][rec, beat]
        centre = beats["centre"][rec, beat]
        q = np.ascontiguousarray(beats["inv2"][rec, beat] * (scale**2)[:, None])
        k0 = np.ascontiguousarray(centre / scale[:, None])
        slope = beats["drift"][rec, beat] / np.maximum(beats["n_samples"][rec, beat] - 1, 1)
        none = np.zeros(0)
        st = (scale, beats["j_point"][rec, beat], beats["t_centre"][rec, beat]) if c.st_offset else (none,) * 3
        n1, n2 = self._n1, self._n2
        if noise is None:
            noise = np.zeros((batch, n1 + n2), dtype=np.float32)
        out = np.empty((batch, c.length), dtype=np.float32)
        kernels.render_records(
            out, first, counts[rec, beat], beats["lo"][rec, beat], beats["level"][rec, beat], slope,
            np.ascontiguousarray(beats["amp"][rec, beat]), q, k0,
            noise[:, :n1], np.asarray(beats["noise1_sd"], dtype=np.float64), c.noise1_block,
            noise[:, n1 : n1 + n2], np.asarray(beats["noise2_sd"], dtype=np.float64), c.noise2_block,
            float(c.st_offset), *st,
        )
        return out

    def _fibrillation(self, d: dict) -> np.ndarray:
        """Atrial fibrillatory (f) waves: a 4-9 Hz oscillation with slowly wandering phase."""
        c = self.config
        t = np.arange(c.length) / c.fs
        u = d["uniforms"]
        freq = c.fibrillation_freq[0] + u[:, 1] * (c.fibrillation_freq[1] - c.fibrillation_freq[0])
        wobble = 0.5 * np.cumsum(d["noise"][:, self._n1 + self._n2 :], axis=1)
        knots = np.linspace(0, t[-1], wobble.shape[1])
        pos = t / knots[1]
        i0 = np.minimum(pos.astype(np.int64), wobble.shape[1] - 2)
        frac = pos - i0
        drift = wobble[:, i0] * (1 - frac) + wobble[:, i0 + 1] * frac
        phase = 2 * np.pi * freq[:, None] * t[None, :] + drift + 2 * np.pi * u[:, 2, None]
        return (c.fibrillation_amplitude * np.sin(phase)).astype(np.float32)

    def _r_waves(self, beats: dict) -> dict[str, list[np.ndarray]]:
        """True R-wave positions and amplitudes inside each window, and the window's beat lengths."""
        c = self.config
        offset = np.round(beats["centre"][..., 2] / beats["scale"]).astype(np.int64)
        pos = beats["starts"] + offset - beats["start"][:, None]
        ok = (beats["counts"] > 0) & (offset >= 0) & (offset < beats["n_samples"]) & (pos >= 0) & (pos < c.length)
        inside = beats["counts"] > 0
        return {
            "r_peaks": [pos[b][ok[b]] for b in range(len(pos))],
            "r_amplitudes": [beats["peak"][b, :, 2][ok[b]] for b in range(len(pos))],
            "beat_lengths": [beats["lengths"][b][inside[b]] for b in range(len(pos))],
        }

    def with_overrides(self, **changes: object) -> GaussianBeat:
        return GaussianBeat(dataclasses.replace(self.config, **changes))


def _plateau(tau: np.ndarray, start: np.ndarray, stop: np.ndarray) -> np.ndarray:
    """A smooth box from the S wave's centre to the end of the T wave (template seconds): the shifted ST-T.

    The beat table's end-of-beat values use this; the compiled renderer evaluates the same formula.
    """
    rise = 0.5 * (1 + np.tanh((tau - start) / kernels.ST_RISE))
    fall = 0.5 * (1 + np.tanh((tau - stop) / kernels.ST_FALL))
    return rise - fall
