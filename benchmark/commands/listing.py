"""``simecg-bench list [KIND]``: a registry's entries (corpora, baselines, tasks, suites, ...), or
(no kind) every registry with its entry-point group and the contract its entries keep."""

from __future__ import annotations

import argparse
import json

from benchmark.commands.arguments import add_include_path
from benchmark.registries import ALL


def add_commands(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("list", help="list the registries, or the entries of one: corpora, baselines, tasks, ...")
    parser.add_argument("kind", nargs="?", choices=sorted(ALL), help="what to list (default: the registries)")
    parser.add_argument("--data-dir", default=None, help="tasks: count positives/negatives found in this data root")
    parser.add_argument("--parameters", action="store_true",
                        help="baselines: count each default model's trainable parameters (builds them: seconds)")
    add_include_path(parser)
    parser.add_argument("--json", action="store_true", help="print JSON")
    parser.set_defaults(func=cmd_list)


def cmd_list(args: argparse.Namespace) -> int:
    from benchmark import catalog
    from benchmark.data.tasks import include_tasks

    if args.include_path:
        include_tasks(*args.include_path)
    if args.kind is None:
        _print_overview(catalog.overview(), args.json)
        return 0
    if args.kind == "tasks" and args.data_dir:
        from benchmark.data.tasks import task_summary

        frame = task_summary(args.data_dir)
        print(frame.to_json(orient="records", indent=2) if args.json else frame.to_string(index=False))
        return 0
    rows = catalog.entries(args.kind, parameters=args.parameters)
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    width = max((len(r["name"]) for r in rows), default=0)
    for row in rows:
        text = row["description"]
        if "parameters" in row:
            count = "estimator" if row["parameters"] is None else f"{row['parameters']:,} params"
            text = f"{count:>17}  {text}"
        if row.get("source"):
            text += f"  (from {row['source']})"
        print(f"{row['name']:<{width}}  {text}")
    return 0


def _print_overview(rows: list[dict], as_json: bool) -> None:
    if as_json:
        print(json.dumps(rows, indent=2))
        return
    width = max(len(r["kind"]) for r in rows)
    group = max(len(r["group"]) for r in rows) + 2
    for row in rows:
        print(f"{row['kind']:<{width}}  {row['entries']:>3}  {'[' + row['group'] + ']':<{group}}  {row['contract']}")
    print("\n`simecg-bench list KIND` lists one kind's entries; a package adds its own through the entry-point "
          "group in brackets (README, 'Registries').")
