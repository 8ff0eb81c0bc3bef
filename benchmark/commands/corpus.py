"""``simecg-bench corpus build|preview NAME``: materialize a pretraining corpus, or look at it.

``build`` writes memory-mapped shards and a manifest (resumable: rerun the same command after
a kill); ``preview`` saves a grid of sample ECGs with their parameters. Corpus options come as
``--set key=value`` (for ``sim``: ``simulator=mixture``, ``weights=ecgsyn=0.7,gaussian=0.3``,
``ecgsyn.noise_mu=0``, ...).
"""

from __future__ import annotations

import argparse
import os


def add_commands(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("corpus", help="materialize or preview a pretraining corpus")
    corpus_sub = parser.add_subparsers(dest="corpus_command", metavar="ACTION")
    corpus_sub.required = True

    build = corpus_sub.add_parser("build", help="write a corpus to memory-mapped shards (resumable, all cores)")
    build.add_argument("name", help="corpus name (see `simecg-bench list corpora`), e.g. sim")
    build.add_argument("--n", type=int, required=True, help="number of ECGs")
    build.add_argument("--out", required=True, help="output folder (rerun the same command to resume)")
    build.add_argument("--seed", type=int, default=0, help="corpus seed (default 0)")
    build.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                       help="corpus option, repeatable (e.g. simulator=gaussian)")
    build.add_argument("--workers", type=int, default=None,
                       help=f"processes (default: all cores, here {os.cpu_count()})")
    build.add_argument("--shard-size", type=int, default=None, help="ECGs per shard file (default 4096)")
    build.set_defaults(func=_build)

    preview = corpus_sub.add_parser("preview", help="save a grid of sample ECGs with their parameters")
    preview.add_argument("name", help="corpus name, e.g. sim")
    preview.add_argument("--out", required=True, help="image file (.png, .pdf, .svg)")
    preview.add_argument("--n", type=int, default=12, help="number of ECGs shown (default 12)")
    preview.add_argument("--size", type=int, default=1_000_000, help="corpus size to sample from")
    preview.add_argument("--seed", type=int, default=0, help="corpus seed (default 0)")
    preview.add_argument("--sample-seed", type=int, default=0, help="seed choosing which ECGs are shown")
    preview.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                         help="corpus option, repeatable")
    preview.set_defaults(func=_preview)


def _build(args: argparse.Namespace) -> int:
    from pretraining.corpora.store import DEFAULT_SHARD_SIZE, build_store
    from simecg.config import parse_set_args

    result = build_store(
        args.name, args.n, args.out, seed=args.seed, options=parse_set_args(args.overrides),
        workers=args.workers, shard_size=args.shard_size or DEFAULT_SHARD_SIZE,
    )
    rate = result.n / result.seconds if result.shards_written and result.seconds > 0 else float("nan")
    print(f"corpus {args.name}: {result.n} ECGs in {result.path} ({result.shards_total} shards: "
          f"{result.shards_written} written, {result.shards_skipped} already there) in {result.seconds:.1f} s"
          + (f" ({rate:.0f} ECGs/s)" if result.shards_skipped == 0 and result.shards_written else ""))
    return 0


def _preview(args: argparse.Namespace) -> int:
    from pretraining.simulators.preview import preview_figure
    from simecg.config import parse_set_args
    from simecg.registries import CORPORA

    corpus = CORPORA.get(args.name)(size=args.size, seed=args.seed, **parse_set_args(args.overrides))
    fig = preview_figure(corpus, n=args.n, seed=args.sample_seed)
    fig.savefig(args.out, dpi=110)
    print(f"wrote {args.out} ({args.n} ECGs of corpus {args.name})")
    return 0
