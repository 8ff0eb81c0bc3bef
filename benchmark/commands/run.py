"""``simecg-bench run``, ``leaderboard`` and ``ui``."""

from __future__ import annotations

import argparse
import subprocess
import sys

from simecg.config import parse_set_args
from simecg.errors import ConfigError


def add_commands(sub: argparse._SubParsersAction) -> None:
    run = sub.add_parser("run", help="run a suite: pretrain, fine-tune, evaluate, log to MLflow")
    run.add_argument("--suite", default="demo", help="suite name (see `list suites`) or a TOML file (default: demo)")
    run.add_argument("--corpus", default=None,
                     help="pretraining corpus (or comma-separated corpora) for the MAE models, e.g. sim or sim,ptbxl")
    _common(run)
    run.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                     help="override a config value, e.g. --set finetune.lr=1e-3 --set grid.seeds=1,2")
    run.add_argument("--shard", default="0/1", metavar="I/N", help="run only shard I of N of the cells (0-based)")
    run.add_argument("--optuna-storage", default=None, help="Optuna RDB URL (default: beside the MLflow store)")
    run.add_argument("--dry-run", action="store_true", help="list the cells and their status, run nothing")
    run.add_argument("--no-progress", action="store_true", help="no progress bars")
    run.add_argument("--format", choices=("table", "markdown", "csv", "json"), default="table",
                     help="format of the leaderboard printed at the end")
    run.set_defaults(func=cmd_run)

    board = sub.add_parser("leaderboard", help="print the leaderboard of a suite from MLflow")
    board.add_argument("--suite", default=None, help="suite name (default: the most recently run suite)")
    board.add_argument("--format", choices=("table", "markdown", "csv", "json"), default="table")
    board.add_argument("--lead", default="II")
    board.add_argument("--budget", type=int, default=0, help="label budget per class (0 = whole training split)")
    board.add_argument("--positives-only", action="store_true", help="the positives-only budget variant")
    board.add_argument("--shift", default="", help="a demographic shift of the suite, e.g. 'sex:M->F'")
    board.add_argument("--tracking-uri", default=None, help="MLflow store (default: $MLFLOW_TRACKING_URI or mlruns/)")
    board.set_defaults(func=cmd_leaderboard)

    ui = sub.add_parser("ui", help="open the MLflow UI on the suite's store")
    ui.add_argument("--tracking-uri", default=None)
    ui.add_argument("--host", default="127.0.0.1")
    ui.add_argument("--port", type=int, default=5000)
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
    from benchmark.config import load_suite, with_corpora
    from benchmark.leaderboard import build_leaderboard
    from benchmark.runner import dry_run, run_suite

    suite = load_suite(args.suite, parse_set_args(args.set))
    corpora = [c.strip() for c in args.corpus.split(",") if c.strip()] if args.corpus else None
    suite = with_corpora(suite, corpora)
    shard_spec = parse_shard(args.shard)
    if args.dry_run:
        for line in dry_run(suite, data_dir=args.data_dir, tracking_uri=args.tracking_uri, shard_spec=shard_spec):
            print(line)
        return 0
    progress = not args.no_progress and sys.stderr.isatty()
    report = run_suite(suite, data_dir=args.data_dir, tracking_uri=args.tracking_uri, shard_spec=shard_spec,
                       progress=progress, optuna_storage=args.optuna_storage)
    print(
        f"suite {report.suite}: {report.total} cells, {report.ran} ran, {report.skipped} already finished, "
        f"{len(report.failed)} failed, {report.seconds:.1f} s; MLflow {report.tracking_uri} "
        f"(experiment {report.experiment_id}, run {report.parent_run_id})"
    )
    for label, error in report.failed:
        print(f"  FAILED {label}: {error}", file=sys.stderr)
    board = build_leaderboard(report.tracking_uri, report.suite)
    print(board.render(args.format))
    return 1 if report.failed else 0


def cmd_leaderboard(args: argparse.Namespace) -> int:
    from benchmark.leaderboard import build_leaderboard, latest_suite

    suite = args.suite or latest_suite(args.tracking_uri)
    board = build_leaderboard(args.tracking_uri, suite, lead=args.lead, budget=args.budget,
                              positives_only=args.positives_only, shift=args.shift)
    print(board.render(args.format))
    return 0


def cmd_ui(args: argparse.Namespace) -> int:
    from benchmark.tracking import resolve_uri

    uri = resolve_uri(args.tracking_uri)
    command = [sys.executable, "-m", "mlflow", "ui", "--backend-store-uri", uri, "--host", args.host,
               "--port", str(args.port)]
    print(f"MLflow UI for {uri} at http://{args.host}:{args.port} (Ctrl-C to stop)")
    return subprocess.call(command)
