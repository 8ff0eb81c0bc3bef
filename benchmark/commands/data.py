"""``simecg-bench data check DIR`` and ``simecg-bench data download NAME [--dir DIR] [--mirror URL]``."""

from __future__ import annotations

import argparse


def add_commands(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("data", help="check or download the downstream datasets")
    data_sub = parser.add_subparsers(dest="data_command", metavar="ACTION")
    data_sub.required = True

    check = data_sub.add_parser("check", help="validate a data folder: one line per problem record and a summary")
    check.add_argument("dir", help="a dataset folder (ptbxl/, g12ec/, cpsc2018/) or a root holding them")
    check.add_argument("--format", choices=("text", "csv", "json"), default="text",
                       help="text (problems + summary), or every record as csv/json")
    check.set_defaults(func=_check)

    download = data_sub.add_parser("download", help="download datasets from PhysioNet (resumable, SHA-256 checked)")
    download.add_argument("name", choices=("ptbxl", "g12ec", "cpsc2018", "all"))
    download.add_argument("--dir", default=None, help="data root (default: $SIMECG_DATA or <cache>/data)")
    download.add_argument("--mirror", default=None, help="base URL replacing https://physionet.org")
    download.add_argument("--workers", type=int, default=4, help="parallel downloads")
    download.set_defaults(func=_download)


def _check(args: argparse.Namespace) -> int:
    from benchmark.datacheck import check_folder

    report = check_folder(args.dir)
    if args.format == "csv":
        print(report.to_frame().to_csv(index=False), end="")
    elif args.format == "json":
        print(report.to_frame().to_json(orient="records"))
    else:
        for record in report.problems():
            print(f"{record.file}: {record.status}: {'; '.join(record.reasons)}")
        print(report.summary())
    return 0 if report.usable else 1


def _download(args: argparse.Namespace) -> int:
    from benchmark.download import download

    download(args.name, args.dir, mirror=args.mirror, workers=args.workers)
    return 0
