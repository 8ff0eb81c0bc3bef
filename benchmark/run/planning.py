"""What a run will do, and how long it should take on this device (``simecg-bench run --dry-run``).

:func:`make_plan` opens a suite as :func:`benchmark.run.runner.run_suite` does
(:mod:`benchmark.run.opening`: same cells, fingerprints and FINISHED runs, nothing trained or
logged) and adds what the runner would do
before and around them: the encoders to pretrain (neither in the cache nor a FINISHED run of the
store), the generators to train first (``vae``, ``gan``), the tuning studies with trials left.

Time estimates use the throughput file of this device, written by ``simecg-bench bench
finetune`` (:mod:`benchmark.perf.finetune`) to ``<cache>/throughput/<device>-<host>.json``:

* a neural cell: ``epochs x training windows / fine-tuning samples/s`` of its model, plus the
  validation passes (every ``eval_every`` epochs) and test scoring at the forward-only rate. The
  epochs are a range: at least ``eval_every x (patience + 2)`` (early stopping at its first
  chance: a first evaluation, then ``patience + 1`` without improvement), at most
  ``finetune.max_epochs``; the *expected* value is the mean ``epochs_run`` of
  the store's FINISHED cells of the same model under the same max_epochs/eval_every/patience
  (shown only when there are such cells: early stopping depends on the task and model, so no
  number is invented when nothing was measured);
* an estimator cell (XGBoost on features): feature extraction per ECG plus fit seconds per
  1000 training ECGs;
* a tuning trial: as a cell of its study cell (:func:`benchmark.run.cells.study_cell`: the tuning
  seed's split of the full training set, lead II, the model whose study it is) for up to
  ``tuning.trial_max_epochs``. Without early stopping (the authors' trials) a trial ends early
  only when pruned: at the earliest after ``eval_every x (pruner_patience + 2)`` epochs, and
  never among a study's first 5 trials (the median pruner's start-up trials), which run every
  epoch; no expected value is given (pruning is not measured). A study takes the sum over its
  trials left, capped by ``tuning.timeout_s``;
* pretraining: ``steps x batch / samples/s`` of its MAE preset; a generator: ``steps /
  steps/s`` of its kind and preset.

Training windows are counted exactly: the cell's split (seed, demographic shift) and label budget
are drawn as :func:`benchmark.run.run_cell.prepare` draws them, without reading any signal.
"""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import io
import json
import os
import platform
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from baselines.training import check_device
from benchmark.data import demographics
from benchmark.data.budgets import apply_budget
from benchmark.data.splits import make_split
from benchmark.run.cells import study_donors
from benchmark.run.encoders import SuiteEncoders, encoder_is_complete
from benchmark.run.opening import default_optuna_storage, open_suite, plan
from benchmark.suites.config import parse_shift
from benchmark.tracking.tracker import Tracker
from pretraining.config import build_corpus, encoder_dir
from pretraining.corpora.base import TrainedCorpus
from simecg.config import flatten, to_dict
from simecg.paths import cache_dir

THROUGHPUT_SCHEMA = 1
STARTUP_TRIALS = 5  # trials of a study Optuna's MedianPruner never prunes (its n_startup_trials default)
BENCH_HINT = "run `simecg-bench bench finetune`"


# ----- the throughput file ---------------------------------------------------------------------------

def host_hash() -> str:
    """A short, stable name of this machine (host name, architecture, CPU count): no personal data."""
    text = f"{platform.node()}|{platform.machine()}|{platform.processor()}|{os.cpu_count()}"
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def device_name(preference: str = "auto") -> str:
    """The kind of device fine-tuning runs on under ``preference`` (``finetune.device``): ``cuda`` or ``cpu``.

    ``auto`` is ``cuda`` when a GPU is visible; ``cuda:<index>`` is ``cuda`` (one file per kind of
    device: the GPUs of a machine are alike). A GPU that is not there is no error here (a plan for
    a GPU machine can be made on a login node: it finds no GPU figures and says so); a misspelt
    device is a ConfigError naming it.
    """
    if check_device(preference) != "auto":
        return preference.partition(":")[0]
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def throughput_path(device: str | None = None) -> Path:
    """``<cache>/throughput/<device>-<host-hash>.json``: this machine's measured training speeds."""
    return cache_dir() / "throughput" / f"{device or device_name()}-{host_hash()}.json"


def load_throughput(path: str | Path | None = None) -> dict[str, Any] | None:
    """The throughput file (this device's by default), or None when none was measured."""
    path = Path(path) if path is not None else throughput_path()
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or data.get("schema") != THROUGHPUT_SCHEMA:
        return None
    data["path"] = str(path)
    return data


def write_throughput(figures: dict[str, Any], path: str | Path | None = None) -> Path:
    """Merge ``figures`` (sections ``finetune``, ``pretrain``, ``generators`` keyed by model) into the file."""
    path = Path(path) if path is not None else throughput_path(figures.get("device"))
    old = load_throughput(path) or {}
    out = {**old, **{k: v for k, v in figures.items() if not isinstance(v, dict)}}
    for section in ("finetune", "pretrain", "generators"):
        out[section] = {**old.get(section, {}), **figures.get(section, {})}
    out.pop("path", None)
    out.update(schema=THROUGHPUT_SCHEMA, host=host_hash(),
               measured_at=datetime.now(UTC).isoformat(timespec="seconds"))
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".tmp{os.getpid()}")
    tmp.write_text(json.dumps(out, indent=2, sort_keys=True))
    tmp.replace(path)
    return path


def speed_key(spec: Any, encoder: Any = None) -> str:
    """The name a model's fine-tuning speed is measured and looked up by.

    The registry name, plus each setting of the model that differs from its default (the variant
    field, e.g. a pretrained model's corpus, never changes the speed), plus for a pretrained model
    the encoder's architecture (``encoder``: its :class:`~pretraining.config.PretrainConfig`):
    ``resnet18-1d``, ``resnet18-1d@base_width=16``, ``mae@preset=paper``.
    """
    default = flatten(to_dict(spec.cls.make_config()))
    own = {k: v for k, v in flatten(to_dict(spec.config)).items()
           if default.get(k) != v and k != spec.cls.variant_field}
    if encoder is not None:
        own["preset"] = encoder.preset
        own.update({f"model.{k}": v for k, v in flatten(dict(encoder.model)).items()})
    return spec.entry + ("@" + ",".join(f"{k}={own[k]}" for k in sorted(own)) if own else "")


def base_keys(key: str) -> list[str]:
    """The measured keys a variant falls back to, closest first: the same entry and preset (the architecture's
    size; a pretrained model's is its encoder's), then the entry alone (its default config)
    (``mae@preset=paper,model.depth=4`` -> ``mae@preset=paper``, ``mae``)."""
    entry, _, rest = key.partition("@")
    preset = [part for part in rest.split(",") if part.startswith("preset=")]
    return [k for k in dict.fromkeys([f"{entry}@{preset[0]}" if preset else entry, entry]) if k != key]


# ----- the plan --------------------------------------------------------------------------------------

@dataclass
class Range:
    """Seconds: at least, expected (None: not estimated), at most."""

    low: float = 0.0
    high: float = 0.0
    expected: float | None = 0.0

    def __add__(self, other: Range) -> Range:
        expected = None if self.expected is None or other.expected is None else self.expected + other.expected
        return Range(self.low + other.low, self.high + other.high, expected)

    def scaled(self, factor: float) -> Range:
        return Range(self.low * factor, self.high * factor, None if self.expected is None else self.expected * factor)

    def capped(self, limit: float) -> Range:
        if limit <= 0:
            return self
        return Range(min(self.low, limit), min(self.high, limit),
                     None if self.expected is None else min(self.expected, limit))


@dataclass
class CellPlan:
    """One cell: status, identity, sizes and (if pending and measured) its estimated seconds."""

    status: str  # "finished" or "pending"
    fingerprint: str
    cell: Any  # benchmark.run.cells.Cell
    speed_key: str
    study: str = ""  # the tuning study's fingerprint ("" when the suite does not tune)
    n_train: int | None = None  # windows
    n_val: int | None = None
    n_test: int | None = None
    seconds: Range | None = None

    def row(self) -> dict[str, Any]:
        c, s = self.cell, self.seconds
        values = (self.status, self.fingerprint, c.model, c.task, c.lead, c.budget, c.positives_only, c.shift, c.seed,
                  c.label, self.study, self.speed_key, self.n_train, self.n_val, self.n_test,
                  _round(s.low) if s else None, _round(s.expected) if s and s.expected is not None else None,
                  _round(s.high) if s else None)
        return dict(zip(CELL_FIELDS, values, strict=True))


CELL_FIELDS = ("status", "fingerprint", "model", "task", "lead", "budget", "positives_only", "shift", "seed", "label",
               "study", "speed_key", "n_train", "n_val", "n_test", "est_seconds_low", "est_seconds_expected",
               "est_seconds_high")


@dataclass
class TrainingNeed:
    """An encoder to pretrain or a generator to train."""

    kind: str  # "encoder" or "generator"
    source: str  # the suite's pretraining source
    corpus: str
    fingerprint: str
    preset: str
    steps: int
    batch_size: int
    speed_key: str  # the throughput entry: MAE preset, or "<vae|gan>@<preset>"
    seconds: float | None = None
    method: str = ""  # an encoder's pretraining method


@dataclass
class StudyPlan:
    """A tuning study with trials left (it runs before the first pending cell of its seeds)."""

    fingerprint: str
    label: str
    trials_left: int
    seconds: Range | None = None


@dataclass
class Plan:
    """Everything ``run --dry-run`` reports (see the module docstring)."""

    suite: str
    shard: tuple[int, int]
    cells: list[CellPlan] = field(default_factory=list)
    pretraining: list[TrainingNeed] = field(default_factory=list)
    generators: list[TrainingNeed] = field(default_factory=list)
    studies: list[StudyPlan] = field(default_factory=list)
    n_trials: int = 0
    timeout_s: float = 0.0
    study_scope: str = ""  # which cells share a study, in words (the summary's tuning line)
    trial_early_stopping: bool = False
    throughput: dict[str, Any] | None = None
    unmeasured: dict[str, int] = field(default_factory=dict)  # what has no measured speed -> items left out
    approximated: dict[str, str] = field(default_factory=dict)  # speed key -> the measured key used
    expected_from: dict[str, int] = field(default_factory=dict)  # model -> finished cells its epochs come from
    epochs: tuple[int, int] = (0, 0)
    notes: list[str] = field(default_factory=list)

    @property
    def pending(self) -> list[CellPlan]:
        return [c for c in self.cells if c.status == "pending"]

    def cell_lines(self) -> list[str]:
        """The per-cell lines of ``--list``: ``status fingerprint label``."""
        return [f"{c.status:8s} {c.fingerprint} {c.cell.label}" for c in self.cells]

    def totals(self) -> dict[str, Range | None]:
        """Estimated seconds per part and in all (None: no throughput file)."""
        if self.throughput is None:
            return {"pretraining": None, "generators": None, "tuning": None, "cells": None, "total": None}

        def fixed(needs: list[TrainingNeed]) -> Range:
            seconds = sum(n.seconds or 0.0 for n in needs)
            return Range(seconds, seconds, seconds)

        out = {"pretraining": fixed(self.pretraining), "generators": fixed(self.generators),
               "tuning": sum((s.seconds for s in self.studies if s.seconds), Range()),
               "cells": sum((c.seconds for c in self.pending if c.seconds), Range())}
        out["total"] = out["pretraining"] + out["generators"] + out["tuning"] + out["cells"]
        return out

    def summary(self) -> dict[str, Any]:
        """JSON-ready counts and estimates."""
        totals = self.totals()
        pending = self.pending
        tp = self.throughput
        return {
            "suite": self.suite, "shard": f"{self.shard[0]}/{self.shard[1]}",
            "cells": {"total": len(self.cells), "finished": len(self.cells) - len(pending), "pending": len(pending)},
            "pretraining": [_need_dict(n) for n in self.pretraining],
            "generators": [_need_dict(n) for n in self.generators],
            "tuning": {"studies": len(self.studies), "n_trials": self.n_trials,
                       "trials": sum(s.trials_left for s in self.studies), "timeout_s": self.timeout_s,
                       "scope": self.study_scope},
            "throughput": None if tp is None else {
                "path": tp.get("path"), "device": tp.get("device"), "threads": tp.get("threads"),
                "torch": tp.get("torch"), "measured_at": tp.get("measured_at")},
            "estimate_seconds": {k: None if v is None else _range_dict(v) for k, v in totals.items()},
            "epochs": {"low": self.epochs[0], "high": self.epochs[1],
                       "expected_from_finished_cells": self.expected_from},
            "unmeasured": self.unmeasured, "approximated": self.approximated,
            "notes": self.notes + ([] if tp is not None else [f"no throughput measured on this device: {BENCH_HINT}"]),
        }

    def summary_lines(self) -> list[str]:
        """The human-readable summary ``run --dry-run`` prints first."""
        pending = self.pending
        lines = [f"suite {self.suite}" + (f" (shard {self.shard[0]}/{self.shard[1]})" if self.shard[1] > 1 else "")
                 + f": {len(self.cells)} cells, {len(self.cells) - len(pending)} finished, {len(pending)} pending"]
        if self.pretraining:
            lines.append(f"pretraining: {len(self.pretraining)} encoder(s) to pretrain: "
                         + "; ".join(_need_text(n) for n in self.pretraining))
        else:
            lines.append("pretraining: none (every encoder the pending cells need is in the cache or the store)")
        if self.generators:
            lines.append(f"generators: {len(self.generators)} to train first: "
                         + "; ".join(_need_text(n) for n in self.generators))
        if self.n_trials > 0:
            trials = sum(s.trials_left for s in self.studies)
            timeout = f"; at most {duration(self.timeout_s)} per study, tuning.timeout_s" if self.timeout_s else ""
            lines.append(f"tuning: {len(self.studies)} study(ies) with trials left, {trials} trial(s) "
                         f"(tuning.n_trials={self.n_trials} per study{timeout}); {self.study_scope}")
        else:
            lines.append("tuning: none (tuning.n_trials = 0)")
        tp = self.throughput
        if tp is None:
            lines.append(f"estimated time: no throughput measured on this device: {BENCH_HINT}")
            return lines
        lines.append(f"estimated time, from {tp.get('path')} (measured {tp.get('measured_at', '?')}, "
                     f"{tp.get('device', '?')}, {tp.get('threads', '?')} torch threads, torch {tp.get('torch', '?')}):")
        totals = self.totals()
        low, high = self.epochs
        expected = (f"; expected from the epochs_run of {sum(self.expected_from.values())} finished cell(s) "
                    "with these settings" if self.expected_from else "; no expected value: no finished cell "
                    "with these settings to take epochs from")
        parts = [("pretraining", len(self.pretraining), "encoder(s), steps x batch / samples/s of the preset"),
                 ("generators", len(self.generators), "generator(s), steps / steps/s of the preset"),
                 ("tuning", sum(s.trials_left for s in self.studies),
                  "trial(s), each a fit of its study cell, ended early only by the pruner"
                  if not self.trial_early_stopping else "trial(s), each like a cell of its study cell"),
                 ("cells", len(pending), f"pending, {low} to {high} epochs x training windows / samples/s{expected}")]
        for name, count, how in parts:
            value = totals[name]
            if value is not None and count:
                lines.append(f"  {name:12s} {_range_text(value):>30s}   ({count} {how})")
        total = totals["total"]
        if total is not None:
            short = " (at least: some work has no measured speed, below)" if self.unmeasured else ""
            lines.append(f"  {'total':12s} {_range_text(total):>30s}{short}")
        for key, count in sorted(self.unmeasured.items()):
            lines.append(f"  not measured: {key} ({count} left out of the estimate; "
                         f"run `simecg-bench bench finetune --suite {self.suite}`)")
        for key, used in sorted(self.approximated.items()):
            lines.append(f"  {key}: not measured, estimated with {used}")
        lines += [f"  note: {note}" for note in self.notes]
        return lines

    def rows_csv(self) -> str:
        buffer = io.StringIO()
        rows = [c.row() for c in self.cells]
        writer = csv.DictWriter(buffer, fieldnames=CELL_FIELDS, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
        return buffer.getvalue()

    def to_json(self) -> str:
        return json.dumps({"summary": self.summary(), "cells": [c.row() for c in self.cells]}, indent=2)


def make_plan(
    suite: Any,
    *,
    data_dir: str | Path | None = None,
    tracking_uri: str | None = None,
    shard_spec: tuple[int, int] = (0, 1),
    optuna_storage: str | None = None,
    throughput: dict[str, Any] | None | str = "auto",
    estimate: bool = True,
) -> Plan:
    """The plan of ``suite`` (this shard's cells); ``throughput="auto"`` reads this device's file.

    With ``estimate=False`` only statuses and fingerprints are resolved (the ``--list`` lines).
    """
    opened = open_suite(suite, data_dir, shard_spec)  # as run_suite opens it: the same cells and data
    suite, cells, data = opened.suite, opened.cells, opened.data
    tracker = Tracker(tracking_uri, suite.name, create=False)  # a plan writes nothing to the store
    finished = tracker.finished_fingerprints()  # as run_suite decides what to skip
    encoders = SuiteEncoders(suite)
    planned = plan(suite, cells, data, encoders)
    tuning = suite.tuning.n_trials > 0
    result = Plan(suite.name, shard_spec, n_trials=suite.tuning.n_trials, timeout_s=suite.tuning.timeout_s,
                  study_scope=study_scope(suite), trial_early_stopping=suite.tuning.trial_early_stopping)
    keys: dict[str, str] = {}  # one per model name

    def key_of(spec: Any, cell: Any) -> str:
        if cell.model not in keys:
            need = spec.encoder_need()
            keys[cell.model] = speed_key(spec, encoders.config(need) if need is not None else None)
        return keys[cell.model]

    for p in planned:
        result.cells.append(CellPlan("finished" if p.fingerprint in finished else "pending", p.fingerprint, p.cell,
                                     key_of(p.model, p.cell), p.tuning.fingerprint if p.tuning else ""))
    if not estimate:
        return result
    if throughput == "auto":  # the figures of the device the cells will fine-tune on
        result.throughput = load_throughput(throughput_path(device_name(suite.finetune.device)))
    else:
        result.throughput = throughput  # type: ignore[assignment]
    sizes = _Sizes(suite, data)
    for c in result.cells:
        c.n_train, c.n_val, c.n_test = sizes.of(c.cell, c.cell.seed)
    pending = [p for p in planned if p.fingerprint not in finished]
    _plan_training(result, suite, encoders, tracker, pending)
    ft = suite.finetune
    low = min(ft.max_epochs, ft.eval_every * (ft.patience + 2)) if ft.early_stopping else ft.max_epochs
    result.epochs = (low, ft.max_epochs)
    expected = _expected_epochs(tracker.cell_runs()[0], ft, result)
    kinds = {p.fingerprint: p.model.cls.kind for p in planned}
    speeds = _Speeds(result, ft.batch_size) if result.throughput is not None else None
    if speeds is not None:
        for c in result.pending:
            c.seconds = speeds.cell(c, kinds[c.fingerprint], (low, ft.max_epochs, expected.get(c.cell.model)), ft)
    if tuning:
        storage = optuna_storage or default_optuna_storage(tracker.uri)
        studies = {p.tuning.fingerprint: p.tuning for p in pending if p.tuning is not None}
        _plan_studies(result, suite, list(studies.values()), sizes, storage, expected, speeds, key_of)
    return result


def dry_run(
    suite: Any,
    *,
    data_dir: str | Path | None = None,
    tracking_uri: str | None = None,
    shard_spec: tuple[int, int] = (0, 1),
) -> list[str]:
    """One line per cell of this shard: ``finished``/``pending``, fingerprint and label (``--dry-run --list``).

    The summary, counts and time estimates of ``--dry-run`` are :func:`make_plan`'s.
    """
    return make_plan(suite, data_dir=data_dir, tracking_uri=tracking_uri, shard_spec=shard_spec,
                     estimate=False).cell_lines()


def study_scope(suite: Any) -> str:
    """Which cells share a tuning study, in words (``tuning.separate_studies``, and the
    ``tuning.shared_studies`` pairs this suite uses)."""
    separate = ", ".join(suite.tuning.separate_studies)
    scope = ("one study per (task, model) on the full training split of lead II" if not separate
             else f"one study per (task, model, {separate})")
    pairs = sorted(set((model, donor) for (model, _), donor in study_donors(suite).items()))
    borrowed = "; ".join(f"{model} takes {donor}'s" for model, donor in pairs)
    return scope + (f"; {borrowed} (tuning.shared_studies)" if borrowed else "")


class _Sizes:
    """Training/validation/test windows of a cell, drawn as the runner draws them (no signal read)."""

    def __init__(self, suite: Any, data: dict[tuple[str, str], Any]):
        self.suite, self.data = suite, data
        self._windows: dict[tuple[str, str], np.ndarray] = {}
        self._splits: dict[tuple[str, str, int, str], Any] = {}

    def of(self, cell: Any, seed: int) -> tuple[int | None, int | None, int | None]:
        key = (cell.task, cell.lead)
        data = self.data[key]
        if key not in self._windows:
            valid = data.window_record[data.window_record >= 0]
            self._windows[key] = np.bincount(valid, minlength=data.n_records)
        per_record = self._windows[key]
        split_key = (cell.task, cell.lead, seed, cell.shift)
        try:
            if split_key not in self._splits:
                split = make_split(data, self.suite.split, seed=seed, test_seed=self.suite.test_seed,
                                   duplicates=self.suite.duplicates)
                shift = parse_shift(cell.shift)
                if shift:
                    split = demographics.shift_split(split, data.records, *shift, age_bins=self.suite.age_bins)
                self._splits[split_key] = split
            split = self._splits[split_key]
            train, _ = apply_budget(split.train, data.labels, cell.budget or None, seed, cell.positives_only)
        except Exception:  # noqa: BLE001 - the run reports this cell's error; the plan just has no size
            return None, None, None
        return (int(per_record[train].sum()), int(per_record[split.val].sum()), int(per_record[split.test].sum()))


class _Speeds:
    """Look-ups in the throughput file, noting what was not measured or only approximated."""

    def __init__(self, plan: Plan, batch_size: int):
        self.plan, self.batch_size = plan, batch_size
        self.finetune: dict[str, Any] = dict((plan.throughput or {}).get("finetune", {}))
        self._noted: set[str] = set()

    def entry(self, key: str) -> dict[str, Any] | None:
        found = next((k for k in (key, *base_keys(key)) if k in self.finetune), None)
        if found is None:
            return None
        if found != key:
            self.plan.approximated[key] = found
        figures = self.finetune[found]
        batch = figures.get("batch_size")
        if figures.get("kind") == "neural" and batch and batch != self.batch_size and found not in self._noted:
            self._noted.add(found)
            self.plan.notes.append(f"{found} was measured at batch {batch}; the suite fine-tunes at batch "
                                   f"{self.batch_size} (`simecg-bench bench finetune --suite {self.plan.suite}` "
                                   "measures at its batch)")
        return figures

    def seconds(self, key: str, kind: str, sizes: tuple[int | None, int | None, int | None],
                epochs: tuple[int, int, float | None], ft: Any) -> Range | None:
        n_train, n_val, n_test = sizes
        figures = self.entry(key)
        if figures is None or n_train is None:
            return None
        n_val, n_test = n_val or 0, n_test or 0
        if kind != "neural":
            seconds = (figures["feature_ms_per_ecg"] / 1000 * (n_train + n_val + n_test)
                       + figures["fit_s_per_1000"] * n_train / 1000)
            return Range(seconds, seconds, seconds)

        def at(n_epochs: float) -> float:
            evaluations = max(1, int(n_epochs) // ft.eval_every)
            return (n_epochs * n_train / figures["train_samples_per_s"]
                    + (evaluations * n_val + n_test) / figures["predict_samples_per_s"])

        low, high, expected = epochs
        return Range(at(low), at(high), None if expected is None else at(expected))

    def cell(self, c: CellPlan, kind: str, epochs: tuple[int, int, float | None], ft: Any) -> Range | None:
        out = self.seconds(c.speed_key, kind, (c.n_train, c.n_val, c.n_test), epochs, ft)
        if out is None and c.n_train is not None:
            _count(self.plan.unmeasured, f"fine-tuning {c.speed_key}")
        return out


def _count(counts: dict[str, int], key: str) -> None:
    counts[key] = counts.get(key, 0) + 1


def _expected_epochs(finished_runs: list[Any], ft: Any, plan: Plan) -> dict[str, float]:
    """Mean ``epochs_run`` per model of FINISHED cells trained with the same epoch settings."""
    same = {"finetune.max_epochs": str(ft.max_epochs), "finetune.eval_every": str(ft.eval_every),
            "finetune.patience": str(ft.patience)}
    epochs: dict[str, list[float]] = {}
    for run, tags in finished_runs:
        value = run.data.metrics.get("epochs_run")
        if value is None or any(run.data.params.get(k) != v for k, v in same.items()):
            continue
        epochs.setdefault(tags.model, []).append(float(value))
    plan.expected_from = {model: len(values) for model, values in epochs.items()}
    return {model: float(np.mean(values)) for model, values in epochs.items()}


def _plan_training(plan: Plan, suite: Any, encoders: Any, tracker: Any, pending: list[Any]) -> None:
    """Encoders the pending cells need that neither the cache nor the store holds; their generators."""
    needs = {n for p in pending if (n := p.model.encoder_need()) is not None}
    speeds = (plan.throughput or {})
    for encoder in sorted(needs, key=lambda n: (n.source, n.method)):
        source, config, identity = encoder.source, encoders.config(encoder), encoders.identity(encoder)
        done = encoder_is_complete(encoder_dir(identity), identity)
        if done or tracker.finished_run(identity.fingerprint, everywhere=True):
            continue
        need = TrainingNeed("encoder", source, config.corpus, identity.fingerprint, config.preset, config.steps,
                            config.batch_size, config.preset, method=encoder.method)
        measured = speeds.get("pretrain", {}).get(config.preset)
        if measured:
            need.seconds = config.steps * config.batch_size / measured["samples_per_s"]
            batch = measured.get("batch_size")
            note = (f"pretraining speed of the {config.preset} preset was measured at batch {batch}; "
                    f"the suite pretrains at batch {config.batch_size}")
            if batch and batch != config.batch_size and note not in plan.notes:
                plan.notes.append(note)
        elif plan.throughput is not None:
            _count(plan.unmeasured, f"pretraining preset {config.preset}")
        if config.model:
            plan.notes.append(f"{_need_name(need)}: pretrain.model overrides {dict(config.model)} are estimated at the "
                              f"{config.preset} preset's speed")
        if config.threads and plan.throughput is not None and config.threads != plan.throughput.get("threads"):
            plan.notes.append(f"{_need_name(need)} pretrains with pretrain.threads={config.threads}; the speed was "
                              f"measured with {plan.throughput.get('threads')} thread(s)")
        plan.pretraining.append(need)
        corpus = build_corpus(config)
        if isinstance(corpus, TrainedCorpus):
            model = corpus.generator()
            if (corpus.is_prepared() or any(g.fingerprint == model.identity.fingerprint for g in plan.generators)
                    or tracker.finished_run(model.identity.fingerprint, everywhere=True)):
                continue  # trained, or listed for another method on this source
            key = f"{model.kind}@{model.preset}"
            gen = TrainingNeed("generator", source, config.corpus, model.identity.fingerprint, model.preset,
                               model.config.steps, model.config.batch_size, key)
            measured = speeds.get("generators", {}).get(key)
            if measured:
                gen.seconds = model.config.steps / measured["steps_per_s"]
            elif plan.throughput is not None:
                _count(plan.unmeasured, f"generator {key}")
            plan.generators.append(gen)


def _plan_studies(plan: Plan, suite: Any, studies: list[Any], sizes: _Sizes, storage: str,
                  expected: dict[str, float], speeds: _Speeds | None, key_of: Any) -> None:
    """The studies (:class:`benchmark.run.cells.PlannedStudy`) of pending cells with trials left (trials
    already finished in the Optuna storage count)."""
    done = _trials_done(storage, {s.fingerprint for s in studies})
    ft, tuning = suite.finetune, suite.tuning
    epochs = min(tuning.trial_max_epochs, ft.max_epochs)
    patience = min(ft.patience, tuning.pruner_patience) if tuning.trial_early_stopping else tuning.pruner_patience
    low = min(epochs, ft.eval_every * (patience + 2))  # pruned (or early-stopped) at the first chance
    for study in studies:
        finished = done.get(study.name, 0)
        left = max(tuning.n_trials - finished, 0)
        if not left:
            continue
        entry = StudyPlan(study.fingerprint, study.label, left)
        if speeds is not None:
            cell = study.cell
            kind = study.model.cls.kind
            n_train, n_val, _ = sizes.of(cell, cell.seed)
            trial_sizes = (n_train, n_val, 0)  # a trial scores no test records
            if tuning.trial_early_stopping:
                mean = expected.get(cell.model)
                per_trial = (low, epochs, None if mean is None else min(mean, epochs))
                trial = speeds.seconds(key_of(study.model, cell), kind, trial_sizes, per_trial, ft)
                total = trial.scaled(left) if trial is not None else None
            else:  # the median pruner's start-up trials run every epoch; the others may be pruned
                startup = min(left, max(0, STARTUP_TRIALS - finished))
                full = speeds.seconds(key_of(study.model, cell), kind, trial_sizes, (epochs, epochs, None), ft)
                pruned = speeds.seconds(key_of(study.model, cell), kind, trial_sizes, (low, epochs, None), ft)
                total = None if full is None or pruned is None else full.scaled(startup) + pruned.scaled(left - startup)
            if total is not None:
                entry.seconds = total.capped(tuning.timeout_s)
        plan.studies.append(entry)


def _trials_done(storage: str, names: set[str]) -> dict[str, int]:
    """Done trials (complete or pruned, as the tuner counts them: a failed one is run again) per study name."""
    if not names:
        return {}
    if storage.startswith("sqlite:///") and not Path(storage[len("sqlite:///"):]).is_file():
        return {}
    import optuna
    from optuna.trial import TrialState

    wanted = {f"study-{name}" for name in names}
    try:
        store = optuna.storages.get_storage(storage)
        out = {}
        for study in store.get_all_studies():
            if study.study_name in wanted:
                trials = store.get_all_trials(store.get_study_id_from_name(study.study_name), deepcopy=False)
                out[study.study_name] = sum(t.state in (TrialState.COMPLETE, TrialState.PRUNED) for t in trials)
        return out
    except Exception:  # noqa: BLE001 - an unreadable storage: count every trial as left
        return {}


# ----- text ------------------------------------------------------------------------------------------

def _round(value: float) -> float:
    return round(float(value), 1)


def _range_dict(r: Range) -> dict[str, float | None]:
    return {"low": _round(r.low), "expected": None if r.expected is None else _round(r.expected),
            "high": _round(r.high)}


def _need_dict(n: TrainingNeed) -> dict[str, Any]:
    out = dataclasses.asdict(n)
    out["seconds"] = None if n.seconds is None else _round(n.seconds)
    return out


def _need_text(n: TrainingNeed) -> str:
    if n.kind == "generator":
        return f"{n.corpus} ({n.preset} preset, {n.steps:,} steps of batch {n.batch_size})"
    return f"{_need_name(n)} ({n.preset} preset, {n.steps:,} steps x batch {n.batch_size})"


def _need_name(n: TrainingNeed) -> str:
    """An encoder to pretrain: its pretraining method on its source, ``<method>:<source>`` (``mae:sim``)."""
    return f"{n.method}:{n.source}"


def _range_text(r: Range) -> str:
    if duration(r.low) == duration(r.high):
        return duration(r.high)
    expected = f" (expected {duration(r.expected)})" if r.expected is not None else ""
    return f"{duration(r.low)} to {duration(r.high)}{expected}"


def duration(seconds: float | None) -> str:
    """``41 s``, ``27 min``, ``3.2 h``, ``12.0 d``, ``14.5 years``."""
    if seconds is None:
        return "?"
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 90 * 60:
        return f"{seconds / 60:.0f} min"
    if seconds < 48 * 3600:
        return f"{seconds / 3600:.1f} h"
    if seconds < 365 * 86400:
        return f"{seconds / 86400:.1f} d"
    return f"{seconds / (365.25 * 86400):.1f} years"
