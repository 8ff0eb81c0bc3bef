"""``simecg-bench generators train vae|gan``: train the generator behind the ``vae``/``gan`` corpus.

Trains the VAE or DCGAN on PTB-XL lead II training records (checkpointed: rerun the same command to
resume after a kill; a generator already in the cache or in a FINISHED MLflow run is not trained
again), logs it to the MLflow experiment ``simecg-bench/generators`` and prints its folder and
fingerprint. ``--set`` takes the corpus options as in ``corpus build``/``pretrain``::

    simecg-bench generators train vae --preset tiny --data-dir ../shared/data
    simecg-bench generators train gan --set pretrain.corpus_options.steps=5000 \
        --set pretrain.corpus_options.generator.batch_size=64
"""

from __future__ import annotations

import argparse
import json
from typing import Any

GENERATED_CORPORA = ("vae", "gan")


def add_commands(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("generators", help="train the VAE / GAN generators of the vae and gan corpora")
    generators_sub = parser.add_subparsers(dest="generators_command", metavar="ACTION")
    generators_sub.required = True
    train = generators_sub.add_parser(
        "train", help="train (or resume, or find) a generator; rerun the same command to resume",
        description="Train the generator of the vae or gan corpus on PTB-XL lead II training records (never a "
        "test record). Rerunning the same command resumes from the last checkpoint; a generator already in "
        "the cache or in a FINISHED MLflow run is not trained again. Generated ECGs are on the z-scored scale.",
    )
    train.add_argument("name", choices=GENERATED_CORPORA, help="the corpus whose generator to train")
    train.add_argument("--preset", choices=("paper", "tiny"), help="generator preset (default: paper)")
    train.add_argument("--data-dir", help="data root holding ptbxl/ (default: $SIMECG_DATA or <cache>/data)")
    train.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                       help="corpus option, repeatable, e.g. --set pretrain.corpus_options.steps=2000 or "
                       "--set pretrain.corpus_options.generator.batch_size=64")
    train.add_argument("--tracking-uri", help="MLflow store (default: $MLFLOW_TRACKING_URI or ./mlruns/mlflow.db)")
    train.add_argument("--no-mlflow", action="store_true", help="do not log to MLflow")
    train.add_argument("--no-progress", action="store_true", help="no progress bar")
    train.add_argument("--json", action="store_true", help="end with one JSON line describing the result")
    train.set_defaults(func=_train)


def generator_corpus(name: str, preset: str | None, data_dir: str | None, overrides: list[str]) -> Any:
    """The ``vae``/``gan`` corpus the arguments describe (flags win over ``--set``)."""
    from benchmark.suites.config import corpus_config, route_set
    from pretraining.config import build_corpus

    settings = route_set(overrides, "corpus")["pretrain"]
    if preset is not None:
        settings["corpus_options.preset"] = preset
    if data_dir is not None:
        settings["corpus_options.data_dir"] = data_dir
    return build_corpus(corpus_config(name, 1_000_000, 0, settings))


def _train(args: argparse.Namespace) -> int:
    from benchmark.run.generators import provision_generator

    corpus = generator_corpus(args.name, args.preset, args.data_dir, args.overrides)
    tracker = None
    if not args.no_mlflow:
        from benchmark.tracking.tracker import Tracker

        tracker = Tracker(args.tracking_uri, suite="generators")
    result = provision_generator(corpus, tracker=tracker, progress=not args.no_progress)
    how = "trained now" if result.trained_now else "already there (cache or MLflow); nothing trained"
    print(f"generator {args.name} ({corpus.options.preset}, {corpus.config.steps} steps): {result.folder} ({how})")
    run = f"  MLflow run: {result.run_id}" if result.run_id else ""
    print(f"fingerprint: {result.identity.fingerprint}{run}")
    print(f"trained on {len(corpus.training_data())} PTB-XL lead II training records, z-scored: generated ECGs "
          "are on the z-scored scale")
    if args.json:
        print(json.dumps({"corpus": args.name, "folder": str(result.folder), "path": str(result.path),
                          "fingerprint": result.identity.fingerprint, "run_id": result.run_id,
                          "trained_now": result.trained_now, "preset": corpus.options.preset,
                          "steps": corpus.config.steps}))
    return 0
