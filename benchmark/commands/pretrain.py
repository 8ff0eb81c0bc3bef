"""``simecg-bench pretrain``: pretrain the MAE encoder on a corpus (rerun the same command to resume).

Works the same under ``torchrun --nproc_per_node N simecg-bench pretrain ...`` (DDP); the
global batch stays ``pretrain.batch_size`` and only rank 0 logs, writes and prints.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
from typing import Any

from simecg.config import apply_overrides, flatten, parse_set_args, to_dict


def add_commands(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "pretrain",
        help="pretrain the MAE encoder on a corpus (resumable; torchrun-ready)",
        description="Pretrain the masked-autoencoder encoder on a registered corpus. Rerunning the same "
        "command resumes from the last checkpoint; a finished run returns at once.",
    )
    p.add_argument("--corpus", help="corpus name (default: sim); see `simecg-bench list corpora`")
    p.add_argument("--preset", help="model preset: paper (default) or tiny")
    p.add_argument("--steps", type=int, help="training steps (default: the paper's 2,000,000)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a pretraining setting, e.g. --set pretrain.batch_size=64 "
                   "--set pretrain.corpus_options.path=DIR (the 'pretrain.' prefix is optional)")
    p.add_argument("--out", type=Path, help="run folder (default: <cache>/encoders/<corpus>-<preset>-<fingerprint>)")
    p.add_argument("--tracking-uri", help="MLflow store (default: $MLFLOW_TRACKING_URI or ./mlruns/mlflow.db)")
    p.add_argument("--no-mlflow", action="store_true", help="do not log to MLflow")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--json", action="store_true", help="end with one JSON line describing the result")
    p.set_defaults(func=run)


def build_config(args: argparse.Namespace) -> Any:
    """The :class:`PretrainConfig` the arguments describe (flags win over ``--set``)."""
    from pretraining.train import PretrainConfig

    overrides: dict[str, Any] = {}
    for key, value in parse_set_args(args.overrides).items():
        overrides[key.removeprefix("pretrain.")] = value
    for key in ("corpus", "preset", "steps"):
        if getattr(args, key) is not None:
            overrides[key] = getattr(args, key)
    return apply_overrides(PretrainConfig(), overrides)


def run(args: argparse.Namespace) -> int:
    from pretraining.train import default_out_dir, fingerprint, pretrain

    config = build_config(args)
    out_dir = args.out or default_out_dir(config)
    is_main = int(os.environ.get("RANK", "0")) == 0
    tracker = run_id = logger = None
    if is_main and not args.no_mlflow:
        from benchmark.tracking import RunLogger, Tracker

        tracker = Tracker(args.tracking_uri, suite="pretrain")
        fp = fingerprint(config)
        tracker.kill_stale(fp)
        run_id = tracker.start_run(
            f"pretrain {config.corpus} {config.preset}",
            tags={"kind": "pretrain", "fingerprint": fp, "corpus": config.corpus, "preset": config.preset,
                  "out_dir": str(out_dir)},
            params=flatten(to_dict(config)),
        )
        logger = RunLogger(tracker, run_id)
    try:
        result = pretrain(config, out_dir, logger=logger, progress=not args.no_progress)
    except BaseException as exc:
        if tracker is not None:
            tracker.end_run(run_id, "KILLED" if isinstance(exc, KeyboardInterrupt) else "FAILED")
        raise
    if tracker is not None:
        tracker.log_metrics(run_id, {"final_val_loss": result.val_loss}, step=result.steps)
        tracker.log_artifact(run_id, result.checkpoint, "encoder")
        tracker.end_run(run_id)
    if is_main:
        print(f"encoder: {result.checkpoint}")
        print(f"steps: {result.steps}  validation loss: {result.val_loss:.4f}")
        if args.json:
            print(json.dumps({"checkpoint": str(result.checkpoint), "val_loss": result.val_loss,
                              "steps": result.steps, "fingerprint": result.fingerprint}))
    return 0
