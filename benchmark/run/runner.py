"""Run a suite: pretrain each corpus's encoder once, then every pending cell, all into MLflow.

The order of work: resolve cells and their fingerprints (loading each task's data once, from
the on-disk cache after the first time), skip cells MLflow already holds as FINISHED, pretrain
(or reuse) the encoders the pending cells need, then fine-tune/train and evaluate each cell in
a child run. A failure in one cell is logged as a FAILED run and does not stop the others.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from benchmark.results.report import log_report_safely, report_location
from benchmark.run.cells import PlannedCell
from benchmark.run.claims import Coordinator, prepare_storage
from benchmark.run.encoders import SuiteEncoders
from benchmark.run.opening import default_optuna_storage, open_suite, plan
from benchmark.run.planning import duration
from benchmark.run.run_cell import CellContext, run_cell
from benchmark.suites.config import SuiteConfig
from benchmark.tracking.tags import RunTags
from benchmark.tracking.tracker import ActiveRun, Tracker, resolve_uri
from simecg import progress as progress_lines
from simecg.config import flatten, to_dict
from simecg.errors import StoreLost, Superseded, first_line
from simecg.failpoints import failpoint
from simecg.identity import Identity

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
    elsewhere: int = 0  # pending cells another worker held or finished meanwhile
    report_path: str | None = None  # where the suite's report.html was logged (None: it could not be)


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
    runs and cell runs are its children. This process is one worker among any number on the same
    suite and store (:mod:`benchmark.run.claims`): it claims each cell before running it, so two
    workers never run the same cell, and runs left RUNNING by dead workers are closed KILLED.
    ``progress`` shows progress bars (a terminal); ``cell_log`` (a log file, stderr when it is not
    a terminal) gets one line per encoder being provisioned and per finished cell, with its test
    F1, time and an ETA (:class:`CellLines`).
    """
    started = time.perf_counter()
    opened = open_suite(suite, data_dir, shard_spec)  # data first: missing data fails before anything is logged
    suite, cells, data = opened.suite, opened.cells, opened.data
    uri = resolve_uri(tracking_uri)
    storage = prepare_storage(optuna_storage or default_optuna_storage(uri))
    with Coordinator(storage) as workers:
        tracker = Tracker(uri, suite.name, worker=workers)
        tracker.close_dead_runs()
        tags = RunTags(kind="invocation", suite=suite.name, corpora=",".join(suite.corpora),
                       synthetic=suite.synthetic, shard=f"{shard_spec[0]}/{shard_spec[1]}")
        name = f"{suite.name} ({'+'.join(suite.corpora)})"
        with tracker.run(name, tags, flatten(to_dict(suite))) as invocation:
            report = RunReport(suite.name, tracker.experiment_id, invocation.run_id, tracker.uri, total=len(cells),
                               synthetic=suite.synthetic)
            try:
                encoders = SuiteEncoders(suite, tracker, invocation.run_id, progress)
                context = CellContext(suite, tracker, invocation.run_id, storage, encoders, data, workers)
                for task_data in data.values():
                    _log_quarantine(invocation, task_data)
                finished = tracker.finished_fingerprints()
                pending = [p for p in plan(suite, cells, data, encoders) if p.fingerprint not in finished]
                report.skipped = len(cells) - len(pending)
                lines = CellLines(cell_log, len(pending), tracker) if cell_log is not None else None
                CellQueue(context, report, lines, progress).run(pending)
                _log_encoders(invocation, encoders)
            except StoreLost:
                raise
            except Exception:  # e.g. pretraining failed: because the store stopped taking writes?
                if tracker.lost_store() is not None:
                    raise tracker.store_lost_error("this run") from None
                raise
            finally:
                with contextlib.suppress(Exception):  # workers that died while this one worked
                    tracker.close_dead_runs()
                report.seconds = time.perf_counter() - started
                _log_summary(invocation, report)
    # report.html and a description on the invocation run; a report failure only warns
    if log_report_safely(tracker.uri, suite.name, invocation.run_id):
        report.report_path = report_location(tracker, invocation.run_id)
    return report


class CellQueue:
    """This worker's share of the pending cells: each claimed before it runs, models prepared once.

    Dynamic claiming: the worker walks the pending cells and takes the next one nobody holds, so
    an uneven grid still keeps every worker busy. A model whose preparation (an encoder to
    pretrain) another worker holds is put off: the cells of other models run meanwhile, and its
    cells run once that worker has finished (the encoder then comes from the cache or the store).
    """

    POLL_S = 5.0  # how often a worker with nothing else to do looks whether a preparation is done

    def __init__(self, context: CellContext, report: RunReport, lines: CellLines | None, progress: bool):
        self.context, self.report, self.lines, self.progress = context, report, lines, progress
        self.workers = context.workers
        self.ready: set[str] = set()

    def run(self, pending: list[PlannedCell]) -> None:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(pending), desc=f"{self.context.suite.name} cells", unit="cell",
                   disable=not self.progress, leave=False)
        waiting = pending
        while waiting:
            later = []
            for planned in waiting:
                bar.set_postfix_str(planned.cell.label, refresh=False)
                # a cell may have to run its study, whose model may be another (a borrowed study)
                study_model = planned.tuning.model if planned.tuning is not None else planned.model
                if not self._prepared(planned.model) or not self._prepared(study_model) or not self._run_one(planned):
                    later.append(planned)
                    continue
                bar.update()
                failpoint("between.cells")
            if len(later) == len(waiting):
                time.sleep(self.POLL_S)  # every cell left waits for another worker's encoder or study
            waiting = later
        bar.close()

    def _prepared(self, spec: Any) -> bool:
        """Prepare ``spec`` (e.g. pretrain its encoder) under a claim; False while another worker does."""
        if spec.name in self.ready:
            return True
        key = "prepare:" + Identity("prepare", {"model": spec.identity(self.context.encoders)}).fingerprint
        if not self.workers.claim(key):
            return False
        try:
            if self.lines:
                self.lines.preparing(spec)
            spec.cls.prepare(spec.config, self.context.encoders)
        except Superseded as exc:  # the worker that took it over prepares it; its cells wait for that
            log.warning("%s", exc)
            return False
        finally:
            self.workers.release(key)
        self.ready.add(spec.name)
        return True

    def _run_one(self, planned: PlannedCell) -> bool:
        """Claim and run the cell (True), skip it when another worker has or had it (True), or put it
        off while another worker tunes its study (False): that study's best values are what it needs."""
        key = f"cell:{planned.fingerprint}"
        if not self.workers.claim(key):  # another worker runs it now
            self.report.elsewhere += 1
            return True
        study = f"study:{planned.tuning.fingerprint}" if planned.tuning is not None else None
        if study and not self.workers.claim(study):  # released by tuned_params once the study is done
            self.workers.release(key)
            return False
        error: str | None = None
        try:
            if self.context.tracker.finished_run(planned.fingerprint) is not None:  # finished meanwhile
                self.report.elsewhere += 1
                return True
            share_cores(self.workers)
            cell_started = time.perf_counter()
            if self.lines:
                self.lines.starting(planned)
            try:
                error = run_cell(self.context, planned)
            except Superseded as exc:  # another worker took the cell over while this one was paused
                log.warning("%s", exc)
                self.report.elsewhere += 1
                return True
            if error:
                self.report.failed.append((planned.cell.label, error))
            else:
                self.report.ran += 1
            if self.lines:
                self.lines.finished(planned, error, time.perf_counter() - cell_started)
        finally:
            if study:
                self.workers.release(study)
            self.workers.release(key, failed=error is not None)
        return True


def share_cores(workers: Any) -> int:
    """Give this worker its share of the machine's cores (``torch.set_num_threads``): the cores this
    process may use, divided by the live workers on this machine. ``OMP_NUM_THREADS`` set by the
    user wins. Returns the thread count in force."""
    import torch

    if os.environ.get("OMP_NUM_THREADS"):
        return torch.get_num_threads()
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    threads = max(1, cores // workers.local_workers())
    if torch.get_num_threads() != threads:
        torch.set_num_threads(threads)
    return threads


class CellLines:
    """Progress for logs: timestamped lines, one when a cell starts and one when it ends (and one per
    model being prepared), flushed at once.

    ``2026-05-04 14:03:12 [12/48] mae:sim | ptbxl/AFIB | II | budget all | seed 1: test_f1 0.812
    (41 s, ETA 27 min)``: the cell's place among this invocation's pending cells, its test F1 (read
    back from its run), its wall time, and the mean time per cell so far times the cells left.
    """

    def __init__(self, stream: TextIO, total: int, tracker: Tracker):
        self.stream, self.total, self.tracker = stream, total, tracker
        self.done, self.seconds = 0, 0.0

    def _print(self, text: str) -> None:
        print(f"{time.strftime(progress_lines.TIME_FORMAT)} {text}", file=self.stream, flush=True)

    def starting(self, planned: PlannedCell) -> None:
        self._print(f"[{self.done + 1}/{self.total}] {planned.cell.label}: started")

    def preparing(self, spec: Any) -> None:
        """A line for a model that needs an encoder (:meth:`baselines.base.ModelSpec.encoder_need`)."""
        need = spec.encoder_need()
        if need is not None:
            self._print(f"preparing {spec.name}: its encoder ({need}), from the cache, the store, or pretrained now")

    def finished(self, planned: PlannedCell, error: str | None, seconds: float) -> None:
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


def _log_summary(invocation: ActiveRun, report: RunReport) -> None:
    """The invocation's counts; a store that cannot take them is said by the error that stopped the
    suite (or, after a clean end, in one warning), never raised over it from a ``finally``."""
    try:
        invocation.log_metrics({"cells_total": report.total, "cells_skipped": report.skipped,
                                "cells_ran": report.ran, "cells_failed": len(report.failed),
                                "cells_elsewhere": report.elsewhere, "wall_seconds": report.seconds})
    except Exception as exc:
        if invocation.tracker.lost_store() is None:
            log.warning("could not log the invocation's counts: %s", first_line(exc))


def _log_quarantine(run: ActiveRun, data: Any) -> None:
    """Records the data checks excluded, as a table on the invocation run (never silently dropped)."""
    if data.quarantine:
        import pandas as pd

        name = data.task.replace("/", "_")
        run.log_table(pd.DataFrame(data.quarantine), f"quarantine/{name}_{data.lead}.json")
        log.warning("%s: %d record(s) excluded by data checks (see the run's quarantine table)",
                    data.task, len(data.quarantine))


def _log_encoders(run: ActiveRun, encoders: SuiteEncoders) -> None:
    """Which encoder each (pretraining method, source) used: fingerprint, file, and the run that trained it."""
    params = {}
    for need, encoder in encoders.provisioned.items():
        key = f"encoder.{need.method}.{need.source}"
        params[f"{key}.fingerprint"] = encoder.identity.fingerprint
        params[f"{key}.path"] = str(encoder.path)
        params[f"{key}.run_id"] = encoder.run_id or ""
    if params:
        run.log_params(params)
