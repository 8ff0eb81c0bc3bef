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

from benchmark.tracking.tags import TAG_SCHEMA, RunTags
from simecg import __version__, integrity, paths
from simecg.errors import CacheError, SimECGError, StoreLost, Superseded, TrackingError, first_line
from simecg.paths import default_tracking_uri
from simecg.urls import redact

log = logging.getLogger(__name__)

EXPERIMENT_PREFIX = "simecg-bench/"
WORKER_TAG = "simecg.worker"  # the worker (benchmark.run.claims) whose process runs the run
SUPERSEDED_TAG = "superseded_by"  # on a run ended KILLED because another worker took its work over
PARAM_LIMIT = 6000  # MLflow's limit on a param value's length
PAGE_SIZE = 10000  # runs per search_runs page
SQLITE = "sqlite:///"


def _mlflow() -> Any:
    import mlflow  # imported lazily: it is slow to import and most commands need it late

    return mlflow


def sqlite_path(uri: str) -> Path | None:
    """The database file of a local SQLite store URI (``sqlite:///path``), None for other stores."""
    return Path(uri[len(SQLITE) :]) if uri.startswith(SQLITE) else None


KNOWN_SCHEMES = ("sqlite", "http", "https", "postgresql", "mysql", "mssql", "databricks")
PROBE_TIMEOUT_S = 5.0  # an unreachable server or database is an error within seconds, not minutes


def resolve_uri(uri: str | None = None, *, probe: bool = True, create: bool = True) -> str:
    """The tracking URI to use, checked before any work: a known scheme, a folder that can exist,
    a server or database that answers (within :data:`PROBE_TIMEOUT_S`).

    A local SQLite store gets its folder created (unless ``create`` is False: reading creates
    nothing), but only inside a folder that exists (``sqlite:////nonexistent/x/m.db`` is an error,
    not a new ``/nonexistent``).
    """
    uri = uri or default_tracking_uri()
    scheme = uri.split("://", 1)[0].split("+", 1)[0].lower() if "://" in uri else ""
    if scheme not in KNOWN_SCHEMES:
        raise TrackingError(f"tracking URI {redact(uri)!r} is not one MLflow can use: give "
                            "sqlite:///path/to/mlflow.db, http(s)://host:port (an `mlflow server`) "
                            "or postgresql://user@host/db")
    if (db := sqlite_path(uri)) is not None:
        if db.is_dir():
            raise TrackingError(f"tracking URI {uri}: {db} is a folder; give the database file, "
                                f"e.g. {db / 'mlflow.db'}")
        if not db.parent.is_dir():
            if db.parent.exists():
                raise TrackingError(f"tracking URI {uri}: {db.parent} is not a folder")
            if not db.parent.parent.is_dir():
                raise TrackingError(f"tracking URI {uri}: folder {db.parent.parent} does not exist")
            if not create:
                return uri
            try:
                db.parent.mkdir(exist_ok=True)
            except OSError as exc:
                raise TrackingError(f"cannot create the MLflow store folder {db.parent}: {exc.strerror}") from None
    elif probe and scheme in ("http", "https"):
        _probe_server(uri)
    elif probe and scheme in ("postgresql", "mysql", "mssql"):
        probe_database(uri, "MLflow store")
    if scheme in ("http", "https"):  # MLflow's own retries of a dead server add up to minutes
        os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "3")
        os.environ.setdefault("MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR", "1")
        os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "60")
    return uri


def _probe_server(uri: str) -> None:
    """An MLflow server answers ``/health``; else one line saying what happened, within seconds."""
    import urllib.error
    import urllib.request

    url = uri.rstrip("/") + "/health"
    try:
        with urllib.request.urlopen(url, timeout=PROBE_TIMEOUT_S) as response:  # noqa: S310 (http(s) only)
            if response.status != 200:
                raise TrackingError(f"MLflow server {redact(uri)} answered /health with HTTP {response.status}")
    except urllib.error.HTTPError as exc:
        raise TrackingError(f"MLflow server {redact(uri)} answered /health with HTTP {exc.code}") from None
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise TrackingError(f"cannot reach the MLflow server at {redact(uri)}: {reason} "
                            f"(is `mlflow server` running there?)") from None


def probe_database(url: str, what: str) -> None:
    """Connect once to a PostgreSQL/MySQL URL with a short timeout; one line naming it when that fails."""
    import sqlalchemy as sa

    connect_args = {"connect_timeout": int(PROBE_TIMEOUT_S)} if url.startswith(("postgresql", "mysql")) else {}
    try:
        engine = sa.create_engine(url, connect_args=connect_args)
        try:
            with engine.connect():
                pass
        finally:
            engine.dispose()
    except Exception as exc:
        raise TrackingError(f"cannot connect to the {what} {redact(url)}: {first_line(exc)}") from None


def _store_lock(uri: str) -> contextlib.AbstractContextManager:
    """An inter-process lock beside a local SQLite store (``<db>.lock``); no lock for other stores."""
    if (db := sqlite_path(uri)) is None:
        return contextlib.nullcontext()
    from filelock import FileLock

    return FileLock(f"{db}.lock")


def _artifact_root(uri: str) -> str | None:
    """Where a new experiment's artifacts go: ``$SIMECG_ARTIFACT_ROOT`` when set (e.g. a shared folder
    for a store on PostgreSQL), else ``<store folder>/artifacts`` for a local SQLite store (never the
    CWD). A server (``http(s)://``) decides for itself (``mlflow server --artifacts-destination``)."""
    if root := os.environ.get("SIMECG_ARTIFACT_ROOT"):
        return root if "://" in root else Path(root).expanduser().resolve().as_uri()
    if (db := sqlite_path(uri)) is not None:
        return (db.parent / "artifacts").resolve().as_uri()
    if uri.split(":", 1)[0].split("+", 1)[0] in ("postgresql", "mysql", "mssql"):
        log.warning("MLflow store %s is a database without an artifact root: artifacts go under the current "
                    "folder, which other machines cannot read; set SIMECG_ARTIFACT_ROOT to a shared folder or "
                    "log through `mlflow server --serve-artifacts`", redact(uri))
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


def ensure_sqlite_store(db: Path) -> None:
    """Make ``db`` a complete MLflow store, atomically: the schema is built in a temporary file
    beside it and renamed into place, so a kill at any moment leaves either no store or a whole one.

    A store a kill left half-made (an older version created it in place: 0 bytes, or tables but
    no schema version, or a migration's ``_alembic_tmp_*`` table) holds no runs: it is moved
    aside to ``<db>.broken-<time>`` with a warning and made anew. One that holds runs is never
    touched; MLflow migrates it.
    """
    import sqlite3

    if db.is_file() and db.stat().st_size > 0:
        try:
            with contextlib.closing(sqlite3.connect(db, timeout=60)) as con:
                tables = {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
                version = con.execute("SELECT version_num FROM alembic_version").fetchall() \
                    if "alembic_version" in tables else []
                runs = con.execute("SELECT COUNT(*) FROM runs").fetchone()[0] if "runs" in tables else 0
        except sqlite3.DatabaseError as exc:
            raise TrackingError(f"MLflow store {db} is not a SQLite database ({exc}); move it away or give "
                                "another --tracking-uri") from None
        half_made = not version or any(t.startswith("_alembic_tmp") for t in tables)
        if not half_made:
            return
        if runs:
            raise TrackingError(f"MLflow store {db} holds {runs} runs but an unfinished schema migration; "
                                f"back it up, then run `mlflow db upgrade sqlite:///{db}`")
        broken = db.with_name(f"{db.name}.broken-{int(time.time())}")
        db.replace(broken)
        log.warning("MLflow store %s was left half-made by a killed first run; moved it to %s and made a new one",
                    db, broken.name)
    elif db.is_file():  # 0 bytes: nothing in it to lose
        log.warning("MLflow store %s was empty (0 bytes); making a new one", db)

    def build(tmp: Path) -> None:  # a new name each attempt: MLflow caches a store per URI, built once
        client = _mlflow().tracking.MlflowClient(tracking_uri=f"{SQLITE}{tmp}")
        client.search_experiments(max_results=1)  # builds and migrates the whole schema
        with contextlib.suppress(Exception):
            client._tracking_client.store.engine.dispose()

    build_sqlite_file(db, build, "MLflow store")


def build_sqlite_file(db: Path, build: Callable[[Path], None], what: str) -> None:
    """Make the SQLite database ``db`` whole or not at all: ``build`` fills a temporary database,
    which is renamed into place, so a kill at any moment never leaves a half-made one (temporaries
    of killed creators, and their journals, are swept). Failing to write is one line naming ``db``."""
    try:
        with integrity.staged(db) as tmp:
            build(tmp)
    except (OSError, CacheError) as exc:
        why = exc.strerror if isinstance(exc, OSError) and exc.strerror else exc
        raise TrackingError(f"cannot write the {what} {db}: {why}") from None
    finally:
        integrity.sweep(db.parent)


class Tracker:
    """A thin wrapper over ``MlflowClient`` bound to one store and one suite experiment.

    ``create=False`` opens for reading only (``run --dry-run``, planning): a store or experiment
    that does not exist yet is read as empty and nothing is written. ``worker`` (a
    :class:`benchmark.run.claims.Coordinator`) tags every run this tracker opens with the worker's id,
    so runs left RUNNING by a dead worker can be told from live ones of another worker.
    """

    def __init__(self, uri: str | None = None, suite: str = "default", *, create: bool = True,
                 worker: Any = None):
        mlflow = _mlflow()
        self.uri = resolve_uri(uri, create=create)
        self.worker = worker
        self.lost: str | None = None  # why the store stopped taking writes (lost_store), once known
        self.client: Any = None
        self.experiment_id: str | None = None
        db = sqlite_path(self.uri)
        if not create and db is not None and not (db.is_file() and db.stat().st_size > 0):
            return  # no store yet: nothing finished, and a dry run must not make one
        for attempt in range(3):
            try:
                # Shards started together on one machine would both create (migrate) a new SQLite
                # store and both create the experiment; the second fails. One at a time, via a lock.
                with _store_lock(self.uri):
                    if db is not None:
                        ensure_sqlite_store(db)  # created whole or not at all; a half-made one repaired
                    relocate_store(self.uri)  # a moved/copied store reads its artifacts from where it is now
                    self.client = mlflow.tracking.MlflowClient(tracking_uri=self.uri)
                    self._open_experiment(suite, create)
                return
            except TrackingError:
                raise
            except Exception as exc:  # the message of a broken store is deep inside SQLAlchemy/HTTP
                if attempt < 2 and db is None:  # workers creating a server store's schema together: again
                    time.sleep(1.0 + attempt)
                    continue
                raise TrackingError(f"cannot use MLflow store {redact(self.uri)}: {redact(first_line(exc))}") from exc

    def _open_experiment(self, suite: str, create: bool) -> None:
        """The suite's experiment, made on first use; another worker making it at the same moment
        (PostgreSQL, a server: no file lock) is not an error."""
        name = EXPERIMENT_PREFIX + suite
        experiment = self.client.get_experiment_by_name(name)
        if experiment is None and create:
            root = _artifact_root(self.uri)
            try:
                self.experiment_id = self.client.create_experiment(
                    name, artifact_location=f"{root}/{suite}" if root else None)
                return
            except Exception:
                experiment = self.client.get_experiment_by_name(name)
                if experiment is None:
                    raise
        if experiment is not None:
            self.experiment_id = experiment.experiment_id

    @property
    def exists(self) -> bool:
        """Whether the suite's experiment exists (False only for a ``create=False`` tracker)."""
        return self.experiment_id is not None

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

        With a worker coordinator, the run is fenced by the claims the worker holds when it opens
        (:mod:`benchmark.run.claims`): it ends FINISHED only if the worker still holds them all, else
        KILLED with the tag ``superseded_by`` and :class:`~simecg.errors.Superseded` is raised.
        """
        all_tags = {**environment_tags(), **tags.to_mlflow()}
        if self.worker is not None:
            all_tags[WORKER_TAG] = self.worker.worker_id
        if parent:
            all_tags["mlflow.parentRunId"] = parent
        fence = self.worker.fence() if self.worker is not None else {}
        run = self.client.create_run(self.experiment_id, run_name=name, tags=all_tags)
        active = ActiveRun(self, run.info.run_id)
        try:
            if params:
                active.log_params(params)
            yield active
        except KeyboardInterrupt:  # Ctrl-C, and SIGTERM (simecg.errors.Terminated)
            self._end(active.run_id, "KILLED")
            raise
        except Superseded as exc:  # a run nested in this one found its claim taken over
            self._supersede(active.run_id, exc.holder)
            raise
        except BaseException as exc:
            detail = str(exc) if isinstance(exc, SimECGError) else f"{type(exc).__name__}: {exc}"
            with contextlib.suppress(Exception):
                self.set_tags(active.run_id, {"error": detail[:5000], "traceback": traceback.format_exc()[-5000:]})
            self._end(active.run_id, "FAILED")
            raise
        else:
            self._finish(active.run_id, name, tags, fence)

    def _finish(self, run_id: str, name: str, tags: RunTags, fence: dict[str, int]) -> None:
        """Mark the run FINISHED, fenced: only while this worker still holds the claims it held when
        the run opened, checked before and after (the claims and MLflow are separate databases).

        A worker superseded between the two checks takes its FINISHED back (KILLED); the winner,
        when it finishes its own run of the same fingerprint, closes any FINISHED run another worker
        left in that moment, so the store holds one FINISHED run per fingerprint either way.
        """
        try:
            holder = self.worker.lost(fence) if fence else None
        except Exception:  # the claims cannot be read: the run cannot be confirmed, so it is not FINISHED
            self._end(run_id, "FAILED")
            raise
        if holder is not None:
            self._supersede(run_id, holder)
            raise Superseded(_superseded_text(name, holder), holder)
        self.client.set_terminated(run_id, status="FINISHED")
        if not fence:
            return
        if (holder := self.worker.lost(fence)) is not None:
            self._supersede(run_id, holder)
            raise Superseded(_superseded_text(name, holder), holder)
        if tags.fingerprint and tags.kind in FENCED_KINDS:
            for other in self.client.search_runs(
                    [self.experiment_id],
                    filter_string=f"tags.fingerprint = '{tags.fingerprint}' and attributes.status = 'FINISHED'"):
                if other.info.run_id != run_id and other.data.tags.get("kind") == tags.kind:
                    self._supersede(other.info.run_id, self.worker.worker_id)

    def _supersede(self, run_id: str, holder: str) -> None:
        """End a run KILLED as superseded by worker ``holder`` (best effort: the store may be down too)."""
        with contextlib.suppress(Exception):
            self.client.set_tag(run_id, SUPERSEDED_TAG, holder)
        self._end(run_id, "KILLED")

    def _end(self, run_id: str, status: str) -> None:
        """End a run while an exception propagates (a store error then must not hide the first one)."""
        try:
            self.client.set_terminated(run_id, status=status)
        except Exception as exc:  # the original exception is the one to report
            if self.lost_store() is None:  # a lost store is said once, by whoever raises StoreLost
                log.warning("could not mark MLflow run %s %s: %s", run_id, status, exc)

    def lost_store(self) -> str | None:
        """Why the store no longer takes writes (a killed server, a read-only or vanished database),
        or None when it does: one write to the experiment's tags, tried after something failed."""
        if self.lost is None and self.client is not None and self.exists:
            try:
                self.client.set_experiment_tag(self.experiment_id, "simecg.last_write", str(int(time.time())))
            except Exception as exc:
                self.lost = _short_cause(exc)
        return self.lost

    def store_lost_error(self, during: str) -> StoreLost:
        """The one-line error that ends a suite whose store stopped taking writes ``during`` some work."""
        return StoreLost(f"MLflow store {redact(self.uri)} stopped taking writes during {during} ({self.lost}); "
                         "what finished is kept: fix the store, then rerun the same command to resume")

    def log_input(self, run_id: str, frame: Any, name: str, context: str) -> None:
        """Log ``frame`` as a dataset input of the run (with MLflow's digest); the run stays open."""
        import warnings

        from mlflow.entities import DatasetInput, InputTag

        with warnings.catch_warnings():  # advice for model signatures ("integer columns cannot hold missing
            # values"), printed for every cell; a split's integer columns never miss a value
            warnings.filterwarnings("ignore", message=".*Inferred schema contains integer column", category=UserWarning)
            dataset = _mlflow().data.from_pandas(frame, name=name)
            entity = dataset._to_mlflow_entity()
        inputs = [DatasetInput(entity, tags=[InputTag("mlflow.data.context", context)])]
        for attempt in range(3):
            try:
                self.client.log_inputs(run_id, inputs)
                return
            except Exception as exc:  # MlflowException (local store) or RestException (server) alike
                # MLflow looks the dataset (experiment, name, digest) up, then inserts it: two workers
                # logging the same split at once both insert, and the later one violates the unique
                # key. Its transaction was rolled back; the next attempt finds the row and links to it.
                if attempt == 2 or not _duplicate_dataset(exc):
                    raise
                time.sleep(0.2 * (attempt + 1))

    def fetch_artifact(self, run_id: str, artifact_path: str, target: Path) -> None:
        """Download a run's artifact file to ``target``, replacing it only once complete.

        The download lands in a temporary folder beside ``target``, removed whatever happens, so a
        failed download never leaves a partial file where a cache expects a whole one.
        Raises whatever MLflow raises.
        """
        import shutil

        tmp = integrity.temp_path(target, "fetch", hidden=True)
        try:
            tmp.mkdir(parents=True, exist_ok=True)
            fetched = Path(_mlflow().artifacts.download_artifacts(
                run_id=run_id, artifact_path=artifact_path, dst_path=str(tmp), tracking_uri=self.uri,
            ))
            fetched.replace(target)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)

    def fetch_sealed(self, run_id: str, artifact_dir: str, target: Path, check: Callable[[Path], None]) -> None:
        """Put the cache file ``target`` back from artifact ``<artifact_dir>/<target.name>`` of a run.

        The cache serves a file only when its size+hash sidecar matches, so a fetched file must
        arrive whole and sealed, and no file is trusted without a checksum to verify it against:
        it is downloaded into a staging folder beside ``target`` (removed whatever happens), and
        checked against the SHA-256 the run recorded as a tag when it logged the file
        (:meth:`log_sealed`; a tag lives in the tracking database, apart from the artifact store)
        and against the run's sidecar artifact. A run that recorded neither (an older version's)
        is refused, as is any mismatch. Then ``check`` (which raises when it is not the file this
        cache entry expects), sealing and a rename into place. A cache that cannot be written
        raises :class:`~simecg.errors.CacheError`; anything else raised means "not fetched".
        """
        import shutil

        recorded = self.client.get_run(run_id).data.tags.get(checksum_tag(artifact_dir, target.name))
        staging = integrity.temp_path(target, "incoming", hidden=True)
        fetched = staging / target.name
        try:
            with paths.writing(target.parent):
                staging.mkdir(parents=True)
            self.fetch_artifact(run_id, f"{artifact_dir}/{target.name}", fetched)
            with contextlib.suppress(Exception):  # absent for runs of older versions
                self.fetch_artifact(run_id, f"{artifact_dir}/{integrity.sidecar(target).name}",
                                    integrity.sidecar(fetched))
            has_sidecar = integrity.sidecar(fetched).is_file()
            if recorded is None and not has_sidecar:
                raise ValueError("its run recorded no checksum of it (an older version logged it), so it cannot "
                                 "be verified and is not trusted")
            if has_sidecar and (problem := integrity.check_file(fetched)) is not None:
                raise ValueError(f"the stored copy is damaged too ({problem})")
            if recorded is not None and (sha := integrity.digest(fetched)) != recorded:
                raise ValueError(f"the stored copy differs from the checksum its run recorded (sha256 {sha[:12]}…, "
                                 f"expected {recorded[:12]}…)")
            check(fetched)
            with paths.writing(target):
                integrity.seal_file(target, content=fetched)
                os.replace(fetched, target)
        finally:
            shutil.rmtree(staging, ignore_errors=True)

    def log_sealed(self, run_id: str, path: Path, artifact_dir: str) -> None:
        """Log a cache file that other machines fetch (:meth:`fetch_sealed`): the file, its sidecar,
        and its SHA-256 as the tag ``checksum.<artifact_dir>/<name>``."""
        entry = integrity.sealed_entry(path) or integrity.describe(path)
        self.log_artifact(run_id, path, artifact_dir)
        if integrity.sidecar(path).is_file():
            self.log_artifact(run_id, integrity.sidecar(path), artifact_dir)
        self.set_tags(run_id, {checksum_tag(artifact_dir, path.name): entry["sha256"]})

    def log_model(self, run_id: str, model: Any, name: str, input_example: Any) -> None:
        """Log a PyTorch model as an MLflow model of the run (the run stays open).

        It is stored as a ``torch.export`` program (``.pt2``: a graph and its weights, no pickle),
        traced on ``input_example`` (an array shaped like one batch; MLflow keeps it, with the
        signature it implies, for whoever loads the model with ``mlflow.pytorch.load_model``).
        """
        mlflow = _mlflow()
        mlflow.set_tracking_uri(self.uri)
        # The logged model belongs to the run's experiment: without this MLflow files it under the
        # active (Default, "0") experiment, whose artifacts go to ``./mlruns/0`` of the CWD, outside the store.
        mlflow.set_experiment(experiment_id=self.experiment_id)
        # Explicit requirements: MLflow's inference of them imports the model in a subprocess.
        requirements = [f"{p}=={v}" for p, v in environment_versions().items() if p in ("torch", "timm")]
        was_training = model.training
        model.eval()
        try:
            mlflow.pytorch.log_model(model, name=name, run_id=run_id, serialization_format="pt2",
                                     input_example=input_example,
                                     pip_requirements=[*requirements, f"simecg-bench=={__version__}"])
        finally:
            model.train(was_training)

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

    def replace_table(self, run_id: str, frame: Any, artifact_file: str) -> None:
        """Log ``frame`` as the run's table ``artifact_file`` (a ``.json``), replacing the one it
        holds: MLflow's ``log_table`` appends to an existing table, so a table logged again (a
        report logged twice on one run) is written over instead, in the same format (pandas
        ``split`` JSON, what MLflow's UI reads)."""
        import tempfile

        folder, _, name = artifact_file.rpartition("/")
        if name not in {Path(a.path).name for a in self.client.list_artifacts(run_id, folder or None)}:
            self.client.log_table(run_id, frame, artifact_file)
            return
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / name
            frame.to_json(path, orient="split", index=False, date_format="iso")
            self.client.log_artifact(run_id, str(path), folder or None)

    # ----- resumption
    def finished_run(self, fingerprint: str, everywhere: bool = False) -> Any | None:
        """The newest FINISHED run holding ``fingerprint`` in this experiment (``everywhere``: in any
        SimECG-Bench experiment of the store, e.g. an encoder made by ``simecg-bench pretrain``)."""
        if self.client is None or (not everywhere and not self.exists):
            return None
        experiments = [self.experiment_id] if self.exists else []
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
        if not self.exists:
            return runs
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
        """Mark KILLED the RUNNING runs of ``fingerprint`` whose process is dead (SIGKILL, power loss).

        With a worker coordinator, a run of a live worker (another process on the same cell or
        encoder, which the claims normally prevent) is left alone; runs without a worker tag come
        from an older version and are taken as dead.
        """
        if not self.exists:
            return 0
        runs = self.client.search_runs(
            [self.experiment_id],
            filter_string=f"tags.fingerprint = '{fingerprint}' and attributes.status = 'RUNNING'",
        )
        return self._kill(runs)

    def close_dead_runs(self) -> int:
        """Mark KILLED every RUNNING run of the experiment whose worker is dead (invocations, cells,
        pretraining, tuning, trials): a killed process never leaves a run RUNNING for ever."""
        if not self.exists or self.worker is None:
            return 0
        return self._kill(self._all_runs("attributes.status = 'RUNNING'"), only_tagged=True)

    def _kill(self, runs: list[Any], only_tagged: bool = False) -> int:
        owners = {run.data.tags.get(WORKER_TAG, "") for run in runs}
        dead = self.worker.dead(owners) if self.worker is not None else owners
        killed = 0
        for run in runs:
            owner = run.data.tags.get(WORKER_TAG, "")
            if (owner and owner in dead) or (not owner and not only_tagged):
                with contextlib.suppress(Exception):  # ended meanwhile by its own process
                    self.client.set_terminated(run.info.run_id, status="KILLED")
                    killed += 1
        return killed

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

    def log_sealed(self, path: str | Path, artifact_dir: str) -> None:
        self.tracker.log_sealed(self.run_id, Path(path), artifact_dir)

    def log_input(self, frame: Any, name: str, context: str) -> None:
        self.tracker.log_input(self.run_id, frame, name, context)

    def log_model(self, model: Any, name: str, input_example: Any) -> None:
        self.tracker.log_model(self.run_id, model, name, input_example)


FENCED_KINDS = ("cell", "pretrain")  # one FINISHED run per fingerprint (tuning sessions of a study are many)


def _duplicate_dataset(exc: BaseException) -> bool:
    """Whether ``exc`` is the unique-key violation of a dataset row another process inserted first
    (SQLite: ``UNIQUE constraint failed: datasets...``; PostgreSQL: ``duplicate key value ... datasets``)."""
    text = str(exc)
    return "datasets" in text and ("UNIQUE constraint failed" in text or "duplicate key value" in text)


def _short_cause(exc: BaseException) -> str:
    """What a failed store call says, short: a refused connection as such, else its first line."""
    text = redact(first_line(exc))
    for cause in ("Connection refused", "Name or service not known", "timed out", "readonly database"):
        if cause.lower() in text.lower():
            return cause if cause != "readonly database" else "attempt to write a readonly database"
    return text[:200]


def checksum_tag(artifact_dir: str, name: str) -> str:
    """The run tag holding the SHA-256 of artifact ``<artifact_dir>/<name>`` (:meth:`Tracker.log_sealed`)."""
    return f"checksum.{artifact_dir}/{name}"


def _superseded_text(name: str, holder: str) -> str:
    return (f"{name}: superseded: this worker was silent past its lease (paused?) and worker {holder[:8]} took "
            "its work over; this run ends KILLED and that worker's result counts")


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
