"""``simecg-bench protocol``: the fidelity table of a suite (:mod:`benchmark.results.fidelity`)."""

from __future__ import annotations

import argparse
import csv
import io
import json

from benchmark.commands.arguments import add_include_path
from simecg.config import parse_set_args

FORMATS = ("table", "markdown", "csv", "json")


def add_commands(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "protocol", help="every protocol point: the authors' value and file, ours, and the option that switches it",
        description="The fidelity table of a suite: for each protocol point, what the authors' code does, what a "
                    "run of this suite does (its resolved config, --set included), and the option that switches it.")
    parser.add_argument("--suite", default="paper", help="suite name or TOML path (default: paper)")
    parser.add_argument("--corpus", type=lambda t: [c.strip() for c in t.split(",") if c.strip()], default=None,
                        help="pretraining sources, as for run")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override a config value, as for run (the table then shows what changed)")
    parser.add_argument("--format", choices=FORMATS, default="table", help="output format (default: table)")
    add_include_path(parser)
    parser.set_defaults(func=cmd_protocol)


def cmd_protocol(args: argparse.Namespace) -> int:
    from benchmark.data.tasks import include_tasks
    from benchmark.results.fidelity import COLUMNS, as_markdown, fidelity_rows
    from benchmark.suites.config import load_suite

    include_tasks(*args.include_path)
    suite = load_suite(args.suite, parse_set_args(args.set), corpora=args.corpus)
    rows = fidelity_rows(suite)
    if args.format == "json":
        print(json.dumps(rows, indent=2))
    elif args.format == "csv":
        out = io.StringIO()
        writer = csv.DictWriter(out, fieldnames=list(COLUMNS), lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
        print(out.getvalue(), end="")
    elif args.format == "markdown":
        print(as_markdown(rows))
    else:
        print(as_text(rows))
    return 0


def as_text(rows: list[dict[str, str]]) -> str:
    """The table for a terminal: one block per area, each point on a line, options below it."""
    lines: list[str] = []
    area = None
    for row in rows:
        if row["area"] != area:
            area = row["area"]
            lines.append(f"\n{area}")
        mark = {"as authors": "=", "deviation": "~", "differs": "!"}[row["status"]]
        lines.append(f"  {mark} {row['point']}: ours {row['ours']}; authors {row['authors']} ({row['authors_file']})")
        if row["option"] and row["status"] != "as authors":
            lines.append(f"      {row['status']}; authors' value: {row['option']}")
        elif row["option"]:
            lines.append(f"      option: {row['option']}")
    counts = {s: sum(r["status"] == s for r in rows) for s in ("as authors", "deviation", "differs")}
    lines.append(f"\n{len(rows)} points: {counts['as authors']} as the authors' code (=), {counts['deviation']} "
                 f"declared deviations (~), {counts['differs']} moved by this suite or --set (!)")
    return "\n".join(lines).lstrip("\n")
