"""Run a suite: pretrain each corpus's encoder once, then every pending cell, all into MLflow.

The order of work: resolve cells and their fingerprints (loading each task's data once, from
the on-disk cache after the first time), skip cells MLflow already holds as FINISHED, pretrain
(or reuse) the encoders the pending cells need, then fine-tune/train and evaluate each cell in
a child run. A failure in one cell is logged as a FAILED run and does not stop the others.
"""

from __future__ import annotations

import dataclasses
import logging
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from benchmark import evaluation
from benchmark.cells import Cell, cell_fingerprint, enumerate_cells, pretrain_fingerprint, shard
from benchmark.config import SuiteConfig
from benchmark.datasets.base import TaskData
from benchmark.tasks import load_task
from benchmark.tracking import RunLogger, Tracker, sqlite_path
from simecg.config import flatten, to_dict
from simecg.errors import SimECGError
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
) -> RunReport:
    """Run every pending cell of ``suite`` (this shard's share) and log it to MLflow."""
    from tqdm.auto import tqdm

    started = time.perf_counter()
    cells = shard(enumerate_cells(suite), *shard_spec)
    data = load_data(cells, data_dir)  # first, so missing data fails before anything is logged
    tracker = Tracker(tracking_uri, suite.name)
    parent_id = tracker.start_run(
        f"{suite.name} ({'+'.join(suite.corpora)})",
        tags={
            "kind": "invocation",
            "suite": suite.name,
            "corpora": ",".join(suite.corpora),
            "synthetic": str(suite.synthetic).lower(),
            "shard": f"{shard_spec[0]}/{shard_spec[1]}",
        },
        params=flatten(to_dict(suite)),
    )
    report = RunReport(suite.name, tracker.experiment_id, parent_id, tracker.uri, total=len(cells),
                       synthetic=suite.synthetic)
    status = "FAILED"
    try:
        context = evaluation.CellContext(
            suite=suite, tracker=tracker, parent_id=parent_id,
            storage=optuna_storage or default_optuna_storage(tracker.uri), data=data,
        )
        for task_data in data.values():
            _log_quarantine(context, task_data)
        pending = []
        finished = tracker.finished_fingerprints()
        for cell, fingerprint in fingerprints(cells, suite, data):
            if fingerprint in finished:
                report.skipped += 1
            else:
                pending.append((cell, fingerprint))
        encoders = {
            corpus: pretrained_encoder(suite, corpus, tracker, parent_id, progress)
            for corpus in sorted({c.corpus for c, _ in pending if c.corpus})
        }
        bar = tqdm(pending, desc=f"{suite.name} cells", unit="cell", disable=not progress, leave=False)
        for cell, fingerprint in bar:
            bar.set_postfix_str(cell.label, refresh=False)
            error = evaluation.run_cell(context, cell, fingerprint, encoders.get(cell.corpus or ""))
            if error:
                report.failed.append((cell.label, error))
            else:
                report.ran += 1
        status = "FINISHED"
    except KeyboardInterrupt:
        status = "KILLED"
        raise
    finally:
        report.seconds = time.perf_counter() - started
        tracker.log_metrics(parent_id, {"cells_total": report.total, "cells_skipped": report.skipped,
                                        "cells_ran": report.ran, "cells_failed": len(report.failed),
                                        "wall_seconds": report.seconds})
        tracker.end_run(parent_id, status)
    return report


def load_data(cells: list[Cell], data_dir: str | Path | None) -> dict[tuple[str, str], TaskData]:
    """Each (task, lead) the cells need, loaded once (from the on-disk cache after the first time)."""
    data: dict[tuple[str, str], TaskData] = {}
    for cell in cells:
        if (cell.task, cell.lead) not in data:
            data[(cell.task, cell.lead)] = load_task(cell.task, data_dir, lead=cell.lead)
    return data


def fingerprints(
    cells: list[Cell], suite: SuiteConfig, data: dict[tuple[str, str], TaskData]
) -> list[tuple[Cell, str]]:
    """Each cell with its fingerprint."""
    return [
        (cell, cell_fingerprint(suite, cell, data[(cell.task, cell.lead)].data_version,
                                evaluation.model_identity(suite, cell)))
        for cell in cells
    ]


def _log_quarantine(context: evaluation.CellContext, data: Any) -> None:
    """Records the data checks excluded, as a table on the invocation run (never silently dropped)."""
    if data.quarantine:
        import pandas as pd

        name = data.task.replace("/", "_")
        table = pd.DataFrame(data.quarantine)
        context.tracker.log_table(context.parent_id, table, f"quarantine/{name}_{data.lead}.json")
        log.warning("%s: %d record(s) excluded by data checks (see the run's quarantine table)",
                    data.task, len(data.quarantine))


def default_optuna_storage(tracking_uri: str) -> str:
    """Optuna studies beside a local SQLite MLflow store, else in the cache folder."""
    db = sqlite_path(tracking_uri)
    return f"sqlite:///{(db.parent if db is not None else cache_dir()) / 'optuna.db'}"


def pretrained_encoder(suite: SuiteConfig, corpus: str, tracker: Tracker, parent_id: str, progress: bool) -> Path:
    """Checkpoint of the encoder pretrained on ``corpus``: from the cache, MLflow, or trained now.

    Encoders are cached by pretraining fingerprint under ``<cache>/encoders/`` and reused by
    every cell (and every suite) with the same pretraining settings; a pretraining killed midway
    resumes from its last checkpoint. Shards on one machine share the cache: the first to need an
    encoder trains it while the others wait on a lock file, then load it (none trains it twice
    or marks the other's run as stale).
    """
    from filelock import FileLock, Timeout

    fingerprint = pretrain_fingerprint(suite, corpus)
    out_dir = cache_dir() / "encoders" / fingerprint
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    lock = FileLock(out_dir.parent / f"{fingerprint}.lock")
    try:
        lock.acquire(timeout=0)
    except Timeout:
        log.warning("waiting for another process to pretrain encoder %s (corpus %s)", fingerprint, corpus)
        lock.acquire()
    try:
        return _cached_or_pretrained(suite, corpus, fingerprint, out_dir, tracker, parent_id, progress)
    finally:
        lock.release()


def _cached_or_pretrained(
    suite: SuiteConfig, corpus: str, fingerprint: str, out_dir: Path, tracker: Tracker, parent_id: str, progress: bool
) -> Path:
    from pretraining.train import pretrain

    finished = tracker.finished_run(fingerprint)
    final = out_dir / "encoder.pt"
    if finished is not None and final.is_file():
        return final
    if finished is not None:  # another machine trained it: fetch the artifact
        try:
            import mlflow

            fetched = mlflow.artifacts.download_artifacts(
                run_id=finished.info.run_id, artifact_path="encoder/encoder.pt", dst_path=str(out_dir),
                tracking_uri=tracker.uri,
            )
            Path(fetched).replace(final)
            return final
        except Exception as exc:  # fall back to training it here
            log.warning("could not fetch encoder %s from MLflow (%s); pretraining it again", fingerprint, exc)
    tracker.kill_stale(fingerprint)
    config = dataclasses.replace(suite.pretrain, corpus=corpus)
    run_id = tracker.start_run(
        f"pretrain {corpus}",
        tags={"kind": "pretrain", "fingerprint": fingerprint, "corpus": corpus, "preset": config.preset},
        params=flatten(to_dict(config)),
        parent_id=parent_id,
    )
    try:
        _log_corpus_preview(tracker, run_id, config)
        result = pretrain(config, out_dir, logger=RunLogger(tracker, run_id), progress=progress)
        if Path(result.checkpoint) != final:
            shutil.copyfile(result.checkpoint, final)
        tracker.log_metrics(run_id, {"final_val_loss": result.val_loss, "steps": result.steps})
        tracker.log_artifact(run_id, final, "encoder")
    except BaseException as exc:
        tracker.end_run(run_id, "KILLED" if isinstance(exc, KeyboardInterrupt) else "FAILED")
        if isinstance(exc, SimECGError | KeyboardInterrupt):
            raise
        raise SimECGError(f"pretraining on corpus {corpus!r} failed: {exc}") from exc
    from pretraining.checkpoint import load_encoder

    tracker.finish_with_model(run_id, load_encoder(final), name="encoder")
    return final


def plan(
    suite: SuiteConfig,
    *,
    data_dir: str | Path | None = None,
    tracking_uri: str | None = None,
    shard_spec: tuple[int, int] = (0, 1),
) -> list[str]:
    """One line per cell of this shard: ``finished``/``pending``, fingerprint and label (``--dry-run``)."""
    cells = shard(enumerate_cells(suite), *shard_spec)
    data = load_data(cells, data_dir)
    finished = Tracker(tracking_uri, suite.name).finished_fingerprints()
    lines = []
    for cell, fingerprint in fingerprints(cells, suite, data):
        status = "finished" if fingerprint in finished else "pending"
        lines.append(f"{status:8s} {fingerprint} {cell.label}")
    return lines


def _log_corpus_preview(tracker: Tracker, run_id: str, config: Any) -> None:
    """A grid of sample ECGs of the corpus (with their parameters) on the pretraining run."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from pretraining.simulators.preview import preview_figure
    from pretraining.train import build_corpus

    figure = preview_figure(build_corpus(config), n=12, seed=0)
    tracker.log_figure(run_id, figure, "corpus_preview.png")
    plt.close(figure)
