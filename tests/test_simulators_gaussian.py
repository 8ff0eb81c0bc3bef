"""Gaussian-composition beat simulator (SimECG-N): it does what the authors' generator does
(``gen_ecg.py``, ``augment.py``, ``syn_ecg-04.yaml``; docs/protocol.md), and measured statistics
follow the config."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
from scipy import signal as scipy_signal
from scipy.signal import find_peaks
from scipy.stats import chisquare, kstest, norm, poisson

from pretraining.simulators import gaussian, kernels
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
# The paper's simulator without block noises and augmentations: what is left is deterministic
# given the beat table, so it can be rebuilt the authors' way.
NOISELESS = GaussianBeatConfig(noise1_scaler=math.inf, noise2_scaler=math.inf, augment_rate=0.0)


def _table(sim: GaussianBeat, indices: np.ndarray, seed: int) -> tuple[dict, dict]:
    """The draws and the beat table of ``indices`` (one batch)."""
    draws = sim._draw(sim._walk(np.asarray(indices), seed), seed)
    return draws, sim._beats(draws)


def _authors_record(beats: dict, r: int, fs: int = 500, length: int = 5000, st_offset: float = 0.0) -> np.ndarray:
    """Record ``r`` of a beat table rebuilt as the authors' generate_ecg does, without noise: a zero,
    then each beat's 1-s template interpolated to its length plus a ramp from the last sample so
    far, until the record passes 1.5 x ``length``; then the table's window."""
    t = np.linspace(0, 1, fs, endpoint=False)
    record = [np.zeros(1)]
    for j in range(beats["n_samples"].shape[1]):
        if beats["n_samples"][r, j] == 0:
            break
        centre, width = beats["k0"][r, j] / fs, np.sqrt(-0.5 / beats["q"][r, j]) / fs
        template = sum(a * np.exp(-0.5 * ((t - c) / w) ** 2) for a, c, w in zip(beats["amp"][r, j], centre, width,
                                                                                 strict=True))
        if st_offset:
            template = template + st_offset * gaussian._plateau(t, beats["j_point"][r, j], beats["t_centre"][r, j])
        beat = np.interp(np.arange(0, fs, 1 / beats["lengths"][r, j]), np.arange(fs), template)
        assert len(beat) == beats["n_samples"][r, j]  # the table's beat length is numpy's
        start = record[-1][-1]
        record.append(beat + np.linspace(start, start + beats["drift"][r, j], len(beat)))
        if sum(map(len, record)) > 1.5 * length:
            break
    whole = np.concatenate(record)
    return whole[beats["start"][r] : beats["start"][r] + length]


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


def test_records_are_the_same_when_the_batch_is_split_by_beat_count(monkeypatch):
    # a record of many short beats is simulated in a batch of its own (memory): same values
    sim = GaussianBeat(GaussianBeatConfig(beat_length=0.3))
    x, params = sim.simulate_with_parameters(np.arange(24), seed=2)
    monkeypatch.setattr(gaussian, "BEAT_ROWS", 200)
    assert len(gaussian._groups(sim._walk(np.arange(24), 2)["counts"], 200)) > 3
    split, split_params = sim.simulate_with_parameters(np.arange(24), seed=2)
    np.testing.assert_array_equal(split, x)
    for key, value in params.items():
        for j in range(24):
            np.testing.assert_array_equal(np.asarray(split_params[key][j]), np.asarray(value[j]), err_msg=key)


def test_defaults_are_the_authors_simecg_n():
    # syn_ecg-04.yaml as gen_ecg.py reads it, and augment.py's constants (its YAML augment_params unused)
    c = GaussianBeatConfig()
    assert c.peak == (0.3, 0.1, 1.5, 0.5, 0.45) and c.peak_sd_record == (0.2, 0.15, 0.75, 0.7, 0.5)
    assert c.peak_sd_beat == (0.1, 0.016, 0.25, 0.05, 0.07)
    assert c.width == (0.03, 0.05, 0.0075, 0.04, 0.03) and c.width_sd_record == (0.02, 0.05, 0.01, 0.04, 0.03)
    assert c.width_sd_beat == (0.005, 0.0125, 0.00187, 0.01, 0.0075)
    assert c.centre == (0.20, 0.10, 0.045, 0.14, 0.15) and c.centre_anchor == (-1, 0, 1, 1, 3)
    assert c.centre_sd_record == (0.15, 0.1, 0.02, 0.05, 0.06)
    assert c.centre_sd_beat == (0.02, 0.01, 0.0045, 0.015, 0.015)
    assert (c.beat_length, c.beat_length_sd_record, c.beat_length_sd_beat) == (0.8, 0.25, 0.1)
    assert (c.beat_length_min, c.beat_length_max) == (0.0, math.inf)  # no clip
    assert (c.drift_scale, c.drift_scale_sd_record, c.drift_scale_sd_beat) == (0.5, 0.25, 0.05)
    assert (c.noise1_block, c.noise1_block_sd_record, c.noise1_block_sd_beat) == (10, 1, 0.5)
    assert (c.noise1_scaler, c.noise1_scaler_sd_record, c.noise1_scaler_sd_beat) == (100, 10, 5)
    assert (c.noise2_block, c.noise2_block_sd_record, c.noise2_block_sd_beat) == (3, 0.3, 0.15)
    assert (c.noise2_scaler, c.noise2_scaler_sd_record, c.noise2_scaler_sd_beat) == (200, 20, 2)
    assert c.noise_block_rounding == "floor" and c.assemble_factor * c.length == 7500
    assert c.augment_rate == 2.0 and c.augment_kind_weights == (1.0,) * 7 and len(AUGMENT_KINDS) == 7
    assert c.augment_scale == (0.25, 4.0) and c.augment_white_sd == (0.0, 0.05)
    assert c.augment_sine_amplitude == c.augment_square_amplitude == (0.0, 1.0)
    assert c.augment_sine_freq == (0.001, 0.02) and c.augment_square_freq == (0.001, 0.1)  # Hz
    assert c.augment_partial_amplitude == 1.0 and c.augment_partial_width == (0.0, 1.0)
    assert c.augment_partial_white_sd == 1.0 and c.augment_partial_white_width == (0.0, 0.2)


def test_noiseless_records_are_the_authors_construction_of_the_beat_table():
    # template at 500 Hz, np.interp stretch, ramp from the previous last sample, leading zero, window
    sim = GaussianBeat(dataclasses.replace(NOISELESS, st_offset=0.15))
    _, beats = _table(sim, np.arange(12), seed=4)
    x = sim._render(beats)
    for r in range(12):
        np.testing.assert_allclose(x[r], _authors_record(beats, r, st_offset=0.15), rtol=0, atol=2e-5)
    # and without the demo's ST offset, through the public path
    plain = GaussianBeat(NOISELESS)
    _, beats = _table(plain, np.arange(40), seed=9)
    x = plain.simulate(np.arange(40), seed=9)
    for r in range(40):
        np.testing.assert_allclose(x[r], _authors_record(beats, r), rtol=0, atol=2e-5)
    assert (beats["start"] == 0).sum() == 0 or x[beats["start"] == 0][:, 0].max() == 0


def test_the_window_starts_at_the_leading_zero_when_its_start_is_zero():
    sim = GaussianBeat(NOISELESS)
    draws, beats = _table(sim, np.arange(6), seed=1)
    draws["uniforms"][:, 0] = 1e-12  # window start 0
    beats = sim._beats(draws)
    x = sim._render(beats)
    assert np.all(beats["start"] == 0) and np.all(beats["lead"] == 1) and np.all(x[:, 0] == 0)
    for r in range(6):
        np.testing.assert_allclose(x[r], _authors_record(beats, r), rtol=0, atol=2e-5)


def test_measured_r_amplitudes_follow_the_configured_distribution():
    # QUIET's waves with the default block noises (sd ~0.01 + ~0.005 mV) on
    sim = GaussianBeat(dataclasses.replace(QUIET, noise1_scaler=100.0, noise2_scaler=200.0))
    x, params = sim.simulate_with_parameters(np.arange(3000), seed=0)
    # R samples above their beat's start level (the level walks with the block noise at beat ends)
    per_record = [x[k, p] - params["levels"][k][np.searchsorted(params["beat_starts"][k], p, side="right") - 1]
                  for k, p in enumerate(params["r_peaks"])]
    record_means = np.array([v.mean() for v in per_record if len(v)])
    within_sd = np.mean([v.std() for v in per_record if len(v) > 3])
    # base 1.5, per-record sd 0.75, per-beat sd 0.25 (syn_ecg-04); P/T tails and noise add ~0.01
    assert abs(np.median(record_means) - 1.5) < 0.05
    assert 0.7 < record_means.std() < 0.8
    assert 0.22 < within_sd < 0.27
    # each sampled R (nearest sample to the Gaussian's centre, on the interpolated template) sits
    # just inside its drawn peak, up to the noise (negative R peaks: compare magnitudes)
    sampled, drawn = np.abs(np.concatenate(per_record)), np.abs(np.concatenate(params["r_amplitudes"]))
    assert np.all(sampled <= drawn + 0.08) and abs(np.median(drawn - sampled)) < 0.03
    assert np.percentile(np.abs(drawn - sampled), 90) < 0.1  # noise sd ~0.011, sampling and interpolation


def test_measured_beat_lengths_follow_the_configured_distribution():
    # beats clipped at 0.25 s (an option; the authors' generator has no clip) so every R is resolved
    sim = GaussianBeat(dataclasses.replace(QUIET, peak_sd_record=(0.05, 0.0, 0.1, 0.0, 0.05), beat_length_min=0.25))
    x, params = sim.simulate_with_parameters(np.arange(200), seed=1)
    mean_rr, found = [], 0
    for k in range(len(x)):
        peaks, _ = find_peaks(x[k], height=0.8, distance=100)
        truth = params["r_peaks"][k]
        found += sum(np.min(np.abs(peaks - t)) <= 2 for t in truth)
        mean_rr.append(np.mean(np.diff(peaks)) / 500)
    assert found / sum(len(t) for t in params["r_peaks"]) > 0.99
    mean_rr = np.array(mean_rr)
    requested = np.maximum(params["beat_length"], 0.25)
    # record means: base 0.8 s, per-record sd 0.25 s; each record's mean RR tracks its drawn length
    assert abs(np.median(mean_rr) - 0.8) < 0.06
    assert 0.2 < mean_rr.std() < 0.3
    assert np.median(np.abs(mean_rr - requested)) < 0.04
    within = np.concatenate([np.diff(b) for b in params["beat_lengths"]]) / np.sqrt(2)
    assert 0.08 < within.std() < 0.12  # per-beat sd 0.1 s
    assert np.concatenate(params["beat_lengths"]).min() >= 0.25


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
    assert abs(np.median(rr) - 0.8) < 0.02 and 0.22 < rr.std() < 0.28
    regular = params["beat_length"] > 0.5  # records whose beats are never near 0 s (skipped)
    within = np.concatenate([np.diff(b) for b, keep in zip(params["beat_lengths"], regular, strict=True)
                             if keep]) / np.sqrt(2)
    assert 0.09 < within.std() < 0.11  # per-beat sd 0.1 s
    assert abs(params["drift_scale"].mean() - 0.5) < 0.02 and abs(params["drift_scale"].std() - 0.25) < 0.015
    assert np.all(params["n_augment"] == 0)
    # beats of ceil(500 * length) samples (numpy's arange(0, 500, 1 / length)), none clipped
    lengths, samples = np.concatenate(params["beat_lengths"]), np.concatenate(params["beat_samples"])
    np.testing.assert_array_equal(samples, np.ceil(500 / (1 / lengths)).astype(int))
    assert lengths.min() < 0.25  # the record length is N(0.8, 0.25): some beats are very short


def test_beats_of_non_positive_length_are_skipped_and_short_ones_kept():
    # the authors' np.arange(0, 500, 1 / length) is empty for length <= 0: that beat adds nothing
    config = dataclasses.replace(NOISELESS, beat_length=0.05, beat_length_sd_record=0.0, beat_length_sd_beat=0.1)
    walk = GaussianBeat(config)._walk(np.arange(50), seed=0)
    lengths = np.concatenate([row[:n] for row, n in zip(walk["lengths"], walk["counts"], strict=True)])
    assert lengths.min() > 0 and lengths.min() < 0.01  # sub-sample beats are one sample long
    np.testing.assert_array_equal(np.concatenate([row[:n] for row, n in zip(walk["samples"], walk["counts"],
                                                                            strict=True)]),
                                  np.ceil(500 / (1 / lengths)).astype(int))
    # the kept lengths are N(0.05, 0.1) above 0: a truncated normal
    a = (0 - 0.05) / 0.1
    assert abs(lengths.mean() - (0.05 + 0.1 * norm.pdf(a) / norm.sf(a))) < 0.005
    assert kstest(lengths, lambda v: (norm.cdf(v, 0.05, 0.1) - norm.cdf(0, 0.05, 0.1)) / norm.sf(a)).pvalue > 1e-3
    sim = GaussianBeat(config)
    _, beats = _table(sim, np.arange(5), seed=0)
    for r in range(5):
        np.testing.assert_allclose(sim._render(beats)[r], _authors_record(beats, r), rtol=0, atol=2e-5)


def test_a_record_that_cannot_finish_is_drawn_again_and_impossible_lengths_are_a_config_error():
    # record lengths near -0.2 s need more than MAX_LENGTH_DRAWS beat draws: the authors' generator
    # times such a record out and leaves it out; here it is drawn again from fresh streams
    sim = GaussianBeat(dataclasses.replace(NOISELESS, beat_length=0.0, beat_length_sd_record=0.12))
    x, params = sim.simulate_with_parameters(np.arange(300), seed=0)
    redrawn = params["redraws"] > 0
    assert 0 < redrawn.sum() < 60 and np.isfinite(x).all()
    assert params["beat_length"][redrawn].min() > -0.3  # the final draw filled its record
    np.testing.assert_array_equal(sim.simulate(np.flatnonzero(redrawn), seed=0), x[redrawn])
    with pytest.raises(ConfigError, match="beat_length_min"):
        GaussianBeat(dataclasses.replace(NOISELESS, beat_length=-0.5, beat_length_sd_record=0.01)).simulate(
            np.arange(2), seed=0)


def test_augmentation_count_is_poisson_with_the_configured_mean():
    _, params = GaussianBeat().simulate_with_parameters(np.arange(3000), seed=2)
    counts = params["n_augment"].astype(int)
    assert [len(k) for k in params["augment_kind"]] == counts.tolist()
    observed = np.bincount(np.minimum(counts, 6), minlength=7)
    expected = np.append(poisson.pmf(np.arange(6), 2.0), poisson.sf(5, 2.0)) * len(counts)
    assert chisquare(observed, expected).pvalue > 1e-3
    assert abs(counts.mean() - 2.0) < 0.1 and abs(counts.var() - 2.0) < 0.25


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
        GaussianBeatConfig(beat_length_min=-0.1)
    with pytest.raises(ConfigError, match="noise_block_rounding"):
        GaussianBeatConfig(noise_block_rounding="ceil")
    with pytest.raises(ConfigError, match="scaler"):
        GaussianBeatConfig(noise2_scaler=0.0)
    with pytest.raises(ConfigError, match="augment_kind_weights needs 7"):
        GaussianBeatConfig(augment_kind_weights=(1.0, 1.0, 1.0, 1.0))
    with pytest.raises(ConfigError, match="augment_white_sd"):
        GaussianBeatConfig(augment_white_sd=(0.1, 0.05))
    with pytest.raises(ConfigError, match="augment_partial_white_width is a fraction"):
        GaussianBeatConfig(augment_partial_white_width=(0.0, 1.5))
    with pytest.raises(ConfigError, match="augment_rate"):
        GaussianBeatConfig(augment_rate=-1.0)


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


def _beat_spans(params: dict, k: int) -> list[tuple[int, int, int, int]]:
    """(window start, window stop, first beat sample shown, beat index) of each beat in window ``k``."""
    starts, samples = params["beat_starts"][k], params["beat_samples"][k]
    spans = []
    for j, (start, n) in enumerate(zip(starts, samples, strict=True)):
        lo, hi = max(start, 0), min(start + n, 5000)
        spans.append((lo, hi, lo - start, j))
    return spans


@pytest.mark.parametrize("i", [1, 2])
def test_block_noises_are_held_per_full_block_zero_on_the_partial_one_and_carry_the_level(i):
    # FLAT: each beat is its level plus the noise; the authors' white_noise holds randn / scaler for
    # int(width) samples from the beat's start, pads the trailing partial block with zeros, and the
    # next beat starts from this beat's last sample
    x, params = GaussianBeat(_only_noise(i)).simulate_with_parameters(np.arange(40), seed=0)
    values, zero_tails, full_tails = [], 0, 0
    for k in range(len(x)):
        for lo, hi, first, j in _beat_spans(params, k):
            width, n = params[f"noise{i}_blocks"][k][j], params["beat_samples"][k][j]
            level, sd = params["levels"][k][j], params[f"noise{i}_sds"][k][j]
            if lo >= 1:  # the level is the previous beat's last sample
                assert x[k, lo - 1] == pytest.approx(level, abs=1e-6)
            noise = x[k, lo:hi].astype(np.float64) - level
            block = (first + np.arange(hi - lo)) // width
            partial = block >= n // width
            assert np.all(np.abs(noise[partial]) < 1e-6)  # zero-padded tail
            zero_tails += partial.any()
            full_tails += (n % width == 0) and hi - lo == n - first
            for b in np.unique(block[~partial]):
                held = noise[block == b]
                assert np.ptp(held) < 1e-6  # one value per block
                values.append(held[0] / sd)
    assert zero_tails > 100 and full_tails > 5
    z = np.array(values)  # every block's value over its beat's sd: standard normal
    assert abs(z.mean()) < 0.05 and abs(z.std() - 1) < 0.04 and kstest(z, "norm").pvalue > 1e-3
    assert np.array_equal(GaussianBeat(FLAT).simulate(np.arange(3), 0), np.zeros((3, 5000), np.float32))  # inf: off
    # both on is the sum of each alone: same streams, same blocks, levels add up
    both = GaussianBeat(dataclasses.replace(FLAT, noise1_scaler=100.0, noise2_scaler=200.0)).simulate(np.arange(9), 2)
    alone = [GaussianBeat(_only_noise(j)).simulate(np.arange(9), 2).astype(np.float64) for j in (1, 2)]
    np.testing.assert_allclose(both, alone[0] + alone[1], rtol=0, atol=1e-6)


# (base, sd_record, sd_beat) of each noise's scaler and block width (syn_ecg-04.yaml)
@pytest.mark.parametrize(("i", "scaler", "block"), [(1, (100, 10, 5), (10, 1.0, 0.5)),
                                                    (2, (200, 20, 2), (3, 0.3, 0.15))])
def test_per_record_noise_levels_and_block_widths_follow_the_configured_values(i, scaler, block):
    x, params = GaussianBeat(_only_noise(i)).simulate_with_parameters(np.arange(2000), seed=1)
    # record level: scaler = 1 / sd ~ N(base, sd_record); the block width ~ N(base, sd_record)
    record_scaler, record_block = 1 / params[f"noise{i}_sd"], params[f"noise{i}_block"]
    assert abs(record_scaler.mean() - scaler[0]) < 0.1 * scaler[1] and abs(record_scaler.std() / scaler[1] - 1) < 0.06
    assert abs(record_block.mean() - block[0]) < 0.08 * block[1] and abs(record_block.std() / block[1] - 1) < 0.06
    # beat level: N(record value, sd_beat); widths truncated to whole samples (the authors' int())
    beat_scaler = np.concatenate([1 / s - r for s, r in zip(params[f"noise{i}_sds"], record_scaler, strict=True)])
    assert abs(beat_scaler.mean()) < 0.05 * scaler[2] and abs(beat_scaler.std() / scaler[2] - 1) < 0.03
    widths = np.concatenate(params[f"noise{i}_blocks"])
    spread = math.hypot(block[1], block[2])
    support = np.arange(int(block[0]) - 6, int(block[0]) + 7)
    expected = np.sum(support * (norm.cdf(support + 1, block[0], spread) - norm.cdf(support, block[0], spread)))
    assert abs(widths.mean() - expected) < 0.04 and np.all(widths >= 1)
    # measured: around each beat's level, the noise's sd is the record's drawn level
    ratio = []
    for k in range(200):
        noise = np.concatenate([x[k, lo:hi] - params["levels"][k][j] for lo, hi, _, j in _beat_spans(params, k)])
        ratio.append(noise[noise != 0].std() / params[f"noise{i}_sd"][k])
    assert abs(np.median(ratio) - 1) < 0.03 and np.percentile(np.abs(np.array(ratio) - 1), 90) < 0.2


def test_block_width_rounding_is_configurable():
    config = dataclasses.replace(FLAT, noise1_scaler=100.0, noise1_block=9.6, noise1_block_sd_record=0.0,
                                 noise1_block_sd_beat=0.0)
    for rounding, width in (("floor", 9), ("nearest", 10)):
        _, params = GaussianBeat(dataclasses.replace(config, noise_block_rounding=rounding)).simulate_with_parameters(
            np.arange(5), seed=0)
        assert np.all(np.concatenate(params["noise1_blocks"]) == width)


def test_seven_augmentation_kinds_occur_equally_with_the_authors_ranges():
    _, params = GaussianBeat().simulate_with_parameters(np.arange(3000), seed=3)
    kind, value, freq, start, length = (np.concatenate(params[f"augment_{k}"]) for k in (
        "kind", "value", "freq", "start", "length"))
    assert len(kind) > 5000
    assert chisquare(np.bincount(kind, minlength=7)).pvalue > 1e-3  # np.random.choice(7): uniform

    def spans(v: np.ndarray, lo: float, hi: float) -> bool:  # inside [lo, hi] and reaching both ends
        return v.min() >= lo and v.max() <= hi and v.min() < lo + 0.02 * (hi - lo) and v.max() > hi - 0.02 * (hi - lo)

    def uniform(v: np.ndarray, lo: float, hi: float) -> bool:
        return kstest(v, "uniform", args=(lo, hi - lo)).pvalue > 1e-3

    by = {name: kind == k for k, name in enumerate(AUGMENT_KINDS)}
    assert uniform(value[by["scale"]], 0.25, 4.0) and uniform(value[by["white"]], 0.0, 0.05)
    assert uniform(value[by["sine"]], 0.0, 1.0) and uniform(value[by["square"]], 0.0, 1.0)
    for name in ("sine", "sine_partial"):
        assert uniform(freq[by[name]], 0.001, 0.02)  # Hz
    for name in ("square", "square_partial"):
        assert uniform(freq[by[name]], 0.001, 0.1)
    assert np.all(value[by["sine_partial"] | by["square_partial"]] == 1.0)  # amplitude 1
    assert np.all(value[by["white_partial"]] == 1.0)  # sd 1
    assert np.all(np.isnan(freq[by["scale"] | by["white"] | by["white_partial"]]))
    whole = by["scale"] | by["sine"] | by["square"] | by["white"]
    assert np.all(start[whole] == 0) and np.all(length[whole] == 5000)
    # partial widths int(5000 * U(0, 1)) and int(5000 * U(0, 0.2)) at int(U(0, 1) * (5000 - width))
    wide = by["sine_partial"] | by["square_partial"]
    assert spans(length[wide], 0, 5000) and uniform(length[wide] + 0.5, 0, 5000)
    assert spans(length[by["white_partial"]], 0, 1000) and uniform(length[by["white_partial"]] + 0.5, 0, 1000)
    partial = ~whole
    assert np.all(start[partial] + length[partial] <= 5000)
    assert uniform((start[partial] + 0.5) / (5001 - length[partial]), 0, 1)


def test_augmentations_change_the_ecg_as_the_authors_augment_py_does():
    # the same ECGs without augmentation: every draw but the augmentations' is shared
    n = 1000
    x, params = GaussianBeat().simulate_with_parameters(np.arange(n), seed=4)
    clean = GaussianBeat(GaussianBeatConfig(augment_rate=0.0)).simulate(np.arange(n), seed=4).astype(np.float64)
    seen = set()
    for k in np.flatnonzero(params["n_augment"] == 1):
        name = AUGMENT_KINDS[params["augment_kind"][k][0]]
        v, f = params["augment_value"][k][0], params["augment_freq"][k][0]
        lo, m = int(params["augment_start"][k][0]), int(params["augment_length"][k][0])
        phase = np.linspace(0, 2 * np.pi * 10 * f, 5000)  # d = 5000 / 500 s, f in Hz
        diff = x[k].astype(np.float64) - clean[k]
        if name == "scale":
            np.testing.assert_allclose(x[k], clean[k] * v, rtol=1e-5, atol=1e-5)
        elif name in ("sine", "square"):
            curve = np.sin(phase) if name == "sine" else scipy_signal.square(phase)
            np.testing.assert_allclose(diff, v * curve, rtol=0, atol=1e-5)
        elif name in ("sine_partial", "square_partial"):
            curve = np.sin(phase) if name == "sine_partial" else scipy_signal.square(phase)
            expected = np.zeros(5000)
            expected[lo : lo + m] = curve[:m]  # the first `width` values of the curve, at the start
            np.testing.assert_allclose(diff, expected, rtol=0, atol=1e-5)
        else:  # white noise, of sd v over the record or of sd 1 over the segment
            outside = np.r_[diff[:lo], diff[lo + m:]]
            assert np.all(outside == 0)
            if m > 200:
                assert abs(diff[lo : lo + m].std() / v - 1) < 0.2 and abs(diff[lo : lo + m].mean()) < 0.3 * v
        seen.add(name)
    assert seen == set(AUGMENT_KINDS)


def test_augmentations_apply_in_turn_on_the_window():
    # two slots: a partial square then a scale: the scale multiplies the step too
    rng = np.random.default_rng(0)
    x = rng.standard_normal((3, 5000)).astype(np.float32)
    n = np.array([2, 1, 1])
    operation = np.array([[kernels.SQUARE, kernels.SCALE], [kernels.SINE, 0], [kernels.WHITE, 0]])
    lo = np.array([[1000, 0], [0, 0], [100, 0]])
    seg = np.array([[3000, 5000], [5000, 0], [800, 0]])
    value = np.array([[1.0, 0.5], [0.3, 0], [2.0, 0]])
    step = 2 * np.pi * 10 * np.array([[0.09, 0], [0.013, 0], [0, 0]]) / 4999
    out = x.copy()
    kernels.apply_augments(out, n, operation, lo, seg, value, step, np.uint64(3), np.arange(3))
    want = x.astype(np.float64)
    want[0, 1000:4000] += scipy_signal.square(np.arange(3000) * step[0, 0])
    want[0] *= 0.5
    want[1] += 0.3 * np.sin(np.arange(5000) * step[1, 0])
    np.testing.assert_allclose(out[:2], want[:2], atol=1e-5)
    added = out[2] - x[2]
    assert np.all(added[:100] == 0) and np.all(added[900:] == 0) and abs(added[100:900].std() - 2.0) < 0.15
    again = x.copy()
    kernels.apply_augments(again, n, operation, lo, seg, value, step, np.uint64(3), np.arange(3))
    np.testing.assert_array_equal(again, out)
