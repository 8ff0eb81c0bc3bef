"""Preprocessing: resampling, windows of long records, z-score, and the 100-Hz PTB-XL fallback."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from benchmark.data.preprocess import PreprocessConfig, to_windows, window_starts
from benchmark.data.tasks import load_task
from simecg.errors import ConfigError


def test_evaluation_windows_step_half_a_window_over_the_record_padded_as_the_authors_did():
    # the authors pad a record by 2,500 - (length mod 2,500) samples and start a window every 2,500
    # samples where a full window fits: 6 s -> 1 window, 10 s -> 2, 12.3 s -> 2, 60 s -> 12
    assert window_starts(3000, 5000) == [0]
    assert window_starts(5000, 5000) == [0, 2500]
    assert window_starts(6150, 5000) == [0, 2500]
    assert window_starts(30000, 5000) == list(range(0, 27501, 2500))
    assert window_starts(7500, 5000) == [0, 2500, 5000]
    assert window_starts(8000, 5000) == [0, 2500, 5000]  # the last one zero-padded
    assert window_starts(2000, 5000) == [0]  # shorter than a stride: still one window
    # the other layouts: consecutive windows with an end-aligned tail, or full windows only
    assert window_starts(5000, 5000, tail="end") == [0]
    assert window_starts(7500, 5000, stride=5000, tail="end") == [0, 2500]
    assert window_starts(15000, 5000, stride=5000, tail="end") == [0, 5000, 10000]
    assert window_starts(7500, 5000, stride=5000, tail="drop") == [0]


def _padded_starts(n: int, window: int = 5000, stride: int = 2500) -> list[int]:
    """The padding rule spelled out on an array: pad, then keep each stride step whose slice is a full window."""
    padded = np.zeros(n + stride - n % stride)
    return [s for s in range(0, n, stride) if len(padded[s : s + window]) == window]


@pytest.mark.parametrize("seconds", [6, 10, 12.3, 60])
def test_window_count_of_6_10_12_3_and_60_s_records(seconds):
    n = int(round(seconds * 500))
    expected = {6: 1, 10: 2, 12.3: 2, 60: 12}[seconds]
    assert len(window_starts(n, 5000)) == len(_padded_starts(n)) == expected
    windows = to_windows(np.sin(np.arange(n) / 40.0) + 0.01 * np.arange(n) / n, 500)
    assert windows.shape == (expected, 5000)


def test_window_starts_match_the_padding_rule_for_every_length():
    for n in range(2500, 31000, 37):
        assert window_starts(n, 5000) == _padded_starts(n), n


def test_resampled_length_is_what_resampling_makes():
    from benchmark.data.preprocess import resample, resampled_length

    for n, fs in ((1000, 100), (999, 100), (5000, 500), (1234, 250), (3001, 360)):
        assert resampled_length(n, fs, 500) == len(resample(np.zeros(n, np.float32), fs, 500))


def test_a_long_record_is_zscored_once_then_cut():
    x = np.sin(np.linspace(0, 90, 9000)) * 2 + np.linspace(0, 3, 9000)
    windows = to_windows(x, 500)
    whole = (x - x.mean()) / x.std()
    np.testing.assert_allclose(windows[0], whole[:5000], atol=1e-4)
    np.testing.assert_allclose(windows[2][:4000], whole[5000:], atol=1e-4)
    assert not windows[2][4000:].any() and abs(windows[0].mean()) > 0.1  # a slice, not z-scored on its own


def test_short_record_is_zscored_then_zero_padded():
    x = np.sin(np.linspace(0, 30, 3000)) * 2 + 1
    (window,) = to_windows(x, 500)
    assert window.shape == (5000,) and np.all(window[3000:] == 0)
    assert abs(window[:3000].mean()) < 1e-4 and abs(window[:3000].std() - 1) < 1e-3


def test_resampling_100_hz_to_500_hz_keeps_the_waveform():
    t100 = np.arange(1000) / 100
    x = np.sin(2 * np.pi * 1.2 * t100)
    window = to_windows(x, 100, PreprocessConfig(normalize=False))[0]  # the first of the 10-s record's two
    t500 = np.arange(5000) / 500
    assert np.abs(window[200:-200] - np.sin(2 * np.pi * 1.2 * t500)[200:-200]).max() < 0.02


def test_bandpass_removes_baseline_and_bad_settings_are_config_errors():
    t = np.arange(5000) / 500
    x = np.sin(2 * np.pi * 10 * t) + 5 * t  # a 10-Hz wave on a strong drift
    window = to_windows(x, 500, PreprocessConfig(bandpass=(0.5, 40.0), normalize=False))[0]
    assert abs(window[500:-500].mean()) < 0.05
    with pytest.raises(ConfigError):
        PreprocessConfig(bandpass=(40.0, 0.5))
    with pytest.raises(ConfigError):
        PreprocessConfig(tail="middle")
    with pytest.raises(ConfigError):
        PreprocessConfig(stride=6000)


@pytest.mark.realdata
def test_ptbxl_without_records500_reads_records100_resampled(shared_data, tmp_path):
    folder = tmp_path / "data" / "ptbxl"
    (folder / "records100").mkdir(parents=True)
    shutil.copy(shared_data / "ptbxl/ptbxl_database.csv", folder)
    shutil.copy(shared_data / "ptbxl/scp_statements.csv", folder)
    shutil.copytree(shared_data / "ptbxl/records100/00000", folder / "records100/00000")
    low = load_task("ptbxl/LVH", tmp_path / "data", cache_dir=tmp_path / "c1")
    high = load_task("ptbxl/LVH", shared_data, cache_dir=tmp_path / "c2")
    assert low.signals.shape == high.signals.shape
    np.testing.assert_array_equal(low.labels, high.labels)
    corr = np.corrcoef(np.asarray(low.signals[0]), np.asarray(high.signals[0]))[0, 1]
    assert corr > 0.9  # the same ECG, resampled from 100 Hz
