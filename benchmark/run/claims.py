"""Many workers on one suite: live-worker leases and cell claims in the suite's RDB.

Any number of ``simecg-bench run`` processes (one machine or a cluster's job array, sharded or
not) can work on the same suite and store. Each is a *worker*: a row in ``simecg_workers`` that
its heartbeat thread refreshes every few seconds. Before a worker runs a cell (or pretrains an
encoder) it *claims* it: a row in ``simecg_claims`` keyed by the cell's fingerprint, inserted in
one transaction, so of two workers racing for a cell exactly one wins, and the loser moves on to
the next cell nobody holds. A worker that dies while holding a claim stops heartbeating; its
lease runs out (``lease_s``, or at once when it ran on this machine, in this PID namespace, and its
process is gone) and the next worker to look takes the claim over and redoes the cell.

A worker is declared dead by silence, so a live one can be declared dead too: a process paused
longer than the lease (a suspended VM, a scheduler's job suspend) wakes up in the middle of work
another worker took over. Claims are therefore *fenced* (docs/protocol.md, "Workers"): every claim
carries an ``epoch``, raised on each takeover, and a run opened while this worker held claims ends
FINISHED only if it still holds every one of them at the same epoch, checked just before and again
just after the run is marked FINISHED (:meth:`Coordinator.lost`, used by
:meth:`benchmark.tracking.tracker.Tracker.run`). A superseded worker ends its run KILLED with the tag
``superseded_by`` and says so in one line; the winner, finishing after it, closes any run the
superseded worker finished in the moment between the two checks.

The tables live in the database that already holds the Optuna studies (``--optuna-storage``:
SQLite beside a local MLflow store, PostgreSQL on a cluster), so coordination needs no service
of its own: the database's own transactions and unique keys do the work. Clocks of a cluster's
machines are assumed synchronised (NTP) to well within a lease.

A cell that failed is marked ``failed`` rather than released, so the other workers of the same
round do not each repeat a deterministic failure; a later invocation (started after the failure)
takes it again.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from benchmark.tracking.tracker import build_sqlite_file, probe_database
from simecg.errors import TrackingError, first_line
from simecg.failpoints import writing
from simecg.integrity import pid_alive, pid_namespace
from simecg.urls import redact

log = logging.getLogger(__name__)

LEASE_S = float(os.environ.get("SIMECG_LEASE_S", 90))  # a worker silent this long is dead
HEARTBEAT_S = float(os.environ.get("SIMECG_HEARTBEAT_S", 10))  # how often a live worker says so


def _tables() -> tuple[Any, Any, Any]:
    import sqlalchemy as sa

    metadata = sa.MetaData()
    workers = sa.Table(
        "simecg_workers", metadata,
        sa.Column("worker_id", sa.String(32), primary_key=True),
        sa.Column("host", sa.String(255), nullable=False),
        sa.Column("pid", sa.Integer, nullable=False),
        sa.Column("started", sa.Float, nullable=False),
        sa.Column("heartbeat", sa.Float, nullable=False),
        sa.Column("pidns", sa.String(64), nullable=False, server_default=""),  # "" unknown: the lease only
    )
    claims = sa.Table(
        "simecg_claims", metadata,
        sa.Column("key", sa.String(200), primary_key=True),
        sa.Column("worker_id", sa.String(32), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),  # running | failed
        sa.Column("since", sa.Float, nullable=False),
        sa.Column("epoch", sa.Integer, nullable=False, server_default="0"),  # raised on every takeover
    )
    return metadata, workers, claims


ADDED_COLUMNS = {"simecg_workers": ("pidns", "VARCHAR(64) NOT NULL DEFAULT ''"),
                 "simecg_claims": ("epoch", "INTEGER NOT NULL DEFAULT 0")}


def _add_columns(engine: Any) -> None:
    """Add the columns a database made by an older version lacks (its workers' rows read as an
    unknown namespace and epoch 0: the lease decides their liveness, as it did then)."""
    import sqlalchemy as sa

    inspector = sa.inspect(engine)
    for table, (column, definition) in ADDED_COLUMNS.items():
        if column in {c["name"] for c in inspector.get_columns(table)}:
            continue
        try:
            with engine.begin() as con:
                con.execute(sa.text(f"ALTER TABLE {table} ADD COLUMN {column} {definition}"))
        except (sa.exc.OperationalError, sa.exc.ProgrammingError):  # another worker added it meanwhile
            if column not in {c["name"] for c in sa.inspect(engine).get_columns(table)}:
                raise


@dataclass(frozen=True)
class WorkerRow:
    worker_id: str
    host: str
    pid: int
    heartbeat: float
    pidns: str = ""


Fence = dict[str, int]  # the claims (key -> epoch) a worker held when it opened a run


class Coordinator:
    """This process as a worker of the suite: its lease, and the claims it takes and gives back.

    ``with Coordinator(url) as workers:``; ``workers.claim(key)`` is True when this worker now
    holds ``key``; ``workers.release(key, failed=...)`` gives it back (or marks it failed);
    ``workers.fence()`` is what it holds now, ``workers.lost(fence)`` says whether it still does.
    """

    def __init__(self, url: str, lease_s: float = LEASE_S, heartbeat_s: float = HEARTBEAT_S):
        import sqlalchemy as sa

        self.url, self.lease_s, self.heartbeat_s = url, lease_s, heartbeat_s
        self.worker_id = uuid.uuid4().hex
        self.host = socket.gethostname()[:255]
        self.pid = os.getpid()
        self.pidns = pid_namespace()[:64]
        self.started = time.time()
        self._held: Fence = {}
        connect_args = {"timeout": 60} if url.startswith("sqlite") else {}
        try:
            self.engine = sa.create_engine(url, connect_args=connect_args, pool_pre_ping=True)
            self.metadata, self.workers, self.claims = _tables()
            self._create_tables()
            with self.engine.begin() as con:
                con.execute(self.workers.insert().values(worker_id=self.worker_id, host=self.host, pid=self.pid,
                                                         pidns=self.pidns, started=self.started,
                                                         heartbeat=self.started))
        except Exception as exc:
            if isinstance(exc, TrackingError):
                raise
            raise TrackingError(f"cannot use the coordination database {redact(url)}: {first_line(exc)}") from exc
        self._stop = threading.Event()
        self._beat = threading.Thread(target=self._heartbeat, name="simecg-heartbeat", daemon=True)
        self._beat.start()

    def _create_tables(self) -> None:
        """Create the tables once; two workers starting together may race, which is harmless."""
        import sqlalchemy as sa

        for attempt in range(5):
            try:
                self.metadata.create_all(self.engine, checkfirst=True)
                _add_columns(self.engine)
                return
            except (sa.exc.OperationalError, sa.exc.ProgrammingError, sa.exc.IntegrityError):
                if attempt == 4:
                    raise
                time.sleep(0.2 * (attempt + 1))  # the other worker created them meanwhile

    # ----- lifecycle
    def __enter__(self) -> Coordinator:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Stop heartbeating and give back everything this worker holds (its failed marks stay)."""
        self._stop.set()
        self._beat.join(timeout=5)
        with contextlib.suppress(Exception), self.engine.begin() as con:
            con.execute(self.claims.delete().where(self.claims.c.worker_id == self.worker_id,
                                                   self.claims.c.state == "running"))
            con.execute(self.workers.delete().where(self.workers.c.worker_id == self.worker_id))
        self.engine.dispose()

    def _heartbeat(self) -> None:
        while not self._stop.wait(self.heartbeat_s):
            try:
                with writing(), self.engine.begin() as con:
                    con.execute(self.workers.update().where(self.workers.c.worker_id == self.worker_id)
                                .values(heartbeat=time.time()))
            except Exception as exc:  # a database hiccup: the next beat tries again
                log.warning("worker heartbeat failed: %s", exc)

    # ----- who is alive
    def _rows(self, con: Any, ids: Iterable[str] | None = None) -> dict[str, WorkerRow]:
        query = self.workers.select()
        if ids is not None:
            query = query.where(self.workers.c.worker_id.in_(list(ids)))
        return {r.worker_id: WorkerRow(r.worker_id, r.host, r.pid, r.heartbeat, r.pidns or "")
                for r in con.execute(query)}

    def _alive(self, row: WorkerRow | None, now: float) -> bool:
        if row is None:
            return False
        if row.worker_id == self.worker_id:
            return True
        if self._pid_visible(row) and not pid_alive(row.pid):
            return False  # its process is gone: no need to wait for the lease to run out
        return now - row.heartbeat < self.lease_s

    def _pid_visible(self, row: WorkerRow) -> bool:
        """Whether ``row``'s pid means the same process here: same host and the same known PID
        namespace (two containers on one host share the name, not the pids)."""
        return row.host == self.host and bool(self.pidns) and row.pidns == self.pidns

    def dead(self, worker_ids: Iterable[str]) -> set[str]:
        """Which of ``worker_ids`` are not alive (unknown ids are dead: their worker ended or vanished)."""
        ids = {w for w in worker_ids if w}
        if not ids:
            return set()
        with self.engine.connect() as con:
            rows = self._rows(con, ids)
        now = time.time()
        return {w for w in ids if not self._alive(rows.get(w), now)}

    def local_workers(self) -> int:
        """Live workers on this machine, this one included (to share its cores between them)."""
        with self.engine.connect() as con:
            rows = self._rows(con)
        now = time.time()
        return max(1, sum(r.host == self.host and self._alive(r, now) for r in rows.values()))

    # ----- claims
    def claim(self, key: str) -> bool:
        """Take ``key`` if nobody alive holds it (nor marked it failed in this round); True if taken."""
        import sqlalchemy as sa

        now = time.time()
        try:
            with self.engine.begin() as con:
                con.execute(self.claims.insert().values(key=key, worker_id=self.worker_id, state="running",
                                                        since=now, epoch=0))
            self._held[key] = 0
            return True
        except sa.exc.IntegrityError:
            pass
        with self.engine.begin() as con:
            row = con.execute(self.claims.select().where(self.claims.c.key == key)).first()
            if row is None:  # released meanwhile
                con.execute(self.claims.insert().values(key=key, worker_id=self.worker_id, state="running",
                                                        since=now, epoch=0))
                self._held[key] = 0
                return True
            if row.worker_id == self.worker_id and row.state == "running":
                self._held[key] = row.epoch
                return True
            holder_alive = self._alive(self._rows(con, [row.worker_id]).get(row.worker_id), now)
            if row.state == "running" and holder_alive:
                return False
            if row.state == "failed" and row.since >= self.started:
                return False  # failed in this round: not again until a new invocation
            taken = con.execute(self.claims.delete().where(
                self.claims.c.key == key, self.claims.c.worker_id == row.worker_id, self.claims.c.since == row.since,
            )).rowcount
            if taken != 1:  # another worker took it over first
                return False
            epoch = (row.epoch or 0) + 1  # a fence: whoever held it before can no longer finish it
            con.execute(self.claims.insert().values(key=key, worker_id=self.worker_id, state="running", since=now,
                                                    epoch=epoch))
        self._held[key] = epoch
        if row.state == "running":
            log.warning("took over %s from worker %s, silent past its lease (epoch %d)", key, row.worker_id[:8],
                        epoch)
        return True

    def release(self, key: str, failed: bool = False) -> None:
        """Give ``key`` back (done), or mark it failed for the rest of this round (nothing when another
        worker took it over meanwhile: it is that worker's now)."""
        epoch = self._held.pop(key, None)
        with self.engine.begin() as con:
            where = (self.claims.c.key == key, self.claims.c.worker_id == self.worker_id)
            if epoch is not None:
                where = (*where, self.claims.c.epoch == epoch)
            if failed:
                con.execute(self.claims.update().where(*where).values(state="failed", since=time.time()))
            else:
                con.execute(self.claims.delete().where(*where))

    def fence(self) -> Fence:
        """The claims this worker holds now, with their epochs (a run opened now is fenced by them)."""
        return dict(self._held)

    def lost(self, fence: Fence) -> str | None:
        """None while this worker still holds every claim of ``fence`` at its epoch; else who has
        the first one it lost (a worker id, or "nobody" when no worker holds it now), for messages
        and tags. Claims this worker gave back itself since (a study tuned to its end) are done
        with, not lost."""
        keys = [key for key, epoch in fence.items() if self._held.get(key) == epoch]
        if not keys:
            return None
        with self.engine.connect() as con:
            rows = {r.key: r for r in con.execute(self.claims.select().where(self.claims.c.key.in_(keys)))}
        for key in sorted(keys):
            row = rows.get(key)
            if row is None or row.worker_id != self.worker_id or (row.epoch or 0) != fence[key]:
                return row.worker_id if row is not None else "nobody"
        return None

    def holder(self, key: str) -> str | None:
        """The live worker holding ``key`` (None when free, failed or held by a dead worker)."""
        with self.engine.connect() as con:
            row = con.execute(self.claims.select().where(self.claims.c.key == key)).first()
            if row is None or row.state != "running":
                return None
            alive = self._alive(self._rows(con, [row.worker_id]).get(row.worker_id), time.time())
        return row.worker_id if alive else None


def prepare_storage(url: str) -> str:
    """The coordination (and Optuna) database at ``url``, ready to use; returns ``url``.

    A new SQLite file is built whole in a temporary file and renamed into place (Optuna's schema
    and the worker tables), so a kill during a first run never leaves a half-made database that
    every later run fails on. An existing one is checked (``PRAGMA quick_check``): a damaged file
    is one line naming it, not a StorageInternalError in every cell. A server database
    (PostgreSQL) is probed with a short timeout.
    """
    from pathlib import Path

    if not url.startswith("sqlite:///"):
        probe_database(url, "Optuna/coordination database")
        _build_server_schema(url)
        return url
    from filelock import FileLock

    db = Path(url[len("sqlite:///"):])
    if db.is_file() and db.stat().st_size > 0:
        _check_sqlite(db)
        return url
    if not db.parent.is_dir():
        raise TrackingError(f"Optuna storage {url}: folder {db.parent} does not exist")
    # one creator at a time: replacing a file another worker has already opened would leave that
    # worker writing to a deleted file ("attempt to write a readonly database")
    with FileLock(f"{db}.lock"):
        if db.is_file() and db.stat().st_size > 0:
            return url

        build_sqlite_file(db, lambda tmp: _build_sqlite(f"sqlite:///{tmp}"), "Optuna storage")
    return url


def _check_sqlite(db: Any) -> None:
    """One :class:`TrackingError` line naming ``db`` when it is not an intact SQLite database."""
    import sqlite3

    try:
        with contextlib.closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=60)) as con:
            problems = [" ".join(str(row[0]).split()) for row in con.execute("PRAGMA quick_check(3)")]
    except sqlite3.DatabaseError as exc:
        problems = [str(exc)]
    if problems != ["ok"]:
        raise TrackingError(f"the Optuna/coordination database {db} is damaged ({'; '.join(problems)[:200]}); move "
                            "it away and rerun (its studies start again) or restore a backup")


SCHEMA_LOCK = 0x5131EC6  # the PostgreSQL advisory lock workers take to build the schema one at a time


def _build_server_schema(url: str) -> None:
    """Optuna's schema and the worker tables in a database server, built by one worker at a time.

    Workers started together on a fresh PostgreSQL database would otherwise race in Optuna's
    ``CREATE TYPE``/``CREATE TABLE`` and all but one fail; PostgreSQL's advisory lock (the engine's
    own tool for this) serialises them, and the later ones find the schema made.
    """
    import sqlalchemy as sa

    engine = sa.create_engine(url)
    try:
        with engine.connect() as con:
            locking = con.dialect.name == "postgresql"
            if locking:
                con.execute(sa.text("SELECT pg_advisory_lock(:key)"), {"key": SCHEMA_LOCK})
            try:
                _build_sqlite(url)  # the same calls build a server database's schema
            finally:
                if locking:
                    con.execute(sa.text("SELECT pg_advisory_unlock(:key)"), {"key": SCHEMA_LOCK})
    except TrackingError:
        raise
    except Exception as exc:
        raise TrackingError(f"cannot set up the Optuna/coordination database {redact(url)}: "
                            f"{first_line(exc)}") from None
    finally:
        engine.dispose()


def _build_sqlite(url: str) -> None:
    """Optuna's schema (RDBStorage makes and versions it) and the worker tables, in ``url``."""
    import warnings

    import optuna
    import sqlalchemy as sa

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        storage = optuna.storages.RDBStorage(url)
    storage.engine.dispose()
    engine = sa.create_engine(url)
    try:
        _tables()[0].create_all(engine)
    finally:
        engine.dispose()
