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

Speed: only the random draws run per ECG (one counter-based generator each, white-noise
augmentations drawn in one call); beats are then laid out as (beats x samples) grids, evaluated
in float32 with the block noises added while in cache, and the augmentations are planned for the
whole batch at once.
"""

from __future__ import annotations

import bisect
import dataclasses
import math
from dataclasses import dataclass

import numpy as np
from scipy.stats import poisson

from pretraining.simulators.base import as_indices, index_rngs
from simecg.errors import ConfigError
from simecg.registries import SIMULATORS
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
ROWS_PER_CHUNK = 512  # beats evaluated per grid (bounds memory, keeps arrays in cache)
BLOCK_RECORDS = 64  # records per step when adding the block noises (stays in cache)


@SIMULATORS.register("gaussian")
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
        return self.simulate_with_parameters(indices, seed)[0]

    def simulate_with_parameters(self, indices: np.ndarray, seed: int) -> tuple[np.ndarray, dict]:
        """ECGs plus record-level parameters and per-record lists ``r_peaks``, ``r_amplitudes``, ``rr``."""
        c = self.config
        d = self._draw(as_indices(indices), seed)
        batch = len(d["rec"])
        if batch == 0:
            return np.zeros((0, c.length), np.float32), {k: np.zeros(0) for k in PARAMETERS}
        beats = self._beats(d)
        n1, n2 = self._n1, self._n2
        noise = d["noise"]
        sample = np.arange(c.length)
        blocks = ((noise[:, :n1] * beats["noise1_sd"].astype(np.float32)[:, None], sample // c.noise1_block),
                  (noise[:, n1 : n1 + n2] * beats["noise2_sd"].astype(np.float32)[:, None], sample // c.noise2_block))
        x = self._render(beats, blocks)
        if c.fibrillation_amplitude > 0:
            x += self._fibrillation(d)
        plan = self._plan_augments(d)
        if plan is not None:
            _apply_augments(x, plan, d["aug_noise"], c.fs)
        params = {k: np.asarray(beats[k], dtype=np.float64) for k in PARAMETERS}
        params["n_augment"] = np.zeros(batch) if plan is None else plan["n"].astype(np.float64)
        params.update(self._r_waves(beats))
        return x, params

    # -- random draws: the only per-ECG Python loop --------------------------------------------------
    def _draw(self, indices: np.ndarray, seed: int) -> dict:
        c = self.config
        k_max, batch = self._k_max, len(indices)
        n_u = 4 + MAX_AUGMENTS * AUG_U
        normals = np.empty((batch, N_RECORD + k_max))
        rec, jitter = normals[:, :N_RECORD], normals[:, N_RECORD:]
        uniforms = np.empty((batch, n_u))
        noise = np.empty((batch, self._n1 + self._n2 + 8), dtype=np.float32)
        pvc_u = np.ones((batch, k_max))
        shapes, aug_noise = [], []
        needed = c.assemble_factor * c.length
        lo_len, hi_len = c.beat_length_min, c.beat_length_max
        base, sd_rec, sd_beat, fs = c.beat_length, c.beat_length_sd_record, c.beat_length_sd_beat, c.fs
        cdf = self._poisson_cdf
        seg_lo, seg_span, length = c.augment_segment[0], c.augment_segment[1] - c.augment_segment[0], c.length
        for b, rng in enumerate(index_rngs(indices, seed, "gaussian")):
            z = normals[b]
            rng.standard_normal(out=z)
            lengths = z[N_RECORD:] * sd_beat
            lengths += base + sd_rec * z[15]
            np.clip(lengths, lo_len, hi_len, out=lengths)
            lengths *= fs
            ends = np.ceil(lengths, out=lengths).cumsum()
            n_draw = min(int(ends.searchsorted(needed, "right")) + 2, k_max)
            shapes.append(rng.standard_normal((n_draw, N_BEAT)))
            u = uniforms[b]
            rng.random(out=u)
            rng.standard_normal(dtype=np.float32, out=noise[b])
            if c.pvc_probability > 0:
                rng.random(out=pvc_u[b])
            if cdf is not None:
                # white-noise augmentations draw their samples last, in slot order: one call for all
                n_aug = bisect.bisect_right(cdf, u[3])
                total = 0
                for a in range(4, 4 + min(n_aug, MAX_AUGMENTS) * AUG_U, AUG_U):
                    if u[a] * 4 >= 3:
                        total += max(1, int((seg_lo + u[a + 2] * seg_span) * length)) if u[a + 1] < 0.5 else length
                if total:
                    aug_noise.append(rng.standard_normal(total, dtype=np.float32))
        k = max((len(s) for s in shapes), default=0)
        shape_arr = np.zeros((batch, k, N_BEAT))
        for b, s in enumerate(shapes):
            shape_arr[b, : len(s)] = s
        return {"rec": rec, "jitter": jitter[:, :k], "shapes": shape_arr, "uniforms": uniforms, "noise": noise,
                "pvc_u": pvc_u[:, :k], "aug_noise": np.concatenate(aug_noise) if aug_noise else np.zeros(0, np.float32)}

    def _lengths(self, rec_z: np.ndarray | float, jitter: np.ndarray) -> np.ndarray:
        c = self.config
        rec_length = c.beat_length + c.beat_length_sd_record * np.asarray(rec_z)
        if np.ndim(rec_length):
            rec_length = rec_length[:, None]
        return np.clip(rec_length + c.beat_length_sd_beat * jitter, c.beat_length_min, c.beat_length_max)

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
        lengths = self._lengths(rec[:, 15], d["jitter"])
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

    def _render(self, beats: dict, blocks: tuple[tuple[np.ndarray, np.ndarray], ...] = ()) -> np.ndarray:
        """Evaluate every beat inside each record's window on (beats x samples) grids, in float32.

        The beats of the whole batch are sorted by their in-window length and cut into grids of
        ``ROWS_PER_CHUNK`` rows, so a grid's width fits its rows (almost no padding); each row is
        then copied to its place in its record. Waves are evaluated in sample units,
        ``amp * exp(q * (k - k0)**2)`` with ``q = inv2 * scale**2`` and ``k0 = centre / scale``: the
        sample index k is exact in float32, so narrow R waves lose less to rounding than on a
        float32 template-time axis (max 1.4e-4 vs 2.7e-4 mV from a float64 evaluation, 200 ECGs).
        ``blocks`` are piecewise-constant noises, (per-record block values, block of each sample),
        added afterwards a few records at a time.
        """
        c = self.config
        counts = beats["counts"]
        batch = counts.shape[0]
        rec, beat = np.nonzero(counts > 0)  # every beat in a window, record by record, in time order
        n_all = counts[rec, beat]
        dest_all = np.cumsum(n_all) - n_all  # each record's window holds exactly `length` samples
        by_length = np.argsort(n_all, kind="stable")
        rec, beat, n, dest = rec[by_length], beat[by_length], n_all[by_length], dest_all[by_length]
        lo = beats["lo"][rec, beat]
        scale = beats["scale"][rec, beat][:, None]
        f32 = np.float32
        amp = beats["amp"][rec, beat].astype(f32)
        q = (beats["inv2"][rec, beat] * scale**2).astype(f32)
        offset = (lo[:, None] - beats["centre"][rec, beat] / scale).astype(f32)  # k - k0 = col + offset
        level = beats["level"][rec, beat].astype(f32)
        slope = (beats["drift"][rec, beat] / np.maximum(beats["n_samples"][rec, beat] - 1, 1)).astype(f32)
        if c.st_offset:
            tau_step = scale[:, 0].astype(f32)
            j_point, t_centre = beats["j_point"][rec, beat].astype(f32), beats["t_centre"][rec, beat].astype(f32)
        out = np.empty((batch, c.length), dtype=f32)
        flat = out.reshape(-1)
        cols_f = np.arange(int(n.max()) + 1, dtype=f32)
        for r0 in range(0, len(n), ROWS_PER_CHUNK):
            rows = slice(r0, r0 + ROWS_PER_CHUNK)
            width = int(n[rows].max())
            k = lo[rows, None].astype(f32) + cols_f[None, :width]
            x = slope[rows, None] * k
            x += level[rows, None]
            buf = np.empty_like(x)
            for j in range(5):
                np.add(cols_f[:width], offset[rows, j, None], out=buf)
                np.multiply(buf, buf, out=buf)
                buf *= q[rows, j, None]
                np.exp(buf, out=buf)
                buf *= amp[rows, j, None]
                x += buf
            if c.st_offset:
                tau = k * tau_step[rows, None]
                x += f32(c.st_offset) * _plateau(tau, j_point[rows, None], t_centre[rows, None])
            for r, d, m in zip(range(x.shape[0]), dest[rows].tolist(), n[rows].tolist(), strict=True):
                flat[d : d + m] = x[r, :m]
        for b0 in range(0, batch, BLOCK_RECORDS):
            part = out[b0 : b0 + BLOCK_RECORDS]
            for values, block_of in blocks:
                part += np.take(values[b0 : b0 + BLOCK_RECORDS], block_of, axis=1)
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
    """A smooth box from the S wave's centre to the end of the T wave (template seconds): the shifted ST-T."""
    rise = 0.5 * (1 + np.tanh((tau - start) / 0.015))
    fall = 0.5 * (1 + np.tanh((tau - stop) / 0.03))
    return rise - fall


def _apply_augments(x: np.ndarray, plan: dict, noise: np.ndarray, fs: int) -> None:
    """Apply every record's planned augmentations in slot order, in place (white noise from ``noise``)."""
    ramp = np.arange(x.shape[1], dtype=np.float32)
    used = 0
    rows = np.flatnonzero(plan["n"])
    fields = [plan[key][rows].tolist() for key in ("kind", "lo", "seg", "value", "freq", "phase")]
    counts = plan["n"][rows].tolist()
    for r, n, kinds, los, segs, values, freqs, phases in zip(rows.tolist(), counts, *fields, strict=True):
        row = x[r]
        for a in range(n):
            kind, lo, seg, value = kinds[a], los[a], segs[a], np.float32(values[a])
            part = row[lo : lo + seg]
            if kind == 0:
                part *= value
            elif kind == 3:
                part += value * noise[used : used + seg]
                used += seg
            else:
                wave = ramp[:seg] * np.float32(2 * np.pi * freqs[a] / fs)
                wave += np.float32(phases[a])
                np.sin(wave, out=wave)
                if kind == 2:
                    np.sign(wave, out=wave)
                wave *= value
                part += wave
