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
from collections.abc import Mapping
from functools import lru_cache
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from simecg import __version__
from simecg.errors import TrackingError
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


class Tracker:
    """A thin wrapper over ``MlflowClient`` bound to one store and one suite experiment."""

    def __init__(self, uri: str | None = None, suite: str = "default"):
        mlflow = _mlflow()
        self.uri = resolve_uri(uri)
        try:
            # Shards started together on one machine would both create (migrate) a new SQLite
            # store and both create the experiment; the second fails. One at a time, via a lock.
            with _store_lock(self.uri):
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

    # ----- runs
    def start_run(
        self,
        name: str,
        tags: Mapping[str, str],
        params: Mapping[str, Any] | None = None,
        parent_id: str | None = None,
    ) -> str:
        all_tags = {**environment_tags(), **tags}
        if parent_id:
            all_tags["mlflow.parentRunId"] = parent_id
        run = self.client.create_run(self.experiment_id, run_name=name, tags=all_tags)
        if params:
            self.log_params(run.info.run_id, params)
        return run.info.run_id

    def end_run(self, run_id: str, status: str = "FINISHED") -> None:
        self.client.set_terminated(run_id, status=status)

    def finish_with_input(self, run_id: str, frame: Any, name: str, context: str) -> None:
        """Log ``frame`` as the run's dataset input (with MLflow's digest), then end the run FINISHED.

        MLflow logs dataset inputs only through the fluent API, whose run context also ends the
        run; so this is the last thing a successful run does.
        """
        mlflow = _mlflow()
        mlflow.set_tracking_uri(self.uri)
        dataset = mlflow.data.from_pandas(frame, name=name)
        with mlflow.start_run(run_id=run_id):
            mlflow.log_input(dataset, context=context)

    def finish_with_model(self, run_id: str, model: Any, name: str) -> None:
        """Log a PyTorch model as an MLflow model of the run, then end the run FINISHED."""
        mlflow = _mlflow()
        mlflow.set_tracking_uri(self.uri)
        with mlflow.start_run(run_id=run_id):
            # Pickle format (torch.export of timm blocks is not needed to reload it here) and
            # explicit requirements (MLflow's inference of them imports the model in a subprocess).
            requirements = [f"{p}=={v}" for p, v in environment_versions().items() if p in ("torch", "timm")]
            pytorch_log = logging.getLogger("mlflow.pytorch")
            level = pytorch_log.level
            pytorch_log.setLevel(logging.ERROR)  # its warning about pickle is about untrusted files
            try:
                mlflow.pytorch.log_model(model, name=name, serialization_format="pickle",
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
    def finished_run(self, fingerprint: str) -> Any | None:
        """The FINISHED run holding ``fingerprint`` in this experiment, if any."""
        runs = self.client.search_runs(
            [self.experiment_id],
            filter_string=f"tags.fingerprint = '{fingerprint}' and attributes.status = 'FINISHED'",
            max_results=1,
        )
        return runs[0] if runs else None

    def finished_fingerprints(self, kind: str = "cell") -> set[str]:
        """Fingerprints of all FINISHED runs of ``kind``, in a few paged queries (not one per cell)."""
        runs = self._all_runs(f"tags.kind = '{kind}' and attributes.status = 'FINISHED'")
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

    def cell_runs(self) -> list[Any]:
        """All FINISHED cell runs of the experiment, one per fingerprint (the latest)."""
        runs = self._all_runs("tags.kind = 'cell' and attributes.status = 'FINISHED'",
                              order_by=["attributes.start_time DESC"])
        seen: set[str] = set()
        unique = []
        for run in runs:
            fp = run.data.tags.get("fingerprint", run.info.run_id)
            if fp not in seen:
                seen.add(fp)
                unique.append(run)
        return unique


class RunLogger:
    """Adapter with mlflow's fluent signatures (``log_metrics(d, step=)``, ``log_figure``) for one run."""

    def __init__(self, tracker: Tracker, run_id: str):
        self.tracker = tracker
        self.run_id = run_id

    def log_metrics(self, metrics: Mapping[str, float], step: int | None = None) -> None:
        self.tracker.log_metrics(self.run_id, metrics, step or 0)

    def log_figure(self, figure: Any, artifact_file: str) -> None:
        self.tracker.log_figure(self.run_id, figure, artifact_file)

    def log_artifact(self, path: str | Path, artifact_path: str | None = None) -> None:
        self.tracker.log_artifact(self.run_id, Path(path), artifact_path)


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
