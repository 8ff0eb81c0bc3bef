"""``simecg-bench bench sim-fidelity --authors DIR``: our ``sim`` corpus against the authors' own generator.

The ``sim`` corpus claims to be SimECG-N as the authors' ``src/prep/SimECG-N/gen_ecg.py`` makes
it (docs/protocol.md). This benchmark checks the claim on distributions: it reads ECGs made by
the authors' generator, run unchanged outside this repository, as a ``folder`` corpus, draws as
many from ``sim``, and compares them on the corpus report's features of z-scored ECGs
(:data:`benchmark.results.corpus_report.FEATURES`: Welch and DCT band powers down to 0.05 Hz, local
noise bursts and level steps, rhythm and beat shape, scale-free amplitude statistics) with the
report's two-sample tests (:func:`benchmark.results.corpus_report.two_sample_test`: MMD² and its
permutation p-value, the Fréchet distance, a classifier two-sample test's AUROC and p-value).

Every pair is read against a null reference measured in the same run: ``sim`` against itself
with the next corpus seed (and, with ``--authors-null``, the authors' generator against itself
with another seed), which shows what "indistinguishable" looks like at this ``--n``. ``--old``
adds ECGs of an earlier simulator (e.g. the code before a change) to show what a real mismatch
looks like. Features are standardised by the authors' sample.

Making the authors' ECGs (their code and config unchanged; it needs numpy, scipy, PyYAML, tqdm)::

    mkdir -p /tmp/authors-simecg /tmp/authors-ecgs/seed7
    git -C SynECG-Pub archive HEAD src/prep/SimECG-N config.yaml | tar -x -C /tmp/authors-simecg
    cd /tmp/authors-simecg/src/prep/SimECG-N && python gen_ecg.py   # seed 7, 1,000 ECGs (n_syn.pt)
    python -c "import pickle, numpy as np; d = '../../../raw_data/syn_ecg-04/'; np.save(
        '/tmp/authors-ecgs/seed7/ecgs.npy', np.concatenate([pickle.load(open(d + f'{k}_seed0007.pkl', 'rb'))
        for k in ('train', 'val')]).astype('float32'))"

(another seed: ``ECGsynthesizer(seed=8, syn_mode="pt").make_dataset()`` from a script in that
folder). Then::

    simecg-bench bench sim-fidelity --authors /tmp/authors-ecgs/seed7 --authors-null /tmp/authors-ecgs/seed8 \\
        --old /tmp/old-sim --n 500
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import numpy as np

ALPHA = 0.01  # a pair is "distinguishable" when either test's p-value is below this
TESTS = ("mmd2", "mmd2_pvalue", "frechet", "c2st_auroc", "c2st_pvalue")


def folder_ecgs(path: Path | str, n: int, seed: int) -> np.ndarray:
    """Up to ``n`` ECGs of the ``folder`` corpus at ``path`` (its ``.npy``/WFDB files), drawn with ``seed``."""
    from benchmark.results.corpus_report import build_named_corpus, sample_indices

    corpus = build_named_corpus("folder", seed, {"corpus_options.path": str(path)})
    return corpus.get_batch(sample_indices(len(corpus), n, seed, "folder"))


def sim_ecgs(n: int, seed: int, overrides: list[str]) -> np.ndarray:
    """``n`` ECGs of the ``sim`` corpus with corpus seed ``seed``, drawn as the corpus report draws them."""
    from benchmark.results.corpus_report import build_named_corpus, sample_indices
    from benchmark.suites.config import route_set

    corpus = build_named_corpus("sim", seed, route_set(overrides, "corpus")["pretrain"])
    return corpus.get_batch(sample_indices(len(corpus), n, seed, "sim"))


def compare(sets: dict[str, np.ndarray], pairs: list[tuple[str, str]], reference: str, seed: int = 0,
            n_permutations: int = 200) -> dict[str, Any]:
    """Feature means of every set and the two-sample tests of every pair, on features standardised by ``reference``.

    Returns ``{"features": {set: {feature: mean}}, "pairs": [{"pair", "n", mmd2, ...}]}``.
    """
    from benchmark.results.corpus_report import FEATURES, FeatureScale, measure, two_sample_test

    features = {name: measure(signals, name, n_jobs=1).features() for name, signals in sets.items()}
    scale = FeatureScale.of(features[reference])
    rows = []
    for a, b in pairs:
        result = two_sample_test(scale(features[a]), scale(features[b]), scale.bandwidth, seed, n_permutations)
        rows.append({"pair": f"{a} vs {b}", "n": [len(features[a]), len(features[b])], **result,
                     "distinguishable": bool(min(result["mmd2_pvalue"], result["c2st_pvalue"]) < ALPHA)})
    means = {name: dict(zip(FEATURES, f.mean(axis=0).tolist(), strict=True)) for name, f in features.items()}
    return {"features": means, "pairs": rows}


def render(result: dict[str, Any]) -> str:
    """The two tables of :func:`compare` as aligned text."""
    names = list(result["features"])
    width = max(len(f) for f in next(iter(result["features"].values())))
    lines = ["feature means (each ECG z-scored; see benchmark.results.corpus_report.FEATURES)",
             " " * width + "".join(f"{name:>14}" for name in names)]
    for feature in result["features"][names[0]]:
        lines.append(f"{feature:<{width}}" + "".join(f"{result['features'][n][feature]:14.4f}" for n in names))
    pair_width = max(len(row["pair"]) for row in result["pairs"])
    lines += ["", f"two-sample tests (features standardised by the authors' sample; distinguishable: a p-value < "
                  f"{ALPHA})", f"{'pair':<{pair_width}}" + "".join(f"{k:>13}" for k in TESTS) + "  verdict"]
    for row in result["pairs"]:
        verdict = "distinguishable" if row["distinguishable"] else "indistinguishable"
        lines.append(f"{row['pair']:<{pair_width}}" + "".join(f"{row[k]:13.4f}" for k in TESTS) + f"  {verdict}")
    return "\n".join(lines)


class SimFidelityBench:
    """Our sim corpus vs ECGs of the authors' SimECG-N generator: feature means and two-sample tests."""

    @staticmethod
    def add_arguments(parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--authors", required=True, help="folder of ECGs made by the authors' generator (.npy)")
        parser.add_argument("--authors-null", default=None,
                            help="folder of ECGs of the authors' generator with another seed (a second null)")
        parser.add_argument("--old", default=None, help="folder of ECGs of an earlier simulator, to compare too")
        parser.add_argument("--n", type=int, default=500, help="ECGs per set (default 500)")
        parser.add_argument("--seed", type=int, default=0, help="sim corpus seed (the null uses seed + 1) and "
                            "sampling seed (default 0)")
        parser.add_argument("--permutations", type=int, default=200, help="MMD permutations (default 200)")
        parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                            help="sim corpus option, e.g. pretrain.corpus_options.gaussian.augment_rate=0")

    @staticmethod
    def run(args: argparse.Namespace) -> int:
        started = time.perf_counter()
        sets = {"authors": folder_ecgs(args.authors, args.n, args.seed),
                "sim": sim_ecgs(args.n, args.seed, args.overrides),
                f"sim-seed{args.seed + 1}": sim_ecgs(args.n, args.seed + 1, args.overrides)}
        pairs = [("authors", "sim"), ("sim", f"sim-seed{args.seed + 1}")]
        if args.authors_null:
            sets["authors-null"] = folder_ecgs(args.authors_null, args.n, args.seed)
            pairs.append(("authors", "authors-null"))
        if args.old:
            sets["old"] = folder_ecgs(args.old, args.n, args.seed)
            pairs.append(("authors", "old"))
        result = compare(sets, pairs, "authors", args.seed, args.permutations)
        print(render(result))
        print(f"({time.perf_counter() - started:.0f} s)")
        if args.json:
            print(json.dumps(result, sort_keys=True))
        return 0
