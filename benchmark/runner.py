"""Run a suite: pretrain each corpus's encoder once, then every pending cell, all into MLflow.

The order of work: resolve cells and their fingerprints (loading each task's data once, from
the on-disk cache after the first time), skip cells MLflow already holds as FINISHED, pretrain
(or reuse) the encoders the pending cells need, then fine-tune/train and evaluate each cell in
a child run. A failure in one cell is logged as a FAILED run and does not stop the others.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from benchmark.cells import PlannedCell, enumerate_cells, plan_cells, shard
from benchmark.config import PRETRAINED, SuiteConfig
from benchmark.datasets.base import TaskData
from benchmark.encoders import SuiteEncoders
from benchmark.run_cell import CellContext, run_cell
from benchmark.tags import RunTags
from benchmark.tasks import load_task
from benchmark.tracking import ActiveRun, Tracker, sqlite_path
from simecg.config import flatten, to_dict
from simecg.paths import cache_dir

log = logging.getLogger(__name__)


@dataclass
class RunReport:
    """What one invocation did; printed by the CLI and returned to Python callers."""

    suite: str
    experiment_id: str
    parent_run_id: str
    tracking_uri: str
    total: int = 0
    skipped: int = 0
    ran: int = 0
    failed: list[tuple[str, str]] = field(default_factory=list)
    seconds: float = 0.0
    synthetic: bool = False


def run_suite(
    suite: SuiteConfig,
    *,
    data_dir: str | Path | None = None,
    tracking_uri: str | None = None,
    shard_spec: tuple[int, int] = (0, 1),
    progress: bool = True,
    optuna_storage: str | None = None,
    cell_log: TextIO | None = None,
) -> RunReport:
    """Run every pending cell of ``suite`` (this shard's share) and log it to MLflow.

    The invocation is one MLflow run (FINISHED, FAILED or KILLED like every run); pretraining
    runs and cell runs are its children. ``progress`` shows progress bars (a terminal);
    ``cell_log`` (a log file, stderr when it is not a terminal) gets one line per encoder being
    provisioned and per finished cell, with its test F1, time and an ETA (:class:`CellLines`).
    """
    from tqdm.auto import tqdm

    started = time.perf_counter()
    suite = with_data_dir(suite, data_dir)
    cells = shard(enumerate_cells(suite), *shard_spec)
    data = load_data(cells, data_dir)  # first, so missing data fails before anything is logged
    tracker = Tracker(tracking_uri, suite.name)
    tags = RunTags(kind="invocation", suite=suite.name, corpora=",".join(suite.corpora), synthetic=suite.synthetic,
                   shard=f"{shard_spec[0]}/{shard_spec[1]}")
    with tracker.run(f"{suite.name} ({'+'.join(suite.corpora)})", tags, flatten(to_dict(suite))) as invocation:
        report = RunReport(suite.name, tracker.experiment_id, invocation.run_id, tracker.uri, total=len(cells),
                           synthetic=suite.synthetic)
        try:
            encoders = SuiteEncoders(suite, tracker, invocation.run_id, progress)
            context = CellContext(suite, tracker, invocation.run_id,
                                  optuna_storage or default_optuna_storage(tracker.uri), encoders, data)
            for task_data in data.values():
                _log_quarantine(invocation, task_data)
            finished = tracker.finished_fingerprints()
            pending = [p for p in plan(suite, cells, data, encoders) if p.fingerprint not in finished]
            report.skipped = len(cells) - len(pending)
            lines = CellLines(cell_log, len(pending), tracker) if cell_log is not None else None
            for spec in {p.model.name: p.model for p in pending}.values():  # e.g. pretrain the encoders
                if lines:
                    lines.preparing(spec.name)
                spec.cls.prepare(spec.config, encoders)
            _log_encoders(invocation, encoders)
            bar = tqdm(pending, desc=f"{suite.name} cells", unit="cell", disable=not progress, leave=False)
            for planned in bar:
                bar.set_postfix_str(planned.cell.label, refresh=False)
                cell_started = time.perf_counter()
                error = run_cell(context, planned)
                if error:
                    report.failed.append((planned.cell.label, error))
                else:
                    report.ran += 1
                if lines:
                    lines.finished(planned, error, time.perf_counter() - cell_started)
        finally:
            report.seconds = time.perf_counter() - started
            invocation.log_metrics({"cells_total": report.total, "cells_skipped": report.skipped,
                                    "cells_ran": report.ran, "cells_failed": len(report.failed),
                                    "wall_seconds": report.seconds})
    from benchmark.report import log_report_safely  # report.html + description on the invocation run

    log_report_safely(tracker.uri, suite.name, invocation.run_id)  # a report failure only warns
    return report


class CellLines:
    """Progress for logs: one line per finished cell (and per model being prepared), flushed at once.

    ``[12/48] mae:sim | ptbxl/AFIB | II | budget all | seed 1: test_f1 0.812 (41 s, ETA 27 min)``:
    the cell's place among this invocation's pending cells, its test F1 (read back from its run),
    its wall time, and the mean time per cell so far times the cells left.
    """

    def __init__(self, stream: TextIO, total: int, tracker: Tracker):
        self.stream, self.total, self.tracker = stream, total, tracker
        self.done, self.seconds = 0, 0.0

    def _print(self, text: str) -> None:
        print(text, file=self.stream, flush=True)

    def preparing(self, model: str) -> None:
        if model.startswith(f"{PRETRAINED}:"):
            self._print(f"preparing {model}: its encoder, from the cache, the store, or pretrained now")

    def finished(self, planned: PlannedCell, error: str | None, seconds: float) -> None:
        from benchmark.planning import duration

        self.done += 1
        self.seconds += seconds
        eta = self.seconds / self.done * (self.total - self.done)
        if error:
            result = f"FAILED: {(error.splitlines() or [''])[0]}"
        else:
            run = self.tracker.finished_run(planned.fingerprint)
            f1 = run.data.metrics.get("test_f1") if run is not None else None
            result = f"test_f1 {f1:.3f}" if f1 is not None else "finished"
        self._print(f"[{self.done}/{self.total}] {planned.cell.label}: {result} "
                    f"({duration(seconds)}, ETA {duration(eta)})")


def with_data_dir(suite: SuiteConfig, data_dir: str | Path | None) -> SuiteConfig:
    """The suite whose corpora of real data (``ptbxl``, ``vae``, ``gan``) read the run's ``--data-dir``."""
    if data_dir is None or suite.pretrain.data_dir is not None:
        return suite
    return dataclasses.replace(suite, pretrain=dataclasses.replace(suite.pretrain, data_dir=str(data_dir)))


def load_data(cells: list[Any], data_dir: str | Path | None) -> dict[tuple[str, str], TaskData]:
    """Each (task, lead) the cells need, loaded once (from the on-disk cache after the first time)."""
    data: dict[tuple[str, str], TaskData] = {}
    for cell in cells:
        if (cell.task, cell.lead) not in data:
            data[(cell.task, cell.lead)] = load_task(cell.task, data_dir, lead=cell.lead)
    return data


def plan(suite: SuiteConfig, cells: list[Any], data: dict[tuple[str, str], TaskData],
         encoders: SuiteEncoders) -> list[PlannedCell]:
    """Each cell with its resolved model and identity."""
    return plan_cells(suite, cells, {key: d.data_version for key, d in data.items()}, encoders)


def _log_quarantine(run: ActiveRun, data: Any) -> None:
    """Records the data checks excluded, as a table on the invocation run (never silently dropped)."""
    if data.quarantine:
        import pandas as pd

        name = data.task.replace("/", "_")
        run.log_table(pd.DataFrame(data.quarantine), f"quarantine/{name}_{data.lead}.json")
        log.warning("%s: %d record(s) excluded by data checks (see the run's quarantine table)",
                    data.task, len(data.quarantine))


def _log_encoders(run: ActiveRun, encoders: SuiteEncoders) -> None:
    """Which encoder each corpus used: fingerprint, file, and the run that trained it."""
    params = {}
    for corpus, encoder in encoders.provisioned.items():
        params[f"encoder.{corpus}.fingerprint"] = encoder.identity.fingerprint
        params[f"encoder.{corpus}.path"] = str(encoder.path)
        params[f"encoder.{corpus}.run_id"] = encoder.run_id or ""
    if params:
        run.log_params(params)


def default_optuna_storage(tracking_uri: str) -> str:
    """Optuna studies beside a local SQLite MLflow store, else in the cache folder."""
    db = sqlite_path(tracking_uri)
    return f"sqlite:///{(db.parent if db is not None else cache_dir()) / 'optuna.db'}"


def dry_run(
    suite: SuiteConfig,
    *,
    data_dir: str | Path | None = None,
    tracking_uri: str | None = None,
    shard_spec: tuple[int, int] = (0, 1),
) -> list[str]:
    """One line per cell of this shard: ``finished``/``pending``, fingerprint and label (``--dry-run --list``).

    The summary, counts and time estimates of ``--dry-run`` are :func:`benchmark.planning.make_plan`'s.
    """
    from benchmark.planning import make_plan

    return make_plan(suite, data_dir=data_dir, tracking_uri=tracking_uri, shard_spec=shard_spec,
                     estimate=False).cell_lines()
