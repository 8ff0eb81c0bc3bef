"""``simecg-bench list [corpora|baselines|tasks|suites|simulators|benchmarks|...]``: a registry's
entries, or (no kind) every registry with its entry-point group and the contract its entries keep."""

from __future__ import annotations

import argparse
import json

from benchmark.registries import ALL


def add_commands(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("list", help="list registered corpora, baselines, tasks, suites, ...")
    parser.add_argument("kind", nargs="?", choices=sorted(ALL),
                        help="what to list (none: every registry, its entry-point group and contract)")
    parser.add_argument("--data-dir", default=None, help="tasks: count positives/negatives found in this data root")
    parser.add_argument("--json", action="store_true", help="print JSON")
    parser.set_defaults(func=cmd_list)


def describe(kind: str, name: str, entry: object) -> str:
    """One line saying what a registry entry is."""
    if kind == "tasks":
        return getattr(entry, "description", "") or f"{entry.label} vs {', '.join(entry.negative)}"  # type: ignore[attr-defined]
    if kind == "suites":
        from benchmark.suites.config import load_suite

        return load_suite(name).description
    if kind == "baselines":
        text = entry.describe()  # type: ignore[attr-defined]
        if getattr(entry, "kind", "") == "neural":
            text = f"{entry.count_parameters():>10,} params  {text}"  # type: ignore[attr-defined]
        else:
            text = f"{'estimator':>17}  {text}"
        return text
    doc = (getattr(entry, "__doc__", None) or "").strip().splitlines()
    return doc[0] if doc else ""


def registries() -> list[dict[str, object]]:
    """One row per registry: its kind, entries, the entry-point group plugins add to, the contract."""
    return [{"kind": kind, "entries": len(registry.names()), "entry_points": registry.group or "",
             "contract": registry.contract_doc or registry.contract or ""} for kind, registry in sorted(ALL.items())]


def cmd_list(args: argparse.Namespace) -> int:
    if args.kind is None:
        rows = registries()
        if args.json:
            print(json.dumps(rows, indent=2))
            return 0
        width = max(len(str(r["kind"])) for r in rows)
        for row in rows:
            print(f"{row['kind']:<{width}}  {row['entries']:>4} entries  [{row['entry_points']}]  {row['contract']}")
        print("`simecg-bench list KIND` lists one registry's entries; a package adds entries through the "
              "entry-point group in brackets")
        return 0
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
