"""Gaussian-composition beat simulator: measured R amplitudes and beat lengths follow the config."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from scipy.signal import find_peaks
from scipy.stats import kstest, norm

from pretraining.simulators import kernels
from pretraining.simulators.gaussian import GaussianBeat, GaussianBeatConfig
from simecg.errors import ConfigError
from simecg.registries import SIMULATORS

# Only P, R, T waves, no drift, noise or augmentation, and P's per-beat jitter small enough that
# its tail never reaches R (the paper's 0.02 s brings P within two widths of R in ~1% of beats):
# R samples are readable directly.
QUIET = GaussianBeatConfig(
    peak=(0.3, 0.0, 1.5, 0.0, 0.45), peak_sd_record=(0.05, 0.0, 0.75, 0.0, 0.05),
    peak_sd_beat=(0.02, 0.0, 0.25, 0.0, 0.02), width_sd_record=(0.005, 0.0, 0.001, 0.0, 0.005),
    width_sd_beat=(0.001, 0.0, 0.0002, 0.0, 0.001), centre_sd_record=(0.02, 0.0, 0.0, 0.0, 0.02),
    centre_sd_beat=(0.005, 0.0, 0.0045, 0.0, 0.015),
    drift_scale=0.0, drift_scale_sd_record=0.0, drift_scale_sd_beat=0.0, noise1_sd=0.0, noise1_sd_record=0.0,
    noise2_sd=0.0, noise2_sd_record=0.0, augment_rate=0.0,
)


def test_ecg_depends_only_on_seed_and_index_not_batching():
    sim = SIMULATORS.get("gaussian")()
    whole = sim.simulate(np.arange(10), seed=3)
    assert whole.dtype == np.float32 and whole.shape == (10, 5000) and np.isfinite(whole).all()
    np.testing.assert_array_equal(whole[[9, 2]], sim.simulate(np.array([9, 2]), seed=3))
    np.testing.assert_array_equal(whole[4:6], sim.simulate(np.arange(4, 6), seed=3))
    assert not np.array_equal(whole[:2], sim.simulate(np.arange(2), seed=4))


def test_measured_r_amplitudes_follow_the_configured_distribution():
    sim = GaussianBeat(QUIET)
    x, params = sim.simulate_with_parameters(np.arange(300), seed=0)
    per_record = [x[k, p] for k, p in enumerate(params["r_peaks"])]
    record_means = np.array([v.mean() for v in per_record])
    within_sd = np.mean([v.std() for v in per_record if len(v) > 3])
    # base 1.5, per-record sd 0.75, per-beat sd 0.25 (PROTOCOL); P/T tails add ~0.01
    assert abs(np.median(record_means) - 1.5) < 0.12
    assert 0.6 < record_means.std() < 0.9
    assert 0.18 < within_sd < 0.3
    # each sampled R (nearest sample to the Gaussian's centre) sits just inside its drawn peak
    # (R peaks below zero, ~4% of records, are inverted: compare magnitudes)
    sampled, drawn = np.abs(np.concatenate(per_record)), np.abs(np.concatenate(params["r_amplitudes"]))
    assert np.all(sampled <= drawn + 0.01) and np.median(drawn - sampled) < 0.02


def test_measured_beat_lengths_follow_the_configured_distribution():
    sim = GaussianBeat(dataclasses.replace(QUIET, peak_sd_record=(0.05, 0.0, 0.1, 0.0, 0.05)))
    x, params = sim.simulate_with_parameters(np.arange(200), seed=1)
    mean_rr, found = [], 0
    for k in range(len(x)):
        peaks, _ = find_peaks(x[k], height=0.8, distance=100)
        truth = params["r_peaks"][k]
        found += sum(np.min(np.abs(peaks - t)) <= 2 for t in truth)
        mean_rr.append(np.mean(np.diff(peaks)) / 500)
    assert found / sum(len(t) for t in params["r_peaks"]) > 0.99
    mean_rr = np.array(mean_rr)
    requested = np.clip(params["beat_length"], 0.25, 2.5)
    # record means: base 0.8 s, per-record sd 0.25 s; each record's mean RR tracks its drawn length
    assert abs(np.median(mean_rr) - 0.8) < 0.06
    assert 0.2 < mean_rr.std() < 0.3
    assert np.median(np.abs(mean_rr - requested)) < 0.04
    within = np.concatenate([np.diff(b) for b in params["beat_lengths"]]) / np.sqrt(2)
    assert 0.08 < within.std() < 0.12  # per-beat sd 0.1 s


def test_augmentation_count_is_poisson_with_the_configured_mean():
    _, params = GaussianBeat().simulate_with_parameters(np.arange(400), seed=2)
    assert abs(params["n_augment"].mean() - 2.0) < 0.25
    assert abs(params["n_augment"].var() - 2.0) < 0.5


def test_premature_ventricular_beats_have_no_p_wave_and_a_compensatory_pause():
    sim = GaussianBeat(dataclasses.replace(QUIET, pvc_probability=0.25, beat_length_sd_beat=0.0))
    x, params = sim.simulate_with_parameters(np.arange(40), seed=5)
    assert params["n_pvc"].sum() > 20
    quiet, qparams = GaussianBeat(dataclasses.replace(QUIET, beat_length_sd_beat=0.0)).simulate_with_parameters(
        np.arange(40), seed=5
    )
    assert qparams["n_pvc"].sum() == 0
    # with constant beat length, R-R pairs around a PVC sum to two normal beats
    pairs = 0
    for k in range(40):
        rr = np.diff(params["r_peaks"][k])
        normal = np.median(np.diff(qparams["r_peaks"][k]))  # same record without ectopy
        for i in np.flatnonzero(rr[:-1] < 0.9 * normal):  # a premature beat, then its pause
            assert abs(rr[i] + rr[i + 1] - 2 * normal) < 0.05 * normal
            pairs += 1
        assert np.all(np.abs(qparams["r_peaks"][k][1:] - qparams["r_peaks"][k][:-1] - np.median(
            np.diff(qparams["r_peaks"][k]))) < 0.1 * normal)
    assert pairs > 10


def test_invalid_config_is_a_config_error():
    with pytest.raises(ConfigError, match="5 values"):
        GaussianBeatConfig(peak=(1.0, 2.0))
    with pytest.raises(ConfigError, match="beat_length_min"):
        GaussianBeatConfig(beat_length_min=0.0)


def test_compiled_rendering_matches_a_direct_float64_sum_of_each_beat():
    # each window must be the beats' ramps + all five Gaussians, in order, whatever the support cut
    sim = GaussianBeat(dataclasses.replace(GaussianBeatConfig(), st_offset=0.15))
    beats = sim._beats(sim._draw(np.arange(8), seed=4))
    x = sim._render(beats)
    for b in range(8):
        pieces = []
        for j in np.flatnonzero(beats["counts"][b] > 0):
            k = beats["lo"][b, j] + np.arange(beats["counts"][b, j])
            tau = k * beats["scale"][b, j]
            waves = beats["amp"][b, j] * np.exp((tau[:, None] - beats["centre"][b, j]) ** 2 * beats["inv2"][b, j])
            ramp = beats["level"][b, j] + beats["drift"][b, j] * k / max(beats["n_samples"][b, j] - 1, 1)
            st = 0.15 * (0.5 * np.tanh((tau - beats["j_point"][b, j]) / 0.015)
                         - 0.5 * np.tanh((tau - beats["t_centre"][b, j]) / 0.03))
            pieces.append(waves.sum(axis=1) + ramp + st)
        np.testing.assert_allclose(x[b], np.concatenate(pieces), rtol=0, atol=1e-5)


def test_noise_streams_are_standard_normal_and_depend_only_on_key_and_index():
    z = kernels.normals(np.uint64(11), np.arange(2000), 1000)
    assert z.dtype == np.float32 and z.shape == (2000, 1000)
    flat = z.ravel().astype(np.float64)
    assert abs(flat.mean()) < 0.002 and abs(flat.std() - 1) < 0.002
    assert abs(kstest(flat, "norm").statistic) < 0.002
    tail = (np.abs(flat) > 3.5).mean()  # beyond the ziggurat's base strip (R = 3.44): the tail path
    assert abs(tail / (2 * norm.sf(3.5)) - 1) < 0.1
    assert abs(np.corrcoef(z[:, :-1].ravel(), z[:, 1:].ravel())[0, 1]) < 0.003  # consecutive draws
    assert abs(np.corrcoef(z[:-1].ravel(), z[1:].ravel())[0, 1]) < 0.003  # neighbouring ECGs
    np.testing.assert_array_equal(kernels.normals(np.uint64(11), np.array([1999, 7]), 1000), z[[1999, 7]])
    assert not np.array_equal(kernels.normals(np.uint64(12), np.array([7]), 1000)[0], z[7])


def test_block_noises_are_piecewise_constant_with_the_configured_spread():
    flat = dataclasses.replace(QUIET, peak=(0.0,) * 5, peak_sd_record=(0.0,) * 5, peak_sd_beat=(0.0,) * 5,
                               st_offset=0.0)
    x = GaussianBeat(dataclasses.replace(flat, noise1_sd=0.02)).simulate(np.arange(50), seed=0)
    blocks = x.reshape(50, 500, 10)
    assert np.all(blocks == blocks[..., :1])  # held for noise1_block = 10 samples
    assert abs(blocks[..., 0].std() - 0.02) < 0.001
    y = GaussianBeat(dataclasses.replace(flat, noise2_sd=0.03)).simulate(np.arange(50), seed=0)
    assert np.all(y[:, :4998].reshape(50, -1, 3) == y[:, :4998:3, None])  # blocks of 3 samples
    assert abs(y.std() - 0.03) < 0.0015


def test_compiled_augmentations_match_numpy():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((4, 5000)).astype(np.float32)
    n = np.array([1, 1, 2, 1])
    kind = np.array([[0, 0], [1, 0], [2, 0], [3, 0]])  # scale; sine; square then scale; white noise
    lo = np.array([[100, 0], [0, 0], [1000, 0], [0, 0]])
    seg = np.array([[700, 0], [5000, 0], [2000, 5000], [5000, 0]])
    value = np.array([[0.5, 0], [0.2, 0], [0.3, 0.5], [0.25, 0]])
    freq = np.array([[0, 0], [37.3, 0], [2.5, 0], [0, 0]])
    phase = np.array([[0, 0], [1.1, 0], [0.4, 0], [0, 0]])
    out = x.copy()
    kernels.apply_augments(out, n, kind, lo, seg, value, freq, phase, np.uint64(3), np.arange(4), 500.0)
    t = np.arange(5000)
    want = x.astype(np.float64)
    want[0, 100:800] *= 0.5
    want[1] += 0.2 * np.sin(2 * np.pi * 37.3 * t / 500 + 1.1)
    want[2, 1000:3000] += 0.3 * np.sign(np.sin(2 * np.pi * 2.5 * t[:2000] / 500 + 0.4))
    want[2] *= 0.5  # slots apply in order
    np.testing.assert_allclose(out[:3], want[:3], atol=1e-5)
    added = out[3] - x[3]
    assert abs(added.std() - 0.25) < 0.01 and abs(added.mean()) < 0.01
    again = x.copy()
    kernels.apply_augments(again, n, kind, lo, seg, value, freq, phase, np.uint64(3), np.arange(4), 500.0)
    np.testing.assert_array_equal(again, out)
