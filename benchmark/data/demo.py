"""The synthetic ``demo`` dataset: simulator-made abnormal-ECG tasks that need no download.

Each task ``demo/<condition>`` is one abnormality against normal sinus rhythm, both made by the
Gaussian-composition beat simulator (:mod:`pretraining.simulators.gaussian`) with a quiet,
clean "normal" setting; positives change only the parameters that define the condition, so a
model has to see that feature. **These are pipeline checks, not evidence**: every TaskData is
marked ``synthetic=True``.

Normal sinus rhythm: heart rate 60-100 bpm (beat length ~ N(0.85, 0.08) s, per-beat sd 0.02 s),
P-QRS-T from the simulator's default morphology with small per-record spread, light noise, no
augmentation (normal adult ranges: Mason et al., J Electrocardiol 2007;40:228-234).

Conditions, with the parameter change and its clinical definition:

* ``tachycardia``: beat length ~ N(0.46, 0.04) s, i.e. ~115-150 bpm; sinus tachycardia is a sinus
  rate > 100 bpm (Page et al., 2015 ACC/AHA/HRS SVT guideline, Circulation 2016;133:e506-e574).
* ``bradycardia``: beat length ~ N(1.35, 0.1) s, i.e. ~40-50 bpm; sinus bradycardia is a rate
  < 50 bpm (< 60 conventionally) (Kusumoto et al., 2018 ACC/AHA/HRS bradycardia guideline,
  Circulation 2019;140:e382-e482).
* ``af``: no P wave, irregularly irregular RR (per-beat sd 0.15 s around 0.75 s) and 4-9 Hz
  fibrillatory waves of 0.05 mV (January et al., 2014 AHA/ACC/HRS AF guideline, Circulation
  2014;130:e199-e267: "irregular R-R intervals ... no distinct P waves", f waves 300-600/min).
* ``wide_qrs``: R width x6 and S width x1.5: the R wave alone lasts ~130 ms above 10% of its
  height (median over records; 10th percentile ~115 ms; normal: ~25 ms), so QRS >= 120 ms
  (Surawicz et al., AHA/ACCF/HRS ECG standardization Part III, Circulation 2009;119:e235-e240:
  complete bundle branch block QRS >= 120 ms).
* ``pvc``: premature ventricular complexes (each beat 15% likely, at least one per record):
  early (coupling 0.65 of the cycle), no P wave, QRS widened x4, discordant T, full compensatory
  pause (Marcus, Circulation 2020;141:1404-1418).
* ``st_deviation``: ST segment depressed by 0.2 mV from the S wave to the end of the T wave; new
  horizontal/down-sloping depression >= 0.05 mV is abnormal (Thygesen et al., Fourth Universal
  Definition of MI, Circulation 2018;138:e618-e651; Rautaharju et al., Part IV, Circulation
  2009;119:e241-e250).
"""

from __future__ import annotations

import dataclasses
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from benchmark.data.base import ClassCounts, TaskData, TaskSpec
from pretraining.simulators.base import SIMULATOR_VERSION
from pretraining.simulators.gaussian import GaussianBeat, GaussianBeatConfig
from simecg.config import stable_hash, to_dict
from simecg.errors import ConfigError
from simecg.signal import zscore

DEMO_VERSION = 2  # 2: wide_qrs R width x6 (was x5)

NORMAL = GaussianBeatConfig(
    peak_sd_record=(0.05, 0.03, 0.25, 0.15, 0.1),
    peak_sd_beat=(0.02, 0.01, 0.05, 0.02, 0.02),
    width_sd_record=(0.005, 0.01, 0.001, 0.008, 0.005),
    width_sd_beat=(0.001, 0.002, 0.0003, 0.002, 0.001),
    centre_sd_record=(0.02, 0.01, 0.003, 0.01, 0.02),
    centre_sd_beat=(0.005, 0.002, 0.001, 0.003, 0.005),
    beat_length=0.85,
    beat_length_sd_record=0.08,
    beat_length_sd_beat=0.02,
    beat_length_min=0.3,
    drift_scale=0.03,
    drift_scale_sd_record=0.01,
    drift_scale_sd_beat=0.005,
    augment_rate=0.0,
)


@dataclass(frozen=True)
class Condition:
    """One abnormality: the simulator changes that define it (see the module docstring); its task,
    ``demo/<label>``, is a row of ``demo_tasks.toml``."""

    label: str
    changes: dict[str, Any] = field(default_factory=dict)
    min_pvc: int = 0  # positives must show at least this many PVCs in their window

    def config(self) -> GaussianBeatConfig:
        return dataclasses.replace(NORMAL, **self.changes)


def _scaled(values: tuple[float, ...], factors: tuple[float, ...]) -> tuple[float, ...]:
    return tuple(v * f for v, f in zip(values, factors, strict=True))


CONDITIONS = {
    c.label: c
    for c in (
        Condition("tachycardia", {"beat_length": 0.46, "beat_length_sd_record": 0.04, "beat_length_sd_beat": 0.01}),
        Condition("bradycardia", {"beat_length": 1.35, "beat_length_sd_record": 0.1, "beat_length_sd_beat": 0.03}),
        Condition("af", {
            "peak": (0.0, *NORMAL.peak[1:]), "peak_sd_record": (0.0, *NORMAL.peak_sd_record[1:]),
            "peak_sd_beat": (0.0, *NORMAL.peak_sd_beat[1:]), "beat_length": 0.75,
            "beat_length_sd_beat": 0.15, "fibrillation_amplitude": 0.05,
        }),
        Condition("wide_qrs", {"width": _scaled(NORMAL.width, (1.0, 1.0, 6.0, 1.5, 1.0))}),
        Condition("pvc", {"pvc_probability": 0.15, "pvc_coupling": 0.65, "pvc_qrs_widen": 4.0}, min_pvc=1),
        Condition("st_deviation", {"st_offset": -0.2}),
    )
}


@dataclass(frozen=True)
class DemoConfig:
    """Size and seed of every demo task (defaults: 100 positives + 100 negatives)."""

    n_positive: int = 100
    n_negative: int = 100
    seed: int = 0


def _seed(*parts: object) -> int:
    return zlib.crc32(":".join(str(p) for p in parts).encode())


def _generate(config: GaussianBeatConfig, n: int, seed: int, min_pvc: int = 0) -> np.ndarray:
    """``n`` ECGs (mV); with ``min_pvc``, the first ``n`` indices whose window holds enough PVCs."""
    sim = GaussianBeat(config)
    if not min_pvc:
        return sim.simulate(np.arange(n), seed)
    kept: list[np.ndarray] = []
    start = 0
    while sum(len(k) for k in kept) < n:
        batch = np.arange(start, start + 2 * n)
        x, params = sim.simulate_with_parameters(batch, seed)
        kept.append(x[params["n_pvc"] >= min_pvc])
        start += 2 * n
        if start > 50 * n:
            raise ConfigError(f"demo: pvc_probability too low to find {n} records with {min_pvc} PVC(s)")
    return np.concatenate(kept)[:n]


class DemoDataset:
    """The ``demo`` dataset: generated on demand, deterministic, no data folder needed."""

    name = "demo"

    def __init__(self, config: DemoConfig | None = None):
        self.config = config or DemoConfig()

    def data_version(self, spec: TaskSpec) -> str:
        condition = CONDITIONS[spec.label]
        return stable_hash({
            "version": DEMO_VERSION, "simulator_version": SIMULATOR_VERSION, "demo": to_dict(self.config),
            "condition": condition.label,
            "positive": to_dict(condition.config()), "negative": to_dict(NORMAL), "min_pvc": condition.min_pvc,
        })

    def label_counts(self, spec: TaskSpec, data_dir: Path | str | None = None, options: Any = None) -> ClassCounts:
        return ClassCounts(positives=self.config.n_positive, negatives=self.config.n_negative)

    def load_task(
        self, spec: TaskSpec, data_dir: Path | str | None = None, lead: str = "II",
        cache_dir: Path | None = None, **_: Any,
    ) -> TaskData:
        """Generate the task's ECGs (a second or two); ``data_dir`` and ``cache_dir`` are not needed."""
        if str(lead).strip().upper() != "II":
            raise ConfigError(f"demo tasks exist on lead II only (simulated lead II), got lead {lead!r}")
        if spec.label not in CONDITIONS:
            raise ConfigError(f"demo: unknown condition {spec.label!r}; known: {', '.join(CONDITIONS)}")
        condition = CONDITIONS[spec.label]
        c = self.config
        positives = _generate(condition.config(), c.n_positive, _seed(c.seed, spec.label, "positive"),
                              condition.min_pvc)
        negatives = _generate(NORMAL, c.n_negative, _seed(c.seed, spec.label, "negative"))
        signals = np.concatenate([positives, negatives])
        labels = np.concatenate([np.ones(c.n_positive, np.int8), np.zeros(c.n_negative, np.int8)])
        rng = np.random.default_rng(_seed(c.seed, spec.label, "order"))
        order = rng.permutation(len(labels))
        signals, labels = signals[order], labels[order]
        n = len(labels)
        record_ids = [f"demo-{spec.label}-{k:04d}" for k in range(n)]
        records = pd.DataFrame({
            "record_id": record_ids,
            "patient_id": record_ids,
            "age": np.round(np.clip(rng.normal(58.0, 16.0, n), 18, 95)).astype(float),
            "sex": np.where(rng.uniform(size=n) < 0.5, "M", "F").astype(object),
            "strat_fold": np.full(n, -1, dtype=int),
        })
        return TaskData(
            task=spec.name, dataset=self.name, lead="II", signals=zscore(signals),
            window_record=np.arange(n, dtype=np.int64), labels=labels, records=records,
            data_version=self.data_version(spec), synthetic=True,
        )


DATASET = DemoDataset()  # registered as "demo" by its entry point (pyproject.toml); its tasks in demo_tasks.toml
