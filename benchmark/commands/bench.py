"""``simecg-bench bench NAME``: speed benchmarks registered in ``BENCHES``.

A benchmark module registers ``(add_arguments, run)`` as an object with those two callables;
it prints figures and, with ``--json``, ends with one JSON line.
"""

from __future__ import annotations

import argparse

from simecg.registries import BENCHES


def add_commands(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("bench", help="speed benchmarks that print figures")
    bench_sub = parser.add_subparsers(dest="bench", metavar="NAME")
    bench_sub.required = True
    for name, bench in BENCHES.items():
        p = bench_sub.add_parser(name, help=(bench.__doc__ or "").strip().splitlines()[0] if bench.__doc__ else None)
        p.add_argument("--json", action="store_true", help="end with one JSON line of the figures")
        if hasattr(bench, "add_arguments"):
            bench.add_arguments(p)
        p.set_defaults(func=bench.run)
