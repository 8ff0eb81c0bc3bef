"""``simecg-bench report``: the suite's self-contained HTML report, logged on its invocation run."""

from __future__ import annotations

import argparse

from simecg.outputs import check_output_file

REPORT_SUFFIXES = (".html", ".htm")


def add_commands(sub: argparse._SubParsersAction) -> None:
    report = sub.add_parser(
        "report", help="write a suite's HTML report (leaderboard and plots) and log it on its newest invocation run")
    report.add_argument("--suite", default=None, help="suite name (default: the most recently run suite)")
    report.add_argument("--out", default="report.html",
                        help="the HTML file to write, in an existing folder (default: report.html)")
    report.add_argument("--tracking-uri", default=None, help="MLflow store (default: $MLFLOW_TRACKING_URI or mlruns/)")
    report.add_argument("--no-log", action="store_true",
                        help="only write the file (do not log it on the suite's invocation run)")
    report.add_argument("--metric", choices=("f1", "auroc", "auprc"), default="f1",
                        help="what its leaderboard ranks and compares (default: f1, the paper's); a second board "
                             "shows AUROC (F1 when --metric is auroc or auprc)")
    report.set_defaults(func=cmd_report)


def cmd_report(args: argparse.Namespace) -> int:
    from benchmark.results.report import build_report, log_report, resolve_suite

    check_output_file(args.out, REPORT_SUFFIXES)  # before reading the store
    suite = resolve_suite(args.tracking_uri, args.suite)
    report = build_report(args.tracking_uri, suite, metric=args.metric)
    path = report.write(args.out)
    print(f"report of suite {suite}: {path} ({path.stat().st_size / 1e3:.0f} kB; "
          f"{', '.join(report.sections) or 'no sections: no finished cells yet'})")
    if not args.no_log:
        run_id = log_report(args.tracking_uri, suite, report=report)
        if run_id:
            print(f"logged as report.html on invocation run {run_id}, with the leaderboard as its description")
        else:
            print("no invocation run of the suite to log it on (run `simecg-bench run` first)")
    return 0
