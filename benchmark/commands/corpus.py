"""``simecg-bench corpus build|preview NAME``: materialize a pretraining corpus, or look at it.

``build`` writes memory-mapped shards and a manifest (resumable: rerun the same command after
a kill); ``preview`` saves a grid of sample ECGs with their parameters. Corpus options use the
``--set`` dialect of ``run`` and ``pretrain`` (suite-config paths), ``pretrain.corpus_options.<key>``,
and are resolved exactly as for pretraining (``PretrainConfig`` + ``build_corpus``)::

    simecg-bench corpus build sim --n 100000 --out DIR --set pretrain.corpus_options.simulator=gaussian
    simecg-bench corpus build sim --n 1000 --out DIR --set pretrain.corpus_options.simulator=mixture \
        --set pretrain.corpus_options.weights=ecgsyn=0.7,gaussian=0.3 --set pretrain.corpus_options.ecgsyn.noise_mu=0
    simecg-bench corpus build folder --n 5000 --out DIR --set pretrain.corpus_options.path=MY_ECGS
    simecg-bench corpus preview sim --out grid.png --set pretrain.corpus_options.gaussian.augment_rate=0

``compare`` is the corpus quality report (:func:`benchmark.results.corpus_report.compare_corpora`)::

    simecg-bench corpus compare sim ecgsyn ptbxl --out REPORT --data-dir ../shared/data
"""

from __future__ import annotations

import argparse
import os

from benchmark.commands.arguments import int_range, positive_int, seed_int
from simecg.outputs import check_output_file, check_output_folder

IMAGE_SUFFIXES = (".png", ".pdf", ".svg")  # what `corpus preview` writes (matplotlib picks the format by it)
MAX_PREVIEW = 100  # ECGs in one preview grid: more makes an image taller than matplotlib can draw

SET_HELP = ("corpus option as its suite-config path, repeatable, e.g. --set pretrain.corpus_options.simulator=gaussian "
            "or --set pretrain.corpus_options.path=DIR")


def add_commands(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("corpus", help="materialize or preview a pretraining corpus")
    corpus_sub = parser.add_subparsers(dest="corpus_command", metavar="ACTION")
    corpus_sub.required = True

    build = corpus_sub.add_parser("build", help="write a corpus to memory-mapped shards (resumable, all cores)")
    build.add_argument("name", help="corpus name (see `simecg-bench list corpora`), e.g. sim")
    build.add_argument("--n", type=positive_int, required=True, help="number of ECGs")
    build.add_argument("--out", required=True, help="output folder, created if absent (rerun the same command to "
                       "resume)")
    build.add_argument("--seed", type=seed_int, default=0, help="corpus seed (default 0)")
    build.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE", help=SET_HELP)
    build.add_argument("--workers", type=positive_int, default=None,
                       help=f"processes (default: all cores, here {os.cpu_count()})")
    build.add_argument("--shard-size", type=positive_int, default=None, help="ECGs per shard file (default 4096)")
    build.set_defaults(func=_build)

    preview = corpus_sub.add_parser("preview", help="save a grid of sample ECGs with their parameters")
    preview.add_argument("name", help="corpus name, e.g. sim")
    preview.add_argument("--out", required=True,
                         help=f"image file ({', '.join(IMAGE_SUFFIXES)}) in an existing folder")
    preview.add_argument("--n", type=int_range(1, MAX_PREVIEW), default=12,
                         help=f"number of ECGs shown (default 12, at most {MAX_PREVIEW})")
    preview.add_argument("--size", type=positive_int, default=1_000_000, help="corpus size to sample from")
    preview.add_argument("--seed", type=seed_int, default=0, help="corpus seed (default 0)")
    preview.add_argument("--sample-seed", type=seed_int, default=0, help="seed choosing which ECGs are shown")
    preview.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                         help=SET_HELP)
    preview.set_defaults(func=_preview)

    compare = corpus_sub.add_parser(
        "compare", help="corpus quality report: heart rate, spectrum, amplitude, distance to held-out PTB-XL",
        description="Sample --n ECGs of each named corpus and report heart rate (neurokit2 R peaks), Welch band "
        "powers, amplitudes and MMD^2 / Frechet distances and two-sample tests (MMD permutation p-value, classifier "
        "AUROC) to held-out PTB-XL test-split ECGs (NaN without PTB-XL data): a table here, "
        "corpus_report.csv/.json and PNG plots in --out, and one MLflow run in experiment "
        "simecg-bench/corpus-report. See benchmark/results/corpus_report.py for every measure.")
    compare.add_argument("names", nargs="+", metavar="NAME", help="corpora to compare, e.g. sim ecgsyn ptbxl vae gan")
    compare.add_argument("--out", required=True,
                         help="folder for corpus_report.csv/.json and the PNG plots (created if absent)")
    compare.add_argument("--n", type=int, default=1000,  # check_request says what is wrong, in one line
                         help="ECGs sampled per corpus (default 1000, at least 10)")
    compare.add_argument("--seed", type=seed_int, default=0, help="corpus seed and sampling seed (default 0)")
    compare.add_argument("--data-dir", default=None,
                         help="data root holding ptbxl/ (default: $SIMECG_DATA or the cache): the held-out "
                         "reference and corpora of real data read it")
    compare.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                         help="corpus option, repeatable: pretrain.corpus_options.KEY=VALUE goes to every named "
                         "corpus having KEY, sources.NAME.corpus_options.KEY=VALUE to corpus NAME only "
                         "(as in run), e.g. "
                         "--set sources.folder.corpus_options.path=DIR")
    compare.add_argument("--tracking-uri", default=None,
                         help="MLflow store (default: $MLFLOW_TRACKING_URI or ./mlruns/mlflow.db)")
    compare.add_argument("--no-mlflow", action="store_true", help="do not log to MLflow")
    compare.add_argument("--format", choices=("table", "csv", "json"), default="table",
                         help="how the table is printed (default: table)")
    compare.set_defaults(func=_compare)


def _build(args: argparse.Namespace) -> int:
    from benchmark.corpora.store import DEFAULT_SHARD_SIZE, build_store
    from benchmark.suites.config import corpus_config, route_set

    config = corpus_config(args.name, args.n, args.seed, route_set(args.overrides, "corpus")["pretrain"])
    check_output_folder(args.out)
    result = build_store(config, args.out, workers=args.workers, shard_size=args.shard_size or DEFAULT_SHARD_SIZE)
    rate = result.n / result.seconds if result.shards_written and result.seconds > 0 else float("nan")
    print(f"corpus {args.name}: {result.n} ECGs in {result.path} ({result.shards_total} shards: "
          f"{result.shards_written} written, {result.shards_skipped} already there) in {result.seconds:.1f} s"
          + (f" ({rate:.0f} ECGs/s)" if result.shards_skipped == 0 and result.shards_written else ""))
    return 0


def _preview(args: argparse.Namespace) -> int:
    from benchmark.suites.config import corpus_config, route_set
    from pretraining.config import build_corpus
    from pretraining.simulators.preview import preview_figure

    config = corpus_config(args.name, args.size, args.seed, route_set(args.overrides, "corpus")["pretrain"])
    check_output_file(args.out, IMAGE_SUFFIXES)
    corpus = build_corpus(config)
    n = min(args.n, len(corpus))
    fig = preview_figure(corpus, n=n, seed=args.sample_seed)
    fig.savefig(args.out, dpi=110)
    print(f"wrote {args.out} ({n} ECGs of corpus {args.name})")
    return 0


def _compare(args: argparse.Namespace) -> int:
    from benchmark.results.corpus_report import check_request, compare_corpora, render
    from benchmark.suites.config import corpus_config, route_set
    from pretraining.config import PretrainConfig

    names = check_request(args.names, args.n)  # all cheap, before opening the MLflow store
    for name, settings in route_set(args.overrides, "corpora", names).items():
        corpus_config(name, PretrainConfig().corpus_size, args.seed, settings)  # each corpus's options
    check_output_folder(args.out)
    tracker = None
    if not args.no_mlflow:
        from benchmark.tracking.tracker import Tracker

        tracker = Tracker(args.tracking_uri, suite="corpus-report")
    frame = compare_corpora(args.names, args.n, args.seed, args.out, data_dir=args.data_dir,
                            overrides=args.overrides, tracker=tracker)
    print(render(frame, args.format))
    if args.format == "table":
        print(f"wrote {args.out}/corpus_report.csv, .json and plots in {frame.attrs.get('seconds', 0):.1f} s"
              + ("" if tracker is None else f" (MLflow experiment simecg-bench/corpus-report in {tracker.uri})"))
    return 0
