"""``simecg-bench run``, ``leaderboard`` and ``ui``."""

from __future__ import annotations

import argparse
import subprocess
import sys

from benchmark.commands.arguments import name_list, non_negative_int, port_int, positive_int
from simecg.errors import ConfigError
from simecg.urls import redact


def add_commands(sub: argparse._SubParsersAction) -> None:
    run = sub.add_parser("run", help="run a suite: pretrain, fine-tune, evaluate, log to MLflow")
    run.add_argument("--suite", default="demo", help="suite name (see `list suites`) or a TOML file (default: demo)")
    run.add_argument("--corpus", type=name_list, default=None,
                     help="pretraining corpus (or comma-separated corpora) for the MAE models, e.g. sim or sim,ptbxl")
    _common(run)
    run.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                     help="override a config value, e.g. --set finetune.lr=1e-3 --set grid.seeds=1,2")
    run.add_argument("--shard", default="0/1", metavar="I/N", help="run only shard I of N of the cells (0-based)")
    run.add_argument("--optuna-storage", default=None, help="Optuna RDB URL (default: beside the MLflow store)")
    run.add_argument("--dry-run", action="store_true",
                     help="run nothing: print cells (total, finished, pending), pretraining and tuning still needed "
                          "and the estimated time on this device (from `simecg-bench bench finetune`)")
    run.add_argument("--list", action="store_true",
                     help="with --dry-run (implied): also one line per cell, 'status fingerprint label'")
    run.add_argument("--no-progress", action="store_true",
                     help="no progress bars (one line per finished cell on stderr instead)")
    run.add_argument("--format", choices=("table", "markdown", "csv", "json"), default="table",
                     help="format of the leaderboard printed at the end (csv/json: stdout holds only that); with "
                          "--dry-run, csv/json print every cell as a row (json: and the summary)")
    run.set_defaults(func=cmd_run)

    board = sub.add_parser("leaderboard", help="print the leaderboard of a suite from MLflow")
    board.add_argument("--suite", default=None, help="suite name (default: the most recently run suite)")
    board.add_argument("--format", choices=("table", "markdown", "csv", "json"), default="table")
    board.add_argument("--lead", default=None, help="lead (default: II, else the suite's most run lead)")
    board.add_argument("--budget", type=non_negative_int, default=None,
                       help="label budget per class (0 = whole training split; default: 0, else the most run)")
    board.add_argument("--positives-only", action="store_const", const=True, default=None,
                       help="the positives-only budget variant")
    board.add_argument("--shift", default=None, help="a demographic shift of the suite, e.g. 'sex:M->F'")
    board.add_argument("--min-positives", type=non_negative_int, default=10, metavar="N",
                       help="flag tasks with fewer than N test positives and leave them out of means, gains and "
                            "wins (default: 10)")
    board.add_argument("--all-configs", action="store_true",
                       help="show every configuration of a model name, older ones as columns <model>#<fingerprint>")
    board.add_argument("--tracking-uri", default=None, help="MLflow store (default: $MLFLOW_TRACKING_URI or mlruns/)")
    board.set_defaults(func=cmd_leaderboard)

    ui = sub.add_parser("ui", help="serve the MLflow UI on the store and print (or --open) the suite's runs view")
    ui.add_argument("--suite", default=None, help="suite whose runs to show (default: the most recently run suite)")
    ui.add_argument("--tracking-uri", default=None, help="MLflow store (default: $MLFLOW_TRACKING_URI or mlruns/)")
    ui.add_argument("--host", default="127.0.0.1")
    ui.add_argument("--port", type=port_int, default=5000)
    ui.add_argument("--workers", type=positive_int, default=1, help="server worker processes (default: 1)")
    ui.add_argument("--open", action="store_true", help="open the runs view in the web browser once it is up")
    ui.set_defaults(func=cmd_ui)


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data-dir", default=None, help="downstream data root (default: $SIMECG_DATA or the cache)")
    parser.add_argument("--tracking-uri", default=None, help="MLflow store (default: $MLFLOW_TRACKING_URI or mlruns/)")


def parse_shard(text: str) -> tuple[int, int]:
    try:
        index, count = (int(part) for part in text.split("/"))
    except ValueError:
        raise ConfigError(f"--shard must look like I/N (e.g. 0/4), got {text!r}") from None
    if count < 1 or not 0 <= index < count:
        raise ConfigError(f"--shard {text}: need 0 <= I < N")
    return index, count


def cmd_run(args: argparse.Namespace) -> int:
    from benchmark.results.leaderboard import build_leaderboard
    from benchmark.run.runner import run_suite
    from benchmark.suites.config import load_suite, route_set

    suite = load_suite(args.suite, route_set(args.set, "suite")["suite"], corpora=args.corpus)
    shard_spec = parse_shard(args.shard)
    if args.dry_run or args.list:
        return _dry_run(args, suite, shard_spec)
    # a bar on a terminal; in a log (stdout or stderr redirected), one line per finished cell on stderr
    bars = not args.no_progress and sys.stderr.isatty() and sys.stdout.isatty()
    report = run_suite(suite, data_dir=args.data_dir, tracking_uri=args.tracking_uri, shard_spec=shard_spec,
                       progress=bars, optuna_storage=args.optuna_storage, cell_log=None if bars else sys.stderr)
    machine = args.format in ("csv", "json")  # stdout holds only the leaderboard, everything else goes to stderr
    print(
        f"suite {report.suite}: {report.total} cells, {report.ran} ran, {report.skipped} already finished, "
        f"{len(report.failed)} failed, {report.elsewhere} run by other workers, {report.seconds:.1f} s; "
        f"MLflow {redact(report.tracking_uri)} "
        f"(experiment {report.experiment_id}, run {report.parent_run_id})", file=sys.stderr if machine else sys.stdout
    )
    for label, error in report.failed:
        print(f"  FAILED {label}: {error}", file=sys.stderr)
    board = build_leaderboard(report.tracking_uri, report.suite)
    print(board.render(args.format))
    return 1 if report.failed else 0


def _dry_run(args: argparse.Namespace, suite: object, shard_spec: tuple[int, int]) -> int:
    """``run --dry-run``: the summary first; cells with ``--list`` (lines) or ``--format csv|json`` (rows).

    Exits 1 when the run would fail a cell before training (its split: the summary names it), as
    the run itself exits 1 with failed cells."""
    from benchmark.run.planning import make_plan

    plan = make_plan(suite, data_dir=args.data_dir, tracking_uri=args.tracking_uri, shard_spec=shard_spec,
                     optuna_storage=args.optuna_storage)
    code = 1 if plan.failing else 0
    if args.format == "json":
        print(plan.to_json())
        return code
    if args.format == "csv":
        for line in plan.summary_lines():
            print(line, file=sys.stderr)
        print(plan.rows_csv(), end="")
        return code
    for line in plan.summary_lines():
        print(line)
    if args.list:
        for line in plan.cell_lines():
            print(line)
    return code


def cmd_leaderboard(args: argparse.Namespace) -> int:
    from benchmark.results.leaderboard import build_leaderboard, latest_suite

    suite = args.suite or latest_suite(args.tracking_uri)
    board = build_leaderboard(args.tracking_uri, suite, lead=args.lead, budget=args.budget,
                              positives_only=args.positives_only, shift=args.shift,
                              min_positives=args.min_positives, all_configs=args.all_configs)
    print(board.render(args.format))
    return 0


def cmd_ui(args: argparse.Namespace) -> int:
    """Serve MLflow's UI on the store; Ctrl-C or SIGTERM stops it and every process it started."""
    import webbrowser

    from benchmark.tracking.tracker import relocate_store, resolve_uri, sqlite_path

    uri = resolve_uri(args.tracking_uri)
    if moved := relocate_store(uri):  # a moved or copied store shows its own artifacts
        print(f"the store was moved: {moved} artifact location(s) now point into {sqlite_path(uri).parent}")
    experiment_id, suite = ui_experiment(uri, args.suite)
    _require_free_port(args.host, args.port)
    url = ui_url(args.host, args.port, experiment_id)
    server = start_ui_server(uri, args.host, args.port, args.workers)
    try:
        print(f"MLflow UI for {uri}{f', suite {suite}' if suite else ''}: {url}  (Ctrl-C to stop)", flush=True)
        if args.open:
            if wait_until_serving(args.host, args.port, server):
                webbrowser.open(url)
            else:
                print(f"the MLflow UI did not answer within {UI_START_SECONDS} s; not opening a browser",
                      file=sys.stderr)
        code = server.wait()
        if code:
            print(f"the MLflow UI server stopped with exit code {code}", file=sys.stderr)
        return code
    except KeyboardInterrupt:  # Ctrl-C, and SIGTERM (simecg.errors.Terminated): the usual way to stop it
        print("stopping the MLflow UI", file=sys.stderr, flush=True)
        return 0
    finally:
        stop_process_group(server)


UI_START_SECONDS = 120


def ui_url(host: str, port: int, experiment_id: str | None = None) -> str:
    """The UI's address: the experiment's runs view in model-training mode, or the experiments list."""
    shown = {"": "127.0.0.1", "0.0.0.0": "127.0.0.1", "::": "[::1]"}.get(host, f"[{host}]" if ":" in host else host)
    base = f"http://{shown}:{port}"
    if experiment_id is None:
        return f"{base}/#/experiments"
    return f"{base}/#/experiments/{experiment_id}/runs?workflowType=machine_learning"


def ui_experiment(uri: str, suite: str | None) -> tuple[str | None, str | None]:
    """The experiment id and name of ``suite`` (default: the newest suite; none in an empty store)."""
    import mlflow

    from benchmark.results.leaderboard import latest_suite
    from benchmark.tracking.tracker import EXPERIMENT_PREFIX

    if suite is None:
        try:
            suite = latest_suite(uri)
        except ConfigError:  # an empty store: the experiments list
            return None, None
    client = mlflow.tracking.MlflowClient(tracking_uri=uri)
    experiment = client.get_experiment_by_name(EXPERIMENT_PREFIX + suite)
    if experiment is None:
        names = sorted(e.name.removeprefix(EXPERIMENT_PREFIX) for e in client.search_experiments()
                       if e.name.startswith(EXPERIMENT_PREFIX))
        raise ConfigError(f"no suite {suite!r} in {uri}; suites there: {', '.join(names) or 'none'}")
    return experiment.experiment_id, suite


def _require_free_port(host: str, port: int) -> None:
    import socket

    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the server: a listener is what blocks it
        try:
            probe.bind((host, port))
        except OSError as exc:
            raise ConfigError(f"cannot serve on {host}:{port} ({exc.strerror}); choose another --port") from None


def start_ui_server(uri: str, host: str, port: int, workers: int = 1) -> subprocess.Popen:
    """``mlflow ui`` in its own session (so its own process group), artifacts proxied from the store.

    MLflow's server starts uvicorn, which starts workers (and, unless disabled, job runners): the
    whole group is stopped by :func:`stop_process_group`. Job execution (GenAI evaluation jobs) is
    off unless ``MLFLOW_SERVER_ENABLE_JOB_EXECUTION`` says otherwise: it starts 8 more processes.
    """
    import os

    from benchmark.tracking.tracker import _artifact_root

    command = [sys.executable, "-m", "mlflow", "ui", "--backend-store-uri", uri, "--host", host,
               "--port", str(port), "--workers", str(workers)]
    if (root := _artifact_root(uri)) is not None:  # anything uploaded through the UI lands in the store too
        command += ["--artifacts-destination", root]
    env = {**os.environ}
    env.setdefault("MLFLOW_SERVER_ENABLE_JOB_EXECUTION", "false")
    if os.name == "nt":  # pragma: no cover
        return subprocess.Popen(command, env=env, creationflags=subprocess.CREATE_NEW_PROCESS_GROUP)
    return subprocess.Popen(command, env=env, start_new_session=True)


def wait_until_serving(host: str, port: int, server: subprocess.Popen, timeout: float = UI_START_SECONDS) -> bool:
    """Wait until the server answers ``/health`` (False: it exited or did not answer within ``timeout``)."""
    import time
    import urllib.request

    health = ui_url(host, port).split("/#", 1)[0] + "/health"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and server.poll() is None:
        try:
            with urllib.request.urlopen(health, timeout=2) as response:
                if response.status == 200:
                    return True
        except OSError:
            pass
        time.sleep(0.3)
    return False


def stop_process_group(server: subprocess.Popen, timeout: float = 10.0) -> None:
    """Stop the server's whole process group: SIGTERM, then SIGKILL what is left after ``timeout`` s."""
    import contextlib
    import os
    import signal
    import time

    if os.name == "nt":  # pragma: no cover
        server.terminate()
        server.wait()
        return
    group = server.pid  # a new session's leader: its pid is the group id
    for sig, wait in ((signal.SIGTERM, timeout), (signal.SIGKILL, 5.0)):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(group, sig)
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            server.poll()  # reap the leader
            if not group_alive(group):
                return
            time.sleep(0.1)
    server.poll()


def group_alive(group: int) -> bool:
    """Whether any process of the group still runs (zombies waiting for their parent do not count)."""
    import os
    from pathlib import Path

    proc = Path("/proc")
    if proc.is_dir():
        for stat in proc.glob("[0-9]*/stat"):
            try:
                fields = stat.read_text().rsplit(")", 1)[1].split()
            except (OSError, IndexError):
                continue
            if int(fields[2]) == group and fields[0] not in ("Z", "X"):
                return True
        return False
    try:
        os.killpg(group, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
