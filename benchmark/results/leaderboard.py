"""The leaderboard: test F1 (or AUROC, AUPRC) per task and model over seeds, read back from MLflow.

A row is one (task, model): mean, sd and 95% t-interval of the board's metric over seeds (test
F1 by default, as the paper; ``metric="auroc"``/``"auprc"`` rank by a score-based metric, which
does not hinge on the 0.5 threshold), the other metrics' means, the number of seeds and of test
positives; for a pretrained model also its relative gain over the task's strongest baseline in
that metric and whether it is significant (:mod:`benchmark.results.statistics`). The summary per
pretrained model is the study's headline: mean relative gain, tasks won, tasks won significantly;
and how far to trust it over tasks: a 95% hierarchical bootstrap interval of the mean gain, a sign
test of the wins and a Wilcoxon signed-rank test of the per-task gains.

Who competes is each model's ``role`` (:class:`baselines.base.Baseline`): "the strongest
baseline" of a task is the best (mean of the board's metric) of the models of role ``baseline`` (the five
supervised baselines, and plugins by default); ``extra`` (XGBoost on features) and ``ablation``
(the scratch Transformer) models are shown, never chosen; ``pretrained`` models are compared.

Counted fairly: a task whose test split has fewer than ``min_positives`` positives (one positive
makes F1 0 or 1) is flagged in every output and left out of means, gains and wins. A model
column is one configuration: cells of one model name run with other model settings or another
protocol (params ``model.*``, ``finetune.*``, ``tuning.*``, ``split``, ``test_seed``) are left
out and named in a note, the newest configuration is shown (``all_configs``: every one, each
older one as its own column ``<model>#<fingerprint>``).
"""

from __future__ import annotations

import io
import json
import logging
import math
import tempfile
import textwrap
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

import numpy as np
import pandas as pd

from baselines.names import ModelName
from benchmark.results import formatting
from benchmark.results.statistics import (
    ALPHA,
    ALTERNATIVE_OVER_TASKS,
    LEVEL,
    N_RESAMPLES,
    mean_gain_interval,
    paired_test,
    rng_for,
    seed_interval,
    sign_test,
    stratified_counts,
    wilcoxon_test,
)
from benchmark.tracking.tracker import EXPERIMENT_PREFIX, Tracker, resolve_uri
from simecg.errors import ConfigError
from simecg.identity import column_configuration
from simecg.paths import cache_dir
from simecg.registries import BASELINES
from simecg.urls import redact

log = logging.getLogger(__name__)

LEAK_MARK = "†"  # beside a model pretrained on downstream test records
FEW_MARK = "‡"  # beside a task with fewer than min_positives test positives
SIGNIFICANT_MARK = "*"  # beside a gain significant at ALPHA
FORMATS = ("table", "csv", "markdown", "json")
METRICS = ("test_f1", "test_auroc", "test_auprc")
METRIC_NAMES = {"f1": "F1", "auroc": "AUROC", "auprc": "AUPRC"}  # --metric: what a board ranks and compares
MIN_POSITIVES = 10  # default: tasks with fewer test positives are flagged and not counted
ROLE_ORDER = ("pretrained", "baseline", "extra", "ablation")  # column order of the tables
CONFIG_PARAMS = ("model.", "finetune.", "tuning.", "split", "test_seed")  # what makes a column's configuration
PREDICTIONS = "test_predictions.csv"  # per cell run: record_id, label, score


def row_columns(metric: str = "f1") -> tuple[str, ...]:
    """A board's row columns: its metric's mean, sd, interval and paired difference (``test_auroc``,
    ``test_auroc_sd``, ..., ``auroc_difference``), then the other metrics' means."""
    value = f"test_{metric}"
    others = tuple(m for m in METRICS if m != value)
    return ("task", "model", "role", value, f"{value}_sd", f"{value}_ci_low", f"{value}_ci_high", "n_seeds",
            "test_n_pos", "test_n", "few_positives", "flag", *others, "best_baseline", "relative_gain_pct", "win",
            f"{metric}_difference", f"{metric}_difference_ci_low", f"{metric}_difference_ci_high", "p_value",
            "significant", "sees_test_records", "config")


ROW_COLUMNS = row_columns("f1")
PER_SEED_COLUMNS = ("task", "model", "role", "seed", "test_f1", "test_auroc", "test_auprc", "test_n_pos", "test_n",
                    "few_positives", "flag", "run_id")
SUMMARY_COLUMNS = ("model", "mean_relative_gain_pct", "mean_relative_gain_ci_low", "mean_relative_gain_ci_high",
                   "wins", "losses", "ties", "significant_wins", "sign_test_p", "wilcoxon_p", "tasks_counted",
                   "tasks_tested", "tasks_left_out", "tasks_without_baseline", "mean_relative_gain_ci_note")
# what the headline's statistics over tasks are (the JSON's "statistics", the header's legend)
HEADLINE_INTERVAL = ("percentile interval of the mean relative gain, hierarchical bootstrap: tasks with replacement, "
                     "then each drawn task's seeds and test records (stratified by label, the same for model and "
                     "baseline); the strongest baseline as named per task, not chosen again per replicate")
SIGN_TEST = f"exact binomial test of wins against losses over tasks, {ALTERNATIVE_OVER_TASKS}, ties left out"
WILCOXON = (f"Wilcoxon signed-rank test over tasks of the relative gains, {ALTERNATIVE_OVER_TASKS}, zero gains "
            "left out")
VIEW_OPTIONS = (("lead", "II", "--lead"), ("budget", 0, "--budget"), ("positives_only", False, "--positives-only"),
                ("shift", "", "--shift"))


@dataclass
class Leaderboard:
    """Aggregated results of one suite at one view (lead, budget, positives-only variant, shift)."""

    suite: str
    lead: str
    budget: int
    rows: pd.DataFrame  # one row per (task, model): row_columns(metric)
    summary: pd.DataFrame  # one row per pretrained model: SUMMARY_COLUMNS
    synthetic: bool
    positives_only: bool = False
    shift: str = ""
    min_positives: int = MIN_POSITIVES
    notes: list[str] = field(default_factory=list)  # configurations left out, other views, untested gains
    metric: str = "f1"  # what the board ranks and compares: f1, auroc or auprc (METRIC_NAMES)
    cells: pd.DataFrame = field(default_factory=pd.DataFrame)  # the cells it aggregates, one per seed

    @property
    def value(self) -> str:
        """The rows' column of the board's metric (``test_f1``...)."""
        return f"test_{self.metric}"

    @property
    def metric_name(self) -> str:
        return METRIC_NAMES[self.metric]

    def render(self, fmt: str = "table", width: int | None = None) -> str:
        """The board as text. ``width`` (table only): fit lines to that many columns (a terminal's)."""
        if fmt not in FORMATS:
            raise ConfigError(f"--format must be one of {', '.join(FORMATS)}, got {fmt!r}")
        if fmt == "table":
            return self._table(width)
        return {"markdown": self._markdown, "csv": self._csv, "json": self._json}[fmt]()

    def render_per_seed(self, fmt: str = "table") -> str:
        """Every cell the board aggregates, one line per (task, model, seed), with its run id (``--per-seed``)."""
        if fmt not in FORMATS:
            raise ConfigError(f"--format must be one of {', '.join(FORMATS)}, got {fmt!r}")
        frame = self.per_seed()
        if fmt == "json":
            return json.dumps({**self.view(), "min_positives": self.min_positives, "cells": _records(frame)}, indent=2)
        if fmt == "csv":
            out = frame.copy()
            for i, (name, value) in enumerate(self.view().items()):
                out.insert(i, name, value)
            return out.to_csv(index=False, float_format="%.6g")
        text = frame.assign(**{m: frame[m].map(formatting.number) for m in METRICS})
        if fmt == "markdown":
            return _markdown_table(text)
        return text.to_string(index=False)

    def per_seed(self) -> pd.DataFrame:
        """The cells of the board's view: one row per (task, model, seed), flagged as their task is."""
        if self.cells.empty:
            return pd.DataFrame(columns=list(PER_SEED_COLUMNS))
        flags = self.rows.drop_duplicates("task").set_index("task")
        out = self.cells.assign(few_positives=self.cells.task.map(flags.few_positives).astype(bool),
                                flag=self.cells.task.map(flags.flag).fillna(""))
        return out.sort_values(["task", "model", "seed"])[list(PER_SEED_COLUMNS)].reset_index(drop=True)

    def view(self) -> dict[str, Any]:
        return {"suite": self.suite, "metric": self.metric, "lead": self.lead, "budget": self.budget,
                "positives_only": self.positives_only, "shift": self.shift}

    # ----- machine-readable
    def _csv(self) -> str:
        """One line per (task, model); the view, the threshold and the model's summary repeated on each."""
        out = self.rows.copy()
        for i, (name, value) in enumerate(self.view().items()):
            out.insert(i, name, value)
        out["synthetic"] = self.synthetic
        out["min_positives"] = self.min_positives
        summary = self.summary if not self.summary.empty else pd.DataFrame(columns=list(SUMMARY_COLUMNS))
        out = out.merge(summary, on="model", how="left")
        buffer = io.StringIO()
        out.to_csv(buffer, index=False, float_format="%.6g")
        return buffer.getvalue()

    def _json(self) -> str:
        return json.dumps(
            {
                **self.view(),
                "synthetic": self.synthetic,
                "min_positives": self.min_positives,
                "statistics": {"level": LEVEL, "alpha": ALPHA, "resamples": N_RESAMPLES,
                               "interval": "t-interval over seeds",
                               "test": f"one-sided paired bootstrap of the mean {self.metric_name} difference over "
                                       "seeds and test records",
                               "mean_relative_gain_ci": HEADLINE_INTERVAL,
                               "sign_test": SIGN_TEST, "wilcoxon": WILCOXON},
                "notes": self.notes,
                "rows": _records(self.rows),
                "summary": _records(self.summary),
            },
            indent=2,
        )

    # ----- human-readable
    def models(self) -> list[str]:
        """Model columns: pretrained models, baselines, extras, ablations; by name within each."""
        roles = self.rows.drop_duplicates("model").set_index("model").role
        return sorted(roles.index, key=lambda m: (ROLE_ORDER.index(roles[m]), m))

    def counted_means(self) -> pd.Series:
        """Each model's mean of the board's metric over the tasks counted (not flagged): the mean row
        of every table (leaderboard, report, run description) is this one."""
        counted = self.rows[~self.rows.few_positives.astype(bool)]
        return counted.groupby("model")[self.value].mean()

    def wide(self, gains: bool = True, compact: bool = False) -> pd.DataFrame:
        """Tasks x models of "mean ± sd" (``compact``: "mean±sd"), each task's test positives, a mean
        row over the counted tasks, and (``gains``) each pretrained model's gain column (``*``:
        significant)."""
        if self.rows.empty:
            return pd.DataFrame()
        rows = self.rows
        pm = _mean_sd_compact if compact else formatting.mean_sd
        text = rows.assign(text=[pm(m, s) for m, s in zip(rows[self.value], rows[f"{self.value}_sd"], strict=True)])
        table = text.pivot(index="task", columns="model", values="text")[self.models()]
        means = self.counted_means()
        table.loc["mean"] = [formatting.number(means.get(m, math.nan)) for m in table.columns]
        for model in self.summary.model if gains and not self.summary.empty else []:
            mine = rows[rows.model == model].set_index("task")
            column = [_gain_text(mine.loc[t]) if t in mine.index else "" for t in table.index[:-1]]
            mean_gain = self.summary.set_index("model").loc[model, "mean_relative_gain_pct"]
            table[f"gain {model}"] = column + [formatting.gain(mean_gain)]
        n_pos = rows.groupby("task").test_n_pos.min()
        table.insert(0, "n_pos", [formatting.count(n_pos.get(t, math.nan)) for t in table.index[:-1]] + [""])
        few = set(rows[rows.few_positives.astype(bool)].task)
        table.index = [f"{t} {FEW_MARK}" if t in few else t for t in table.index]
        leaky = self.leaky_models()
        table.columns = [_leak(c, leaky) for c in table.columns]
        return table.fillna("").rename_axis("task")

    def gains(self) -> pd.DataFrame:
        """Tasks x pretrained models: relative gain over the task's strongest baseline (``*``:
        significant, ``‡``: not counted), that baseline, and the mean gain over the counted tasks."""
        if self.rows.empty or self.summary.empty:
            return pd.DataFrame()
        wide = self.wide()
        leaky = self.leaky_models()
        columns = [f"gain {_leak(m, leaky)}" for m in self.summary.model]
        best = self.rows.dropna(subset=["best_baseline"]).drop_duplicates("task").set_index("task").best_baseline
        table = wide[columns].copy()
        table.insert(0, "strongest baseline", [best.get(t.removesuffix(f" {FEW_MARK}"), "") for t in table.index[:-1]]
                     + [""])
        table.columns = ["strongest baseline", *(c.removeprefix("gain ") for c in columns)]
        return table

    def details(self) -> pd.DataFrame:
        """One line per (task, model): every number of the row, as text."""
        r = self.rows
        v = self.value
        return pd.DataFrame({
            "task": r.task, "model": [_leak(m, self.leaky_models()) for m in r.model], "role": r.role,
            v: r[v].map(formatting.number), "sd": r[f"{v}_sd"].map(formatting.number),
            "95% CI": [formatting.interval(lo, hi) for lo, hi in zip(r[f"{v}_ci_low"], r[f"{v}_ci_high"], strict=True)],
            "seeds": r.n_seeds, "n_pos": r.test_n_pos.map(formatting.count), "flag": r.flag,
            "vs": [b if role == "pretrained" and isinstance(b, str) else ""  # text: no float NaN filled with ""
                   for b, role in zip(r.best_baseline, r.role, strict=True)],
            "gain": [_gain_text(row) for _, row in r.iterrows()],
            "p": r.p_value.map(formatting.p_value),
        })

    def _header(self) -> str:
        budget = "all" if self.budget == 0 else str(self.budget)
        head = f"Leaderboard: suite {self.suite}, lead {self.lead}, budget {budget}"
        head += ", positives only" if self.positives_only else ""
        head += f", shift {self.shift}" if self.shift else ""
        head += f", test {self.metric_name} (mean ± sd over seeds)"
        if self.synthetic:
            head += "\nSYNTHETIC DATA: simulator-made tasks, a pipeline check, not evidence"
        for model in self.leaky_models():
            head += (f"\n{model}{LEAK_MARK}: pretrained on records of downstream test splits (as the authors "
                     "did, e.g. ptbxl-authors); its PTB-XL results are optimistic")
        head += (f"\n{FEW_MARK} fewer than {self.min_positives} test positives (--min-positives): shown, left out "
                 f"of means, gains and wins\n{SIGNIFICANT_MARK} gain significant at p < {ALPHA} (one-sided paired "
                 "bootstrap over seeds and test records); 95% CI: t-interval over seeds"
                 "\nheadline over tasks: 95% CI of the mean gain by a hierarchical bootstrap (tasks, then each "
                 "task's seeds and test records; the strongest baseline as named); sign test of wins against "
                 f"losses and Wilcoxon signed-rank test of the gains, {ALTERNATIVE_OVER_TASKS}, ties left out")
        for note in self.notes:
            head += f"\nnote: {note}"
        return head

    def leaky_models(self) -> list[str]:
        """Models pretrained on records of downstream test splits (e.g. ``ptbxl-authors``)."""
        if self.rows.empty or "sees_test_records" not in self.rows:
            return []
        return sorted(self.rows[self.rows.sees_test_records.astype(bool)].model.unique())

    def _summary_lines(self) -> list[str]:
        lines = []
        for row in self.summary.itertuples():
            left_out = (f"{row.tasks_left_out} task{_s(row.tasks_left_out)} with < {self.min_positives} test "
                        f"positives left out")
            if row.tasks_counted == 0:
                why = left_out if row.tasks_left_out else "no supervised baseline (role baseline) to compare with"
                lines.append(f"{row.model}: no task counted ({why})")
                continue
            gain = row.mean_relative_gain_pct
            gain_text = formatting.gain(gain) or f"n/a (no baseline with {self.metric_name} > 0)"
            if not math.isnan(gain):
                gain_text += f" ({_gain_interval_text(row)})"
            untested = row.tasks_counted - row.tasks_tested
            line = (f"{row.model}: mean relative {self.metric_name} gain {gain_text} over the strongest baseline, "
                    f"wins {row.wins}/{row.tasks_counted} tasks counted ({row.significant_wins} significant"
                    f"{f'; {untested} not tested, see note' if untested else ''})")
            if row.tasks_left_out:
                line += f"; {left_out}"
            if row.tasks_without_baseline:
                line += f"; {row.tasks_without_baseline} task{_s(row.tasks_without_baseline)} without a baseline"
            lines.append(f"{line}; {_over_tasks_text(row)}")
        return lines

    def _table(self, width: int | None = None) -> str:
        """The header, the tasks x models table, the gains, the headline and the per-row details.

        With ``width``, prose is wrapped to it and each table is cut into blocks of columns that fit
        (pandas' own wrapping), means printed compactly (``0.812±0.031``)."""
        if self.rows.empty:
            return self._header() + "\n(no finished cells yet)"
        if width is None:
            return "\n".join([self._header(), "", self.wide().to_string(), "", *self._summary_lines(), "",
                              "Per task and model:", self.details().to_string(index=False)])
        wrap = textwrap.TextWrapper(width=width, subsequent_indent="  ", break_on_hyphens=False)
        prose = [part for line in [*self._header().split("\n")] for part in wrap.wrap(line) or [""]]
        parts = [*prose, "", self.wide(gains=False, compact=True).to_string(line_width=width)]
        gains = self.gains()
        if not gains.empty:
            parts += ["", f"Relative {self.metric_name} gain over the strongest baseline (* significant):",
                      gains.to_string(line_width=width)]
        parts += [""] + [part for line in self._summary_lines() for part in wrap.wrap(line)]
        parts += ["", "Per task and model:", self.details().to_string(index=False, line_width=width)]
        return "\n".join(parts)

    def _markdown(self) -> str:
        if self.rows.empty:
            return self._header().replace("\n", "\n\n") + "\n\n(no finished cells yet)"
        return "\n".join([self._header().replace("\n", "\n\n"), "", _markdown_table(self.wide().reset_index()), "",
                          *[f"- {line}" for line in self._summary_lines()], "", "Per task and model:", "",
                          _markdown_table(self.details())])


def _markdown_table(frame: pd.DataFrame) -> str:
    lines = ["| " + " | ".join(map(str, frame.columns)) + " |", "|" + "---|" * len(frame.columns)]
    lines += ["| " + " | ".join(map(str, r)) + " |" for r in frame.itertuples(index=False)]
    return "\n".join(lines)


def _records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """JSON-ready records: NaN -> null, numpy scalars -> Python."""
    def clean(v: Any) -> Any:
        if isinstance(v, np.generic):
            v = v.item()
        return None if formatting.is_missing(v) else v

    return [{k: clean(v) for k, v in r.items()} for r in frame.to_dict("records")]


def _s(n: int) -> str:
    return "" if n == 1 else "s"


def _mean_sd_compact(mean: float, sd: float) -> str:
    """``0.812±0.021``: :func:`formatting.mean_sd` without the spaces, for a narrow terminal table."""
    return formatting.mean_sd(mean, sd).replace(" ± ", "±")


def _gain_interval_text(summary_row: Any) -> str:
    low, high = (formatting.gain(v) for v in (summary_row.mean_relative_gain_ci_low,
                                              summary_row.mean_relative_gain_ci_high))
    if not low:
        return f"no 95% CI: {summary_row.mean_relative_gain_ci_note}"
    return f"95% CI [{low}, {high}]"


def _over_tasks_text(summary_row: Any) -> str:
    """The sign and Wilcoxon tests of a summary row, saying what each left out."""
    ties = summary_row.ties
    sign = f"sign test p = {formatting.p_value_text(summary_row.sign_test_p)}"
    if ties:
        sign += f" ({ties} tie{_s(ties)} left out)"
    wilcoxon = formatting.p_value_text(summary_row.wilcoxon_p)
    return f"over tasks ({ALTERNATIVE_OVER_TASKS}): {sign}, Wilcoxon p = {wilcoxon}"


def _leak(model: str, leaky: Iterable[str]) -> str:
    return f"{model}{LEAK_MARK}" if model in leaky else model


def _gain_text(row: pd.Series) -> str:
    if row.role != "pretrained":
        return ""
    if row.few_positives:
        return FEW_MARK
    text = formatting.gain(row.relative_gain_pct)
    return text + (SIGNIFICANT_MARK if text and row.significant is True else "")


# ----- roles and configurations
def model_role(model: str) -> str:
    """The role of a model column: a tagged name (``mae:sim``, ``resnet18-1d``), or one with an older
    configuration's suffix (``resnet18-1d#a1b2c3``, see ``--all-configs``)."""
    model = model.partition("#")[0]
    if not _registered(model):
        return "extra"  # a model whose plugin is not installed here: shown, never compared
    return BASELINES.get(ModelName.parse(model).entry).role


def _registered(model: str) -> bool:
    """Whether a tagged model name names a registered model (a store may hold runs of a plugin not installed here)."""
    try:
        return ModelName.parse(model).entry in BASELINES
    except ConfigError:
        return False


def configuration(params: dict[str, str]) -> str:
    """The fingerprint of what a cell's model column stands for: model settings and protocol."""
    return column_configuration(params, CONFIG_PARAMS)


# ----- reading the store
def runs_frame(tracker: Tracker) -> pd.DataFrame:
    """One row per finished cell (the newest run of each fingerprint): its typed tags, test metrics,
    run id, start time, artifact location and configuration fingerprint."""
    runs, foreign = tracker.cell_runs()
    if foreign:
        log.warning("%d finished cell run(s) of suite experiment %s were written by another version of the suite "
                    "(tag schema) and are left out", foreign, tracker.experiment_id)
    rows = []
    for run, tags in runs:
        metrics = run.data.metrics
        rows.append({
            "task": tags.task, "model": tags.model, "lead": tags.lead, "budget": tags.budget,
            "positives_only": tags.positives_only, "shift": tags.shift, "seed": tags.seed,
            "synthetic": tags.synthetic, "sees_test_records": tags.sees_test_records,
            **{m: metrics.get(m, math.nan) for m in METRICS},
            "test_n_pos": metrics.get("test_n_pos", math.nan),
            "test_n": metrics.get("test_n_pos", math.nan) + metrics.get("test_n_neg", math.nan),
            "run_id": run.info.run_id, "start_time": run.info.start_time, "artifact_uri": run.info.artifact_uri,
            "config": configuration(run.data.params), "encoder": tags.encoder,
        })
    return pd.DataFrame(rows)


def encoder_notes(tracker: Tracker, frame: pd.DataFrame) -> list[str]:
    """A note per pretrained model whose encoder learned little (its loss did not fall: the rule of
    :func:`pretraining.loop.stalled_warning`), read from the encoder's pretraining run in the store."""
    from pretraining.loop import stalled_warning

    notes = []
    encoders = frame[frame.encoder.astype(str) != ""].drop_duplicates("model") if "encoder" in frame else frame[:0]
    for model, fingerprint in zip(encoders.model, encoders.encoder, strict=True):
        losses = pretraining_losses(tracker, fingerprint)
        if losses is not None and (why := stalled_warning(*losses, _pretraining_method(model))):
            notes.append(f"{model}: its encoder {why}")
    return notes


def _pretraining_method(model: str) -> str:
    """The pretraining method of a pretrained model's encoder (the MAE's for a model no longer registered)."""
    from pretraining.mae import METHOD

    try:
        return BASELINES.get(ModelName.parse(model).entry).pretraining_method or METHOD
    except ConfigError:
        return METHOD


def pretraining_losses(tracker: Tracker, fingerprint: str) -> tuple[float, float] | None:
    """The first training loss and the encoder's validation loss: from the FINISHED pretraining run
    of the encoder in the store, else (an encoder this store took from the cache, pretrained for
    another store) from the cache's ``history.json`` (its lowest validation loss); None without either."""
    run = tracker.finished_run(fingerprint, everywhere=True)
    if run is None:
        return _cached_losses(fingerprint)
    metrics = run.data.metrics
    encoder_loss = metrics.get("encoder_val_loss", metrics.get("final_val_loss", math.nan))
    history = tracker.client.get_metric_history(run.info.run_id, "train_loss")
    first = min(history, key=lambda m: m.step).value if history else math.nan
    return float(first), float(encoder_loss)


def _cached_losses(fingerprint: str) -> tuple[float, float] | None:
    try:
        history = json.loads((cache_dir() / "encoders" / fingerprint / "history.json").read_text())
    except (OSError, ValueError):
        return None
    train = [h["train_loss"] for h in history if "train_loss" in h]
    val = [h["val_loss"] for h in history if "val_loss" in h]
    return (float(train[0]) if train else math.nan), (float(min(val)) if val else math.nan)


_PREDICTIONS: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray] | None] = {}  # run id -> ids, labels, scores
_CACHE_SIZE = 8192  # runs (a 2,000-record test set is ~50 kB)


def load_test_predictions(tracker: Tracker, run_id: str, artifact_uri: str) -> tuple[np.ndarray, ...] | None:
    """A finished cell run's test predictions (record ids, labels, scores); None if it has none.

    Cached in memory per run id (a finished run never changes); a local store's file is read in
    place, other stores' downloaded.
    """
    if run_id in _PREDICTIONS:
        return _PREDICTIONS[run_id]
    from mlflow.exceptions import MlflowException

    try:
        location = urlparse(artifact_uri)
        if location.scheme in ("", "file"):
            value = _read_predictions(Path(unquote(location.path)) / PREDICTIONS)
        else:
            with tempfile.TemporaryDirectory() as tmp:
                value = _read_predictions(Path(tracker.client.download_artifacts(run_id, PREDICTIONS, tmp)))
    except (OSError, ValueError, MlflowException) as exc:  # missing, or without the columns (ValueError)
        log.debug("run %s: no readable %s (%s)", run_id, PREDICTIONS, exc)
        value = None
    if len(_PREDICTIONS) >= _CACHE_SIZE:
        _PREDICTIONS.pop(next(iter(_PREDICTIONS)))
    _PREDICTIONS[run_id] = value
    return value


def _read_predictions(path: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Row keys, labels and scores of a test predictions file. A record listed in both classes
    (data.overlap = "both": two rows of one record_id) is keyed ``<record_id>#<label>`` per row, so
    joining two files pairs the same row of each."""
    frame = pd.read_csv(path, usecols=["record_id", "label", "score"], dtype={"record_id": str})
    twice = frame.record_id.duplicated(keep=False)
    keys = frame.record_id.where(~twice, frame.record_id + "#" + frame.label.astype(str))
    return keys.to_numpy(), frame.label.to_numpy().astype(bool), frame.score.to_numpy(dtype=float)


# ----- building the board
def build_leaderboard(
    tracking_uri: str | None, suite: str, lead: str | None = None, budget: int | None = None,
    positives_only: bool | None = None, shift: str | None = None, min_positives: int = MIN_POSITIVES,
    all_configs: bool = False, n_resamples: int = N_RESAMPLES, metric: str = "f1",
) -> Leaderboard:
    """Aggregate the suite's finished cells at one view into a :class:`Leaderboard` of ``metric``
    (``f1``, ``auroc`` or ``auprc``: what is ranked, compared with the strongest baseline and tested).

    A view option left None takes its default (lead II, the whole training split, no
    positives-only variant, no shift) when the suite has such cells, else the value with the most
    finished cells; the header names the suite's other views. An explicit option that matches no
    finished cell, or a suite with no results in the store, is a :class:`ConfigError` naming what
    exists.
    """
    if min_positives < 0:
        raise ConfigError(f"--min-positives must be >= 0, got {min_positives}")
    if metric not in METRIC_NAMES:
        raise ConfigError(f"--metric must be one of {', '.join(METRIC_NAMES)}, got {metric!r}")
    _require_suite(tracking_uri, suite)
    tracker = Tracker(tracking_uri, suite, create=False)
    frame = runs_frame(tracker)
    requested = {"lead": lead, "budget": budget, "positives_only": positives_only, "shift": shift}
    if frame.empty:
        view = {k: (v if v is not None else d) for (k, d, _), v in zip(VIEW_OPTIONS, requested.values(), strict=True)}
        empty = pd.DataFrame(columns=list(row_columns(metric)))
        return Leaderboard(suite, view["lead"], view["budget"], empty, pd.DataFrame(columns=list(SUMMARY_COLUMNS)),
                           False, view["positives_only"], view["shift"], min_positives, metric=metric)
    frame, view, notes = _select_view(frame, suite, requested)
    frame, config_notes = _one_configuration(frame, all_configs)
    notes += config_notes
    newest = frame.sort_values("start_time", ascending=False, kind="stable")
    deduplicated = newest.drop_duplicates(["task", "model", "seed"])
    if len(deduplicated) < len(frame):
        notes.append(f"{len(frame) - len(deduplicated)} older cell run(s) of a task, model and seed that has a "
                     "newer one left out")
    frame = deduplicated
    rows = _aggregate(frame, min_positives, metric)
    rows = _strongest_baseline(rows, metric)
    rows, test_notes, task_gains = _significance(rows, frame, tracker, n_resamples, metric)
    notes += test_notes
    notes += encoder_notes(tracker, frame)
    summary = _summary(rows, task_gains, n_resamples, metric)
    return Leaderboard(suite, view["lead"], view["budget"], rows, summary, bool(frame.synthetic.any()),
                       view["positives_only"], view["shift"], min_positives, notes, metric, frame)


def _require_suite(tracking_uri: str | None, suite: str) -> None:
    """A suite must have an experiment in the store (the leaderboard never creates one, nor a store)."""
    tracker = Tracker(tracking_uri, suite, create=False)
    if tracker.exists:
        return
    suites = [] if tracker.client is None else sorted(
        e.name[len(EXPERIMENT_PREFIX):] for e in tracker.client.search_experiments()
        if e.name.startswith(EXPERIMENT_PREFIX))
    raise ConfigError(f"no results of suite {suite!r} in {redact(tracker.uri)}; suites with results there: "
                      f"{', '.join(suites) or 'none (run `simecg-bench run` first)'}")


def _show(column: str, value: Any) -> str:
    if column == "budget":
        return "0 (all)" if value == 0 else str(value)
    if column == "shift":
        return repr(value) if value else "'' (none)"
    if column == "positives_only":
        return "positives-only" if value else "all-classes"
    return str(value)


def _select_view(frame: pd.DataFrame, suite: str, requested: dict[str, Any]
                 ) -> tuple[pd.DataFrame, dict[str, Any], list[str]]:
    """Narrow the cells to one view, option by option (lead, budget, positives-only, shift)."""
    chosen: dict[str, Any] = {}
    others: list[str] = []
    for column, default, option in VIEW_OPTIONS:
        counts = frame[column].value_counts()
        values = sorted(counts.index)
        value = requested[column]
        where = ", ".join(f"{k} {_show(k, v)}" for k, v in chosen.items())
        if value is not None and value not in counts.index:
            raise ConfigError(
                f"suite {suite!r} has no finished cells with {option} {_show(column, value)}"
                f"{' at ' + where if where else ''}; it holds {column.replace('_', ' ')} "
                f"{', '.join(_show(column, v) for v in values)}")
        pick = value if value is not None else default if default in counts.index else \
            min(values, key=lambda v: (-counts[v], v))
        if len(values) > 1:
            others.append(f"{column.replace('_', ' ')} {', '.join(_show(column, v) for v in values if v != pick)} "
                          f"({option})")
        frame = frame[frame[column] == pick]
        chosen[column] = pick
    notes = [f"also in this suite: {'; '.join(others)}"] if others else []
    return frame, chosen, notes


def _one_configuration(frame: pd.DataFrame, all_configs: bool) -> tuple[pd.DataFrame, list[str]]:
    """Keep each model name's newest configuration (``all_configs``: rename the older ones)."""
    frame = frame.copy()
    frame["role"] = frame.model.map({m: model_role(m) for m in frame.model.unique()})
    newest = frame.sort_values("start_time", ascending=False, kind="stable").drop_duplicates("model")
    current = frame.config == frame.model.map(newest.set_index("model").config)
    notes = [f"{m}: not in the model registry here (its plugin is not installed?); shown as an extra, never compared"
             for m in sorted(frame.model.unique()) if not _registered(m)]
    for model, older in frame[~current].groupby("model"):
        n = older.config.nunique()
        if all_configs:
            names = ", ".join(sorted(f"{model}#{c[:6]}" for c in older.config.unique()))
            role = " (an extra: never the strongest baseline)" if older.role.iloc[0] == "baseline" else ""
            notes.append(f"{model}: {n} older configuration{_s(n)} shown as {names}{role}")
        else:
            notes.append(f"{model}: {n} older configuration{_s(n)} left out ({len(older)} cell{_s(len(older))}; "
                         "see --all-configs)")
    if not all_configs:
        return frame[current], notes
    older = ~current
    frame.loc[older, "model"] = frame.model[older] + "#" + frame.config[older].str[:6]
    frame.loc[older & (frame.role == "baseline"), "role"] = "extra"
    return frame, notes


def _aggregate(frame: pd.DataFrame, min_positives: int, metric: str = "f1") -> pd.DataFrame:
    """One row per (task, model): seed statistics of ``metric``, the other metrics' means, test counts
    and the few-positives flag."""
    rows = []
    value = f"test_{metric}"
    for (task, model), cells in frame.groupby(["task", "model"], sort=True):
        mean, sd, low, high = seed_interval(cells[value].tolist())
        rows.append({
            "task": task, "model": model, "role": cells.role.iloc[0], value: mean, f"{value}_sd": sd,
            f"{value}_ci_low": low, f"{value}_ci_high": high, "n_seeds": int(cells.seed.nunique()),
            "test_n_pos": cells.test_n_pos.min(), "test_n": cells.test_n.min(),
            **{other: cells[other].mean() for other in METRICS if other != value},
            "sees_test_records": bool(cells.sees_test_records.any()), "config": cells.config.iloc[0],
        })
    rows = pd.DataFrame(rows)
    # the test split is the task's, whatever the model: flag the task by its fewest positives seen
    n_pos = rows.task.map(rows.groupby("task").test_n_pos.min())
    rows["few_positives"] = n_pos < min_positives  # unknown (NaN) counts are not flagged
    rows["flag"] = [f"< {min_positives} test positives" if few else "" for few in rows.few_positives]
    return rows


def _strongest_baseline(rows: pd.DataFrame, metric: str = "f1") -> pd.DataFrame:
    """Per task, the best of the role-``baseline`` models by ``metric``; a pretrained model's relative
    gain and win."""
    value = f"test_{metric}"
    pool = rows[(rows.role == "baseline") & rows[value].notna()]
    best = pool.sort_values([value, "model"], ascending=[False, True]).drop_duplicates("task").set_index("task")
    rows = rows.copy()
    rows["best_baseline"] = rows.task.map(best.model)
    # float even when no task has a baseline (an empty map would be a string column under pandas 3)
    best_value = rows.task.map(best[value].astype(float)).astype(float)
    compared = (rows.role == "pretrained") & ~rows.few_positives & rows.best_baseline.notna()
    rows["relative_gain_pct"] = ((rows[value] - best_value) / best_value * 100.0).where(compared & (best_value > 0))
    rows["win"] = (rows[value] > best_value).where(compared).astype(object)
    return rows


def _significance(rows: pd.DataFrame, frame: pd.DataFrame, tracker: Tracker, n_resamples: int, metric: str = "f1"
                  ) -> tuple[pd.DataFrame, list[str], dict[tuple[str, str], np.ndarray]]:
    """The paired test of each counted pretrained row against its task's strongest baseline, and the
    test's replicate relative gains per (task, model): the task level of the headline's bootstrap."""
    rows = rows.copy()
    difference = [f"{metric}_difference", f"{metric}_difference_ci_low", f"{metric}_difference_ci_high"]
    for column in (*difference, "p_value"):
        rows[column] = math.nan
    rows["significant"] = None
    untested: list[str] = []
    gains: dict[tuple[str, str], np.ndarray] = {}
    compared = (rows.role == "pretrained") & ~rows.few_positives & rows.best_baseline.notna()
    cells = frame.set_index(["task", "model", "seed"]).sort_index()
    draws: dict[tuple[str, tuple[str, ...]], np.ndarray] = {}  # one set of record draws per task (and test set)
    for i in rows.index[compared]:
        task, model, baseline = rows.at[i, "task"], rows.at[i, "model"], rows.at[i, "best_baseline"]
        data = _paired_predictions(cells.loc[(task, model)], cells.loc[(task, baseline)], tracker)
        if isinstance(data, str):
            untested.append(f"{model} on {task}: {data}")
            continue
        ids, labels, model_scores, baseline_scores = data
        key = (task, tuple(ids))
        if key not in draws:
            draws = {key: stratified_counts(labels, n_resamples, rng_for(task, "records"))}  # tasks come in order
        test = paired_test(labels, model_scores, baseline_scores, metric, n_resamples=n_resamples,
                           seed=f"{task}|{model}|{baseline}", record_counts=draws[key])
        rows.loc[i, [*difference, "p_value"]] = [
            test.difference, test.ci_low, test.ci_high, test.p_value]
        rows.at[i, "significant"] = bool(test.significant)
        gains[(task, model)] = test.relative_gains
    notes = []
    if untested:
        notes.append(f"significance not tested for {len(untested)} row(s): " + "; ".join(untested[:5])
                     + (" ..." if len(untested) > 5 else ""))
    return rows[list(row_columns(metric))], notes, gains


def _paired_predictions(mine: pd.DataFrame, base: pd.DataFrame, tracker: Tracker
                        ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray] | str:
    """Record ids, labels and both models' scores ``(seeds, records)`` on the records every shared
    seed scored, or why there are none."""
    seeds = sorted(set(mine.index) & set(base.index))
    if not seeds:
        return "no seed in common with the baseline"
    loaded = []
    for seed in seeds:
        for cells in (mine, base):
            found = load_test_predictions(tracker, cells.at[seed, "run_id"], cells.at[seed, "artifact_uri"])
            if found is None:
                return f"no {PREDICTIONS} in run {cells.at[seed, 'run_id']}"
            loaded.append(found)
    ids, labels, _ = loaded[0]
    if not all(len(x[0]) == len(ids) and (x[0] == ids).all() for x in loaded[1:]):  # test sets differ in order
        common = set(ids).intersection(*(set(x[0]) for x in loaded[1:]))
        ids = np.array([r for r in ids if r in common], dtype=object)
        loaded = [_reindex(x, ids) for x in loaded]
        labels = loaded[0][1]
    if len(ids) == 0:
        return "the test predictions share no record"
    if not all((x[1] == labels).all() for x in loaded[1:]):
        return "the test predictions disagree on labels"
    scores = np.stack([x[2] for x in loaded])
    return ids, labels, scores[0::2], scores[1::2]


def _reindex(predictions: tuple[np.ndarray, ...], ids: np.ndarray) -> tuple[np.ndarray, ...]:
    position = pd.Index(predictions[0]).get_indexer(ids)
    return ids, predictions[1][position], predictions[2][position]


def _summary(rows: pd.DataFrame, task_gains: dict[tuple[str, str], np.ndarray] | None = None,
             n_resamples: int = N_RESAMPLES, metric: str = "f1") -> pd.DataFrame:
    """Per pretrained model: mean relative gain (and its interval), wins and significant wins over the
    counted tasks, and the tests over tasks (``task_gains``: :func:`_significance`'s replicates)."""
    out = []
    value = rows.set_index(["task", "model"])[f"test_{metric}"]
    for model in sorted(rows[rows.role == "pretrained"].model.unique()):
        mine = rows[rows.model == model]
        few = mine.few_positives.astype(bool)
        counted = mine[~few & mine.best_baseline.notna()]
        wins = counted.win.astype(bool)
        best = np.array([value.get((t, b), math.nan) for t, b in zip(counted.task, counted.best_baseline,
                                                                         strict=True)], dtype=float)
        mine_value = counted[f"test_{metric}"]
        losses, ties = int((mine_value < best).sum()), int((mine_value == best).sum())
        low, high, why = _gain_interval(model, counted, task_gains or {}, n_resamples)
        out.append({
            "model": model,
            "mean_relative_gain_pct": float(counted.relative_gain_pct.mean()) if len(counted) else math.nan,
            "mean_relative_gain_ci_low": low,
            "mean_relative_gain_ci_high": high,
            "wins": int(wins.sum()),
            "losses": losses,
            "ties": ties,
            "significant_wins": int((wins & (counted.significant == True)).sum()),  # noqa: E712 - None = untested
            "sign_test_p": sign_test(int(wins.sum()), losses),
            "wilcoxon_p": wilcoxon_test(counted.relative_gain_pct.tolist()),
            "tasks_counted": int(len(counted)),
            "tasks_tested": int(counted.p_value.notna().sum()),
            "tasks_left_out": int(few.sum()),
            "tasks_without_baseline": int((~few & mine.best_baseline.isna()).sum()),
            "mean_relative_gain_ci_note": why,
        })
    return pd.DataFrame(out, columns=list(SUMMARY_COLUMNS))


def _gain_interval(model: str, counted: pd.DataFrame, task_gains: dict[tuple[str, str], np.ndarray],
                   n_resamples: int) -> tuple[float, float, str]:
    """The 95% interval of a model's mean relative gain over its counted tasks with a defined gain
    (the tasks the mean averages), or NaNs and why there is none."""
    tasks = counted[counted.relative_gain_pct.notna()].task.tolist()
    if len(tasks) < 2:
        return math.nan, math.nan, (f"{'one task' if tasks else 'no task'} with a gain; an interval over tasks "
                                    "needs two or more")
    missing = [t for t in tasks if (t, model) not in task_gains]
    if missing:
        return math.nan, math.nan, (f"{len(missing)} of {len(tasks)} task{_s(len(tasks))} without paired test "
                                    "predictions to resample (see note)")
    low, high = mean_gain_interval([task_gains[(t, model)] for t in tasks], seed=model, n_resamples=n_resamples)
    return low, high, ""


def latest_suite(tracking_uri: str | None) -> str:
    """The suite of the most recent invocation in the store (the leaderboard's default)."""
    client = Tracker(tracking_uri, "default", create=False).client  # reading never makes a store
    experiments = [] if client is None else [e for e in client.search_experiments()
                                             if e.name.startswith(EXPERIMENT_PREFIX)]
    if not experiments:
        raise ConfigError(f"no SimECG-Bench runs in {redact(resolve_uri(tracking_uri))}; run `simecg-bench run` first")
    runs = client.search_runs([e.experiment_id for e in experiments], filter_string="tags.kind = 'invocation'",
                              order_by=["attributes.start_time DESC"], max_results=1)
    if not runs:
        raise ConfigError("no finished invocation found; run `simecg-bench run` first")
    return runs[0].data.tags["suite"]
