"""Preprocessing: resampling, windows of long records, z-score, and the 100-Hz PTB-XL fallback."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from benchmark.preprocess import PreprocessConfig, to_windows, window_starts
from benchmark.tasks import load_task
from simecg.errors import ConfigError


def test_evaluation_windows_step_half_a_window_and_pad_the_last():
    assert window_starts(5000, 5000) == [0]
    assert window_starts(7500, 5000) == [0, 2500]
    assert window_starts(8000, 5000) == [0, 2500, 5000]  # the last one zero-padded
    assert window_starts(15000, 5000) == [0, 2500, 5000, 7500, 10000]
    assert window_starts(3000, 5000) == [0]
    # the other layouts: consecutive windows with an end-aligned tail, or full windows only
    assert window_starts(7500, 5000, stride=5000, tail="end") == [0, 2500]
    assert window_starts(15000, 5000, stride=5000, tail="end") == [0, 5000, 10000]
    assert window_starts(7500, 5000, stride=5000, tail="drop") == [0]


def test_short_record_is_zscored_then_zero_padded():
    x = np.sin(np.linspace(0, 30, 3000)) * 2 + 1
    (window,) = to_windows(x, 500)
    assert window.shape == (5000,) and np.all(window[3000:] == 0)
    assert abs(window[:3000].mean()) < 1e-4 and abs(window[:3000].std() - 1) < 1e-3


def test_resampling_100_hz_to_500_hz_keeps_the_waveform():
    t100 = np.arange(1000) / 100
    x = np.sin(2 * np.pi * 1.2 * t100)
    (window,) = to_windows(x, 100, PreprocessConfig(normalize=False))
    t500 = np.arange(5000) / 500
    assert np.abs(window[200:-200] - np.sin(2 * np.pi * 1.2 * t500)[200:-200]).max() < 0.02


def test_bandpass_removes_baseline_and_bad_settings_are_config_errors():
    t = np.arange(5000) / 500
    x = np.sin(2 * np.pi * 10 * t) + 5 * t  # a 10-Hz wave on a strong drift
    (window,) = to_windows(x, 500, PreprocessConfig(bandpass=(0.5, 40.0), normalize=False))
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
