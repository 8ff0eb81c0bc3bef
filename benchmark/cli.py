"""The ``simecg-bench`` command line: thin parsers over public functions of the packages.

Each command group lives in ``benchmark/commands/<group>.py`` and exposes
``add_commands(subparsers)``; every subcommand sets ``func(args) -> int``. Expected failures
(:class:`simecg.errors.SimECGError`) become one clear line on stderr and exit code 2;
tracebacks only with ``--debug``. A reader that closes stdout early (``simecg-bench run --suite
all --dry-run --list | head``) ends the command quietly with exit code 141 (128 + SIGPIPE, what
a shell reports for a command killed by a closed pipe; the pipeline's status is ``head``'s unless
``set -o pipefail``), as Python's documentation on SIGPIPE recommends: stdout is pointed at
``/dev/null`` so the interpreter's last flush cannot fail again.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import signal
import sys
import threading
from collections.abc import Sequence
from typing import NoReturn

from simecg import __version__
from simecg.errors import SimECGError, Terminated

COMMAND_MODULES = (
    "benchmark.commands.run",
    "benchmark.commands.listing",
    "benchmark.commands.bench",
    "benchmark.commands.data",
    "benchmark.commands.corpus",
    "benchmark.commands.pretrain",
    "benchmark.commands.generators",
    "benchmark.commands.report",
    "benchmark.commands.protocol",
)
CACHE_COMMANDS = ("run", "pretrain", "corpus", "generators", "bench")  # commands that write the cache


class OneLineParser(argparse.ArgumentParser):
    """argparse, but a usage error is one line (the command and the problem), like every other error."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see `{self.prog} --help`)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(
        prog="simecg-bench",
        description="Pretrain ECG Transformers on simulated ECGs and benchmark them on real tasks.",
    )
    parser.add_argument("--version", action="version", version=f"simecg-bench {__version__}")
    parser.add_argument("--debug", action="store_true", help="show full tracebacks")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more log output (-vv for debug)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for name in COMMAND_MODULES:
        importlib.import_module(name).add_commands(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    level = logging.WARNING - 10 * min(args.verbose, 2)
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    if args.verbose < 2:  # MLflow announces every database migration at INFO (read when mlflow is imported)
        os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "WARNING")
        logging.getLogger("mlflow").setLevel(logging.WARNING)  # in case mlflow is already imported
        logging.getLogger("alembic").setLevel(logging.WARNING)
        # MLflow logs every failed database call with its traceback, then raises it: the raised
        # error is reported (a lost store in one line, benchmark.tracking), the log would repeat it
        logging.getLogger("mlflow.store.db.utils").setLevel(logging.CRITICAL)
        logging.getLogger("urllib3.connectionpool").setLevel(logging.ERROR)  # each retry of a dead server
    previous = _terminate_like_ctrl_c()
    try:
        if args.command in CACHE_COMMANDS:
            _check_cache_root()
        code = int(args.func(args) or 0)
        sys.stdout.flush()  # a closed pipe shows here, not in the interpreter's last flush at exit
        return code
    except BrokenPipeError:
        _stdout_to_devnull()
        return EXIT_BROKEN_PIPE
    except SimECGError as exc:
        if args.debug:
            raise
        print(f"simecg-bench: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as exc:
        print("simecg-bench: interrupted; rerun the same command to resume", file=sys.stderr)
        return 143 if isinstance(exc, Terminated) else 130
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


EXIT_BROKEN_PIPE = 141  # 128 + SIGPIPE


def _check_cache_root() -> None:
    """A ``SIMECG_CACHE`` that is not a folder is one line before any store is touched (nothing is
    created here: a command that fails on its config must leave no cache behind)."""
    root = os.environ.get("SIMECG_CACHE")
    if root and os.path.exists(root) and not os.path.isdir(root):
        from simecg.paths import cache_dir

        cache_dir()  # raises the CacheError that says so


def _stdout_to_devnull() -> None:
    """The reader of stdout went away: send what is left to /dev/null (Python docs, "Note on SIGPIPE")."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):  # no real file descriptor (an in-process capture): nothing to redirect
        pass


def _terminate_like_ctrl_c() -> object:
    """SIGTERM raises :class:`~simecg.errors.Terminated` (a KeyboardInterrupt) in the main thread.

    Returns the previous handler, which :func:`main` puts back when it returns.
    """
    if threading.current_thread() is not threading.main_thread():
        return None

    def handler(signum: int, frame: object) -> None:
        # Only the first SIGTERM raises: a scheduler, torchrun and a parent-death signal may each send
        # one, and a second raise inside the first one's cleanup would leave runs RUNNING.
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        raise Terminated(f"signal {signum}")

    return signal.signal(signal.SIGTERM, handler)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
