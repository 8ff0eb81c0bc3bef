"""The suite report: one self-contained HTML file with the leaderboard and the plots a suite's runs hold.

``simecg-bench report --suite S --out report.html`` writes it, and :func:`log_report` logs it as
``report.html`` on the suite's invocation run, with the leaderboard in markdown as that run's
description (the MLflow tag ``mlflow.note.content``); ``run_suite`` does so at the end of each run.
Images are inline base64 PNGs and the style sheet is inline: the file needs no network and no
other file. Each section appears only when the suite has what it shows:

* the leaderboard (tasks x models, mean ± sd over seeds, the mean over the counted tasks; the gains
  over the strongest baseline in their own table) by the report's metric (F1 by default), and a
  second board by AUROC (F1 when the report's metric is a score-based one), with a detail table of
  every column the leaderboard gives (intervals, test positives, roles, significance). Every
  number and flag of every table is the leaderboard's own (:class:`~benchmark.results.leaderboard.Leaderboard`),
  as in the run description: they cannot disagree;
* test F1 per task and model, with error bars: the leaderboard's bootstrap interval
  (``test_f1_ci_low``..``test_f1_ci_high``) where it has one, else ± sd over seeds;
* relative F1 gain of each pretrained model over the strongest supervised baseline, per task, with
  the paired test's interval;
* pretraining sources side by side (the models of role ``pretrained``, e.g. ``mae:sim``), when there are several;
* label-budget curves (mean test F1 over tasks vs labelled ECGs per class), when the suite has budgets;
* a lead heatmap (model x lead mean test F1), when the suite has several leads;
* demographic groups: per-sex and per-age-group test F1 of the cells (``test_f1.sex.M`` ...), and
  the demographic-shift cells (train on one group, test on another) beside the unshifted ones;
  every bar with its 95% interval over seeds and n;
* pretraining curves: training and validation loss of the pretraining runs over steps, and whether
  each encoder learned (:func:`pretraining.loop.stalled_warning`);
* the suite's settings, as its newest invocation ran them.

Every table fits a 1,280-pixel window ("mean ± sd" on two lines, text wrapping at word ends).

Cell runs also carry ROC and PR curves as pictures (:func:`log_curves`).
"""

from __future__ import annotations

import base64
import contextlib
import html
import io
import logging
import math
import re
import tempfile
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from benchmark.results import formatting
from benchmark.tracking.mlflow_ui import describe_experiment, publish_views
from benchmark.tracking.tracker import EXPERIMENT_PREFIX, Tracker, resolve_uri
from pretraining.loop import stalled_warning
from pretraining.mae import METHOD
from simecg.errors import ConfigError

log = logging.getLogger(__name__)

REPORT_FILE = "report.html"
NOTE_TAG = "mlflow.note.content"  # the run description MLflow's UI shows
NOTE_LIMIT = 7500  # MLflow caps a tag value at 8000 characters
LEAD_ORDER = ("I", "II", "III", "aVR", "aVL", "aVF", "V1", "V2", "V3", "V4", "V5", "V6")
DPI = 100
FEW_MARK = "‡"  # the leaderboard's mark of a task with too few test positives


# ----------------------------------------------------------------------------------------- data
@dataclass
class SuiteRuns:
    """What the report reads from the store: the suite's finished cells and pretraining runs."""

    suite: str
    uri: str
    experiment_id: str
    cells: pd.DataFrame  # one row per finished cell: typed tags and every metric of the run
    pretraining: list[dict[str, Any]]  # {"name", "run_id", "corpus", "method", "history": {metric: [(step, value)]}}
    invocation: Any | None  # the newest invocation run
    lead: str = "II"  # the leaderboard's lead and budget (the suite's main comparison)
    budget: int = 0


def collect(tracking_uri: str | None, suite: str) -> SuiteRuns:
    """Read the suite's finished cells, pretraining runs and newest invocation from the store.

    Cells are counted as the leaderboard counts them: each model's newest configuration (its
    ``model.*``/``finetune.*``/... params, when the leaderboard defines configurations) and the
    newest run of each (task, model, lead, budget, variant, shift, seed).
    """
    from benchmark.results import leaderboard

    configuration = getattr(leaderboard, "configuration", None)
    tracker = Tracker(tracking_uri, suite, create=False)
    runs, _ = tracker.cell_runs()
    rows = []
    for run, tags in runs:
        rows.append({"run_id": run.info.run_id, "run_name": run.info.run_name, "start_time": run.info.start_time,
                     "config": configuration(run.data.params) if configuration else "", "task": tags.task,
                     "model": tags.model, "lead": tags.lead, "budget": tags.budget,
                     "positives_only": tags.positives_only, "shift": tags.shift, "seed": tags.seed,
                     **run.data.metrics})
    cells = _current(pd.DataFrame(rows))
    invocation = newest_invocation(tracker)
    data = SuiteRuns(suite, tracker.uri, tracker.experiment_id, cells, _pretraining(tracker, invocation), invocation)
    data.lead, data.budget = _main_setting(cells)
    return data


def _current(cells: pd.DataFrame) -> pd.DataFrame:
    """Each model's newest configuration, and the newest run of each cell of it."""
    if cells.empty:
        return cells
    newest = cells.sort_values("start_time", ascending=False, kind="stable")
    config = newest.drop_duplicates("model").set_index("model").config
    newest = newest[newest.config == newest.model.map(config)]
    keys = ["task", "model", "lead", "budget", "positives_only", "shift", "seed"]
    return newest.drop_duplicates(keys).reset_index(drop=True)


def newest_invocation(tracker: Tracker) -> Any | None:
    """The suite's newest invocation run (the parent run of its cells), None before the first run."""
    if not tracker.exists:
        return None
    runs = tracker.client.search_runs([tracker.experiment_id], filter_string="tags.kind = 'invocation'",
                                      order_by=["attributes.start_time DESC"], max_results=1)
    return runs[0] if runs else None


def _main_setting(cells: pd.DataFrame) -> tuple[str, int]:
    """The lead and budget of the suite's main comparison: lead II and the whole training split if it has them."""
    if cells.empty:
        return "II", 0
    plain = cells[(cells["shift"] == "") & ~cells.positives_only.astype(bool)]
    plain = plain if not plain.empty else cells
    leads = plain.lead.value_counts()
    lead = "II" if "II" in leads.index else str(leads.index[0])
    budgets = set(plain[plain.lead == lead].budget)
    return lead, 0 if 0 in budgets else int(max(budgets))


def _pretraining(tracker: Tracker, invocation: Any | None) -> list[dict[str, Any]]:
    """The suite's pretraining runs (and those the newest invocation reused from elsewhere), newest per encoder."""
    client = tracker.client
    runs = list(client.search_runs([tracker.experiment_id], filter_string="tags.kind = 'pretrain'",
                                   order_by=["attributes.start_time DESC"], max_results=200))
    known = {r.info.run_id for r in runs}
    if invocation is not None:
        for key, run_id in invocation.data.params.items():
            if key.startswith("encoder.") and key.endswith(".run_id") and run_id and run_id not in known:
                with contextlib.suppress(Exception):  # a run of another store or a deleted one
                    runs.append(client.get_run(run_id))
                    known.add(run_id)
    out, seen = [], set()
    for run in runs:
        fingerprint = run.data.tags.get("fingerprint", run.info.run_id)
        if fingerprint in seen or run.info.status not in ("FINISHED", "RUNNING"):
            continue
        seen.add(fingerprint)
        history = {}
        for key in ("train_loss", "val_loss"):
            points = client.get_metric_history(run.info.run_id, key)
            if points:
                history[key] = sorted((p.step, p.value) for p in points)
        if history:
            out.append({"corpus": run.data.tags.get("corpus", "?"), "fingerprint": fingerprint,
                        "run_id": run.info.run_id, "history": history,
                        "method": run.data.params.get("method", METHOD)})  # runs before methods were named: MAE
    for item in out:  # named by corpus, and by encoder fingerprint too when two encoders share a corpus
        shared = sum(o["corpus"] == item["corpus"] for o in out) > 1
        item["name"] = f"{item['corpus']} ({item['fingerprint'][:8]})" if shared else item["corpus"]
    return sorted(out, key=lambda o: o["name"])


# ----------------------------------------------------------------------------------------- report
@dataclass
class Section:
    title: str
    html: str


@dataclass
class Report:
    """The report of one suite: its HTML, the markdown summary, and which sections it has or omits."""

    suite: str
    html: str
    markdown: str
    sections: list[str] = field(default_factory=list)
    omitted: dict[str, str] = field(default_factory=dict)  # section title -> why it is not there
    board: Any = None  # the leaderboard the report shows (benchmark.results.leaderboard.Leaderboard)

    def write(self, path: str | Path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(self.html, encoding="utf-8")
        return path


def build_report(tracking_uri: str | None, suite: str, metric: str = "f1") -> Report:
    """The suite's report from the store (sections it has no data for are left out, and listed).

    Its leaderboard ranks by ``metric`` (F1, the paper's, by default) and a second one shows AUROC
    (F1 when ``metric`` is a score-based one): both are :func:`benchmark.results.leaderboard.build_leaderboard`'s
    boards, so the report, the leaderboard command and the run description show the same numbers
    and flags."""
    from benchmark.results.leaderboard import build_leaderboard

    data = collect(tracking_uri, suite)
    board = build_leaderboard(data.uri, suite, metric=metric)  # default view: lead II, all labels when it has them
    second = build_leaderboard(data.uri, suite, metric="auroc" if metric == "f1" else "f1", lead=str(board.lead),
                               budget=int(board.budget), positives_only=board.positives_only, shift=board.shift) \
        if not board.rows.empty else None
    data.lead, data.budget = str(board.lead), int(board.budget)
    sections: list[Section] = []
    omitted: dict[str, str] = {}

    def add(title: str, body: str | None, why: str) -> None:
        if body:
            sections.append(Section(title, body))
        else:
            omitted[title] = why

    with _plotting():
        everyone = set(board.rows.model) | (set(data.cells.model) if not data.cells.empty else set())
        _MODEL_COLORS.clear()
        _MODEL_COLORS.update(_colors(_model_order(everyone)))
        add("Leaderboard", _leaderboard_section(board), "no finished cells yet")
        if second is not None:
            add(f"Leaderboard by test {second.metric_name}", _leaderboard_section(second, brief=True),
                "no finished cells yet")
        add("Test F1 per task", _per_task_section(board, data), "no finished cells yet")
        add("Relative gain over the strongest baseline", _gain_section(board),
            "no gain to show: no pretrained model with a supervised baseline of F1 > 0 to compare with")
        add("Pretraining sources side by side", _sources_section(board, data.cells),
            "fewer than two pretraining sources")
        add("Label-budget curves", _budget_section(data), "the suite has no label budgets")
        add("Lead heatmap", _lead_section(data), "the suite has one lead")
        add("Demographic groups", _demographic_section(data),
            "no per-sex or per-age metrics and no demographic-shift cells")
        add("Pretraining curves", _pretraining_section(data), "no pretraining runs with loss histories")
        add("Settings", _settings_section(data), "no invocation run to read the suite's settings from")
    page = _page(data, board, sections, omitted)
    return Report(suite, page, summary_markdown(data, board), [s.title for s in sections], omitted, board)


def summary_markdown(data: SuiteRuns, board: Any) -> str:
    """The invocation run's description: the headline (each pretrained model's gain and wins) first, so
    MLflow's collapsed description shows it, then where the report is, then the leaderboard table."""
    budget = "all labels" if int(board.budget) == 0 else f"{board.budget} labels per class"
    head = [f"**SimECG-Bench suite `{data.suite}`**: {len(data.cells)} finished cell(s); leaderboard at lead "
            f"{board.lead}, {budget}."]
    if getattr(board, "synthetic", False):
        head.append("SYNTHETIC DATA: simulator-made tasks, a pipeline check, not evidence.")
    with contextlib.suppress(Exception):  # else the leaderboard's own markdown below has them
        head += [f"- {line}" for line in board._summary_lines()]
    head.append(f"Full report with plots: artifact `{REPORT_FILE}` of this run "
                f"(or `simecg-bench report --suite {data.suite}`).")
    text = "\n\n".join(head) + "\n\n" + _board_markdown(board)
    if len(text) > NOTE_LIMIT:
        text = text[: NOTE_LIMIT - 60].rsplit("\n", 1)[0] + f"\n\n... (cut; the whole table is in `{REPORT_FILE}`)"
    return text


def _board_markdown(board: Any) -> str:
    """The leaderboard's header and tasks x models table in markdown (its per-row details are in the
    report); the leaderboard's own markdown if it has no such parts."""
    try:
        wide = board.wide().rename_axis("task").reset_index()
        if wide.empty:
            raise ValueError("no rows")
        table = ["| " + " | ".join(map(str, wide.columns)) + " |", "|" + "---|" * len(wide.columns)]
        table += ["| " + " | ".join(map(str, r)) + " |" for r in wide.itertuples(index=False)]
        header = [_markdown_text(line) for line in board._header().split("\n") if not line.startswith("SYNTHETIC")]
        return "\n".join(["\n\n".join(header), "", *table])
    except Exception:
        return board.render("markdown")


def _markdown_text(line: str) -> str:
    """A line shown as text in markdown (a leading ``*``, ``-``, ``#``... would make it a list or a heading)."""
    return "\\" + line if line[:1] in "*-+#>|" and line else line


def write_report(tracking_uri: str | None, suite: str, out: str | Path) -> Report:
    report = build_report(tracking_uri, suite)
    report.write(out)
    return report


def log_report(tracking_uri: str | None, suite: str, run_id: str | None = None,
               report: Report | None = None) -> str | None:
    """Log the suite's report as ``report.html`` on ``run_id`` (default: the newest invocation run) and set
    the run's description to the leaderboard in markdown. Returns the run id (None: no invocation run yet)."""
    report = report or build_report(tracking_uri, suite)
    tracker = Tracker(tracking_uri, suite)
    if run_id is None:
        invocation = newest_invocation(tracker)
        if invocation is None:
            return None
        run_id = invocation.info.run_id
    with tempfile.TemporaryDirectory() as tmp:
        tracker.log_artifact(run_id, report.write(Path(tmp) / REPORT_FILE))
    tracker.set_tags(run_id, {NOTE_TAG: report.markdown})
    board = report.board
    if board is not None and not board.rows.empty:  # the comparison MLflow's grouping cannot make, as a table
        tracker.replace_table(run_id, comparison_table(board), COMPARISON_FILE)
    _describe(tracker, suite, board, report_location(tracker, run_id))
    return run_id


COMPARISON_FILE = "comparison.json"  # on the invocation run: the leaderboard's rows (MLflow's artifact view)


def comparison_table(board: Any) -> pd.DataFrame:
    """The leaderboard's rows as one table: model, task, mean ± sd over seeds of its metric, the
    other metrics' means, test positives, the flag, the strongest baseline and the gain."""
    rows = board.rows
    value = board.value
    best = rows.best_baseline.astype(object)  # all-NaN float when no baseline ran: cast before filling with ""
    table = pd.DataFrame({
        "model": rows.model, "task": rows.task, "role": rows.role, "seeds": rows.n_seeds,
        value: rows[value].round(4), f"{value}_sd": rows[f"{value}_sd"].round(4),
        **{m: rows[m].round(4) for m in ("test_f1", "test_auroc", "test_auprc") if m != value and m in rows},
        "test_n_pos": rows.test_n_pos, "flag": rows.flag, "strongest_baseline": best.where(best.notna(), ""),
        "relative_gain_pct": rows.relative_gain_pct.round(2), "p_value": rows.p_value.round(4),
    })
    return table.sort_values(["task", "model"]).reset_index(drop=True)


def _describe(tracker: Tracker, suite: str, board: Any, report: str) -> None:
    """The experiment's description: how to compare its runs in MLflow, the headline, the report."""
    headline = [f"- {line}" for line in board._summary_lines()] if board is not None else []
    if board is not None:
        headline += [f"- note: {note}" for note in board.notes if "its encoder" in note]
    try:
        publish_views(tracker.client, tracker.experiment_id)
        describe_experiment(tracker.client, tracker.experiment_id, suite, headline, report)
    except Exception as exc:  # the views are a convenience: the report and the run's description are logged
        log.warning("could not save the comparison views of suite %s: %s", suite, exc)


def report_location(tracker: Tracker, run_id: str) -> str:
    """Where a run's ``report.html`` is: its file in a local store, else the artifact and its run."""
    from urllib.parse import unquote, urlparse

    location = urlparse(tracker.client.get_run(run_id).info.artifact_uri)
    if location.scheme in ("", "file"):
        return str(Path(unquote(location.path)) / REPORT_FILE)
    return f"artifact {REPORT_FILE} of run {run_id}"


def log_report_safely(tracking_uri: str | None, suite: str, run_id: str) -> str | None:
    """:func:`log_report` for the end of a run: a report failure is a warning, never a failed run."""
    try:
        return log_report(tracking_uri, suite, run_id)
    except Exception as exc:
        log.warning("could not log the report of suite %s on run %s: %s: %s (the run's results are intact; "
                    "`simecg-bench report --suite %s` retries)", suite, run_id, type(exc).__name__, exc, suite)
        return None


# ----------------------------------------------------------------------------------------- sections
def _leaderboard_section(board: Any, brief: bool = False) -> str | None:
    """The board's tables: tasks x models (mean ± sd over seeds, the mean over counted tasks), the
    relative gains, the headline per pretrained model, and (unless ``brief``) its notes and per-row
    details. Every number and flag is the board's (:class:`benchmark.results.leaderboard.Leaderboard`)."""
    if board.rows.empty:
        return None
    budget = "whole training split" if board.budget == 0 else f"{board.budget} labelled ECGs per class"
    view = f"lead {_e(board.lead)}, {budget}"
    view += ", positives-only variant" if getattr(board, "positives_only", False) else ""
    view += f", demographic shift {_e(board.shift)}" if getattr(board, "shift", "") else ""
    name = _e(board.metric_name)
    parts = [f"<p>The leaderboard at {view}, by test {name}: mean ± sd over seeds; <i>n_pos</i>: test positives; "
             f"<i>mean</i>: over the tasks counted (‡: too few test positives, shown and not counted). Gains: "
             f"relative {name} gain of each pretrained model over the task's strongest supervised baseline (extras "
             "and ablations never count as that baseline); below them, the headline per pretrained model: its mean "
             "gain with a 95% interval over tasks, test records and seeds, the tasks it wins, and two tests over "
             "tasks.</p>"]
    if not brief:
        for line in board._header().split("\n")[1:]:
            if line.startswith("SYNTHETIC") or "its encoder" in line:  # said once, at the top of the report
                continue
            warn = "pretrained on every" in line or LEAK_WORDS in line
            parts.append(f'<p class="{"warn" if warn else "note"}">{_e(line)}</p>')
    parts.append(_html_table(board.wide(gains=False), index_name="task"))
    gains = board.gains() if hasattr(board, "gains") else pd.DataFrame()
    if not gains.empty:
        parts.append(f"<p>Relative {name} gain over the task's strongest baseline (*: significant, the paired "
                     "test; ‡: not counted):</p>" + _html_table(gains, index_name="task"))
    lines = board._summary_lines()
    if lines:
        parts.append("<ul>" + "".join(f"<li>{_e(line)}</li>" for line in lines) + "</ul>")
    if not brief:
        detail = board.details() if hasattr(board, "details") else _detail_frame(board.rows)
        parts.append("<details><summary>Per task and model: every number of the rows</summary>"
                     f"{_html_table(detail, index=False)}</details>")
    return "\n".join(parts)


LEAK_WORDS = "pretrained on records of downstream test splits"


def _detail_frame(rows: pd.DataFrame) -> pd.DataFrame:
    """The leaderboard's rows with whatever columns it has (known ones first), numbers rounded."""
    first = [c for c in ("task", "model", "role", "test_f1", "test_f1_sd", "test_f1_ci_low", "test_f1_ci_high",
                         "n_seeds", "test_n_pos", "test_auroc", "test_auprc", "best_baseline", "relative_gain_pct")
             if c in rows]
    frame = rows[first + [c for c in rows.columns if c not in first]].copy()
    for column in frame.columns:
        if pd.api.types.is_float_dtype(frame[column]):
            frame[column] = [formatting.number(v) for v in frame[column]]
    return frame


INTERVAL_SEEDS = "the leaderboard's 95% interval over seeds"
INTERVAL_SD = "± sd over seeds"
INTERVAL_BOOTSTRAP = "the cell's 95% bootstrap interval over its test records (one seed)"


def _intervals(rows: pd.DataFrame, cells: pd.DataFrame | None = None) -> tuple[np.ndarray, np.ndarray, set[str]]:
    """Lower and upper error-bar lengths of each (task, model) row's test F1, and which kinds were used.

    Several seeds: the leaderboard's interval over seeds (``test_f1_ci_low/high`` of its rows), else
    ± sd over seeds. One seed: the cell's own bootstrap interval over its test records (the cell
    run's ``test_f1_ci_low/high`` metrics). No bar where neither exists.
    """
    def column(frame: pd.DataFrame, name: str) -> np.ndarray:
        return pd.to_numeric(frame[name], errors="coerce").to_numpy(float) if name in frame else np.full(len(frame),
                                                                                                         np.nan)

    f1 = column(rows, "test_f1")
    low, high = np.zeros(len(rows)), np.zeros(len(rows))
    kinds: set[str] = set()
    seeds_low, seeds_high, sd = column(rows, "test_f1_ci_low"), column(rows, "test_f1_ci_high"), column(rows,
                                                                                                    "test_f1_sd")
    single = pd.DataFrame()
    if cells is not None and not cells.empty and {"test_f1_ci_low", "test_f1_ci_high"} <= set(cells.columns):
        single = cells.groupby(["task", "model"]).agg(n=("seed", "nunique"), lo=("test_f1_ci_low", "mean"),
                                                      hi=("test_f1_ci_high", "mean"))
        single = single[single.n == 1]
    for i, (task, model) in enumerate(zip(rows.get("task", []), rows.get("model", []), strict=False)):
        if not (math.isnan(seeds_low[i]) or math.isnan(seeds_high[i])):
            low[i], high[i] = f1[i] - seeds_low[i], seeds_high[i] - f1[i]
            kinds.add(INTERVAL_SEEDS)
        elif not math.isnan(sd[i]):
            low[i] = high[i] = sd[i]
            kinds.add(INTERVAL_SD)
        elif (task, model) in single.index and not single.loc[(task, model)][["lo", "hi"]].isna().any():
            low[i], high[i] = f1[i] - single.loc[(task, model), "lo"], single.loc[(task, model), "hi"] - f1[i]
            kinds.add(INTERVAL_BOOTSTRAP)
    return np.clip(np.nan_to_num(low), 0, None), np.clip(np.nan_to_num(high), 0, None), kinds


def _per_task_section(board: Any, data: SuiteRuns) -> str | None:
    rows = _as_f1_columns(board)
    if rows.empty or rows.test_f1.isna().all():
        return None
    models = _models(board)
    cells = data.cells
    if not cells.empty:
        cells = cells[(cells.lead == data.lead) & (cells.budget == data.budget)
                      & (cells["shift"] == getattr(board, "shift", ""))
                      & (cells.positives_only.astype(bool) == bool(getattr(board, "positives_only", False)))]
    if getattr(board, "metric", "f1") != "f1":
        cells = cells.drop(columns=[c for c in ("test_f1_ci_low", "test_f1_ci_high") if c in cells])
        cells = cells.rename(columns={f"{board.value}_ci_low": "test_f1_ci_low",
                                      f"{board.value}_ci_high": "test_f1_ci_high"})
    name = f"test {getattr(board, 'metric_name', 'F1')}"
    figure, kinds = _task_dotplot(rows, models, name, cells=cells)
    few = ""
    if "few_positives" in rows and rows.few_positives.astype(bool).any():
        few = f" {FEW_MARK}: fewer test positives than the leaderboard counts (left out of means and gains)."
    return (f"<p>Mean {name} over seeds per task (n: test positives, seeds); error bars: "
            f"{_e(_kinds_text(kinds))}.{_e(few)}</p>" + _img(figure, f"{name} per task and model"))


def _as_f1_columns(board: Any) -> pd.DataFrame:
    """The board's rows with its metric's columns under the names the plots read (``test_f1``...)."""
    rows = board.rows
    value = getattr(board, "value", "test_f1")
    if value == "test_f1" or rows.empty:
        return rows
    rows = rows.drop(columns=[c for c in ("test_f1", "test_f1_sd", "test_f1_ci_low", "test_f1_ci_high") if c in rows])
    return rows.rename(columns={value: "test_f1", f"{value}_sd": "test_f1_sd", f"{value}_ci_low": "test_f1_ci_low",
                                f"{value}_ci_high": "test_f1_ci_high"})


def _kinds_text(kinds: set[str]) -> str:
    return "; ".join(sorted(kinds)) if kinds else "none (one seed and no bootstrap interval)"


def _gain_section(board: Any) -> str | None:
    """Bars of each pretrained model's relative gain per counted task, with the paired test's 95%
    interval of the difference (relative to the baseline's mean) and n (seeds, test positives)."""
    rows = board.rows
    if rows.empty or "relative_gain_pct" not in rows or rows.relative_gain_pct.isna().all():
        return None
    import matplotlib.pyplot as plt

    metric, name = getattr(board, "metric", "f1"), getattr(board, "metric_name", "F1")
    gains = rows[rows.relative_gain_pct.notna()].copy()
    best_value = gains.task.map(_baseline_values(rows, metric))
    for end in ("low", "high"):
        column = f"{metric}_difference_ci_{end}"
        gains[f"gain_{end}"] = (100.0 * pd.to_numeric(gains.get(column, np.nan), errors="coerce") / best_value)
    tasks = sorted(gains.task.unique())
    models = _model_order(gains.model.unique())
    colors = _colors(_model_order(rows.model.unique()))
    figure, ax = plt.subplots(figsize=(7.5, _height(len(tasks), len(models))))
    width = 0.8 / len(models)
    for i, model in enumerate(models):
        mine = gains[gains.model == model].set_index("task").reindex(tasks)
        value = mine.relative_gain_pct.to_numpy(float)
        low = np.clip(np.nan_to_num(value - mine.gain_low.to_numpy(float)), 0, None)
        high = np.clip(np.nan_to_num(mine.gain_high.to_numpy(float) - value), 0, None)
        y = np.arange(len(tasks)) - 0.4 + width * (i + 0.5)
        ax.barh(y, value, height=width * 0.9, color=colors[model], label=model, xerr=[low, high],
                error_kw={"elinewidth": 1, "capsize": 2, "ecolor": "0.25"})
        for yy, gain, star, seeds in zip(y, value, mine.significant, mine.n_seeds, strict=True):
            if math.isnan(gain):
                continue
            text = f" {gain:+.1f}%{'*' if star is True else ''} (n={int(seeds)})"
            ax.text(0, yy, text, va="center", ha="left" if gain < 0 else "right", fontsize=7)
    ax.axvline(0, color="0.3", lw=0.8)
    n_pos = rows.groupby("task").test_n_pos.min()
    ax.set_yticks(range(len(tasks)), [f"{t}{_n_pos_text(n_pos.get(t))}" for t in tasks])
    ax.invert_yaxis()
    ax.set_xlabel(f"relative {name} gain over the strongest baseline (%)")
    ax.grid(axis="x", alpha=0.3)
    ax.legend(loc="best", fontsize=8)
    figure.tight_layout()
    star = " *: significant (the leaderboard's paired test)." if "significant" in gains else ""
    return (f"<p>({name} of the pretrained model - {name} of the task's strongest supervised baseline) / the "
            f"latter, per task counted; positive: the pretrained model is better. Error bars: the paired test's "
            f"95% interval of the {name} difference over seeds and test records, divided by the baseline's mean; "
            f"n: seeds (the gain's number in the table above).{star}</p>" + _img(figure, "relative gain per task"))


def _baseline_values(rows: pd.DataFrame, metric: str) -> dict[str, float]:
    """Each task's strongest baseline's mean of ``metric`` (the denominator of the relative gains)."""
    value = rows.set_index(["task", "model"])[f"test_{metric}"]
    best = rows.dropna(subset=["best_baseline"]).drop_duplicates("task").set_index("task").best_baseline
    return {task: float(value.get((task, model), math.nan)) for task, model in best.items()}


def _sources_section(board: Any, data_cells: pd.DataFrame | None = None) -> str | None:
    """The pretrained models (role ``pretrained``, e.g. ``mae:<source>``) side by side: per task and
    the mean over the counted tasks (the leaderboard's own means, flags and headline)."""
    rows = _as_f1_columns(board)
    if rows.empty or "role" not in rows:
        return None
    roles = rows.drop_duplicates("model").set_index("model").role
    sources = [m for m in _model_order(rows.model.unique()) if roles[m] == "pretrained"]
    if len(sources) < 2:
        return None
    name = getattr(board, "metric_name", "F1")
    mine = rows[rows.model.isin(sources)]
    best = rows[rows.best_baseline.notna() & (rows.model == rows.best_baseline)] if "best_baseline" in rows else None
    reference = best.set_index("task").test_f1 if best is not None and not best.empty else None
    figure, kinds = _task_dotplot(mine, sources, f"test {name}", reference=reference, cells=data_cells)
    sds = mine.test_f1_sd if "test_f1_sd" in mine else pd.Series(np.nan, index=mine.index)
    table = mine.assign(text=[formatting.mean_sd(m, s) for m, s in zip(mine.test_f1, sds, strict=True)])
    table = table.pivot(index="task", columns="model", values="text")[sources]
    few = set(mine[mine.few_positives.astype(bool)].task) if "few_positives" in mine else set()
    table.index = [f"{t} {FEW_MARK}" if t in few else t for t in table.index]
    means = board.counted_means() if hasattr(board, "counted_means") else mine.groupby("model").test_f1.mean()
    counted = len(set(mine.task) - few)
    table.loc[f"mean ({counted} task{'s' if counted != 1 else ''} counted)"] = [
        formatting.number(means.get(s, math.nan)) if counted else "" for s in sources]
    if not board.summary.empty:
        summary = board.summary.set_index("model")
        table.loc["mean gain"] = [_gain_text(summary, s, "mean_relative_gain_pct") for s in sources]
        table.loc["tasks won"] = [_won_text(summary, s) for s in sources]
        table.loc["95% CI of mean gain"] = [_gain_interval_cell(summary, s) for s in sources]
        table.loc["sign test p"] = [_p_cell(summary, s, "sign_test_p") for s in sources]
        table.loc["Wilcoxon p"] = [_p_cell(summary, s, "wilcoxon_p") for s in sources]
    note = "; black bars: the task's strongest supervised baseline" if reference is not None else ""
    left = (f" {FEW_MARK}: fewer test positives than the leaderboard counts: shown, left out of the mean and the "
            "gains." if few else "")
    return (f"<p>Each pretrained model's encoder, per source, fine-tuned the same way. Error bars: "
            f"{_e(_kinds_text(kinds))}{note}.{_e(left)}</p>"
            + _img(figure, "pretraining sources per task") + _html_table(table.fillna(""), index_name="task"))


def _won_text(summary: pd.DataFrame, model: str) -> str:
    """``3/5`` tasks won of those counted, or why none was counted (the leaderboard's words)."""
    if model not in summary.index:
        return ""
    row = summary.loc[model]
    if int(row.get("tasks_counted", 0)) == 0:
        left_out = int(row.get("tasks_left_out", 0))
        return f"none counted ({left_out} with too few test positives)" if left_out else "none counted"
    return f"{int(row.wins)}/{int(row.tasks_counted)}"


def _budget_section(data: SuiteRuns) -> str | None:
    cells = data.cells
    if cells.empty or not (cells.budget > 0).any() or "test_f1" not in cells:
        return None
    import matplotlib.pyplot as plt

    cells = cells[(cells.lead == data.lead) & (cells["shift"] == "") & cells.test_f1.notna()]
    budgets = sorted(b for b in cells.budget.unique() if b > 0)
    if not budgets:
        return None
    x_all = budgets[-1] * 4  # "all" (the whole training split) right of the largest budget
    models = _model_order(cells.model.unique())
    colors = _colors(models)
    figure, ax = plt.subplots(figsize=(7.5, 4.2))
    table = {}
    for model in models:
        for positives_only in (False, True):
            mine = cells[(cells.model == model) & (cells.positives_only.astype(bool) == positives_only)]
            if mine.empty:
                continue
            # mean over tasks per (budget, seed), then mean and sd over seeds
            per_seed = mine.groupby(["budget", "seed"]).test_f1.mean().groupby("budget")
            mean, sd = per_seed.mean(), per_seed.std().fillna(0.0)
            x = np.array([x_all if b == 0 else b for b in mean.index], float)
            order = np.argsort(x)
            label = model + (" (positives only)" if positives_only else "")
            ax.plot(x[order], mean.to_numpy()[order], marker="o", ms=4, color=colors[model], label=label,
                    ls="--" if positives_only else "-")
            ax.fill_between(x[order], (mean - sd).to_numpy()[order], (mean + sd).to_numpy()[order],
                            color=colors[model], alpha=0.12, lw=0)
            table[label] = {("all" if b == 0 else str(b)): formatting.number(v) for b, v in mean.items()}
    ax.set_xscale("log")
    ticks = budgets + ([x_all] if (cells.budget == 0).any() else [])
    ax.set_xticks(ticks, [str(b) for b in budgets] + (["all"] if len(ticks) > len(budgets) else []))
    ax.minorticks_off()
    ax.set_xlabel("labelled training ECGs per class")
    ax.set_ylabel("test F1 (mean over tasks)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="best")
    figure.tight_layout()
    frame = pd.DataFrame(table).T
    frame = frame[[c for c in [str(b) for b in budgets] + ["all"] if c in frame.columns]]
    return (f"<p>Lead {_e(data.lead)}. Mean test F1 over tasks at each label budget; bands: ± sd over seeds of "
            "that mean; <i>all</i>: the whole training split.</p>"
            + _img(figure, "label-budget curves") + _html_table(frame.fillna(""), index_name="model"))


def _lead_section(data: SuiteRuns) -> str | None:
    cells = data.cells
    if cells.empty or "test_f1" not in cells:
        return None
    cells = cells[(cells.budget == data.budget) & (cells["shift"] == "") & ~cells.positives_only.astype(bool)]
    if cells.lead.nunique() < 2:
        return None
    import matplotlib.pyplot as plt

    leads = sorted(cells.lead.unique(), key=lambda lead: (LEAD_ORDER.index(lead) if lead in LEAD_ORDER else 99, lead))
    models = _model_order(cells.model.unique())
    grid = cells.groupby(["model", "lead"]).test_f1.mean().unstack("lead").reindex(index=models, columns=leads)
    figure, ax = plt.subplots(figsize=(1.6 + 0.62 * len(leads), 1.2 + 0.42 * len(models)))
    image = ax.imshow(grid.to_numpy(float), cmap="viridis", aspect="auto", vmin=np.nanmin(grid.to_numpy(float)),
                      vmax=np.nanmax(grid.to_numpy(float)))
    for (i, j), value in np.ndenumerate(grid.to_numpy(float)):
        if not math.isnan(value):
            ax.text(j, i, f"{value:.2f}", ha="center", va="center", fontsize=7,
                    color="white" if value < np.nanmean(grid.to_numpy(float)) else "black")
    ax.set_xticks(range(len(leads)), leads)
    ax.set_yticks(range(len(models)), models)
    figure.colorbar(image, ax=ax, label="mean test F1", fraction=0.04)
    figure.tight_layout()
    return ("<p>Mean test F1 over tasks and seeds of each model at each lead (the MAE encoder was pretrained on "
            "lead II only).</p>" + _img(figure, "lead heatmap"))


def _demographic_section(data: SuiteRuns) -> str | None:
    cells = data.cells
    if cells.empty:
        return None
    parts = []
    main = cells[(cells.lead == data.lead) & (cells.budget == data.budget) & (cells["shift"] == "")
                 & ~cells.positives_only.astype(bool)]
    groups = {by: [c for c in main.columns if c.startswith(f"test_f1.{by}.")] for by in ("sex", "age")}
    groups = {by: columns for by, columns in groups.items() if columns and main[columns].notna().any().any()}
    if groups:
        parts.append(_groups_part(main, groups))
    shifted = cells[(cells["shift"] != "") & (cells.lead == data.lead)]
    if not shifted.empty and "test_f1" in cells:
        parts.append(_shift_part(cells[cells.lead == data.lead]))
    return "\n".join(parts) or None


def _group_name(key: str) -> str:
    return key.replace("lt", "<").replace("gt", ">").replace("plus", "+")


def _group_order(name: str) -> tuple[int, float, str]:
    """Age groups by age ("<40" before "40-59"), then other groups by name, "unknown" last."""
    if name == "unknown":
        return (2, 0.0, name)
    number = re.search(r"\d+", name)
    if not number:
        return (1, 0.0, name)
    return (0, float(number.group()) - (0.5 if name.startswith("<") else 0.0), name)


def _seed_stats(cells: pd.DataFrame, column: str) -> tuple[float, float, float, int]:
    """Mean over seeds of the mean over tasks of ``column``, its 95% t-interval over seeds and the
    number of seeds (:func:`benchmark.results.statistics.seed_interval`; no interval with one seed)."""
    from benchmark.results.statistics import seed_interval

    per_seed = cells.groupby("seed")[column].mean().dropna() if column in cells else pd.Series(dtype=float)
    mean, _, low, high = seed_interval(per_seed.tolist())
    return mean, low, high, len(per_seed)


def _bars(ax: Any, centers: np.ndarray, stats: list[tuple[float, float, float, int]], width: float,
          color: Any, label: str) -> None:
    """Bars with their 95% intervals over seeds, each labelled with its value and n (seeds): a zero
    bar reads 0.00, a missing one n/a, and n=1 shows there is no interval."""
    values = np.array([m for m, _, _, _ in stats], dtype=float)
    low = np.array([m - lo if not math.isnan(lo) else 0.0 for m, lo, _, _ in stats])
    high = np.array([hi - m if not math.isnan(hi) else 0.0 for m, _, hi, _ in stats])
    ax.bar(centers, np.nan_to_num(values), width=width * 0.9, color=color, label=label,
           yerr=[np.nan_to_num(low), np.nan_to_num(high)], error_kw={"elinewidth": 1, "capsize": 2, "ecolor": "0.25"})
    for x, (mean, _, hi, n) in zip(centers, stats, strict=True):
        top = hi if not math.isnan(hi) else (mean if not math.isnan(mean) else 0.0)
        text = "n/a" if math.isnan(mean) else f"{mean:.2f} n={n}"
        ax.text(x, min(top, 1.0) + 0.02, text, ha="center", va="bottom", fontsize=6, rotation=90)


def _groups_part(main: pd.DataFrame, groups: dict[str, list[str]]) -> str:
    import matplotlib.pyplot as plt

    models = _model_order(main.model.unique())
    colors = _colors(models)
    figure, axes = plt.subplots(1, len(groups), figsize=(4.2 * len(groups) + 2.2, 3.9), squeeze=False)
    tables = []
    for ax, (by, columns) in zip(axes[0], groups.items(), strict=True):
        names = sorted(columns, key=lambda c: _group_order(_group_name(c.split(".", 2)[2])))
        labels = [_group_name(c.split(".", 2)[2]) for c in names]
        counts = [main.groupby("task")[c.replace("test_f1.", "n_test.", 1)].mean().sum()
                  if c.replace("test_f1.", "n_test.", 1) in main else math.nan for c in names]
        width = 0.8 / len(models)
        table = {}
        for i, model in enumerate(models):
            stats = [_seed_stats(main[main.model == model], c) for c in names]
            _bars(ax, np.arange(len(names)) - 0.4 + width * (i + 0.5), stats, width, colors[model], model)
            table[model] = [formatting.number(m) for m, _, _, _ in stats]
        ax.set_xticks(range(len(names)), [f"{lab}\n({c:.0f} test records)" if not math.isnan(c) else lab
                                          for lab, c in zip(labels, counts, strict=True)], fontsize=7)
        ax.set_title("by sex" if by == "sex" else "by age group", fontsize=10)
        ax.set_ylabel("test F1 (mean over tasks, seeds)")
        ax.set_ylim(0, 1.32)
        ax.set_yticks(np.linspace(0, 1, 6))
        ax.grid(axis="y", alpha=0.3)
        frame = pd.DataFrame(table, index=[f"{by} {lab}" for lab in labels]).T
        tables.append(frame)
    axes[0][-1].legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    figure.tight_layout()
    return ("<h3>Test F1 per group</h3><p>Each cell's test records split by sex and by age group (the models are "
            "trained on everyone). Bars: mean over seeds of the mean over tasks, with the 95% t-interval over "
            "seeds and n = seeds above each bar (n=1: no interval); under each group, its test records summed "
            "over tasks (a group of a few records gives F1 0 or 1).</p>"
            + _img(figure, "test F1 per demographic group") + _html_table(pd.concat(tables, axis=1).fillna(""),
                                                                          index_name="model"))


def _shift_part(cells: pd.DataFrame) -> str:
    import matplotlib.pyplot as plt

    cells = cells[cells.test_f1.notna()]
    shifts = [""] + sorted(s for s in cells["shift"].unique() if s)
    models = _model_order(cells.model.unique())
    colors = _colors(models)
    labels = ["no shift" if s == "" else s.replace("->", " → ") for s in shifts]
    figure, ax = plt.subplots(figsize=(max(5.0, 1.1 * len(shifts) + 3.2), 3.9))
    width = 0.8 / len(models)
    table = {}
    for i, model in enumerate(models):
        stats = [_seed_stats(cells[(cells.model == model) & (cells["shift"] == shift)], "test_f1") for shift in shifts]
        _bars(ax, np.arange(len(shifts)) - 0.4 + width * (i + 0.5), stats, width, colors[model], model)
        table[model] = [formatting.number(m) for m, _, _, _ in stats]
    ax.set_xticks(range(len(shifts)), labels, fontsize=8)
    ax.set_ylabel("test F1 (mean over tasks, seeds)")
    ax.set_ylim(0, 1.32)
    ax.set_yticks(np.linspace(0, 1, 6))
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    figure.tight_layout()
    frame = pd.DataFrame(table, index=labels).T
    return ("<h3>Demographic shift</h3><p>Trained and validated on one group, tested on another "
            "(<i>train → test</i>), beside the same models trained and tested on everyone. Bars: mean over seeds "
            "of the mean over tasks, 95% t-interval over seeds, n = seeds.</p>"
            + _img(figure, "demographic shift") + _html_table(frame.fillna(""), index_name="model"))


def _pretraining_section(data: SuiteRuns) -> str | None:
    if not data.pretraining:
        return None
    import matplotlib.pyplot as plt

    figure, ax = plt.subplots(figsize=(7.5, 3.8))
    colors = _colors([p["name"] for p in data.pretraining], palette="Dark2")
    rows = {}
    everything = [v for item in data.pretraining for points in item["history"].values() for _, v in points]
    for item in data.pretraining:
        for key, style in (("train_loss", {"ls": "-"}), ("val_loss", {"ls": "--", "marker": "o", "ms": 3})):
            points = item["history"].get(key)
            if points:
                if len(points) < 25 and "marker" not in style:
                    style = {**style, "marker": "o", "ms": 3}  # a short history: show its points
                steps, values = zip(*points, strict=True)
                ax.plot(steps, values, color=colors[item["name"]], label=f"{item['name']} {key.replace('_', ' ')}",
                        **style)
        val = item["history"].get("val_loss")
        train = item["history"].get("train_loss")
        stalled = stalled_warning(train[0][1] if train else math.nan, min(v for _, v in val) if val else math.nan,
                                  item.get("method", METHOD))
        rows[item["name"]] = {"steps": str(max(s for s, _ in next(iter(item["history"].values())))),
                              "final val loss": formatting.number(val[-1][1]) if val else "",
                              "best val loss": formatting.number(min(v for _, v in val)) if val else "",
                              "learned?": f"little: {stalled}" if stalled else "yes",
                              "run": item["run_id"]}
    ax.set_xlabel("pretraining step")
    mae_only = all(item.get("method", METHOD) == METHOD for item in data.pretraining)
    ax.set_ylabel(("masked-patch MSE" if mae_only else "each method's own loss")
                  + (" (log scale)" if _log_scale(everything) else ""))
    if _log_scale(everything):
        from matplotlib.ticker import FormatStrFormatter

        ax.set_yscale("log")
        ax.yaxis.set_major_formatter(FormatStrFormatter("%.3g"))
        ax.yaxis.set_minor_formatter(FormatStrFormatter("%.3g"))
        ax.tick_params(axis="y", which="minor", labelsize=7)
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8, loc="best")
    figure.tight_layout()
    return ("<p>The MAE pretraining runs of the suite: training loss (solid) and validation loss (dashed) over "
            "steps.</p>" + _img(figure, "pretraining curves") + _html_table(pd.DataFrame(rows).T, index_name="source"))


SETTINGS_FIRST = ("name", "corpora", "grids", "split", "test_seed", "duplicates", "pretrain.", "sources.", "finetune.",
                  "tuning.", "baselines.", "data.", "age_bins")


def _settings_section(data: SuiteRuns) -> str | None:
    """The suite's settings as its newest invocation ran them (the run's params): what the numbers
    above were made with, section by section."""
    if data.invocation is None or not data.invocation.data.params:
        return None
    params = data.invocation.data.params

    def order(key: str) -> tuple[int, str]:
        rank = next((i for i, prefix in enumerate(SETTINGS_FIRST) if key == prefix or key.startswith(prefix)),
                    len(SETTINGS_FIRST))
        return rank, key

    keys = sorted(params, key=order)
    frame = pd.DataFrame({"value": [params[k] for k in keys]}, index=keys)
    return (f"<p>As run by invocation <code>{_e(data.invocation.info.run_id)}</code> (its MLflow params; "
            "<code>simecg-bench protocol --suite " + _e(data.suite) + "</code> says which of them are the "
            "authors' and which deviate).</p>" + _html_table(frame, index_name="setting"))


# ----------------------------------------------------------------------------------------- plotting helpers
@contextlib.contextmanager
def _plotting() -> Any:
    """Matplotlib without a display, small fonts; every figure made inside is closed on exit."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    with plt.rc_context({"font.size": 9, "axes.titlesize": 10, "axes.spines.top": False,
                         "axes.spines.right": False}):
        try:
            yield
        finally:
            plt.close("all")


def _task_dotplot(rows: pd.DataFrame, models: list[str], xlabel: str, reference: pd.Series | None = None,
                  cells: pd.DataFrame | None = None) -> tuple[Any, set[str]]:
    """Tasks down the y axis, one marker per model with its error bar (and a reference tick per task)."""
    import matplotlib.pyplot as plt

    tasks = sorted(rows.task.unique())
    colors = _colors(_model_order(rows.model.unique()) if len(models) < 2 else models)
    figure, ax = plt.subplots(figsize=(7.5, _height(len(tasks), len(models))))
    step = 0.8 / max(1, len(models))
    kinds: set[str] = set()
    for i, model in enumerate(models):
        mine = rows[rows.model == model].set_index("task").reindex(tasks).reset_index().assign(model=model)
        low, high, used = _intervals(mine, cells)
        kinds |= used
        y = np.arange(len(tasks)) - 0.4 + step * (i + 0.5)
        ax.errorbar(mine.test_f1.to_numpy(float), y, xerr=[low, high], fmt="o", ms=5, capsize=2, lw=1,
                    color=colors[model], label=f"{model} ({_seeds_text(mine)})")
    if reference is not None:
        ref = reference.reindex(tasks).to_numpy(float)
        ax.scatter(ref, np.arange(len(tasks)), marker="|", s=400, color="black", label="strongest baseline", zorder=3)
    few = set(rows[rows.few_positives.astype(bool)].task) if "few_positives" in rows else set()
    n_pos = rows.groupby("task").test_n_pos.min() if "test_n_pos" in rows else pd.Series(dtype=float)
    ax.set_yticks(range(len(tasks)), [f"{t}{f' {FEW_MARK}' if t in few else ''}{_n_pos_text(n_pos.get(t))}"
                                      for t in tasks])
    ax.set_ylim(len(tasks) - 0.5, -0.5)
    ax.set_xlim(-0.02, 1.02)
    ax.set_xlabel(xlabel)
    ax.grid(axis="x", alpha=0.3)
    for y in np.arange(len(tasks) - 1) + 0.5:
        ax.axhline(y, color="0.9", lw=0.6)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    figure.tight_layout()
    return figure, kinds


def _seeds_text(rows: pd.DataFrame) -> str:
    """``n=5 seeds`` (``n=2-5 seeds`` when the tasks differ) for a legend entry."""
    seeds = pd.to_numeric(rows.get("n_seeds", pd.Series(dtype=float)), errors="coerce").dropna().astype(int)
    if seeds.empty:
        return "n=?"
    low, high = seeds.min(), seeds.max()
    return f"n={low} seed{'s' if high > 1 else ''}" if low == high else f"n={low}-{high} seeds"


def _n_pos_text(value: Any) -> str:
    try:
        return f"\n({int(value)} test pos.)" if value is not None and math.isfinite(float(value)) else ""
    except (TypeError, ValueError):
        return ""


def _log_scale(values: list[float]) -> bool:
    """A log axis when the values are positive and span more than a factor of 10."""
    positive = [v for v in values if v > 0 and math.isfinite(v)]
    return len(positive) == len(values) and bool(positive) and max(positive) / min(positive) > 10


def _models(board: Any) -> list[str]:
    """The leaderboard's model columns in its order (pretrained, baselines, extras, ablations)."""
    if hasattr(board, "models"):
        with contextlib.suppress(Exception):
            return list(board.models())
    return _model_order(board.rows.model.unique())


def _height(tasks: int, models: int) -> float:
    return max(2.4, 0.9 + tasks * (0.22 + 0.07 * models))


def _model_order(models: Iterable[str]) -> list[str]:
    """Pretrained models first (by name: entry, then source), then the supervised ones (alphabetically)."""
    from benchmark.results.leaderboard import model_role

    return sorted(set(models), key=lambda m: (model_role(m) != "pretrained", m))


_MODEL_COLORS: dict[str, Any] = {}  # one colour per model across the plots of the report being built


def _colors(names: list[str], palette: str = "tab10") -> dict[str, Any]:
    import matplotlib

    cmap = matplotlib.colormaps["tab20" if len(names) > 10 and palette == "tab10" else palette]
    own = {name: cmap(i % cmap.N) for i, name in enumerate(names)}
    if palette != "tab10" or not set(names) <= set(_MODEL_COLORS):
        return own
    return {name: _MODEL_COLORS[name] for name in names}


def _img(figure: Any, alt: str) -> str:
    """A figure as an inline base64 PNG ``<img>`` (closed after)."""
    import matplotlib.pyplot as plt

    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=DPI)
    plt.close(figure)
    data = base64.b64encode(buffer.getvalue()).decode("ascii")
    return f'<figure><img alt="{_e(alt)}" src="data:image/png;base64,{data}"></figure>'


# ----------------------------------------------------------------------------------------- HTML helpers
def _e(text: Any) -> str:
    return html.escape(str(text))


def _gain_text(summary: pd.DataFrame, model: str, column: str) -> str:
    if model not in summary.index or column not in summary:
        return ""
    return formatting.gain(float(summary.loc[model, column]))


def _gain_interval_cell(summary: pd.DataFrame, model: str) -> str:
    """The leaderboard's 95% interval of a model's mean gain, or why it has none."""
    low, high = (_gain_text(summary, model, f"mean_relative_gain_ci_{end}") for end in ("low", "high"))
    if low and high:
        return f"[{low}, {high}]"
    note = summary.loc[model, "mean_relative_gain_ci_note"] if model in summary.index and \
        "mean_relative_gain_ci_note" in summary else ""
    return f"none: {note}" if isinstance(note, str) and note else ""


def _p_cell(summary: pd.DataFrame, model: str, column: str) -> str:
    if model not in summary.index or column not in summary:
        return ""
    return formatting.p_value(float(summary.loc[model, column]))


def _html_table(frame: pd.DataFrame, index: bool = True, index_name: str = "") -> str:
    if frame.empty:
        return "<p>(empty)</p>"
    columns = ([index_name or (frame.index.name or "")] if index else []) + [str(c) for c in frame.columns]
    head = "".join(f"<th>{_e(c)}</th>" for c in columns)
    body = []
    for key, row in frame.iterrows():
        cells = [f"<th>{_e(key)}</th>"] if index else []
        cells += [f'<td class="{"num" if _numeric(v) else "txt"}">{_cell_html(_cell(v))}</td>' for v in row]
        body.append("<tr>" + "".join(cells) + "</tr>")
    return f'<div class="scroll"><table><thead><tr>{head}</tr></thead><tbody>{"".join(body)}</tbody></table></div>'


def _cell_html(text: str) -> str:
    """A cell's text as HTML; "mean ± sd" on two lines (the sd smaller), so wide boards fit the page."""
    mean, sep, sd = text.partition(" ± ")
    if sep and _numeric(mean) and _numeric(sd):
        return f'{_e(mean)}<br><span class="sd">± {_e(sd)}</span>'
    return _e(text)


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return formatting.number(value)
    return "" if value is None else str(value)


def _numeric(value: Any) -> bool:
    text = _cell(value).replace("±", "").replace("%", "").replace("+", "").replace("/", "").replace(" ", "")
    return bool(text) and bool(re.fullmatch(r"[-0-9.e]+", text))


STYLE = """
body { font-family: -apple-system, "Segoe UI", Roboto, Helvetica, Arial, sans-serif; margin: 2em auto;
       max-width: 1100px; padding: 0 1em; color: #222; line-height: 1.45; }
h1 { font-size: 1.6em; margin-bottom: 0.2em; } h2 { border-bottom: 1px solid #ddd; padding-bottom: 0.2em;
margin-top: 2em; } h3 { margin-bottom: 0.3em; }
.meta { color: #555; font-size: 0.9em; } .warn { background: #fff4d6; border-left: 4px solid #e0a800;
padding: 0.4em 0.8em; }
nav ul { columns: 2; } figure { margin: 1em 0; } img { max-width: 100%; height: auto; }
.scroll { overflow-x: auto; } table { border-collapse: collapse; font-size: 0.8em; margin: 0.8em 0; }
th, td { border: 1px solid #ddd; padding: 0.2em 0.45em; } thead th { background: #f3f3f3; overflow-wrap: break-word; }
tbody th { text-align: left; font-weight: 600; background: #fafafa; }
td.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
td.txt { overflow-wrap: break-word; } .sd { color: #666; font-size: 0.9em; }
details summary { cursor: pointer; color: #235; } .omitted { color: #666; font-size: 0.9em; }
"""


def _page(data: SuiteRuns, board: Any, sections: list[Section], omitted: dict[str, str]) -> str:
    title = f"SimECG-Bench report: suite {data.suite}"
    invocation = data.invocation
    run_line = (f"invocation run <code>{_e(invocation.info.run_id)}</code> ({_e(invocation.info.run_name)}, "
                f"{_e(invocation.info.status)})" if invocation is not None else "no invocation run yet")
    meta = (f'<p class="meta">MLflow store <code>{_e(data.uri)}</code>, experiment '
            f'<code>{_e(EXPERIMENT_PREFIX + data.suite)}</code> (id {_e(data.experiment_id)}), {run_line}; '
            f"{len(data.cells)} finished cell run(s), {len(data.pretraining)} pretraining run(s); written "
            f"{_e(time.strftime('%Y-%m-%d %H:%M:%S'))}.</p>")
    warn = ""
    if not data.cells.empty and getattr(board, "synthetic", False):
        warn = '<p class="warn">SYNTHETIC DATA: simulator-made tasks, a pipeline check, not evidence.</p>'
    for note in getattr(board, "notes", []):
        if "its encoder" in note:  # an encoder that learned little makes its column's numbers moot
            warn += f'<p class="warn">{_e(note)}</p>'
    nav = "<nav><ul>" + "".join(f'<li><a href="#{_anchor(s.title)}">{_e(s.title)}</a></li>' for s in sections)
    nav += "</ul></nav>"
    body = "".join(f'<section id="{_anchor(s.title)}"><h2>{_e(s.title)}</h2>\n{s.html}</section>\n' for s in sections)
    skipped = ""
    if omitted:
        skipped = ('<p class="omitted">Not in this report, because the suite has no data for it: '
                   + "; ".join(f"{_e(t)} ({_e(why)})" for t, why in omitted.items()) + ".</p>")
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>{_e(title)}</title>'
            f"<style>{STYLE}</style></head><body>\n<h1>{_e(title)}</h1>\n{meta}{warn}{nav}{body}{skipped}"
            "</body></html>\n")


def _anchor(title: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", title.lower()).strip("-")


# ----------------------------------------------------------------------------------------- cell curves
def curve_figures(labels: np.ndarray, scores: np.ndarray, title: str = "") -> tuple[Any, Any]:
    """ROC and precision-recall figures of one cell's test labels and scores (the F1 threshold marked)."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt
    from sklearn.metrics import average_precision_score, precision_recall_curve, roc_auc_score, roc_curve

    from benchmark.results.metrics import THRESHOLD

    labels = np.asarray(labels).astype(int)
    scores = np.asarray(scores, dtype=float)
    both = 0 < labels.sum() < len(labels)
    predicted = scores > THRESHOLD
    figures = []
    for kind in ("roc", "pr"):
        figure, ax = plt.subplots(figsize=(4.6, 4.2))
        if not both:
            ax.text(0.5, 0.5, "the test records hold one class only:\nno curve", ha="center", va="center")
        elif kind == "roc":
            fpr, tpr, _ = roc_curve(labels, scores)
            ax.plot(fpr, tpr, lw=1.5, label=f"AUROC {roc_auc_score(labels, scores):.3f}")
            ax.plot([0, 1], [0, 1], color="0.6", ls=":", lw=1, label="chance")
            point = (predicted[labels == 0].mean(), predicted[labels == 1].mean())
            ax.plot(*point, "o", color="tab:red", label=f"threshold {THRESHOLD}")
            ax.set_xlabel("false positive rate")
            ax.set_ylabel("true positive rate")
        else:
            precision, recall, _ = precision_recall_curve(labels, scores)
            ax.plot(recall, precision, lw=1.5, label=f"AUPRC {average_precision_score(labels, scores):.3f}")
            ax.axhline(labels.mean(), color="0.6", ls=":", lw=1, label=f"prevalence {labels.mean():.2f}")
            if predicted.any():
                ax.plot(predicted[labels == 1].mean(), labels[predicted].mean(), "o", color="tab:red",
                        label=f"threshold {THRESHOLD}")
            ax.set_xlabel("recall")
            ax.set_ylabel("precision")
        ax.set_xlim(-0.02, 1.02)
        ax.set_ylim(-0.02, 1.02)
        ax.grid(alpha=0.3)
        if both:
            ax.legend(loc="lower right" if kind == "roc" else "lower left", fontsize=8)
        ax.set_title(f"{'ROC' if kind == 'roc' else 'Precision-recall'}: {title}\n"
                     f"({int(labels.sum())} positive, {int(len(labels) - labels.sum())} negative test records)",
                     fontsize=8)
        figure.tight_layout()
        figures.append(figure)
    return figures[0], figures[1]


def log_curves(run: Any, labels: np.ndarray, scores: np.ndarray, title: str = "") -> None:
    """Log ``roc_curve.png`` and ``pr_curve.png`` on a cell run; a plotting error is a warning, not a failed cell."""
    import matplotlib.pyplot as plt

    try:
        roc, pr = curve_figures(labels, scores, title)
        try:
            run.log_figure(roc, "roc_curve.png")
            run.log_figure(pr, "pr_curve.png")
        finally:
            plt.close(roc)
            plt.close(pr)
    except Exception as exc:
        log.warning("could not log ROC/PR curves of %s: %s: %s", title, type(exc).__name__, exc)


def resolve_suite(tracking_uri: str | None, suite: str | None) -> str:
    """``suite``, or the newest suite of the store; a clear error when the store has no such suite."""
    from benchmark.results.leaderboard import latest_suite

    if suite is None:
        return latest_suite(tracking_uri)
    import mlflow

    client = mlflow.tracking.MlflowClient(tracking_uri=resolve_uri(tracking_uri))
    if client.get_experiment_by_name(EXPERIMENT_PREFIX + suite) is None:
        raise ConfigError(f"no runs of suite {suite!r} in {resolve_uri(tracking_uri)}; run `simecg-bench run "
                          f"--suite {suite}` first")
    return suite
