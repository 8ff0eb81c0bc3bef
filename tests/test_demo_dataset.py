"""The synthetic demo dataset: registered tasks, TaskData contract, determinism, measurable conditions."""

from __future__ import annotations

import neurokit2 as nk
import numpy as np
import pytest

from benchmark.data.base import TaskData
from benchmark.data.demo import CONDITIONS, NORMAL, _generate
from benchmark.registries import DATASETS, TASKS
from pretraining.simulators.gaussian import GaussianBeat
from simecg.errors import ConfigError

DEMO_TASKS = ["demo/tachycardia", "demo/bradycardia", "demo/af", "demo/wide_qrs", "demo/pvc", "demo/st_deviation"]


def _load(name: str, lead: str = "II") -> TaskData:
    return DATASETS.get("demo").load_task(TASKS.get(name), None, lead, None)


def test_every_condition_is_a_registered_task_against_normal():
    for name in DEMO_TASKS:
        spec = TASKS.get(name)
        assert spec.dataset == "demo" and spec.negative == ("normal",) and spec.positive == (spec.label,)


@pytest.mark.parametrize("name", ["demo/af", "demo/pvc"])
def test_task_data_contract(name):
    data = _load(name)
    assert data.synthetic and data.dataset == "demo" and data.lead == "II" and data.task == name
    assert data.signals.shape == (200, 5000) and data.signals.dtype == np.float32
    np.testing.assert_allclose(data.signals.mean(axis=1), 0, atol=1e-4)
    np.testing.assert_allclose(data.signals.std(axis=1), 1, atol=1e-3)
    assert data.labels.dtype == np.int8 and data.labels.sum() == 100 and data.n_records == 200
    np.testing.assert_array_equal(data.window_record, np.arange(200))
    rec = data.records
    assert list(rec.columns) == ["record_id", "patient_id", "age", "sex", "strat_fold"]
    assert rec["record_id"].is_unique and (rec["record_id"] == rec["patient_id"]).all()
    assert (rec["strat_fold"] == -1).all() and set(rec["sex"]) == {"M", "F"} and rec["age"].between(18, 95).all()


def test_generation_is_deterministic_and_versioned():
    a, b = _load("demo/tachycardia"), _load("demo/tachycardia")
    np.testing.assert_array_equal(a.signals, b.signals)
    np.testing.assert_array_equal(a.labels, b.labels)
    assert a.data_version == b.data_version != _load("demo/bradycardia").data_version


def test_other_leads_are_a_config_error():
    with pytest.raises(ConfigError, match="lead II only"):
        _load("demo/af", lead="V1")


def _rr_seconds(config, n: int = 20) -> list[np.ndarray]:
    """R-R intervals of each ECG, from the R waves the simulator placed in the window."""
    _, params = GaussianBeat(config).simulate_with_parameters(np.arange(n), seed=1)
    return [np.diff(p) / 500 for p in params["r_peaks"]]


def test_conditions_show_their_defining_features():
    hr = {k: np.array([60 / rr.mean() for rr in _rr_seconds(cfg)]) for k, cfg in {
        "normal": NORMAL, "tachy": CONDITIONS["tachycardia"].config(), "brady": CONDITIONS["bradycardia"].config()
    }.items()}
    assert np.all(hr["tachy"] > 100) and np.all(hr["brady"] < 60)
    assert 60 < np.median(hr["normal"]) < 100 and np.mean((hr["normal"] > 55) & (hr["normal"] < 105)) > 0.9
    cv = {k: np.median([rr.std() / rr.mean() for rr in _rr_seconds(cfg)])
          for k, cfg in {"normal": NORMAL, "af": CONDITIONS["af"].config()}.items()}
    assert cv["af"] > 3 * cv["normal"]  # irregularly irregular
    x, params = GaussianBeat(CONDITIONS["pvc"].config()).simulate_with_parameters(np.arange(20), seed=1)
    assert params["n_pvc"].mean() > 1


def test_wide_qrs_is_wider_than_120_ms_and_normal_is_not():
    def r_width_ms(x: np.ndarray) -> float:
        peaks = nk.ecg_peaks(x, sampling_rate=500)[1]["ECG_R_Peaks"][1:-1]
        widths = []
        for p in peaks:  # contiguous width of the R wave above 10% of its height over the baseline
            seg = x[p - 150 : p + 150] - np.median(x[p - 150 : p + 150])
            above = seg > 0.1 * seg[150]
            left = 150 - np.argmin(above[150::-1])
            right = 150 + np.argmin(above[150:])
            widths.append((right - left) * 2.0)
        return float(np.median(widths))

    assert np.median([r_width_ms(x) for x in _generate(CONDITIONS["wide_qrs"].config(), 10, seed=2)]) >= 110
    assert np.median([r_width_ms(x) for x in _generate(NORMAL, 10, seed=2)]) < 50
