"""``simecg-bench data check DIR`` and ``simecg-bench data download NAME [--dir DIR] [--mirror URL]``."""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING

from benchmark.commands.arguments import positive_int
from simecg.outputs import check_output_folder

if TYPE_CHECKING:
    from benchmark.data.datacheck import CheckReport

CHECK_EXIT_CODES = """exit codes:
  0  clean: no record is rejected (records read with a documented repair count as clean)
  1  not clean: some records are rejected (runs leave them out); with --usable, 1 only when
     no record can be used at all
  2  the folder cannot be checked (missing, or no ECG records in it)"""


def add_commands(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("data", help="check or download the downstream datasets")
    data_sub = parser.add_subparsers(dest="data_command", metavar="ACTION")
    data_sub.required = True

    check = data_sub.add_parser(
        "check", help="validate a data folder: one line per problem record and a summary",
        description="Check every record of a data folder as a run reads it: one line per rejected or repaired "
        "record, a summary, and a verdict. The exit code says whether the folder is clean; --usable asks "
        "instead whether a run can use it (rejected records are left out of every task).",
        epilog=CHECK_EXIT_CODES, formatter_class=argparse.RawDescriptionHelpFormatter)
    check.add_argument("dir", help="a dataset folder (ptbxl/, g12ec/, cpsc2018/) or a root holding them")
    check.add_argument("--format", choices=("text", "csv", "json"), default="text",
                       help="text (problems + summary), or every record as csv/json (the verdict goes to stderr)")
    check.add_argument("--usable", action="store_true",
                       help="exit 0 when the folder can be used despite rejected records (at least one record "
                       "is usable), 1 only when none is")
    check.set_defaults(func=_check)

    download = data_sub.add_parser("download", help="download datasets from PhysioNet (resumable, SHA-256 checked)")
    download.add_argument("name", choices=("ptbxl", "g12ec", "cpsc2018", "all"))
    download.add_argument("--dir", default=None, help="data root (default: $SIMECG_DATA or <cache>/data)")
    download.add_argument("--mirror", default=None, help="base URL replacing https://physionet.org")
    download.add_argument("--workers", type=positive_int, default=4, help="parallel downloads")
    download.set_defaults(func=_download)


def _check(args: argparse.Namespace) -> int:
    from benchmark.data.datacheck import check_folder

    report = check_folder(args.dir)
    verdict, code = check_verdict(report, usable_is_enough=args.usable)
    if args.format == "csv":
        print(report.to_frame().to_csv(index=False), end="")
    elif args.format == "json":
        print(report.to_frame().to_json(orient="records"))
    else:
        for record in report.problems():
            print(f"{record.file}: {record.status}: {'; '.join(record.reasons)}")
        for line in report.length_lines():
            print(line)
        print(report.summary())
        if report.duplicates:
            print(report.duplicates_summary())
            for files in report.duplicates:
                print(f"  identical signals: {', '.join(files)}")
    print(verdict, file=sys.stdout if args.format == "text" else sys.stderr)
    return code


def check_verdict(report: CheckReport, usable_is_enough: bool = False) -> tuple[str, int]:
    """The verdict line of ``data check`` and its exit code (see :data:`CHECK_EXIT_CODES`): 0 clean,
    1 some record rejected; with ``usable_is_enough``, 1 only when no record can be used."""
    counts = report.counts
    total = sum(counts.values())
    rejected = counts["rejected"]
    if not rejected:
        return f"clean: all {total} records can be used", 0
    if not report.usable:
        return f"not usable: all {total} records are rejected", 1
    if usable_is_enough:
        return (f"usable: {total - rejected} of {total} records can be used ({rejected} rejected, left out of "
                "every task)"), 0
    return (f"not clean: {rejected} of {total} records rejected (runs leave them out); "
            "--usable exits 0 when the folder is usable despite them"), 1


def _download(args: argparse.Namespace) -> int:
    from benchmark.data.download import download

    if args.dir is not None:
        check_output_folder(args.dir, "--dir")
    download(args.name, args.dir, mirror=args.mirror, workers=args.workers)
    return 0
