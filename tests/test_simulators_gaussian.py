"""Gaussian-composition beat simulator (SimECG-N): measured statistics follow the config, and the
defaults are PROTOCOL.md's ("The two simulators")."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
from scipy.signal import find_peaks
from scipy.stats import kstest, norm

from pretraining.simulators import kernels
from pretraining.simulators.gaussian import AUGMENT_KINDS, GaussianBeat, GaussianBeatConfig
from simecg.errors import ConfigError
from simecg.registries import SIMULATORS

# Only P, R, T waves, no drift, noise or augmentation, and P's per-beat jitter small enough that
# its tail never reaches R (the paper's 0.02 s brings P within two widths of R in ~1% of beats):
# R samples are readable directly. (At the defaults Q and S, whose widths spread as much as their
# base, overlap R in many records, so R is not readable from the signal alone.)
QUIET = GaussianBeatConfig(
    peak=(0.3, 0.0, 1.5, 0.0, 0.45), peak_sd_record=(0.05, 0.0, 0.75, 0.0, 0.05),
    peak_sd_beat=(0.02, 0.0, 0.25, 0.0, 0.02), width_sd_record=(0.005, 0.0, 0.001, 0.0, 0.005),
    width_sd_beat=(0.001, 0.0, 0.0002, 0.0, 0.001), centre_sd_record=(0.02, 0.0, 0.0, 0.0, 0.02),
    centre_sd_beat=(0.005, 0.0, 0.0045, 0.0, 0.015),
    drift_scale=0.0, drift_scale_sd_record=0.0, drift_scale_sd_beat=0.0, noise1_scaler=math.inf,
    noise2_scaler=math.inf, augment_rate=0.0,
)
# No waves at all: only the block noises remain.
FLAT = dataclasses.replace(QUIET, peak=(0.0,) * 5, peak_sd_record=(0.0,) * 5, peak_sd_beat=(0.0,) * 5)


def test_ecg_depends_only_on_seed_and_index_not_batching():
    sim = SIMULATORS.get("gaussian")()
    whole = sim.simulate(np.arange(10), seed=3)
    assert whole.dtype == np.float32 and whole.shape == (10, 5000) and np.isfinite(whole).all()
    np.testing.assert_array_equal(whole[[9, 2]], sim.simulate(np.array([9, 2]), seed=3))
    np.testing.assert_array_equal(whole[4:6], sim.simulate(np.arange(4, 6), seed=3))
    assert not np.array_equal(whole[:2], sim.simulate(np.arange(2), seed=4))
    # the block noises and augmentations too, in any batch: parameters and per-beat draws included
    x, params = sim.simulate_with_parameters(np.array([7, 3, 9]), seed=3)
    np.testing.assert_array_equal(x, whole[[7, 3, 9]])
    big, big_params = sim.simulate_with_parameters(np.arange(2, 40)[::-1], seed=3)
    np.testing.assert_array_equal(big[[32, 36, 30]], x)
    for key, value in params.items():
        for j, row in enumerate((32, 36, 30)):
            np.testing.assert_array_equal(np.asarray(value[j]), np.asarray(big_params[key][row]), err_msg=key)
    quiet = GaussianBeat(dataclasses.replace(FLAT, noise1_scaler=100.0, noise2_scaler=200.0))
    np.testing.assert_array_equal(quiet.simulate(np.arange(6), 1)[[5, 0]], quiet.simulate(np.array([5, 0]), 1))


def test_defaults_are_the_protocols_simecg_n():
    c = GaussianBeatConfig()
    assert c.peak == (0.3, 0.1, 1.5, 0.5, 0.45) and c.peak_sd_record == (0.2, 0.15, 0.75, 0.7, 0.5)
    assert c.peak_sd_beat == (0.1, 0.016, 0.25, 0.05, 0.07)
    assert c.width == (0.03, 0.05, 0.0075, 0.04, 0.03) and c.width_sd_record == (0.02, 0.05, 0.01, 0.04, 0.03)
    assert c.width_sd_beat == (0.005, 0.0125, 0.00187, 0.01, 0.0075)
    assert c.centre == (0.20, 0.10, 0.045, 0.14, 0.15) and c.centre_anchor == (-1, 0, 1, 1, 3)
    assert c.centre_sd_record == (0.15, 0.1, 0.02, 0.05, 0.06)
    assert c.centre_sd_beat == (0.02, 0.01, 0.0045, 0.015, 0.015)
    assert (c.beat_length, c.beat_length_sd_record, c.beat_length_sd_beat) == (0.8, 0.25, 0.1)
    assert (c.drift_scale, c.drift_scale_sd_record, c.drift_scale_sd_beat) == (0.5, 0.25, 0.05)
    assert (c.noise1_block, c.noise1_block_sd_record) == (10, 0.5)
    assert (c.noise1_scaler, c.noise1_scaler_sd_record, c.noise1_scaler_sd_beat) == (100, 10, 5)
    assert (c.noise2_block, c.noise2_block_sd_record, c.noise2_block_sd_beat) == (3, 0.3, 0.15)
    assert (c.noise2_scaler, c.noise2_scaler_sd_record, c.noise2_scaler_sd_beat) == (200, 20, 2)
    assert c.assemble_factor * c.length == 7500 and c.augment_rate == 2.0 and c.augment_scale == (0.5, 1.25)
    assert c.augment_sine_amplitude == (0.0, 0.2) and c.augment_white_amplitude == (0.0, 0.005)
    assert c.augment_sine_freq == (0.001 * c.fs, 0.02 * c.fs)  # cycles per sample -> Hz


def test_measured_r_amplitudes_follow_the_configured_distribution():
    # QUIET's waves with the default block noises (sd ~0.01 + ~0.005 mV) on
    sim = GaussianBeat(dataclasses.replace(QUIET, noise1_scaler=100.0, noise2_scaler=200.0))
    x, params = sim.simulate_with_parameters(np.arange(3000), seed=0)
    per_record = [x[k, p] for k, p in enumerate(params["r_peaks"])]
    record_means = np.array([v.mean() for v in per_record])
    within_sd = np.mean([v.std() for v in per_record if len(v) > 3])
    # base 1.5, per-record sd 0.75, per-beat sd 0.25 (PROTOCOL); P/T tails add ~0.01
    assert abs(np.median(record_means) - 1.5) < 0.05
    assert 0.7 < record_means.std() < 0.8
    assert 0.22 < within_sd < 0.27
    # each sampled R (nearest sample to the Gaussian's centre) sits just inside its drawn peak, up
    # to the noise (R peaks below zero, ~2% of records, are inverted: compare magnitudes)
    sampled, drawn = np.abs(np.concatenate(per_record)), np.abs(np.concatenate(params["r_amplitudes"]))
    assert np.all(sampled <= drawn + 0.08) and abs(np.median(drawn - sampled)) < 0.02
    assert np.percentile(np.abs(drawn - sampled), 90) < 0.06  # noise sd ~0.011, sampling offset


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


def test_simecg_n_parameters_and_beat_lengths_follow_the_protocol_at_the_defaults():
    # the paper's simulator, augmentations off: drawn R peaks and beat lengths (base / per-record
    # sd / per-beat sd), and the RR intervals between the R waves placed in each window
    x, params = GaussianBeat(GaussianBeatConfig(augment_rate=0.0)).simulate_with_parameters(np.arange(3000), seed=7)
    assert np.isfinite(x).all()
    assert abs(params["r_peak"].mean() - 1.5) < 0.04 and abs(params["r_peak"].std() - 0.75) < 0.03
    assert abs(params["beat_length"].mean() - 0.8) < 0.015 and abs(params["beat_length"].std() - 0.25) < 0.01
    r_beats = [r - r.mean() for r in params["r_amplitudes"] if len(r) > 3]
    assert abs(np.sqrt(np.mean(np.concatenate(r_beats) ** 2)) - 0.25) < 0.015  # per-beat sd, roughly
    rr = np.array([np.diff(r).mean() / 500 for r in params["r_peaks"] if len(r) > 2])
    assert abs(np.median(rr) - 0.8) < 0.02 and 0.23 < rr.std() < 0.28
    within = np.concatenate([np.diff(b) for b in params["beat_lengths"]]) / np.sqrt(2)
    assert 0.09 < within.std() < 0.11  # per-beat sd 0.1 s
    assert abs(params["drift_scale"].mean() - 0.5) < 0.02 and abs(params["drift_scale"].std() - 0.25) < 0.015
    assert np.all(params["n_augment"] == 0)


def test_augmentation_count_is_poisson_with_the_configured_mean():
    _, params = GaussianBeat().simulate_with_parameters(np.arange(3000), seed=2)
    assert abs(params["n_augment"].mean() - 2.0) < 0.1
    assert abs(params["n_augment"].var() - 2.0) < 0.25
    assert [len(k) for k in params["augment_kind"]] == params["n_augment"].astype(int).tolist()


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
    with pytest.raises(ConfigError, match="noise_block_rounding"):
        GaussianBeatConfig(noise_block_rounding="ceil")
    with pytest.raises(ConfigError, match="scaler"):
        GaussianBeatConfig(noise2_scaler=0.0)
    with pytest.raises(ConfigError, match="augment_kind_weights"):
        GaussianBeatConfig(augment_kind_weights=(1.0, 1.0, 1.0))
    with pytest.raises(ConfigError, match="augment_white_amplitude"):
        GaussianBeatConfig(augment_white_amplitude=(0.01, 0.005))


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


def _only_noise(i: int) -> GaussianBeatConfig:
    """FLAT with block noise ``i`` (1 or 2) at its defaults."""
    return dataclasses.replace(FLAT, **{f"noise{i}_scaler": getattr(GaussianBeatConfig(), f"noise{i}_scaler")})


def _blocks_of(x: np.ndarray, starts: np.ndarray, widths: np.ndarray) -> np.ndarray:
    """Block number of every window sample: blocks of ``widths[b]`` samples counted from ``starts[b]``."""
    ids = np.empty(len(x), dtype=np.int64)
    ends = np.append(starts[1:], len(x))
    offset = 0
    for start, end, width in zip(starts, ends, widths, strict=True):
        t = np.arange(max(start, 0), min(end, len(x)))
        block = (t - start) // width
        ids[t] = offset + block - block[0]
        offset += block[-1] - block[0] + 1
    return ids


@pytest.mark.parametrize("i", [1, 2])
def test_block_noises_are_piecewise_constant_per_beat_with_the_drawn_widths(i):
    x, params = GaussianBeat(_only_noise(i)).simulate_with_parameters(np.arange(40), seed=0)
    values = []
    for k in range(len(x)):
        ids = _blocks_of(x[k], params["beat_starts"][k], params[f"noise{i}_blocks"][k])
        same = ids[1:] == ids[:-1]
        assert np.all(np.diff(x[k])[same] == 0) and np.all(np.diff(x[k])[~same] != 0)  # held, then redrawn
        first = np.flatnonzero(np.r_[True, ~same])
        beat = np.searchsorted(params["beat_starts"][k], first, side="right") - 1
        values.append(x[k, first] / params[f"noise{i}_sds"][k][beat])
    z = np.concatenate(values)  # every block's value over its beat's sd: standard normal
    assert abs(z.mean()) < 0.03 and abs(z.std() - 1) < 0.03 and kstest(z, "norm").pvalue > 1e-3
    assert np.array_equal(GaussianBeat(FLAT).simulate(np.arange(3), 0), np.zeros((3, 5000), np.float32))  # inf: off
    # both on (one compiled pass) is the sum of each alone: same streams, same blocks
    both = GaussianBeat(dataclasses.replace(FLAT, noise1_scaler=100.0, noise2_scaler=200.0)).simulate(np.arange(9), 2)
    alone = [GaussianBeat(_only_noise(j)).simulate(np.arange(9), 2).astype(np.float64) for j in (1, 2)]
    np.testing.assert_allclose(both, alone[0] + alone[1], rtol=0, atol=1e-8)


# (base, sd_record, sd_beat) of each noise's scaler and block width (PROTOCOL; noise 1's sd_beat inferred)
@pytest.mark.parametrize(("i", "scaler", "block"), [(1, (100, 10, 5), (10, 0.5, 0.25)),
                                                    (2, (200, 20, 2), (3, 0.3, 0.15))])
def test_per_record_noise_levels_and_block_widths_follow_the_configured_values(i, scaler, block):
    x, params = GaussianBeat(_only_noise(i)).simulate_with_parameters(np.arange(2000), seed=1)
    # record level: scaler = 1 / sd ~ N(base, sd_record); the block width ~ N(base, sd_record)
    record_scaler, record_block = 1 / params[f"noise{i}_sd"], params[f"noise{i}_block"]
    assert abs(record_scaler.mean() - scaler[0]) < 0.1 * scaler[1] and abs(record_scaler.std() / scaler[1] - 1) < 0.06
    assert abs(record_block.mean() - block[0]) < 0.08 * block[1] and abs(record_block.std() / block[1] - 1) < 0.06
    # beat level: N(record value, sd_beat); widths floored to whole samples
    beat_scaler = np.concatenate([1 / s - r for s, r in zip(params[f"noise{i}_sds"], record_scaler, strict=True)])
    assert abs(beat_scaler.mean()) < 0.05 * scaler[2] and abs(beat_scaler.std() / scaler[2] - 1) < 0.03
    widths = np.concatenate(params[f"noise{i}_blocks"])
    spread = math.hypot(block[1], block[2])
    support = np.arange(int(block[0]) - 4, int(block[0]) + 5)
    expected = np.sum(support * (norm.cdf(support + 1, block[0], spread) - norm.cdf(support, block[0], spread)))
    assert abs(widths.mean() - expected) < 0.04 and np.all(widths >= 1)
    # measured: each record's noise sd is its drawn level
    ratio = x.std(axis=1) / params[f"noise{i}_sd"]
    assert abs(np.median(ratio) - 1) < 0.02 and np.percentile(np.abs(ratio - 1), 90) < 0.15


def test_block_width_rounding_is_configurable():
    config = dataclasses.replace(FLAT, noise1_scaler=100.0, noise1_block=9.6, noise1_block_sd_record=0.0,
                                 noise1_block_sd_beat=0.0)
    for rounding, width in (("floor", 9), ("nearest", 10)):
        _, params = GaussianBeat(dataclasses.replace(config, noise_block_rounding=rounding)).simulate_with_parameters(
            np.arange(5), seed=0)
        assert np.all(np.concatenate(params["noise1_blocks"]) == width)


def test_augmentation_parameters_follow_the_protocol():
    _, params = GaussianBeat().simulate_with_parameters(np.arange(3000), seed=3)
    kind, value, freq, start, length = (np.concatenate(params[f"augment_{k}"]) for k in (
        "kind", "value", "freq", "start", "length"))
    assert len(kind) > 5000 and AUGMENT_KINDS == ("scale", "sine", "rect", "white")
    for k in range(4):  # inferred: equally likely kinds, half of them local
        assert abs(np.mean(kind == k) - 0.25) < 0.03
        assert abs(np.mean(length[kind == k] < 5000) - 0.5) < 0.05

    def spans(v: np.ndarray, lo: float, hi: float) -> bool:  # inside [lo, hi] and reaching both ends
        return v.min() >= lo and v.max() <= hi and v.min() < lo + 0.02 * (hi - lo) and v.max() > hi - 0.02 * (hi - lo)

    assert spans(value[kind == 0], 0.5, 1.25)
    assert spans(value[kind == 1], 0.0, 0.2) and spans(freq[kind == 1], 0.5, 10.0)  # 0.001-0.02 cycles/sample
    assert spans(value[kind == 2], 0.0, 0.2) and spans(freq[kind == 2], 0.5, 50.0)
    assert spans(value[kind == 3], 0.0, 0.005)  # white noise never above 0.005 mV
    assert np.all(np.isnan(freq[(kind == 0) | (kind == 3)]))
    local = length < 5000
    assert np.all(start[~local] == 0) and np.all((length[local] >= 500) & (length[local] <= 2500))
    assert np.all(start + length <= 5000)


def test_augmentations_change_the_ecg_as_reported():
    # the same ECGs without augmentation: every draw but the augmentations' is shared
    n = 600
    x, params = GaussianBeat().simulate_with_parameters(np.arange(n), seed=4)
    clean = GaussianBeat(GaussianBeatConfig(augment_rate=0.0)).simulate(np.arange(n), seed=4)
    t = np.arange(5000)
    seen = set()
    for k in np.flatnonzero(params["n_augment"] == 1):
        kind, v, f = params["augment_kind"][k][0], params["augment_value"][k][0], params["augment_freq"][k][0]
        lo, m = params["augment_start"][k][0], params["augment_length"][k][0]
        diff = x[k].astype(np.float64) - clean[k]
        outside = np.r_[diff[:lo], diff[lo + m:]]
        assert np.all(outside == 0)
        seg = diff[lo : lo + m]
        if AUGMENT_KINDS[kind] == "scale":
            np.testing.assert_allclose(x[k, lo : lo + m], clean[k, lo : lo + m] * v, rtol=1e-5, atol=1e-6)
        elif AUGMENT_KINDS[kind] == "white":
            assert v <= 0.005 and abs(seg.std() - v) < 0.1 * v + 1e-6 and np.abs(seg).max() < 6 * v + 1e-6
        elif AUGMENT_KINDS[kind] == "rect":
            assert np.allclose(np.abs(seg), v, atol=1e-5)
        else:  # sine: amplitude v, frequency f (checked on global ones: 0.1 Hz resolution)
            assert np.abs(seg).max() <= v + 1e-5
            if m == 5000:
                spectrum = np.abs(np.fft.rfft(seg * np.hanning(m)))
                assert abs(np.fft.rfftfreq(m, 1 / 500)[spectrum.argmax()] - f) <= 0.1
                fit = np.linalg.lstsq(np.c_[np.sin(2 * np.pi * f * t / 500), np.cos(2 * np.pi * f * t / 500)],
                                      seg, rcond=None)[0]
                assert abs(np.hypot(*fit) - v) < 1e-4
        seen.add(AUGMENT_KINDS[kind])
    assert seen == set(AUGMENT_KINDS)


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
