"""ECGSYN (McSharry, Clifford, Tarassenko & Smith 2003, IEEE TBME 50(3):289-294), batched.

The published model is a three-dimensional ODE: a point circles a limit cycle of radius 1 in
the (x, y) plane with angular speed ``w(t) = 2*pi / RR(t)`` (RR piecewise constant per beat,
drawn from the bimodal LF/HF tachogram, :mod:`pretraining.simulators.rr`), and the height
``z`` is pushed up or down as the phase ``theta`` passes the P, Q, R, S, T angles::

    dz/dt = -sum_i a_i * dtheta_i * exp(-dtheta_i**2 / (2 b_i**2)) - (z - z0(t)),
    z0(t) = A * sin(2*pi*f_resp*t)                      (respiratory baseline wander)

The C program and neurokit2 integrate it with Runge-Kutta, one ECG at a time. Here it is
solved *exactly* and for a whole batch at once, using two facts of the model:

1. Starting on the limit cycle (x, y) = (1, 0), the radius stays 1, so the phase is simply
   ``theta(t) = integral of w`` -- a cumulative sum over the per-sample angular speed.
2. Within a beat ``w`` is constant, so the forcing term is an exact time derivative:
   ``-a dtheta exp(-dtheta^2/2b^2) = (a b^2 / w) * d/dt exp(-dtheta^2/2b^2)``. Its integral over
   any step is the change of ``P(theta) = sum_i a_i b_i^2 exp(-dtheta_i^2/2b_i^2)`` divided by
   ``w``; the remaining equation ``dz/dt = -z + ...`` is linear and is applied as a one-pole
   recursive filter along time for the whole batch (blockwise weighted cumulative sums).

Everything else follows the C program (PhysioNet ECGSYN): PQRST angles/heights/widths of the
paper's Table 1 (-60, -15, 0, 15, 90 degrees), widths scaled by ``sqrt(hr/60)`` and angles by
``(hr/60)**e`` with exponents (1/4, 1/2, 0, 1/2, 0), beats whose RR is the tachogram's value at
beat onset (rounded to the internal sample grid), baseline wander at the HF (respiratory)
frequency with amplitude 0.005, downsampling from the internal rate, linear scaling of the
whole simulated span to [-0.4, 1.2] mV, then additive uniform noise in [-A, A].

The defaults are the study's draws per ECG (SimECG-M, authors' ``gen_sample.py``, config
"v02"): mean HR ~ N(80, 10) bpm; HR std = max(0, N(0, 1)) + 1 bpm; noise amplitude
max(0, N(1, 1)) mV; LF centre U(0,1)/5 Hz; HF centre U(0,1)/2 Hz; LF and HF widths U(0,1)/25 Hz;
LF/HF ratio U(0,1); 12 s simulated at 500 Hz (internal rate 500 Hz), first 10 s kept.

Known departures from neurokit2's port (the reference used in the tests), all configurable:
neurokit2 follows the MATLAB version, with P and T at -70 and 100 degrees, the T angle also
scaled by ``(hr/60)**0.25``, wander fixed at 0.25 Hz, an RR series drawn at 1 Hz and resampled,
and an adaptive RK45 solver. With those settings and the same per-sample RR series, this
implementation reproduces its waveform (tests/test_simulators_ecgsyn.py).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

from pretraining.simulators.base import as_indices, index_rngs
from pretraining.simulators.rr import rr_length, rr_process
from simecg.errors import ConfigError
from simecg.signal import FS, N_SAMPLES

WAVES = ("P", "Q", "R", "S", "T")


@dataclass(frozen=True)
class EcgSynConfig:
    """ECGSYN settings: per-ECG parameter distributions (paper's) and the fixed model constants."""

    # Per-ECG draws (the study's SimECG-M distributions).
    hr_mean_mu: float = 80.0  # mean heart rate ~ N(mu, sd) bpm
    hr_mean_sd: float = 10.0
    hr_mean_min: float = 30.0  # clip, so a rare extreme draw stays a heart rate
    hr_mean_max: float = 200.0
    hr_std_sd: float = 1.0  # HR std = max(0, N(0, sd)) + offset bpm
    hr_std_offset: float = 1.0
    noise_mu: float = 1.0  # uniform noise amplitude A = max(0, N(mu, sd)) mV (variant: 0 / 0.5)
    noise_sd: float = 1.0
    lf_max: float = 0.2  # LF centre ~ U(0, lf_max) Hz
    hf_max: float = 0.5  # HF centre ~ U(0, hf_max) Hz
    lf_std_max: float = 0.04  # LF width ~ U(0, lf_std_max) Hz
    hf_std_max: float = 0.04
    lf_hf_ratio_max: float = 1.0  # LF/HF power ratio ~ U(0, max)
    # Model constants (paper Table 1 / C program).
    theta_deg: tuple[float, ...] = (-60.0, -15.0, 0.0, 15.0, 90.0)
    a: tuple[float, ...] = (1.2, -5.0, 30.0, -7.5, 0.75)
    b: tuple[float, ...] = (0.25, 0.1, 0.1, 0.1, 0.4)
    theta_hr_exponent: tuple[float, ...] = (0.25, 0.5, 0.0, 0.5, 0.0)  # theta_i *= (hr/60)**e_i
    b_hr_exponent: float = 0.5  # b_i *= (hr/60)**e
    wander_amplitude: float = 0.005
    wander_freq: float | None = None  # None: the HF (respiratory) centre, as the C program
    z_initial: float = 0.04
    scale_min_mv: float = -0.4
    scale_max_mv: float = 1.2
    fs: int = FS
    internal_fs: int = 500  # the study ran ECGSYN with -s 500 -S 500
    simulated_s: float = 12.0
    length: int = N_SAMPLES
    rr_fs: float = 4.0  # sampling rate of the synthesised tachogram
    rr_window_s: float = 64.0  # span of the tachogram synthesis (frequency grid 1/window)

    def __post_init__(self) -> None:
        for key in ("theta_deg", "a", "b", "theta_hr_exponent"):
            if len(getattr(self, key)) != 5:
                raise ConfigError(f"ecgsyn.{key} needs 5 values (P, Q, R, S, T), got {getattr(self, key)}")
        if self.internal_fs % self.fs:
            raise ConfigError(f"ecgsyn.internal_fs ({self.internal_fs}) must be a multiple of fs ({self.fs})")
        if self.simulated_s * self.fs < self.length:
            raise ConfigError(
                f"ecgsyn.simulated_s ({self.simulated_s}) is shorter than length/fs ({self.length / self.fs})"
            )
        if self.rr_window_s < self.simulated_s + 5:
            raise ConfigError(f"ecgsyn.rr_window_s ({self.rr_window_s}) must exceed simulated_s + 5 s")
        if self.hr_mean_min <= 0:
            raise ConfigError("ecgsyn.hr_mean_min must be positive")


PARAMETERS = ("hr_mean", "hr_std", "noise", "lf", "hf", "lf_std", "hf_std", "lf_hf_ratio")


class EcgSyn:
    """Batched, exact-integration ECGSYN; see the module docstring for the model and its sources."""

    Config = EcgSynConfig
    name = "ecgsyn"

    def __init__(self, config: EcgSynConfig | None = None):
        self.config = config or EcgSynConfig()

    # -- parameters ------------------------------------------------------------------------
    def draw_parameters(self, rng: np.random.Generator) -> dict[str, float]:
        """One ECG's parameters, drawn in a fixed order from its own generator."""
        c = self.config
        z = rng.standard_normal(3)
        u = rng.random(5)
        return {
            "hr_mean": float(np.clip(c.hr_mean_mu + c.hr_mean_sd * z[0], c.hr_mean_min, c.hr_mean_max)),
            "hr_std": max(0.0, c.hr_std_sd * z[1]) + c.hr_std_offset,
            "noise": max(0.0, c.noise_mu + c.noise_sd * z[2]),
            "lf": u[0] * c.lf_max,
            "hf": u[1] * c.hf_max,
            "lf_std": u[2] * c.lf_std_max,
            "hf_std": u[3] * c.hf_std_max,
            "lf_hf_ratio": u[4] * c.lf_hf_ratio_max,
        }

    def simulate(self, indices: np.ndarray, seed: int) -> np.ndarray:
        """ECGs at ``indices`` as float32 ``(n, length)`` mV; ECG i depends only on (config, seed, i)."""
        return self.simulate_with_parameters(indices, seed)[0]

    def simulate_with_parameters(self, indices: np.ndarray, seed: int) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        c = self.config
        params, phases, noise = self._draw(as_indices(indices), seed)
        if not len(noise):
            return np.zeros((0, c.length), np.float32), params
        beat_rr, beat_counts = self._beats(params, phases)
        wander = params["hf"] if c.wander_freq is None else np.full(len(noise), c.wander_freq)
        z = integrate_z(beat_rr, beat_counts, params["hr_mean"], c, wander)
        z = z[:, :: c.internal_fs // c.fs][:, : int(round(c.simulated_s * c.fs))]
        ecg = scale_range(z, c.scale_min_mv, c.scale_max_mv, keep=c.length)
        ecg += params["noise"].astype(np.float32)[:, None] * (2 * noise - 1)
        return ecg, params

    def r_peaks(self, indices: np.ndarray, seed: int) -> list[np.ndarray]:
        """Output-sample positions of the R waves (phase crossing 0 mod 2*pi) within the kept window."""
        c = self.config
        params, phases, _ = self._draw(as_indices(indices), seed)
        beat_rr, beat_counts = self._beats(params, phases)
        rr_per_sample = np.repeat(beat_rr.ravel(), beat_counts.ravel()).reshape(len(beat_rr), -1)
        theta = phase_from_rr(rr_per_sample, c.internal_fs)
        turns = np.floor(theta / (2 * np.pi) + 1e-9)
        out = []
        for row in turns:
            internal = np.concatenate([[0], np.flatnonzero(np.diff(row) > 0) + 1])
            samples = np.round(internal * c.fs / c.internal_fs).astype(np.int64)
            out.append(samples[samples < c.length])
        return out

    def _draw(self, indices: np.ndarray, seed: int) -> tuple[dict[str, np.ndarray], np.ndarray, np.ndarray]:
        """Per-ECG parameters, tachogram phases and unit noise, each from the ECG's own generator."""
        c = self.config
        n_rr = rr_length(c.rr_window_s, c.rr_fs)
        rows, phases, noise = [], [], []
        for rng in index_rngs(indices, seed, "ecgsyn"):
            rows.append(self.draw_parameters(rng))
            phases.append(rng.uniform(0.0, 2 * np.pi, n_rr // 2 - 1))
            noise.append(rng.random(c.length, dtype=np.float32))
        params = {k: np.array([r[k] for r in rows], dtype=np.float64) for k in PARAMETERS}
        shape = (len(rows), c.length)
        return params, np.stack(phases) if rows else np.zeros((0, n_rr // 2 - 1)), (
            np.stack(noise) if rows else np.zeros(shape))

    def _beats(self, params: dict[str, np.ndarray], phases: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        c = self.config
        hr = params["hr_mean"]
        rr = rr_process(
            phases, 60.0 / hr, 60.0 * params["hr_std"] / hr**2,
            params["lf"], params["hf"], params["lf_std"], params["hf_std"], params["lf_hf_ratio"], c.rr_fs,
        )
        return beat_runs(rr, c.rr_fs, c.internal_fs, int(round(c.simulated_s * c.internal_fs)))

    def with_overrides(self, **changes: object) -> EcgSyn:
        return EcgSyn(dataclasses.replace(self.config, **changes))


def beat_runs(rr: np.ndarray, rr_fs: float, internal_fs: int, n_samples: int) -> tuple[np.ndarray, np.ndarray]:
    """Beats as runs of internal samples: RR of each beat and its sample count, ``(batch, n_beats)``.

    A beat starts at ``t_k`` with RR = tachogram(t_k) and the next starts at ``t_k + RR``,
    onsets rounded to the internal grid -- as the C program builds its piecewise-constant
    ``rrpc``. Counts of each row sum to ``n_samples`` (the last beat is cut).
    """
    batch = rr.shape[0]
    rows = np.arange(batch)
    t = np.zeros(batch)
    onsets, values = [], []
    horizon = n_samples / internal_fs
    while True:
        pos = t * rr_fs
        i0 = np.minimum(pos.astype(np.int64), rr.shape[1] - 2)
        frac = pos - i0
        value = rr[rows, i0] * (1 - frac) + rr[rows, i0 + 1] * frac
        onsets.append(np.minimum(np.round(t * internal_fs).astype(np.int64), n_samples))
        values.append(value)
        if np.all(t >= horizon):
            break
        t = t + value
    onsets_arr = np.stack(onsets + [np.full(batch, n_samples)], axis=1)  # (batch, n_beats + 1)
    return np.stack(values, axis=1), np.diff(onsets_arr, axis=1)


def runs_from_per_sample(rr_per_sample: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Inverse of expanding runs: ``(values, counts)`` of one row of a per-sample RR series."""
    row = np.asarray(rr_per_sample, dtype=np.float64)
    change = np.flatnonzero(np.diff(row) != 0) + 1
    starts = np.concatenate([[0], change])
    counts = np.diff(np.concatenate([starts, [len(row)]]))
    return row[starts][None, :], counts[None, :]


TABLE_SIZE = 1024  # phase grid of the wave-potential lookup table (power of two)
CHUNK = 32  # ECGs integrated together (keeps the lookup tables in cache)


def integrate_z(
    beat_rr: np.ndarray, beat_counts: np.ndarray, hr_mean: np.ndarray, config: EcgSynConfig, wander_freq: np.ndarray
) -> np.ndarray:
    """Exact solution of the ECGSYN z-equation on the internal grid, ``(batch, n_samples)``.

    Beats are runs of ``beat_counts`` internal samples with constant RR ``beat_rr`` (both
    ``(batch, n_beats)``, counts summing to n_samples per row); ``hr_mean`` scales the wave angles
    and widths as the published model does. The phase is continuous across beats, as in the ODE.
    The potential ``P(theta)`` is read from a per-ECG table over one cycle (linear interpolation,
    relative error ~1e-4), much cheaper than evaluating five Gaussians per sample.
    """
    out = [
        _integrate_chunk(beat_rr[i : i + CHUNK], beat_counts[i : i + CHUNK], np.asarray(hr_mean)[i : i + CHUNK],
                         config, np.asarray(wander_freq)[i : i + CHUNK])
        for i in range(0, len(beat_rr), CHUNK)
    ]
    return np.concatenate(out) if out else np.zeros((0, int(beat_counts.sum(axis=1).max(initial=0))))


def _integrate_chunk(
    beat_rr: np.ndarray, counts: np.ndarray, hr_mean: np.ndarray, c: EcgSynConfig, wander_freq: np.ndarray
) -> np.ndarray:
    h = 1.0 / c.internal_fs
    batch = len(beat_rr)
    n = int(counts[0].sum())
    m = TABLE_SIZE
    # Table position of the phase, in float32: continuous across beats, linear within a beat.
    dturn = h / beat_rr  # turns per sample in each beat
    turn0 = np.zeros_like(dturn)
    turn0[:, 1:] = np.cumsum(dturn * counts, axis=1)[:, :-1]
    turn0 -= np.floor(turn0)
    flat_counts = counts.ravel()
    run_start = np.cumsum(counts, axis=1) - counts  # sample index of each beat's start in its row
    pos = np.repeat(((turn0 - run_start * dturn) * m).ravel().astype(np.float32), flat_counts).reshape(batch, n)
    pos += _arange32(n) * np.repeat((dturn * m).ravel().astype(np.float32), flat_counts).reshape(batch, n)
    cell = np.floor(pos)
    pos -= cell  # now the interpolation weight
    index = cell.astype(np.int32)
    index &= m - 1
    index += (np.arange(batch, dtype=np.int32) * (m + 1))[:, None]
    # Wave potential P(theta) from a per-ECG table over one cycle.
    hrfact = (np.asarray(hr_mean, dtype=np.float64) / 60.0)[:, None]
    ti = np.deg2rad(np.asarray(c.theta_deg))[None, :] * hrfact ** np.asarray(c.theta_hr_exponent)[None, :]
    bi = np.asarray(c.b)[None, :] * hrfact**c.b_hr_exponent
    table = wave_potential(_table_grid(batch), ti, bi, np.asarray(c.a)[None, :]).ravel()
    potential = table[index]
    step = table[index + 1]
    step -= potential
    step *= pos
    potential += step
    # dz = dP / w (exact within a beat) + damping toward the respiratory baseline.
    rr_scaled = np.repeat((beat_rr * (np.exp(-h / 2) / (2 * np.pi))).ravel().astype(np.float32), flat_counts)
    omega = (2 * np.pi * h * np.asarray(wander_freq, dtype=np.float64)).astype(np.float32)[:, None]
    drive = np.sin(omega * (_arange32(n - 1) + np.float32(0.5))[None, :])
    drive *= np.float32(c.wander_amplitude * (1 - np.exp(-h)))
    drive += np.diff(potential, axis=1) * rr_scaled.reshape(batch, n)[:, :-1]
    return _first_order(drive, np.exp(-h), c.z_initial)


_GRIDS: dict[int, np.ndarray] = {}
_ARANGES: dict[int, np.ndarray] = {}


def _arange32(n: int) -> np.ndarray:
    if n not in _ARANGES:
        if len(_ARANGES) > 8:
            _ARANGES.clear()
        _ARANGES[n] = np.arange(n, dtype=np.float32)
    return _ARANGES[n]


def _table_grid(batch: int) -> np.ndarray:
    """Phases of the table cells, (batch, TABLE_SIZE + 1); the last cell repeats the first (periodic)."""
    if batch not in _GRIDS:
        if len(_GRIDS) > 8:
            _GRIDS.clear()
        grid = (np.arange(TABLE_SIZE + 1) % TABLE_SIZE * (2 * np.pi / TABLE_SIZE)).astype(np.float32)
        _GRIDS[batch] = np.broadcast_to(grid, (batch, TABLE_SIZE + 1))
    return _GRIDS[batch]


BLOCK = 500  # samples per block of the exact first-order recursion


def _first_order(drive: np.ndarray, decay: float, z0: float) -> np.ndarray:
    """``z[0] = z0``, ``z[k+1] = decay * z[k] + drive[k]``, exactly, as float32 ``(batch, n + 1)``.

    Within blocks of BLOCK samples, ``z[s+j+1] = decay^(j+1) * (z[s] + sum_{i<=j} decay^-(i+1) drive[s+i])``:
    a weighted cumulative sum (weights stay within e^1, safe in float32); block starts are
    chained in a short loop. This is the same recursion as ``scipy.signal.lfilter``, faster.
    """
    batch, n = drive.shape
    blocks = -(-n // BLOCK)
    padded = np.zeros((batch, blocks * BLOCK), dtype=np.float32)
    padded[:, :n] = drive
    j = np.arange(1, BLOCK + 1)
    grow = (decay ** -j).astype(np.float32)
    shrink = (decay**j).astype(np.float32)
    sums = padded.reshape(batch, blocks, BLOCK)
    sums *= grow
    np.cumsum(sums, axis=2, out=sums)
    start = np.empty((batch, blocks), dtype=np.float32)
    level = np.full(batch, z0, dtype=np.float32)
    for b in range(blocks):
        start[:, b] = level
        level = shrink[-1] * (level + sums[:, b, -1])
    sums += start[:, :, None]
    sums *= shrink
    out = np.empty((batch, n + 1), dtype=np.float32)
    out[:, 0] = z0
    out[:, 1:] = sums.reshape(batch, -1)[:, :n]
    return out


def phase_from_rr(rr_per_sample: np.ndarray, internal_fs: float) -> np.ndarray:
    """Limit-cycle phase: ``theta[0] = 0``, ``theta[k] = sum_{j<k} 2*pi / RR_j * h`` (radius stays 1)."""
    theta = np.zeros(rr_per_sample.shape)
    np.cumsum((2 * np.pi / internal_fs) / rr_per_sample[:, :-1], axis=1, out=theta[:, 1:])
    return theta


def wave_potential(theta: np.ndarray, ti: np.ndarray, bi: np.ndarray, ai: np.ndarray) -> np.ndarray:
    """``P(theta) = sum_i a_i b_i^2 exp(-dtheta_i^2 / 2 b_i^2)`` with dtheta wrapped to [-pi, pi), float32.

    ``theta`` is ``(batch, n)`` in [0, 2*pi); ``ti``, ``bi``, ``ai`` are ``(batch or 1, 5)``.
    """
    theta = np.asarray(theta, dtype=np.float32)
    out = np.zeros(theta.shape, dtype=np.float32)
    d = np.empty(theta.shape, dtype=np.float32)
    two_pi = np.float32(2 * np.pi)
    for i in range(ti.shape[1]):
        np.subtract(theta, np.mod(ti[:, i : i + 1], 2 * np.pi).astype(np.float32), out=d)  # in (-2pi, 2pi)
        d -= two_pi * (d >= np.pi)
        d += two_pi * (d < -np.pi)
        d *= d
        d *= (-0.5 / bi[:, i : i + 1] ** 2).astype(np.float32)
        np.exp(d, out=d)
        d *= (ai[:, i : i + 1] * bi[:, i : i + 1] ** 2).astype(np.float32)
        out += d
    return out


def scale_range(z: np.ndarray, low: float, high: float, keep: int | None = None) -> np.ndarray:
    """Map each row linearly onto [low, high] (the C program's final scaling); return the first ``keep``."""
    zmin = z.min(axis=1, keepdims=True)
    span = np.maximum(z.max(axis=1, keepdims=True) - zmin, 1e-12)
    gain = ((high - low) / span).astype(z.dtype)
    out = z[:, :keep] - zmin
    out *= gain
    out += z.dtype.type(low)
    return out
