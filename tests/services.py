"""Real services for tests: a throwaway PostgreSQL cluster, databases on it, and ``mlflow server``.

CI starts PostgreSQL once (``.ci/run`` via ``.ci/postgres.sh``) and exports its URL as
``SIMECG_TEST_POSTGRES``; elsewhere the session starts its own cluster with the same script when
the server binaries are installed. What cannot start raises :class:`Unavailable` with the reason,
which the fixtures turn into a skip that says it.
"""

from __future__ import annotations

import os
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from simecg.urls import redact

ROOT = Path(__file__).resolve().parents[1]
POSTGRES_SCRIPT = ROOT / ".ci" / "postgres.sh"
POSTGRES_ENV = "SIMECG_TEST_POSTGRES"
SERVER_START_SECONDS = 120


class Unavailable(RuntimeError):
    """A service the test needs cannot start here; the message says why."""


def free_port() -> int:
    """A TCP port on loopback that nothing listens on (now; the caller binds it soon after)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# ----- PostgreSQL
def start_postgres() -> tuple[str, Path]:
    """A new cluster on loopback via ``.ci/postgres.sh``: its database URL and its folder (for :func:`stop_postgres`).

    The folder is in /tmp (not pytest's private tmp) because the cluster's owner, the ``postgres``
    user when tests run as root, must be able to reach it.
    """
    folder = Path(tempfile.mkdtemp(prefix="simecg-test-pg.", dir="/tmp" if Path("/tmp").is_dir() else None))
    done = subprocess.run(["bash", str(POSTGRES_SCRIPT), "start", str(folder)], capture_output=True, text=True,
                          timeout=180)
    if done.returncode != 0:
        stop_postgres(folder)
        reason = (done.stderr.strip().splitlines() or [f"exit {done.returncode}"])[-1]
        raise Unavailable(reason.removeprefix("postgres: "))
    return done.stdout.strip().splitlines()[-1], folder


def stop_postgres(folder: Path) -> None:
    """Stop a cluster of :func:`start_postgres` and remove its folder."""
    subprocess.run(["bash", str(POSTGRES_SCRIPT), "stop", str(folder)], capture_output=True, timeout=60)
    shutil.rmtree(folder, ignore_errors=True)  # when the script could not (a cluster that never started)


def check_postgres(url: str) -> None:
    """Raise :class:`Unavailable` unless ``url`` answers a query."""
    try:
        import psycopg  # psycopg 3: the driver SQLAlchemy 2.1 uses for postgresql://
    except ImportError as exc:
        raise Unavailable(f"psycopg is not installed ({exc}): pip install -e '.[test]'") from None
    try:
        with psycopg.connect(url, connect_timeout=5) as con, con.cursor() as cur:
            cur.execute("SELECT 1")
    except psycopg.Error as exc:
        raise Unavailable(f"{redact(url)} does not answer: {str(exc).strip()}") from None


def _admin(url: str, statement: str) -> None:
    import psycopg

    # autocommit: CREATE/DROP DATABASE cannot run in a transaction
    with psycopg.connect(url, connect_timeout=10, autocommit=True) as con, con.cursor() as cur:
        cur.execute(statement)


def create_database(url: str, prefix: str = "simecg_test") -> str:
    """A new, empty database on the server of ``url`` (random name); returns its URL."""
    name = f"{prefix}_{secrets.token_hex(6)}"
    _admin(url, f'CREATE DATABASE "{name}"')
    return urlunsplit(urlsplit(url)._replace(path=f"/{name}"))


def drop_database(url: str, admin_url: str) -> None:
    """Drop the database of ``url`` (connected through ``admin_url``), ending its open connections."""
    name = urlsplit(url).path.lstrip("/")
    _admin(admin_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


# ----- mlflow server
def start_mlflow_server(backend_uri: str, artifacts: Path, *, workers: int = 1,
                        log_file: Path | None = None) -> tuple[subprocess.Popen, str]:
    """``mlflow server`` on loopback (own process group) over ``backend_uri``, serving artifacts from ``artifacts``.

    Returns the process and its ``http://127.0.0.1:<port>`` URI once ``/health`` answers; raises
    :class:`Unavailable` (with the end of its log) when it exits or does not answer in time. Stop
    it with :func:`stop_server`.
    """
    port = free_port()
    log_file = log_file or artifacts.parent / f"mlflow-server-{port}.log"
    command = [sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1", "--port", str(port),
               "--workers", str(workers), "--backend-store-uri", backend_uri,
               "--artifacts-destination", str(artifacts), "--serve-artifacts"]
    env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}  # no GenAI job runners (8 processes)
    env.pop("MLFLOW_TRACKING_URI", None)
    with open(log_file, "w") as log:
        server = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=artifacts.parent,
                                  start_new_session=True)
    uri = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + SERVER_START_SECONDS
    while time.monotonic() < deadline and server.poll() is None:
        try:
            with urllib.request.urlopen(f"{uri}/health", timeout=2) as response:
                if response.status == 200:
                    return server, uri
        except OSError:
            time.sleep(0.3)
    stop_server(server)
    tail = " | ".join(log_file.read_text(errors="replace").strip().splitlines()[-3:])
    state = f"exited with {server.returncode}" if server.returncode is not None else "did not answer"
    raise Unavailable(f"mlflow server {state} within {SERVER_START_SECONDS} s: {tail}")


def stop_server(server: subprocess.Popen) -> None:
    """Stop a server started in its own session, and every process it started (uvicorn workers)."""
    from benchmark.commands.run import stop_process_group

    stop_process_group(server)
