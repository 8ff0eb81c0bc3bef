"""ECGSYN validation: against neurokit2's port, requested heart rate, HRV spectrum, R peaks, determinism."""

from __future__ import annotations

import importlib

import neurokit2 as nk
import numpy as np
import pytest
import scipy.integrate

from pretraining.simulators.ecgsyn import EcgSyn, EcgSynConfig, integrate_z, runs_from_per_sample
from pretraining.simulators.rr import rr_length, rr_process
from simecg.registries import SIMULATORS

nk_sim = importlib.import_module("neurokit2.ecg.ecg_simulate")

# neurokit2 follows the MATLAB ECGSYN: P/T at -70/100 degrees, T angle scaled by (hr/60)^0.25,
# wander at a fixed 0.25 Hz.
NK_CONFIG = EcgSynConfig(theta_deg=(-70, -15, 0, 15, 100), theta_hr_exponent=(0.25, 0.5, 0, 0.5, 0.25))
CLEAN = EcgSynConfig(noise_mu=0.0, noise_sd=0.0)


def _neurokit_run(hr: float, seed: int, sfint: int = 500, seconds: float = 10.0):
    """neurokit2's own ECGSYN run and the per-sample RR series it integrated (rebuilt from its RNG)."""
    n_beats = int(round(seconds * hr / 60))
    _, results = nk_sim._ecg_simulate_ecgsyn(
        sfecg=sfint, N=n_beats, hrmean=hr, hrstd=2, sfint=sfint, rng=np.random.default_rng(seed)
    )
    rr0 = nk_sim._ecg_simulate_rrprocess(
        0.1, 0.25, 0.01, 0.01, 0.5, hr, 2, 1, 2 ** np.ceil(np.log2(n_beats * 60 / hr)), np.random.default_rng(seed)
    )
    rr = nk.signal_resample(rr0, sampling_rate=1, desired_sampling_rate=sfint)
    rrn, t_ecg, i, end = np.zeros(len(rr)), 0.0, 0, 0
    while i < len(rr):  # neurokit2's piecewise-constant RR construction
        t_ecg += rr[i]
        end = int(np.round(t_ecg * sfint))
        rrn[i:end] = rr[i]
        i = end
    z_nk = results[0].y[2]
    rrn = np.concatenate([rrn, np.full(max(0, len(z_nk) - len(rrn)), rrn[-1])])[: len(z_nk)]
    return z_nk, rrn


def _tight_solution(rrn: np.ndarray, hr: float, sfint: int = 500) -> np.ndarray:
    """neurokit2's own derivative function integrated with tight tolerances (the model's true solution)."""
    f = np.sqrt(hr / 60)
    ti = np.deg2rad([-70, -15, 0, 15, 100]) * np.array([np.sqrt(f), f, 1, f, np.sqrt(f)])
    ai, bi = np.array([1.2, -5, 30, -7.5, 0.75]), np.array([0.25, 0.1, 0.1, 0.1, 0.4]) * f
    n, dt = len(rrn), 1 / sfint
    sol = scipy.integrate.solve_ivp(
        lambda t, x: nk_sim._ecg_simulate_derivsecgsyn(t, x, rrn, ti, sfint, ai, bi),
        [0, (n - 1) * dt], [1, 0, 0.04], t_eval=np.arange(n) * dt, rtol=1e-8, atol=1e-10, max_step=dt,
    )
    return sol.y[2]


def _ours(rrn: np.ndarray, hr: float) -> np.ndarray:
    values, counts = runs_from_per_sample(rrn)
    return integrate_z(values, counts, np.array([hr]), NK_CONFIG, np.array([0.25]))[0]


@pytest.mark.slow
@pytest.mark.parametrize("hr", [60, 80, 100])
def test_waveform_matches_the_exact_solution_of_neurokit2_equations(hr):
    z_nk, rrn = _neurokit_run(hr, seed=1, seconds=4)
    exact = _tight_solution(rrn, hr)
    assert np.corrcoef(_ours(rrn, hr), exact)[0, 1] >= 0.9999


@pytest.mark.parametrize("hr", [60, 80])
def test_waveform_correlates_with_neurokit2_output_on_the_same_rr_series(hr):
    z_nk, rrn = _neurokit_run(hr, seed=2)
    assert np.corrcoef(_ours(rrn, hr), z_nk)[0, 1] >= 0.99


@pytest.mark.slow
def test_where_neurokit2_departs_it_departs_from_its_own_exact_solution():
    """At 100 bpm neurokit2's RK45 (rtol 1e-3, no max step) drifts in phase; our departure is exactly its error."""
    z_nk, rrn = _neurokit_run(100, seed=1)
    exact = _tight_solution(rrn, 100)
    ours = _ours(rrn, 100)
    assert np.corrcoef(ours, exact)[0, 1] >= 0.9999
    assert abs(np.corrcoef(ours, z_nk)[0, 1] - np.corrcoef(exact, z_nk)[0, 1]) < 1e-3


def test_requested_mean_heart_rate_is_met_within_2_bpm_over_100_ecgs():
    sim = EcgSyn(CLEAN)
    indices = np.arange(100)
    peaks = sim.r_peaks(indices, seed=5)
    signals, params = sim.simulate_with_parameters(indices, seed=5)
    measured = []
    for x, expected in zip(signals, peaks, strict=True):
        found = nk.ecg_peaks(x, sampling_rate=500)[1]["ECG_R_Peaks"]
        measured.append(60 * 500 / np.mean(np.diff(found)))
        assert len(expected) > 5
    error = np.array(measured) - params["hr_mean"]
    assert abs(error.mean()) < 2.0
    assert np.median(np.abs(error)) < 3.0


def test_r_peaks_found_by_neurokit2_with_99_percent_sensitivity():
    sim = EcgSyn(CLEAN)
    indices = np.arange(60)
    signals = sim.simulate(indices, seed=11)
    truth = sim.r_peaks(indices, seed=11)
    hits = total = 0
    for x, expected in zip(signals, truth, strict=True):
        found = nk.ecg_peaks(x, sampling_rate=500)[1]["ECG_R_Peaks"]
        expected = expected[(expected > 50) & (expected < len(x) - 50)]  # skip edge beats
        total += len(expected)
        hits += sum(np.min(np.abs(found - e)) <= 25 for e in expected)  # within 50 ms
    assert total > 500
    assert hits / total >= 0.99


def test_hrv_spectrum_peaks_where_configured():
    fs, n = 4.0, rr_length(1024, 4.0)
    rng = np.random.default_rng(0)
    k = 16
    ones = np.ones(k)
    rr = rr_process(rng.uniform(0, 2 * np.pi, (k, n // 2 - 1)), 0.75 * ones, 0.03 * ones,
                    0.08 * ones, 0.3 * ones, 0.01 * ones, 0.01 * ones, 1.0 * ones, fs)
    assert np.allclose(rr.mean(axis=1), 0.75) and np.allclose(rr.std(axis=1, ddof=1), 0.03)
    power = (np.abs(np.fft.rfft(rr - rr.mean(axis=1, keepdims=True), axis=1)) ** 2).mean(axis=0)
    freqs = np.fft.rfftfreq(n, 1 / fs)
    low = freqs < 0.19
    assert abs(freqs[low][np.argmax(power[low])] - 0.08) <= 0.01
    assert abs(freqs[~low][np.argmax(power[~low])] - 0.3) <= 0.01
    # equal LF/HF ratio: the two bands carry similar power
    lf_power, hf_power = power[(freqs > 0.04) & (freqs < 0.15)].sum(), power[(freqs > 0.2) & (freqs < 0.4)].sum()
    assert 0.7 < lf_power / hf_power < 1.4


def test_ecg_depends_only_on_seed_and_index_not_batching():
    sim = SIMULATORS.get("ecgsyn")()
    whole = sim.simulate(np.arange(12), seed=4)
    assert whole.dtype == np.float32 and whole.shape == (12, 5000)
    parts = np.concatenate([sim.simulate(np.arange(0, 5), 4), sim.simulate(np.arange(5, 12), 4)])
    single = sim.simulate(np.array([7]), 4)
    reordered = sim.simulate(np.array([11, 3]), 4)
    np.testing.assert_array_equal(whole, parts)
    np.testing.assert_array_equal(whole[7], single[0])
    np.testing.assert_array_equal(whole[[11, 3]], reordered)
    assert not np.array_equal(sim.simulate(np.array([7]), 5), single)


def test_clean_signal_spans_the_published_millivolt_range_and_noise_adds_uniform_amplitude():
    clean = EcgSyn(CLEAN).simulate(np.arange(5), seed=0)
    assert np.allclose(clean.min(axis=1), -0.4, atol=0.05) and np.allclose(clean.max(axis=1), 1.2, atol=0.05)
    noisy, params = EcgSyn().simulate_with_parameters(np.arange(5), seed=0)
    residual = noisy - clean
    assert np.all(np.abs(residual).max(axis=1) <= params["noise"] + 1e-5)


def test_config_validates_its_values():
    from simecg.errors import ConfigError

    with pytest.raises(ConfigError, match="internal_fs"):
        EcgSynConfig(internal_fs=750)
    with pytest.raises(ConfigError, match="5 values"):
        EcgSynConfig(a=(1.0, 2.0))
