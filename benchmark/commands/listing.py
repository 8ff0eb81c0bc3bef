"""``simecg-bench list corpora|baselines|tasks|suites|simulators|benchmarks``."""

from __future__ import annotations

import argparse
import json

from benchmark.registries import ALL


def add_commands(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("list", help="list registered corpora, baselines, tasks, suites, ...")
    parser.add_argument("kind", choices=sorted(ALL), help="what to list")
    parser.add_argument("--data-dir", default=None, help="tasks: count positives/negatives found in this data root")
    parser.add_argument("--json", action="store_true", help="print JSON")
    parser.set_defaults(func=cmd_list)


def describe(kind: str, name: str, entry: object) -> str:
    """One line saying what a registry entry is."""
    if kind == "tasks":
        return getattr(entry, "description", "") or f"{entry.label} vs {', '.join(entry.negative)}"  # type: ignore[attr-defined]
    if kind == "suites":
        from benchmark.suites.config import load_suite

        suite = load_suite(name)
        return f"[{suite.experiment or 'ours'}] {suite.question or suite.description}"
    if kind == "baselines":
        text = entry.describe()  # type: ignore[attr-defined]
        if getattr(entry, "kind", "") == "neural":
            text = f"{entry.count_parameters():>10,} params  {text}"  # type: ignore[attr-defined]
        else:
            text = f"{'estimator':>17}  {text}"
        return text
    doc = (getattr(entry, "__doc__", None) or "").strip().splitlines()
    return doc[0] if doc else ""


def cmd_list(args: argparse.Namespace) -> int:
    registry = ALL[args.kind]
    if args.kind == "tasks" and args.data_dir:
        from benchmark.data.tasks import task_summary

        frame = task_summary(args.data_dir)
        print(frame.to_json(orient="records", indent=2) if args.json else frame.to_string(index=False))
        return 0
    rows = [{"name": name, "description": describe(args.kind, name, entry)} for name, entry in registry.items()]
    if args.json:
        print(json.dumps(rows, indent=2))
    else:
        width = max((len(r["name"]) for r in rows), default=0)
        for row in rows:
            print(f"{row['name']:<{width}}  {row['description']}")
    return 0
