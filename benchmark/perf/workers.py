"""Wall time of 1 worker against N on the same suite and machine: do workers share the cores well?

``python -m benchmark.perf.workers --workers 1,2,4`` runs the suite once to warm the cache (the
encoder and the task data: the comparison is about cells), then, for each N, N unsharded
``simecg-bench run`` processes together on a fresh store, claiming cells dynamically. It prints
per N: wall seconds, cells run by each worker, duplicates and lost cells (both must be 0), and
the speed-up over 1 worker, then the same as JSON (``--json``). Each worker sets its torch
threads to the machine's cores divided by the live workers on it (:func:`benchmark.run.runner.share_cores`).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

DEFAULT_SET = ["grid.tasks=demo/af,demo/wide_qrs,demo/tachycardia", "grid.models=resnet18-1d", "grid.seeds=1,2,3,4",
               "finetune.max_epochs=10", "finetune.eval_every=2", "finetune.patience=100"]


def _command(suite: str, sets: list[str], uri: str, storage: str) -> list[str]:
    args = [sys.executable, "-m", "benchmark.cli", "run", "--suite", suite, "--no-progress", "--format", "csv",
            "--tracking-uri", uri, "--optuna-storage", storage]
    for item in sets:
        args += ["--set", item]
    return args


def run_workers(n: int, suite: str, sets: list[str], cache: Path, folder: Path) -> dict[str, Any]:
    """``n`` workers on a fresh store in ``folder``: wall time and what each ran."""
    import mlflow

    folder.mkdir(parents=True)
    uri, storage = f"sqlite:///{folder / 'mlflow.db'}", f"sqlite:///{folder / 'optuna.db'}"
    env = {**os.environ, "SIMECG_CACHE": str(cache)}
    env.pop("OMP_NUM_THREADS", None)
    started = time.perf_counter()
    processes = [subprocess.Popen(_command(suite, sets, uri, storage), env=env, stdout=subprocess.DEVNULL,
                                  stderr=subprocess.PIPE, text=True) for _ in range(n)]
    errors = [p.communicate()[1] for p in processes]
    seconds = time.perf_counter() - started
    failed = [e[-2000:] for p, e in zip(processes, errors, strict=True) if p.returncode != 0]
    ran = [int(e.split(" ran,")[0].rsplit(" ", 1)[1]) if " ran," in e else 0 for e in errors]
    client = mlflow.tracking.MlflowClient(uri)
    experiment = client.get_experiment_by_name(f"simecg-bench/{suite}")
    runs = client.search_runs([experiment.experiment_id], "tags.kind = 'cell' and attributes.status = 'FINISHED'",
                              max_results=10000) if experiment else []
    fingerprints = [r.data.tags["fingerprint"] for r in runs]
    return {"workers": n, "seconds": round(seconds, 1), "ran_per_worker": ran, "cells_finished": len(set(fingerprints)),
            "duplicated": len(fingerprints) - len(set(fingerprints)), "failed_workers": failed}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmark.perf.workers", description=__doc__.split("\n\n")[0])
    parser.add_argument("--workers", default="1,2,4", help="worker counts to compare (default: 1,2,4)")
    parser.add_argument("--suite", default="demo")
    parser.add_argument("--set", action="append", default=None, metavar="KEY=VALUE",
                        help=f"suite overrides (default: {' '.join(DEFAULT_SET)})")
    parser.add_argument("--json", action="store_true", help="also print the figures as JSON")
    args = parser.parse_args(argv)
    counts = [int(n) for n in args.workers.split(",")]
    sets = args.set if args.set is not None else DEFAULT_SET
    with tempfile.TemporaryDirectory(prefix="simecg-workers-") as tmp:
        root = Path(tmp)
        cache = root / "cache"
        warm = run_workers(1, args.suite, sets, cache, root / "warm-up")
        expected = warm["cells_finished"]
        print(f"warm-up (cache filled, not counted): {warm['seconds']} s, {expected} cells; "
              f"{os.cpu_count()} cores, load {os.getloadavg()[0]:.2f}")
        rows = [run_workers(n, args.suite, sets, cache, root / f"workers-{n}") for n in counts]
    base = next((r["seconds"] for r in rows if r["workers"] == 1), None)
    for row in rows:
        row["lost"] = expected - row["cells_finished"]
        row["speedup_vs_1"] = round(base / row["seconds"], 2) if base else None
        print(f"{row['workers']} worker(s): {row['seconds']:7.1f} s  ran per worker {row['ran_per_worker']}  "
              f"duplicated {row['duplicated']}  lost {row['lost']}  speed-up vs 1: {row['speedup_vs_1']}"
              + (f"  FAILED: {row['failed_workers']}" if row["failed_workers"] else ""))
    if args.json:
        print(json.dumps({"cells": expected, "rows": rows}, indent=2))
    return 0 if all(not r["failed_workers"] and not r["duplicated"] and not r["lost"] for r in rows) else 1


if __name__ == "__main__":
    raise SystemExit(main())
