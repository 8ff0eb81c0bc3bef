"""``simecg-bench bench NAME [--json] ...``: speed benchmarks registered in ``BENCHES``.

A benchmark is an object with ``run(args) -> int`` and optionally ``add_arguments(parser)``;
it prints figures and, with ``--json``, ends with one JSON line. Benchmarks are imported only
when one is run: they pull in torch and friends, which would slow every other command's start.
"""

from __future__ import annotations

import argparse

from benchmark.registries import BENCHES


def add_commands(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "bench", help="speed benchmarks that print figures (simulators, pretrain, finetune, baselines, data)",
        description="Run a speed benchmark; `simecg-bench bench NAME --help` shows its options.",
    )
    parser.add_argument("name", help="benchmark name (see `simecg-bench list benchmarks`)")
    parser.add_argument("options", nargs=argparse.REMAINDER, help="the benchmark's own options")
    parser.set_defaults(func=cmd_bench)


def cmd_bench(args: argparse.Namespace) -> int:
    bench = BENCHES.get(args.name)
    doc = (bench.__doc__ or "").strip()
    parser = argparse.ArgumentParser(prog=f"simecg-bench bench {args.name}", description=doc or None)
    parser.add_argument("--json", action="store_true", help="end with one JSON line of the figures")
    if hasattr(bench, "add_arguments"):
        bench.add_arguments(parser)
    return int(bench.run(parser.parse_args(args.options)) or 0)
