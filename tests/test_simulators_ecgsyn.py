"""ECGSYN validation: against neurokit2's port, requested heart rate, HRV spectrum, R peaks, determinism."""

from __future__ import annotations

import neurokit2 as nk
import numpy as np
import pytest

from pretraining.simulators.ecgsyn import EcgSyn, EcgSynConfig
from pretraining.simulators.reference import exact_reference, neurokit_run, ours_on
from pretraining.simulators.rr import rr_length, rr_process
from simecg.registries import SIMULATORS

CLEAN = EcgSynConfig(noise_mu=0.0, noise_sd=0.0)


@pytest.mark.slow
@pytest.mark.parametrize("hr", [60, 80, 100])
def test_waveform_matches_the_exact_solution_of_neurokit2_equations(hr):
    z_nk, rrn = neurokit_run(hr, seed=1, seconds=4)
    exact = exact_reference(rrn, hr)
    assert np.corrcoef(ours_on(rrn, hr), exact)[0, 1] >= 0.9999


@pytest.mark.parametrize("hr", [60, 80])
def test_waveform_correlates_with_neurokit2_output_on_the_same_rr_series(hr):
    z_nk, rrn = neurokit_run(hr, seed=2)
    assert np.corrcoef(ours_on(rrn, hr), z_nk)[0, 1] >= 0.99


@pytest.mark.slow
def test_where_neurokit2_departs_it_departs_from_its_own_exact_solution():
    """At 100 bpm neurokit2's RK45 (rtol 1e-3, no max step) drifts in phase; our departure is exactly its error."""
    z_nk, rrn = neurokit_run(100, seed=1)
    exact = exact_reference(rrn, 100)
    ours = ours_on(rrn, 100)
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
