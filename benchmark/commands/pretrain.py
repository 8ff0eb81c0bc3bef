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

from benchmark.commands.arguments import positive_int
from simecg.config import apply_overrides
from simecg.outputs import check_output_folder


def add_commands(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "pretrain",
        help="pretrain the MAE encoder on a corpus (resumable; torchrun-ready)",
        description="Pretrain the masked-autoencoder encoder on a registered corpus. Rerunning the same "
        "command resumes from the last checkpoint; a finished run returns at once.",
    )
    p.add_argument("--corpus", help="corpus name (default: sim); see `simecg-bench list corpora`")
    p.add_argument("--preset", help="model preset: paper (default) or tiny")
    p.add_argument("--steps", type=positive_int, help="training steps (default: the paper's 2,000,000)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a pretraining setting with the keys `run` uses, e.g. --set pretrain.batch_size=64 "
                   "--set pretrain.corpus_options.path=DIR")
    p.add_argument("--data-dir", help="where corpora of real data (ptbxl, vae, gan) find it, as in `run`")
    p.add_argument("--suite", help="start from this suite's [pretrain] settings (name or TOML file), so "
                   "`simecg-bench run --suite` with the same --corpus and --set reuses the encoder")
    p.add_argument("--out", type=Path, help="run folder (default: <cache>/encoders/<fingerprint>, the cache "
                   "`simecg-bench run` reuses encoders from)")
    p.add_argument("--tracking-uri", help="MLflow store (default: $MLFLOW_TRACKING_URI or ./mlruns/mlflow.db)")
    p.add_argument("--no-mlflow", action="store_true", help="do not log to MLflow")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--json", action="store_true", help="end with one JSON line describing the result")
    p.set_defaults(func=run)


def build_config(args: argparse.Namespace) -> Any:
    """The :class:`PretrainConfig` the arguments describe (flags win over ``--set``, ``--set`` over ``--suite``).

    ``--set`` keys are suite-config paths, as in ``run``: ``pretrain.<field>``, corpus options as
    ``pretrain.corpus_options.<key>`` (:func:`benchmark.suites.config.route_set`). The corpus
    options are resolved here once, so a wrong one fails before anything starts.
    """
    from benchmark.suites.config import route_set
    from pretraining.config import PretrainConfig, check_pretraining, corpus_options

    overrides: dict[str, Any] = route_set(args.overrides, "pretrain")["pretrain"]
    for key in ("corpus", "preset", "steps"):
        if getattr(args, key) is not None:
            overrides[key] = getattr(args, key)
    base, suite = PretrainConfig(), None
    if getattr(args, "suite", None):
        from benchmark.suites.config import load_suite

        suite = load_suite(args.suite)
        base = suite.pretrain
    if getattr(args, "data_dir", None):
        overrides["data_dir"] = args.data_dir
    config = apply_overrides(base, overrides)
    if suite is not None:  # a corpus that keeps test records out keeps out this suite's (as `run` does)
        from benchmark.suites.config import with_split_settings

        config = with_split_settings(config, suite)
    corpus_options(config)
    check_pretraining(config)
    return config


def run(args: argparse.Namespace) -> int:
    """Provision the encoder: the cache or MLflow may already hold it; else pretrain (or resume) it."""
    from benchmark.run.encoders import provision_encoder

    config = build_config(args)
    if args.out is not None:
        check_output_folder(args.out)
    is_main = int(os.environ.get("RANK", "0")) == 0
    tracker = None
    if not args.no_mlflow:  # every rank looks for a finished run (all fetch it, or none); rank 0 alone logs
        from benchmark.tracking.tracker import Tracker

        tracker = Tracker(args.tracking_uri, suite="pretrain")
    encoder = provision_encoder(config, tracker=tracker, progress=not args.no_progress, out_dir=args.out,
                                suite="pretrain")
    if is_main:
        from pretraining.checkpoint import read

        extra = read(encoder.path).get("extra", {})
        how = "pretrained now" if encoder.trained_now else "already there (cache or MLflow); nothing trained"
        print(f"encoder: {encoder.path} ({how})")
        run = f"  MLflow run: {encoder.run_id}" if encoder.run_id else ""
        print(f"fingerprint: {encoder.identity.fingerprint}{run}")
        print(f"weights of step {extra.get('step')} of {config.steps} ({extra.get('chosen_by')}), "
              f"validation loss {extra.get('val_loss')}")
        if args.json:
            print(json.dumps({"checkpoint": str(encoder.path), "fingerprint": encoder.identity.fingerprint,
                              "run_id": encoder.run_id, "trained_now": encoder.trained_now,
                              "steps": config.steps, "step": extra.get("step"), "chosen_by": extra.get("chosen_by"),
                              "val_loss": extra.get("val_loss")}))
    return 0
