"""neurokit2's ECGSYN as the reference: the same RR series and parameters through both implementations.

neurokit2 (``ecg_simulate(method="ecgsyn")``) is a Python port of the MATLAB ECGSYN. To compare
waveforms, its run is repeated with the same random generator to recover the per-sample RR
series it integrated; our exact integrator then runs on that series with neurokit2's settings
(P/T at -70/100 degrees, T angle scaled with heart rate, wander at 0.25 Hz). Where the two differ,
:func:`exact_reference` integrates neurokit2's own derivative function with tight tolerances,
which separates a model difference from neurokit2's solver error (RK45, rtol 1e-3, no max step).
"""

from __future__ import annotations

import importlib

import numpy as np

from pretraining.simulators.ecgsyn import EcgSynConfig, integrate_z, runs_from_per_sample

NEUROKIT_CONFIG = EcgSynConfig(theta_deg=(-70, -15, 0, 15, 100), theta_hr_exponent=(0.25, 0.5, 0, 0.5, 0.25))
NEUROKIT_WAVES = {"ti": (-70, -15, 0, 15, 100), "ai": (1.2, -5, 30, -7.5, 0.75), "bi": (0.25, 0.1, 0.1, 0.1, 0.4)}


def _nk_module():
    return importlib.import_module("neurokit2.ecg.ecg_simulate")


def neurokit_run(hr: float, seed: int, seconds: float = 10.0, fs: int = 500, hr_std: float = 2.0):
    """neurokit2's ECGSYN z trajectory and the per-sample RR series it used (same generator replayed)."""
    import neurokit2 as nk

    mod = _nk_module()
    n_beats = int(round(seconds * hr / 60))
    _, results = mod._ecg_simulate_ecgsyn(
        sfecg=fs, N=n_beats, hrmean=hr, hrstd=hr_std, sfint=fs, rng=np.random.default_rng(seed)
    )
    n_rr = 2 ** np.ceil(np.log2(n_beats * 60 / hr))
    rr0 = mod._ecg_simulate_rrprocess(0.1, 0.25, 0.01, 0.01, 0.5, hr, hr_std, 1, n_rr, np.random.default_rng(seed))
    rr = nk.signal_resample(rr0, sampling_rate=1, desired_sampling_rate=fs)
    rrn, t_ecg, i, end = np.zeros(len(rr)), 0.0, 0, 0
    while i < len(rr):  # neurokit2's piecewise-constant RR construction
        t_ecg += rr[i]
        end = int(np.round(t_ecg * fs))
        rrn[i:end] = rr[i]
        i = end
    z_nk = results[0].y[2]
    rrn = np.concatenate([rrn, np.full(max(0, len(z_nk) - len(rrn)), rrn[-1])])[: len(z_nk)]
    return z_nk, rrn


def ours_on(rr_per_sample: np.ndarray, hr: float, config: EcgSynConfig = NEUROKIT_CONFIG) -> np.ndarray:
    """Our exact integration of the z-equation on a given per-sample RR series (neurokit2 settings)."""
    values, counts = runs_from_per_sample(rr_per_sample)
    return integrate_z(values, counts, np.array([hr]), config, np.array([0.25]))[0].astype(np.float64)


def exact_reference(rr_per_sample: np.ndarray, hr: float, fs: int = 500) -> np.ndarray:
    """neurokit2's own derivative function integrated with rtol 1e-8 and one-sample max step."""
    import scipy.integrate

    mod = _nk_module()
    f = np.sqrt(hr / 60)
    ti = np.deg2rad(NEUROKIT_WAVES["ti"]) * np.array([np.sqrt(f), f, 1, f, np.sqrt(f)])
    ai, bi = np.array(NEUROKIT_WAVES["ai"]), np.array(NEUROKIT_WAVES["bi"]) * f
    n, dt = len(rr_per_sample), 1 / fs
    sol = scipy.integrate.solve_ivp(
        lambda t, x: mod._ecg_simulate_derivsecgsyn(t, x, rr_per_sample, ti, fs, ai, bi),
        [0, (n - 1) * dt], [1, 0, 0.04], t_eval=np.arange(n) * dt, rtol=1e-8, atol=1e-10, max_step=dt,
    )
    return sol.y[2]


def correlation(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.corrcoef(a, b)[0, 1])
