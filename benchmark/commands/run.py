"""``simecg-bench run``, ``leaderboard`` and ``ui``."""

from __future__ import annotations

import argparse
import subprocess
import sys

from benchmark.commands.arguments import add_include_path, name_list, non_negative_int, port_int, positive_int
from simecg import progress as progress_lines
from simecg.errors import ConfigError
from simecg.urls import redact

METRIC_CHOICES = ("f1", "auroc", "auprc")  # leaderboard.METRIC_NAMES, without importing it at start-up
TABLE_WIDTH = 100  # columns of the end-of-run table in a log (a terminal: its own width)


def add_commands(sub: argparse._SubParsersAction) -> None:
    run = sub.add_parser("run", help="run a suite: pretrain, fine-tune, evaluate, log to MLflow")
    run.add_argument("--suite", default="demo", help="suite name (see `list suites`) or a TOML file (default: demo)")
    run.add_argument("--corpus", type=name_list, default=None,
                     help="pretraining source (or comma-separated sources) of the pretrained models, "
                          "e.g. sim or sim,ptbxl")
    add_include_path(run)
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
    board.add_argument("--metric", choices=METRIC_CHOICES, default="f1",
                       help="what to rank, compare with the strongest baseline and test (default: f1, the paper's; "
                            "auroc and auprc are score-based)")
    board.add_argument("--per-seed", action="store_true",
                       help="print every cell of the view instead, one row per task, model and seed (with its run id)")
    board.add_argument("--tracking-uri", default=None, help="MLflow store (default: $MLFLOW_TRACKING_URI or mlruns/)")
    board.set_defaults(func=cmd_leaderboard)

    ui = sub.add_parser("ui", help="serve the MLflow UI on the store and print (or --open) the suite's runs view")
    ui.add_argument("--suite", default=None, help="suite whose runs to show (default: the most recently run suite)")
    ui.add_argument("--tracking-uri", default=None, help="MLflow store (default: $MLFLOW_TRACKING_URI or mlruns/)")
    ui.add_argument("--host", default="127.0.0.1")
    ui.add_argument("--port", type=port_int, default=5000)
    ui.add_argument("--workers", type=positive_int, default=1, help="server worker processes (default: 1)")
    ui.add_argument("--open", action="store_true", help="open the runs view in the web browser once it is up")
    ui.add_argument("--tuning", action="store_true",
                    help="also serve optuna-dashboard (pip install -e '.[dashboard]') on the suite's tuning studies, "
                         "on the next port: each study's optimisation history and parameter importance")
    ui.add_argument("--optuna-storage", default=None,
                    help="with --tuning: the Optuna RDB URL (default: beside the MLflow store, as `run`)")
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
    from benchmark.data.tasks import include_tasks
    from benchmark.results.leaderboard import build_leaderboard
    from benchmark.run.runner import run_suite
    from benchmark.suites.config import load_suite, route_set

    include_tasks(*args.include_path)
    narrowed = load_suite(args.suite, route_set(args.set, "suite")["suite"], corpora=args.corpus)
    # the suite's own sources (as its file declares them), for the line saying what --corpus left out
    suite = load_suite(args.suite) if args.corpus else narrowed
    shard_spec = parse_shard(args.shard)
    machine = args.format in ("csv", "json")  # stdout holds only the leaderboard, everything else goes to stderr
    if (note := corpus_note(suite.name, suite.corpora, narrowed.corpora)) is not None:
        print(note, file=sys.stderr if machine or args.dry_run else sys.stdout)
    suite = narrowed
    if args.dry_run or args.list:
        return _dry_run(args, suite, shard_spec)
    # a bar on a terminal; in a log (stdout or stderr redirected), one line per finished cell on stderr
    bars = not args.no_progress and sys.stderr.isatty() and sys.stdout.isatty()
    lines = None if bars else progress_lines.lines_to(sys.stderr)  # pretraining, tuning: timestamped lines
    try:
        report = run_suite(suite, data_dir=args.data_dir, tracking_uri=args.tracking_uri, shard_spec=shard_spec,
                           progress=bars, optuna_storage=args.optuna_storage, cell_log=None if bars else sys.stderr)
    finally:
        if lines is not None:
            progress_lines.stop_lines(lines)
    print(
        f"suite {report.suite}: {report.total} cells, {report.ran} ran, {report.skipped} already finished, "
        f"{len(report.failed)} failed, {report.elsewhere} run by other workers, {report.seconds:.1f} s; "
        f"MLflow {redact(report.tracking_uri)} "
        f"(experiment {report.experiment_id}, run {report.parent_run_id})", file=sys.stderr if machine else sys.stdout
    )
    for label, error in report.failed:
        print(f"  FAILED {label}: {error}", file=sys.stderr)
    board = build_leaderboard(report.tracking_uri, report.suite)
    print(board.render(args.format, width=table_width()))
    print(next_steps(report.suite, args.tracking_uri, report.report_path), file=sys.stderr if machine else sys.stdout)
    return 1 if report.failed else 0


def corpus_note(suite: str, declared: tuple[str, ...], chosen: tuple[str, ...]) -> str | None:
    """One line when ``--corpus`` narrows the suite's sources (keeps some, leaves others out), e.g.
    ``corpora: running 1 of 5 sources (sim); --corpus narrowed sim, ecgsyn, ptbxl, vae, gan``; None
    when it leaves nothing out, or replaces them all (``--corpus folder``: what was asked, in full)."""
    left_out = [c for c in declared if c not in chosen]
    if not left_out or len(left_out) == len(declared):
        return None
    return (f"{suite}: running {len(chosen)} of {len(declared)} sources ({', '.join(chosen)}); --corpus narrowed "
            f"{', '.join(declared)}")


def table_width() -> int:
    """The end-of-run table's width: the terminal's, or :data:`TABLE_WIDTH` columns in a log."""
    import shutil

    return shutil.get_terminal_size((TABLE_WIDTH, 24)).columns if sys.stdout.isatty() else TABLE_WIDTH


def next_steps(suite: str, tracking_uri: str | None, report_path: str | None) -> str:
    """The run's last line: where its report is, and the commands that compare its runs."""
    store = f" --tracking-uri {redact(tracking_uri)}" if tracking_uri else ""
    report = f"report {report_path}" if report_path else f"report: simecg-bench report --suite {suite}{store}"
    return (f"{report}; compare the runs: simecg-bench ui --suite {suite}{store}; "
            f"leaderboard: simecg-bench leaderboard --suite {suite}{store} [--metric auroc]")


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
                              min_positives=args.min_positives, all_configs=args.all_configs, metric=args.metric)
    if args.per_seed:
        print(board.render_per_seed(args.format))
        return 0
    print(board.render(args.format, width=table_width() if sys.stdout.isatty() else None))
    return 0


def cmd_ui(args: argparse.Namespace) -> int:
    """Serve MLflow's UI on the store (and, with ``--tuning``, optuna-dashboard on the suite's studies);
    Ctrl-C or SIGTERM stops them and every process they started."""
    import signal
    import webbrowser

    from benchmark.tracking.tracker import relocate_store, resolve_uri, sqlite_path

    # "Ctrl-C to stop" holds even when started in the background by a shell without job control,
    # which starts it with SIGINT ignored (Python then installs no KeyboardInterrupt for it)
    if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)
    uri = resolve_uri(args.tracking_uri)
    if moved := relocate_store(uri):  # a moved or copied store shows its own artifacts
        print(f"the store was moved: {moved} artifact location(s) now point into {sqlite_path(uri).parent}")
    experiment_id, suite = ui_experiment(uri, args.suite)
    _require_free_port(args.host, args.port)
    storage = _tuning_storage(uri, args.optuna_storage) if args.tuning else None
    if storage is not None:
        _require_free_port(args.host, args.port + 1)
    view = _publish_views(uri, experiment_id, suite)
    url = ui_url(args.host, args.port, experiment_id, view)
    servers = [start_ui_server(uri, args.host, args.port, args.workers)]
    try:
        print(f"MLflow UI for {redact(uri)}{f', suite {suite}' if suite else ''}: {url}  (Ctrl-C to stop)", flush=True)
        if view:
            print("  every cell of the suite is a row; Views > 'model x task, mean over seeds' groups them, and the "
                  "charts button draws them", flush=True)
        if storage is not None:
            servers.append(start_dashboard(storage, args.host, args.port + 1))
            print(f"Optuna dashboard of {redact(storage)}: {ui_url(args.host, args.port + 1, bare=True)}/  "
                  "(each study's optimisation history and parameter importance)", flush=True)
        if args.open:
            if wait_until_serving(args.host, args.port, servers[0]):
                webbrowser.open(url)
            else:
                print(f"the MLflow UI did not answer within {UI_START_SECONDS} s; not opening a browser",
                      file=sys.stderr)
        code = _wait_any(servers)
        if code:
            print(f"a UI server stopped with exit code {code}", file=sys.stderr)
        return code
    except KeyboardInterrupt:  # Ctrl-C, and SIGTERM (simecg.errors.Terminated): the usual way to stop it
        print("stopping the MLflow UI", file=sys.stderr, flush=True)
        return 0
    finally:
        for server in servers:
            stop_process_group(server)


UI_START_SECONDS = 120


def ui_url(host: str, port: int, experiment_id: str | None = None, view: str | None = None,
           bare: bool = False) -> str:
    """The UI's address: the experiment's runs view in model-training mode (at a saved ``view``), or
    the experiments list (``bare``: the server's root, without a page)."""
    shown = {"": "127.0.0.1", "0.0.0.0": "127.0.0.1", "::": "[::1]"}.get(host, f"[{host}]" if ":" in host else host)
    base = f"http://{shown}:{port}"
    if bare:
        return base
    if experiment_id is None:
        return f"{base}/#/experiments"
    from benchmark.tracking.mlflow_ui import runs_url

    return runs_url(base, experiment_id, view)


def _publish_views(uri: str, experiment_id: str | None, suite: str | None) -> str | None:
    """Write the suite's saved views and its description (a store that cannot be written keeps the
    UI's plain runs page); the view to open first, None without one."""
    import logging

    import mlflow

    from benchmark.tracking.mlflow_ui import CELLS_VIEW, describe_experiment, publish_views

    if experiment_id is None:
        return None
    try:
        client = mlflow.tracking.MlflowClient(tracking_uri=uri)
        publish_views(client, experiment_id)
        if not client.get_experiment(experiment_id).tags.get("mlflow.note.content"):
            describe_experiment(client, experiment_id, suite or "")
    except Exception as exc:  # a read-only store or server: the UI still serves it
        logging.getLogger(__name__).warning("could not save the comparison views in %s (%s); the runs page opens "
                                            "unfiltered", redact(uri), exc)
        return None
    return CELLS_VIEW


def _tuning_storage(uri: str, storage: str | None) -> str:
    """The Optuna storage ``--tuning`` serves, after checking optuna-dashboard is installed."""
    import importlib.util

    from benchmark.run.opening import default_optuna_storage

    if importlib.util.find_spec("optuna_dashboard") is None:
        raise ConfigError("--tuning needs optuna-dashboard: pip install -e '.[dashboard]' (or pip install "
                          "optuna-dashboard)")
    return storage or default_optuna_storage(uri)


def start_dashboard(storage: str, host: str, port: int) -> subprocess.Popen:
    """optuna-dashboard on ``storage``, in its own session, without a line per request."""
    import os

    code = "import sys; from benchmark.tracking.mlflow_ui import serve_dashboard; serve_dashboard(*sys.argv[1:])"
    return subprocess.Popen([sys.executable, "-c", code, storage, host, str(port)], env={**os.environ},
                            start_new_session=True)


def _wait_any(servers: list[subprocess.Popen]) -> int:
    """Wait until one of the servers exits; its exit code."""
    import time

    while True:
        for server in servers:
            if (code := server.poll()) is not None:
                return code
        time.sleep(0.5)


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


UVICORN_OPTIONS = "--no-access-log --log-level warning"  # no line per request; warnings and errors stay


def start_ui_server(uri: str, host: str, port: int, workers: int = 1) -> subprocess.Popen:
    """``mlflow ui`` in its own session (so its own process group), artifacts proxied from the store.

    MLflow's server starts uvicorn, which starts workers (and, unless disabled, job runners): the
    whole group is stopped by :func:`stop_process_group`. Job execution (GenAI evaluation jobs) is
    off unless ``MLFLOW_SERVER_ENABLE_JOB_EXECUTION`` says otherwise: it starts 8 more processes.
    The app is :func:`benchmark.tracking.mlflow_ui.create_app` (MLflow's, with this project's defaults),
    without access lines.
    """
    import os

    from benchmark.tracking.mlflow_ui import APP_NAME, has_app
    from benchmark.tracking.tracker import _artifact_root

    command = [sys.executable, "-m", "mlflow", "ui", "--backend-store-uri", uri, "--registry-store-uri", uri,
               "--host", host, "--port", str(port), "--workers", str(workers), "--uvicorn-opts", UVICORN_OPTIONS]
    if has_app():  # MLflow's app with SimECG-Bench's defaults (benchmark/tracking/mlflow_ui.py); absent: MLflow's own
        command += ["--app-name", APP_NAME]
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
    """Stop the server's whole process group: SIGTERM to the server, which passes it on to its own
    processes (``mlflow ui`` to uvicorn: a second SIGTERM sent straight to uvicorn would cut its
    shutdown short, with a ``CancelledError`` traceback); then SIGTERM to the whole group, then
    SIGKILL, for what is left after ``timeout`` s each."""
    import contextlib
    import os
    import signal
    import time

    if os.name == "nt":  # pragma: no cover
        server.terminate()
        server.wait()
        return
    group = server.pid  # a new session's leader: its pid is the group id
    for send, sig, wait in ((os.kill, signal.SIGTERM, timeout), (os.killpg, signal.SIGTERM, timeout),
                            (os.killpg, signal.SIGKILL, 5.0)):
        with contextlib.suppress(ProcessLookupError):
            send(group, sig)
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
