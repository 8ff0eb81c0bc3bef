"""The leaderboard: mean test F1 ± sd over seeds per task and model, read back from MLflow.

Also the study's headline comparison: per task, each pretrained model's relative F1 gain over
the strongest supervised baseline, its mean over tasks, and the number of tasks won.
Ablations (e.g. ``transformer-scratch``) are shown but never count as "the strongest baseline".
"""

from __future__ import annotations

import io
import json
import logging
import math
from dataclasses import dataclass

import pandas as pd

from benchmark.config import PRETRAINED
from benchmark.tracking import Tracker
from simecg.errors import ConfigError
from simecg.registries import BASELINES

log = logging.getLogger(__name__)

LEAK_MARK = "†"  # beside a model pretrained on downstream test records
FORMATS = ("table", "csv", "markdown", "json")
METRICS = ("test_f1", "test_auroc", "test_auprc")


@dataclass
class Leaderboard:
    """Aggregated results of one suite at one lead and budget."""

    suite: str
    lead: str
    budget: int
    rows: pd.DataFrame  # one row per (task, model)
    summary: pd.DataFrame  # one row per pretrained model
    synthetic: bool

    def render(self, fmt: str = "table") -> str:
        if fmt not in FORMATS:
            raise ConfigError(f"--format must be one of {', '.join(FORMATS)}, got {fmt!r}")
        return {"table": self._table, "markdown": self._markdown, "csv": self._csv, "json": self._json}[fmt]()

    # ----- machine-readable
    def _csv(self) -> str:
        buffer = io.StringIO()
        out = self.rows.copy()
        out.insert(0, "suite", self.suite)
        out["synthetic"] = self.synthetic
        out.to_csv(buffer, index=False, float_format="%.6g")
        return buffer.getvalue()

    def _json(self) -> str:
        def clean(records: list[dict]) -> list[dict]:
            return [{k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in r.items()} for r in records]

        return json.dumps(
            {
                "suite": self.suite,
                "lead": self.lead,
                "budget": self.budget,
                "synthetic": self.synthetic,
                "rows": clean(self.rows.to_dict("records")),
                "summary": clean(self.summary.to_dict("records")),
            },
            indent=2,
        )

    # ----- human-readable
    def wide(self) -> pd.DataFrame:
        """Tasks x models of "mean ± sd", a mean row, and each pretrained model's gain column."""
        if self.rows.empty:
            return pd.DataFrame()
        cell = self.rows.assign(text=[_pm(m, s) for m, s in zip(self.rows.test_f1, self.rows.test_f1_sd, strict=True)])
        table = cell.pivot(index="task", columns="model", values="text")
        table = table.rename(columns={m: f"{m}{LEAK_MARK}" for m in self.leaky_models()})
        means = self.rows.groupby("model").test_f1.mean()
        table.loc["mean"] = [f"{means[m.removesuffix(LEAK_MARK)]:.3f}" for m in table.columns]
        for model in self.summary.model if not self.summary.empty else []:
            gains = self.rows[self.rows.model == model].set_index("task").relative_gain_pct
            mark = LEAK_MARK if model in self.leaky_models() else ""
            column = [f"{gains[t]:+.2f}%" if t in gains and not math.isnan(gains[t]) else "" for t in table.index[:-1]]
            mean_gain = self.summary.set_index("model").loc[model, "mean_relative_gain_pct"]
            table[f"gain {model}{mark}"] = column + [f"{mean_gain:+.2f}%" if not math.isnan(mean_gain) else ""]
        return table.fillna("")

    def _header(self) -> str:
        budget = "all" if self.budget == 0 else str(self.budget)
        head = f"Leaderboard: suite {self.suite}, lead {self.lead}, budget {budget}, test F1 (mean ± sd over seeds)"
        if self.synthetic:
            head += "\nSYNTHETIC DATA: simulator-made tasks, a pipeline check, not evidence"
        for model in self.leaky_models():
            head += (f"\n{model}{LEAK_MARK}: pretrained on every PTB-XL record, downstream test records included "
                     "(as the authors did); its PTB-XL results are optimistic")
        return head

    def leaky_models(self) -> list[str]:
        """Models pretrained on records of downstream test splits (``ptbxl-all``)."""
        if self.rows.empty or "sees_test_records" not in self.rows:
            return []
        return sorted(self.rows[self.rows.sees_test_records.astype(bool)].model.unique())

    def _summary_lines(self) -> list[str]:
        lines = []
        for row in self.summary.itertuples():
            if row.tasks == 0:
                lines.append(f"{row.model}: no supervised baseline (ablations aside) in this suite to compare with")
                continue
            gain = row.mean_relative_gain_pct
            gain_text = "n/a (no baseline with F1 > 0)" if math.isnan(gain) else f"{gain:+.2f}%"
            lines.append(
                f"{row.model}: mean relative F1 gain {gain_text} over the strongest baseline, "
                f"wins {row.wins}/{row.tasks} tasks"
            )
        return lines

    def _table(self) -> str:
        if self.rows.empty:
            return self._header() + "\n(no finished cells yet)"
        return "\n".join([self._header(), self.wide().to_string(), "", *self._summary_lines()])

    def _markdown(self) -> str:
        if self.rows.empty:
            return self._header() + "\n\n(no finished cells yet)"
        wide = self.wide().reset_index()
        lines = ["| " + " | ".join(map(str, wide.columns)) + " |", "|" + "---|" * len(wide.columns)]
        lines += ["| " + " | ".join(map(str, r)) + " |" for r in wide.itertuples(index=False)]
        return "\n".join([self._header().replace("\n", "\n\n"), "", *lines, "", *self._summary_lines()])


def _pm(mean: float, sd: float) -> str:
    return f"{mean:.3f}" if math.isnan(sd) else f"{mean:.3f} ± {sd:.3f}"


def is_ablation(model: str) -> bool:
    """Models that are ablations of the pretrained ones (never "the strongest baseline")."""
    if model.startswith(f"{PRETRAINED}:") or model not in BASELINES:
        return False
    return bool(BASELINES.get(model).ablation)


def runs_frame(tracker: Tracker) -> pd.DataFrame:
    """One row per finished cell (the newest run of each fingerprint): its typed tags and test metrics."""
    runs, foreign = tracker.cell_runs()
    if foreign:
        log.warning("%d finished cell run(s) of suite experiment %s were written by another version of the suite "
                    "(tag schema) and are left out", foreign, tracker.experiment_id)
    rows = []
    for run, tags in runs:
        rows.append({
            "task": tags.task, "model": tags.model, "lead": tags.lead, "budget": tags.budget,
            "positives_only": tags.positives_only, "shift": tags.shift, "seed": tags.seed,
            "synthetic": tags.synthetic, "sees_test_records": tags.sees_test_records,
            **{m: run.data.metrics.get(m, math.nan) for m in METRICS},
        })
    return pd.DataFrame(rows)


def build_leaderboard(
    tracking_uri: str | None, suite: str, lead: str = "II", budget: int = 0, positives_only: bool = False,
    shift: str = "",
) -> Leaderboard:
    """Aggregate the suite's finished cells at one lead and budget into a :class:`Leaderboard`."""
    frame = runs_frame(Tracker(tracking_uri, suite))
    if not frame.empty:
        frame = frame[(frame.lead == lead) & (frame.budget == budget) & (frame.positives_only == positives_only)
                      & (frame["shift"] == shift)]
    synthetic = bool(not frame.empty and frame.synthetic.any())
    if frame.empty:
        empty = pd.DataFrame(columns=["task", "model", "test_f1"])
        return Leaderboard(suite, lead, budget, empty, pd.DataFrame(), synthetic)
    agg = frame.groupby(["task", "model"]).agg(
        test_f1=("test_f1", "mean"),
        test_f1_sd=("test_f1", "std"),
        n_seeds=("seed", "nunique"),
        test_auroc=("test_auroc", "mean"),
        test_auprc=("test_auprc", "mean"),
        sees_test_records=("sees_test_records", "any"),
    ).reset_index()
    rows, summary = _relative_gains(agg)
    return Leaderboard(suite, lead, budget, rows, summary, synthetic)


def _relative_gains(agg: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    pretrained = agg.model.str.startswith(f"{PRETRAINED}:")
    baseline = ~pretrained & ~agg.model.map(is_ablation)
    best = agg[baseline].sort_values("test_f1", ascending=False).drop_duplicates("task").set_index("task")
    agg = agg.copy()
    agg["best_baseline"] = agg.task.map(best.model)
    # float even when no task has a baseline (an empty map would be a string column under pandas 3)
    best_f1 = agg.task.map(best.test_f1.astype(float)).astype(float)
    gain = (agg.test_f1 - best_f1) / best_f1 * 100.0
    agg["relative_gain_pct"] = gain.where(pretrained & (best_f1 > 0))
    summary_rows = []
    for model in sorted(agg[pretrained].model.unique()):
        mine = agg[(agg.model == model) & agg.best_baseline.notna()]
        summary_rows.append(
            {
                "model": model,
                "mean_relative_gain_pct": float(mine.relative_gain_pct.mean()) if len(mine) else math.nan,
                "wins": int((mine.test_f1 > mine.task.map(best.test_f1.astype(float)).astype(float)).sum()),
                "tasks": int(len(mine)),
            }
        )
    return agg.sort_values(["task", "model"]).reset_index(drop=True), pd.DataFrame(summary_rows)


def latest_suite(tracking_uri: str | None) -> str:
    """The suite of the most recent invocation in the store (the leaderboard's default)."""
    import mlflow

    from benchmark.tracking import EXPERIMENT_PREFIX, resolve_uri

    client = mlflow.tracking.MlflowClient(tracking_uri=resolve_uri(tracking_uri))
    experiments = [e for e in client.search_experiments() if e.name.startswith(EXPERIMENT_PREFIX)]
    if not experiments:
        raise ConfigError(f"no SimECG-Bench runs in {resolve_uri(tracking_uri)}; run `simecg-bench run` first")
    runs = client.search_runs([e.experiment_id for e in experiments], filter_string="tags.kind = 'invocation'",
                              order_by=["attributes.start_time DESC"], max_results=1)
    if not runs:
        raise ConfigError("no finished invocation found; run `simecg-bench run` first")
    return runs[0].data.tags["suite"]
