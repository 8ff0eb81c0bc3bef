"""Argument types shared by the commands: counts, seeds, ports and name lists, checked by argparse.

A count of ECGs, workers or steps that is zero or negative cannot mean anything; argparse refuses
it while parsing (``argument --n: must be a positive integer, got -3``, exit code 2), before any
import of torch or MLflow and before anything is written.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable

from simecg.config import SEED_BOUND


def _integer(text: str, what: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be {what}, got {text!r}") from None


def int_range(lowest: int, highest: int | None = None, what: str | None = None) -> Callable[[str], int]:
    """An argparse type accepting integers from ``lowest`` to ``highest`` (inclusive; None: no limit)."""
    if what is None:
        what = f"an integer >= {lowest}" if highest is None else f"an integer from {lowest} to {highest}"

    def parse(text: str) -> int:
        value = _integer(text, what)
        if value < lowest or (highest is not None and value > highest):
            raise argparse.ArgumentTypeError(f"must be {what}, got {value}")
        return value

    parse.__name__ = "integer"  # argparse shows "invalid integer value" if the type itself fails
    return parse


positive_int = int_range(1, what="a positive integer")
non_negative_int = int_range(0, what="an integer >= 0")
seed_int = int_range(0, SEED_BOUND - 1, f"a seed: an integer from 0 to {SEED_BOUND - 1}")
port_int = int_range(1, 65535, "a TCP port from 1 to 65535")


def name_list(text: str) -> list[str]:
    """``"sim, ptbxl"`` -> ``["sim", "ptbxl"]``; a list naming nothing (``","``) is refused."""
    names = [part.strip() for part in text.split(",") if part.strip()]
    if not names:
        raise argparse.ArgumentTypeError(f"must name at least one, comma-separated, got {text!r}")
    return names


def add_include_path(parser: argparse.ArgumentParser) -> None:
    """``--include-path PATH`` (repeatable): tasks of a user's task file, or of every ``*.toml`` in a folder."""
    parser.add_argument("--include-path", action="append", default=[], metavar="PATH",
                        help="add the tasks of a task file, or of every *.toml file in a folder (the schema of "
                             "benchmark/data/tasks.toml; README 'Adding tasks'); repeatable")
