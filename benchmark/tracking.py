"""MLflow tracking: one experiment per suite, a parent run per invocation, a child run per cell.

Resumption rests on MLflow alone: a cell whose fingerprint already has a FINISHED run is
skipped; runs of the same fingerprint left RUNNING by a killed process are marked KILLED, and
readers only ever use FINISHED runs, one per fingerprint, so nothing is doubled.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import platform
import subprocess
import time
import traceback
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from functools import lru_cache
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from benchmark.tags import TAG_SCHEMA, RunTags
from simecg import __version__
from simecg.errors import SimECGError, TrackingError
from simecg.paths import default_tracking_uri

log = logging.getLogger(__name__)

EXPERIMENT_PREFIX = "simecg-bench/"
PARAM_LIMIT = 6000  # MLflow's limit on a param value's length
PAGE_SIZE = 10000  # runs per search_runs page
SQLITE = "sqlite:///"


def _mlflow() -> Any:
    import mlflow  # imported lazily: it is slow to import and most commands need it late

    return mlflow


def sqlite_path(uri: str) -> Path | None:
    """The database file of a local SQLite store URI (``sqlite:///path``), None for other stores."""
    return Path(uri[len(SQLITE) :]) if uri.startswith(SQLITE) else None


def resolve_uri(uri: str | None = None) -> str:
    """The tracking URI to use; a local SQLite store gets its folder created."""
    uri = uri or default_tracking_uri()
    if (db := sqlite_path(uri)) is not None:
        db.parent.mkdir(parents=True, exist_ok=True)
    return uri


def _store_lock(uri: str) -> contextlib.AbstractContextManager:
    """An inter-process lock beside a local SQLite store (``<db>.lock``); no lock for other stores."""
    if (db := sqlite_path(uri)) is None:
        return contextlib.nullcontext()
    from filelock import FileLock

    return FileLock(f"{db}.lock")


def _artifact_root(uri: str) -> str | None:
    """Artifacts of a local SQLite store go to ``<store folder>/artifacts`` (not the CWD)."""
    if (db := sqlite_path(uri)) is not None:
        return (db.parent / "artifacts").resolve().as_uri()
    return None


# Where MLflow (3.x, SQL backend) writes artifact locations, always absolute: it resolves a relative
# location against the CWD when an experiment is created, and ``mlflow-artifacts:/`` URIs would need
# a running server for every write. A local store is kept movable by rewriting them on open instead.
_LOCATION_COLUMNS = (("experiments", "artifact_location"), ("runs", "artifact_uri"),
                     ("logged_models", "artifact_location"), ("model_versions", "source"),
                     ("model_versions", "storage_location"))


def relocate_store(uri: str) -> int:
    """Point a moved (or copied) local SQLite store's artifact locations at its own folder.

    MLflow stores absolute artifact URIs (``file:///old/mlruns/artifacts/<suite>/<run>/artifacts``).
    Our experiments' artifacts live in ``<store folder>/artifacts/<suite>``; when an experiment's
    location says another folder, the store was moved or copied there, and every location under the
    old folder (experiments, runs, logged models, in URI or plain-path form) is rewritten to the new
    one, in one transaction. Returns the number of values rewritten (0: nothing moved, or not a
    local SQLite store). Called by :class:`Tracker` and ``simecg-bench ui``/``report`` on open.
    """
    import sqlite3
    from urllib.parse import unquote, urlparse

    db = sqlite_path(uri)
    if db is None or not db.is_file():
        return 0
    here = db.parent.resolve()
    with contextlib.closing(sqlite3.connect(db, timeout=60)) as con:
        tables = {row[0] for row in con.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        if "experiments" not in tables:
            return 0
        old_roots = set()
        for name, location in con.execute("SELECT name, artifact_location FROM experiments"):
            if not (name or "").startswith(EXPERIMENT_PREFIX) or not (location or "").startswith("file:"):
                continue
            tail = f"/artifacts/{name[len(EXPERIMENT_PREFIX):]}"
            if location.endswith(tail) and location[: -len(tail)] != here.as_uri():
                old_roots.add(location[: -len(tail)])
        if not old_roots:
            return 0
        changed = 0
        with con:  # one transaction: all locations move, or none
            for old in sorted(old_roots):
                pairs = [(old + "/", here.as_uri() + "/"), (unquote(urlparse(old).path) + "/", f"{here}/")]
                for table, column in _LOCATION_COLUMNS:
                    if table not in tables or column not in {c[1] for c in con.execute(f"PRAGMA table_info({table})")}:
                        continue
                    for before, after in pairs:
                        changed += con.execute(
                            f"UPDATE {table} SET {column} = ? || substr({column}, ?) "
                            f"WHERE substr({column}, 1, ?) = ?",
                            (after, len(before) + 1, len(before), before),
                        ).rowcount
        log.info("MLflow store %s was moved from %s: %d artifact location(s) now point into it",
                 here, ", ".join(sorted(old_roots)), changed)
        return changed


class Tracker:
    """A thin wrapper over ``MlflowClient`` bound to one store and one suite experiment."""

    def __init__(self, uri: str | None = None, suite: str = "default"):
        mlflow = _mlflow()
        self.uri = resolve_uri(uri)
        try:
            # Shards started together on one machine would both create (migrate) a new SQLite
            # store and both create the experiment; the second fails. One at a time, via a lock.
            with _store_lock(self.uri):
                relocate_store(self.uri)  # a moved/copied store reads its artifacts from where it is now
                self.client = mlflow.tracking.MlflowClient(tracking_uri=self.uri)
                name = EXPERIMENT_PREFIX + suite
                experiment = self.client.get_experiment_by_name(name)
                if experiment is None:
                    root = _artifact_root(self.uri)
                    location = f"{root}/{suite}" if root else None
                    self.experiment_id = self.client.create_experiment(name, artifact_location=location)
                else:
                    self.experiment_id = experiment.experiment_id
        except Exception as exc:  # the message of a broken store is deep inside SQLAlchemy/HTTP
            raise TrackingError(f"cannot use MLflow store {self.uri}: {exc}") from exc

    # ----- the run lifecycle
    @contextlib.contextmanager
    def run(
        self,
        name: str,
        tags: RunTags,
        params: Mapping[str, Any] | None = None,
        parent: str | None = None,
    ) -> Iterator[ActiveRun]:
        """Open a run; it ends FINISHED on success, FAILED on an exception, KILLED on Ctrl-C or SIGTERM.

        The one place a run ends: ``with tracker.run("cell", RunTags(kind="cell", ...)) as run:``.
        A failure records its error and traceback as tags (``error``, ``traceback``) and
        propagates; logging inputs and models on ``run`` never ends it early.
        """
        all_tags = {**environment_tags(), **tags.to_mlflow()}
        if parent:
            all_tags["mlflow.parentRunId"] = parent
        run = self.client.create_run(self.experiment_id, run_name=name, tags=all_tags)
        active = ActiveRun(self, run.info.run_id)
        try:
            if params:
                active.log_params(params)
            yield active
        except KeyboardInterrupt:  # Ctrl-C, and SIGTERM (simecg.errors.Terminated)
            self._end(active.run_id, "KILLED")
            raise
        except BaseException as exc:
            detail = str(exc) if isinstance(exc, SimECGError) else f"{type(exc).__name__}: {exc}"
            with contextlib.suppress(Exception):
                self.set_tags(active.run_id, {"error": detail[:5000], "traceback": traceback.format_exc()[-5000:]})
            self._end(active.run_id, "FAILED")
            raise
        else:
            self.client.set_terminated(active.run_id, status="FINISHED")

    def _end(self, run_id: str, status: str) -> None:
        """End a run while an exception propagates (a store error then must not hide the first one)."""
        try:
            self.client.set_terminated(run_id, status=status)
        except Exception as exc:  # the original exception is the one to report
            log.warning("could not mark MLflow run %s %s: %s", run_id, status, exc)

    def log_input(self, run_id: str, frame: Any, name: str, context: str) -> None:
        """Log ``frame`` as a dataset input of the run (with MLflow's digest); the run stays open."""
        from mlflow.entities import DatasetInput, InputTag

        dataset = _mlflow().data.from_pandas(frame, name=name)
        self.client.log_inputs(run_id, [DatasetInput(dataset._to_mlflow_entity(),
                                                     tags=[InputTag("mlflow.data.context", context)])])

    def fetch_artifact(self, run_id: str, artifact_path: str, target: Path,
                       accept: Callable[[Path], bool] | None = None) -> None:
        """Download a run's artifact file to ``target``, replacing it only once complete (and ``accept``-ed).

        The download lands in a temporary folder beside ``target``, removed whatever happens, so a
        failed or refused download never leaves a partial file where a cache expects a whole one.
        Raises whatever MLflow raises, or ``ValueError`` when ``accept`` refuses the file.
        """
        import shutil

        tmp = target.parent / f".fetch{os.getpid()}"
        try:
            tmp.mkdir(parents=True, exist_ok=True)
            fetched = Path(_mlflow().artifacts.download_artifacts(
                run_id=run_id, artifact_path=artifact_path, dst_path=str(tmp), tracking_uri=self.uri,
            ))
            if accept is not None and not accept(fetched):
                raise ValueError(f"artifact {artifact_path} of run {run_id} is not the one expected")
            fetched.replace(target)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)

    def log_model(self, run_id: str, model: Any, name: str) -> None:
        """Log a PyTorch model as an MLflow model of the run; the run stays open."""
        mlflow = _mlflow()
        mlflow.set_tracking_uri(self.uri)
        # The logged model belongs to the run's experiment: without this MLflow files it under the
        # active (Default, "0") experiment, whose artifacts go to ``./mlruns/0`` of the CWD, outside the store.
        mlflow.set_experiment(experiment_id=self.experiment_id)
        # Pickle format (torch.export of timm blocks is not needed to reload it here) and explicit
        # requirements (MLflow's inference of them imports the model in a subprocess).
        requirements = [f"{p}=={v}" for p, v in environment_versions().items() if p in ("torch", "timm")]
        pytorch_log = logging.getLogger("mlflow.pytorch")
        level = pytorch_log.level
        pytorch_log.setLevel(logging.ERROR)  # its warning about pickle is about untrusted files
        try:
            mlflow.pytorch.log_model(model, name=name, run_id=run_id, serialization_format="pickle",
                                     pip_requirements=[*requirements, f"simecg-bench=={__version__}"])
        finally:
            pytorch_log.setLevel(level)

    def log_params(self, run_id: str, params: Mapping[str, Any]) -> None:
        from mlflow.entities import Param

        items = [Param(k, _param_text(v)) for k, v in sorted(params.items())]
        for start in range(0, len(items), 100):
            self.client.log_batch(run_id, params=items[start : start + 100])

    def log_metrics(self, run_id: str, metrics: Mapping[str, float], step: int = 0) -> None:
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        items = [Metric(k, float(v), now, step) for k, v in metrics.items() if _finite(v)]
        for start in range(0, len(items), 500):
            self.client.log_batch(run_id, metrics=items[start : start + 500])

    def log_history(
        self, run_id: str, history: list[dict[str, float]], prefix: str = "", step_key: str = "epoch"
    ) -> None:
        """Loss curves in one batch: each dict holds ``step_key`` and metric values."""
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        items = [
            Metric(f"{prefix}{k}", float(v), now, int(row[step_key]))
            for row in history
            for k, v in row.items()
            if k != step_key and _finite(v)
        ]
        for start in range(0, len(items), 500):
            self.client.log_batch(run_id, metrics=items[start : start + 500])

    def set_tags(self, run_id: str, tags: Mapping[str, str]) -> None:
        for key, value in tags.items():
            self.client.set_tag(run_id, key, value)

    def log_artifact(self, run_id: str, path: Path, artifact_path: str | None = None) -> None:
        self.client.log_artifact(run_id, str(path), artifact_path)

    def log_figure(self, run_id: str, figure: Any, artifact_file: str) -> None:
        self.client.log_figure(run_id, figure, artifact_file)

    def log_table(self, run_id: str, frame: Any, artifact_file: str) -> None:
        self.client.log_table(run_id, frame, artifact_file)

    # ----- resumption
    def finished_run(self, fingerprint: str, everywhere: bool = False) -> Any | None:
        """The newest FINISHED run holding ``fingerprint`` in this experiment (``everywhere``: in any
        SimECG-Bench experiment of the store, e.g. an encoder made by ``simecg-bench pretrain``)."""
        experiments = [self.experiment_id]
        if everywhere:
            experiments = [e.experiment_id for e in self.client.search_experiments()
                           if e.name.startswith(EXPERIMENT_PREFIX)]
        runs = self.client.search_runs(
            experiments,
            filter_string=f"tags.fingerprint = '{fingerprint}' and attributes.status = 'FINISHED'",
            order_by=["attributes.start_time DESC"], max_results=1,
        )
        return runs[0] if runs else None

    def finished_fingerprints(self, kind: str = "cell") -> set[str]:
        """Fingerprints of all FINISHED runs of ``kind``, in a few paged queries (not one per cell)."""
        query = f"tags.kind = '{kind}' and attributes.status = 'FINISHED' and tags.schema = '{TAG_SCHEMA}'"
        runs = self._all_runs(query)
        return {run.data.tags["fingerprint"] for run in runs if "fingerprint" in run.data.tags}

    def _all_runs(self, filter_string: str, order_by: list[str] | None = None) -> list[Any]:
        """Every run of the experiment matching ``filter_string``, page by page (no size cap)."""
        runs: list[Any] = []
        token = None
        while True:
            page = self.client.search_runs(
                [self.experiment_id], filter_string=filter_string, max_results=PAGE_SIZE, order_by=order_by,
                page_token=token,
            )
            runs.extend(page)
            token = page.token
            if not token:
                return runs

    def kill_stale(self, fingerprint: str) -> int:
        """Mark RUNNING runs of ``fingerprint`` (left by a killed process) as KILLED."""
        runs = self.client.search_runs(
            [self.experiment_id],
            filter_string=f"tags.fingerprint = '{fingerprint}' and attributes.status = 'RUNNING'",
        )
        for run in runs:
            self.client.set_terminated(run.info.run_id, status="KILLED")
        return len(runs)

    def cell_runs(self) -> tuple[list[tuple[Any, RunTags]], int]:
        """FINISHED cell runs of the experiment with their typed tags, one per fingerprint (the newest),
        and the number of finished cell runs left out because another tag schema wrote them."""
        runs = self._all_runs("tags.kind = 'cell' and attributes.status = 'FINISHED'",
                              order_by=["attributes.start_time DESC"])
        seen: set[str] = set()
        unique: list[tuple[Any, RunTags]] = []
        foreign = 0
        for run in runs:
            if RunTags.schema_of(run.data.tags) != TAG_SCHEMA:
                foreign += 1
                continue
            tags = RunTags.from_mlflow(run.data.tags, run.info.run_id)
            if tags.fingerprint not in seen:
                seen.add(tags.fingerprint)
                unique.append((run, tags))
        return unique, foreign


@dataclass(frozen=True)
class ActiveRun:
    """An open run of :meth:`Tracker.run`: logging methods bound to it (mlflow's fluent signatures)."""

    tracker: Tracker
    run_id: str

    def log_params(self, params: Mapping[str, Any]) -> None:
        self.tracker.log_params(self.run_id, params)

    def log_metrics(self, metrics: Mapping[str, float], step: int | None = None) -> None:
        self.tracker.log_metrics(self.run_id, metrics, step or 0)

    def log_history(self, history: list[dict[str, float]], prefix: str = "", step_key: str = "epoch") -> None:
        self.tracker.log_history(self.run_id, history, prefix, step_key)

    def set_tags(self, tags: Mapping[str, str]) -> None:
        self.tracker.set_tags(self.run_id, tags)

    def log_figure(self, figure: Any, artifact_file: str) -> None:
        self.tracker.log_figure(self.run_id, figure, artifact_file)

    def log_table(self, frame: Any, artifact_file: str) -> None:
        self.tracker.log_table(self.run_id, frame, artifact_file)

    def log_artifact(self, path: str | Path, artifact_path: str | None = None) -> None:
        self.tracker.log_artifact(self.run_id, Path(path), artifact_path)

    def log_input(self, frame: Any, name: str, context: str) -> None:
        self.tracker.log_input(self.run_id, frame, name, context)

    def log_model(self, model: Any, name: str) -> None:
        self.tracker.log_model(self.run_id, model, name)


def _finite(value: Any) -> bool:
    try:
        return math.isfinite(float(value))
    except (TypeError, ValueError):
        return False


def _param_text(value: Any) -> str:
    text = str(value)
    return text if len(text) <= PARAM_LIMIT else text[: PARAM_LIMIT - 3] + "..."


@lru_cache(maxsize=1)
def environment_versions() -> dict[str, str]:
    """Versions of the packages whose changes can move the numbers."""
    versions = {}
    for package in ("torch", "timm", "mlflow", "numpy", "optuna", "neurokit2", "wfdb", "xgboost", "scikit-learn"):
        with contextlib.suppress(PackageNotFoundError):
            versions[package] = version(package)
    return versions


@lru_cache(maxsize=1)
def environment_tags() -> dict[str, str]:
    """Code and environment identity logged on every run."""
    tags = {"simecg.version": __version__, "python": platform.python_version(), "git_commit": git_commit()}
    tags.update({f"version.{p}": v for p, v in environment_versions().items()})
    return tags


def git_commit() -> str:
    """The commit of the checkout the code runs from ("unknown" outside git)."""
    here = Path(__file__).resolve().parent
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=here, capture_output=True, text=True, timeout=5, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=here, capture_output=True, text=True, timeout=5,
        ).stdout.strip()
        return out + ("-dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return os.environ.get("SIMECG_GIT_COMMIT", "unknown")
