"""``simecg-bench bench listing``: wall seconds of every ``simecg-bench list`` kind, each in a fresh process.

A user waits for the whole command, interpreter start-up and imports included, so each kind runs
as ``python -m benchmark.cli list KIND`` in a new process (``--repeat`` times; the median counts).
The reference, measured in the same run, is ``simecg-bench --help``: the start-up no command can
beat. Target (issue 18): every kind under 2 s. The load average is printed beside the figures,
since other work on the machine slows every process alike.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

from benchmark.registries import ALL

TARGET_S = 2.0


class ListingBench:
    """Seconds of each ``simecg-bench list`` kind in a fresh process, against ``--help`` (issue 18)."""

    @staticmethod
    def add_arguments(parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--repeat", type=int, default=3, help="runs per kind; the median counts (default 3)")
        parser.add_argument("--kinds", default=None,
                            help="comma-separated kinds (default: the overview and every kind of `list`)")

    @staticmethod
    def run(args: argparse.Namespace) -> int:
        kinds = args.kinds.split(",") if args.kinds else ["", *sorted(ALL)]
        reference = _median_seconds(["--help"], args.repeat)
        figures = {kind or "(overview)": _median_seconds(["list", *([kind] if kind else [])], args.repeat)
                   for kind in kinds}
        load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
        print(f"simecg-bench list, median of {args.repeat} fresh processes (load {load:.1f}, "
              f"{os.cpu_count()} cores); reference `simecg-bench --help`: {reference:.2f} s")
        for kind, seconds in figures.items():
            flag = "" if seconds < TARGET_S else f"  over the {TARGET_S:.0f}-s target"
            print(f"  list {kind:<12} {seconds:6.2f} s{flag}")
        if args.json:
            print(json.dumps({"load": round(load, 2), "help_s": round(reference, 3),
                              "list_s": {k: round(v, 3) for k, v in figures.items()}, "target_s": TARGET_S}))
        return 0


def _median_seconds(arguments: list[str], repeat: int) -> float:
    """Median wall seconds of ``python -m benchmark.cli ARGUMENTS`` in a fresh process (it must succeed)."""
    times = []
    for _ in range(max(1, repeat)):
        started = time.perf_counter()
        subprocess.run([sys.executable, "-m", "benchmark.cli", *arguments], check=True, stdout=subprocess.DEVNULL)
        times.append(time.perf_counter() - started)
    return statistics.median(times)
