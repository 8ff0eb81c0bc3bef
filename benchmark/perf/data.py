"""``simecg-bench bench data``: task listing, first (WFDB) and cached (memory-mapped) task loads.

Prints, for one task: the time of ``task_summary`` over all 26 tasks (labels only), the first
load into a fresh cache (reads and checks every record of the dataset on that lead, then the
task's windows), the cached load (no WFDB file read), and, as a reference measured in the same
run, plain ``wfdb.rdrecord`` over the same records. Defaults: ``ptbxl/AFIB`` on lead II from
``$SIMECG_DATA`` (or ``--data-dir``).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from benchmark.registries import DATASETS, TASKS
from simecg import paths


class DataLoadBench:
    """Seconds to list tasks, load a task the first time and from the cache (issue 4)."""

    @staticmethod
    def add_arguments(parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--data-dir", default=None, help="data root (default: $SIMECG_DATA or <cache>/data)")
        parser.add_argument("--task", default="ptbxl/AFIB", help="task to load (default ptbxl/AFIB)")
        parser.add_argument("--lead", default="II")

    @staticmethod
    def run(args: argparse.Namespace) -> int:
        from benchmark.data.tasks import load_task, task_summary

        t0 = time.perf_counter()
        summary = task_summary(args.data_dir)
        t_summary = time.perf_counter() - t0
        with tempfile.TemporaryDirectory(prefix="simecg-bench-data-") as cache:
            t0 = time.perf_counter()
            data = load_task(args.task, args.data_dir, args.lead, Path(cache))
            t_first = time.perf_counter() - t0
            t0 = time.perf_counter()
            again = load_task(args.task, args.data_dir, args.lead, Path(cache))
            float(again.signals[-1].sum())  # touch the memmap
            t_cached = time.perf_counter() - t0
        dataset = DATASETS.get(TASKS.get(args.task).dataset)
        index = dataset.index(args.data_dir if args.data_dir else _default())
        t_wfdb, n_wfdb = _wfdb_reference(index)
        figures = {
            "task": args.task, "lead": args.lead, "records": data.n_records, "windows": data.n_windows,
            "dataset_records": len(index), "task_summary_s": round(t_summary, 3), "first_load_s": round(t_first, 3),
            "cached_load_s": round(t_cached, 4), "wfdb_rdrecord_s": round(t_wfdb, 3), "wfdb_records": n_wfdb,
            "tasks_available": int(summary["available"].sum()),
        }
        print(f"task_summary ({len(summary)} tasks, labels only): {t_summary:.3f} s")
        print(f"{args.task} lead {args.lead}: {data.n_records} records, {figures['windows']} windows "
              f"(dataset: {len(index)} records)")
        print(f"first load (read + check + cache): {t_first:.3f} s")
        print(f"cached load (memory-mapped):        {t_cached:.4f} s  ({t_first / max(t_cached, 1e-9):.0f}x faster)")
        print(f"reference: wfdb.rdrecord on {n_wfdb} records of the dataset: {t_wfdb:.3f} s")
        if args.json:
            print(json.dumps(figures))
        return 0


def _default() -> Path:
    return paths.data_dir()


def _wfdb_reference(index) -> tuple[float, int]:
    """Seconds for wfdb.rdrecord on every record whose header wfdb accepts as-is."""
    import wfdb

    t0 = time.perf_counter()
    n = 0
    for files in index["files"]:
        if not str(files[0]).endswith(".hea"):
            continue
        try:
            wfdb.rdrecord(str(files[0])[:-4])
            n += 1
        except Exception:  # noqa: BLE001 - the quirky headers wfdb rejects are skipped in the reference
            continue
    return time.perf_counter() - t0, n


