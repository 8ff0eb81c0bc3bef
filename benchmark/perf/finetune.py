"""``simecg-bench bench finetune``: training throughput on this device, for ``run --dry-run`` estimates.

Figures, each after a warm-up, with the torch thread count stated (fine-tuning: the fastest of a
few rounds, as other jobs on the machine only ever add time):

* per registered neural model (the pretrained MAE and the scratch Transformer per encoder preset,
  ``tiny`` and ``paper``): training samples/s of the shared fine-tuning loop
  (:func:`baselines.training.train_classifier`: batching from numpy, augmentation, forward,
  backward, Adam step) over a few batches of synthetic ``(n, 5000)`` inputs, at batch 256 (or
  ``--batch-size``, or the suite's with ``--suite``), and forward-only samples/s (validation and
  test scoring). The same-run reference is a bare forward+backward+Adam loop over one pre-built
  batch of the same model: ``loop/bare`` is the shared loop's overhead;
* per estimator (XGBoost on ECG features): feature milliseconds per ECG and fit seconds per 1000
  training ECGs, on simulated ECGs (:func:`benchmark.perf.baselines.time_estimator`);
* MAE pretraining samples/s per preset, with the plain-PyTorch reference of ``bench pretrain``
  (:func:`benchmark.perf.pretrain.compare_with_reference`);
* VAE/DCGAN generator training steps/s per preset (the ``vae``/``gan`` corpora train one first).

The figures are merged into ``<cache>/throughput/<device>-<host>.json`` (with the torch version
and thread count), which :mod:`benchmark.planning` reads. Defaults take a few minutes on 2 cores.
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from simecg.signal import N_SAMPLES

ENCODER_PRESETS = ("paper", "tiny")
GENERATOR_KINDS = ("vae", "gan")


@dataclass(frozen=True)
class Variant:
    """A model as a cell builds it: its spec, and for a pretrained model the encoder's pretraining config."""

    key: str
    spec: Any  # baselines.base.ModelSpec
    encoder: Any = None  # pretraining.config.PretrainConfig


def default_variants() -> list[Variant]:
    """Every registered model at its default config; the pretrained MAE and the scratch Transformer per preset."""
    from baselines.base import resolve_model
    from benchmark.planning import speed_key
    from pretraining.config import PretrainConfig
    from simecg.registries import BASELINES

    out = []
    for name in BASELINES.names():
        cls = BASELINES.get(name)
        if cls.variant_field == "corpus":  # pretrained on a corpus: measured per encoder preset
            spec = resolve_model(f"{name}:sim")
            out += [Variant(speed_key(spec, PretrainConfig(preset=p)), spec, PretrainConfig(preset=p))
                    for p in ENCODER_PRESETS]
            continue
        spec = resolve_model(name)
        out.append(Variant(speed_key(spec), spec))
        if "preset" in getattr(cls.Config, "__dataclass_fields__", {}):
            for p in ENCODER_PRESETS:
                variant = resolve_model(name, {name: {"preset": p}})
                out.append(Variant(speed_key(variant), variant))
    return _unique(out)


def suite_variants(suite: Any) -> list[Variant]:
    """The models of a suite's cells, with its ``[baselines.*]`` overrides and its sources' encoder presets."""
    from baselines.base import resolve_model
    from benchmark.cells import enumerate_cells
    from benchmark.planning import speed_key

    out = []
    for model in dict.fromkeys(c.model for c in enumerate_cells(suite)):
        spec = resolve_model(model, suite.baselines)
        corpus = model.split(":", 1)[1] if ":" in model else None
        encoder = suite.source_config(corpus) if corpus else None
        out.append(Variant(speed_key(spec, encoder), spec, encoder))
    return _unique(out)


def _unique(variants: list[Variant]) -> list[Variant]:
    return list({v.key: v for v in variants}.values())


def build_module(variant: Variant) -> Any:
    """The module a cell of ``variant`` trains, with random weights (a pretrained model: its encoder's shape)."""
    if variant.encoder is None:
        return variant.spec.cls.build(variant.spec.config)
    from pretraining.config import model_config
    from pretraining.mae import ECGEncoder, EncoderClassifier

    c = variant.spec.config
    return EncoderClassifier(ECGEncoder(model_config(variant.encoder)), head_width=c.head_width, pooling=c.pooling,
                             freeze_encoder=c.mode == "probe", dropout=c.dropout)


def _fastest(fn: Any, rounds: int) -> float:
    """Seconds of the fastest of ``rounds`` calls of ``fn()`` (other jobs on the machine only ever add time)."""
    times = []
    for _ in range(max(1, rounds)):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def time_finetune(variant: Variant, batch_size: int = 256, steps: int = 2, rounds: int = 2,
                  seed: int = 0) -> dict[str, Any]:
    """Samples/s of ``train_classifier`` and of forward-only scoring, and of a bare training loop (reference).

    Each figure is the fastest of ``rounds`` rounds of ``steps`` batches, after a warm-up.
    """
    import torch

    from baselines.training import TrainConfig, predict_scores, train_classifier

    torch.manual_seed(seed)
    module = build_module(variant)
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((batch_size * steps, N_SAMPLES), dtype=np.float32)
    y = (np.arange(len(x)) % 2).astype(np.float32)
    val = (x[:2], y[:2])  # the one evaluation at the end of the epoch: negligible
    config = TrainConfig(batch_size=batch_size, max_epochs=1, eval_every=1, patience=1)
    train_classifier(module, (x[:batch_size], y[:batch_size]), val, config, seed=seed)  # warm-up
    loop_s = _fastest(lambda: train_classifier(module, (x, y), val, config, seed=seed), rounds) / steps
    predict_s = _fastest(lambda: predict_scores(module, x, batch_size), rounds) / steps

    module.train()
    params = [p for p in module.parameters() if p.requires_grad]
    optimizer = torch.optim.Adam(params, lr=1e-4)
    xb, yb = torch.from_numpy(x[:batch_size]).unsqueeze(1), torch.from_numpy(y[:batch_size])

    def bare() -> None:
        for _ in range(steps):
            loss = torch.nn.functional.binary_cross_entropy_with_logits(module(xb), yb)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()

    bare()  # warm-up (Adam's state)
    bare_s = _fastest(bare, rounds) / steps
    return {
        "model": variant.spec.entry, "kind": "neural", "batch_size": batch_size, "steps": steps, "rounds": rounds,
        "parameters": sum(p.numel() for p in params),
        "train_samples_per_s": round(batch_size / loop_s, 2),
        "predict_samples_per_s": round(batch_size / predict_s, 2),
        "bare_samples_per_s": round(batch_size / bare_s, 2),
        "loop_vs_bare": round(loop_s / bare_s, 3),
    }


def time_estimator_fit(name: str, n_samples: int = 200) -> dict[str, Any]:
    """Feature ms per ECG and fit seconds per 1000 training ECGs (``bench baselines``' measurement)."""
    from benchmark.perf.baselines import time_estimator

    row = time_estimator(name, n_samples)
    n_train = n_samples - max(2, n_samples // 5)
    return {"model": name, "kind": "estimator", "samples": n_samples, "feature_ms_per_ecg": row["feature_ms_per_ecg"],
            "fit_s": row["fit_s"], "fit_s_per_1000": round(row["fit_s"] * 1000 / n_train, 3), "rounds": row["rounds"]}


def time_pretrain(preset_name: str, batch_size: int, steps: int, device: Any) -> dict[str, Any]:
    """MAE pretraining samples/s of a preset, and its step time over a plain PyTorch MAE's (``bench pretrain``)."""
    from benchmark.perf.pretrain import compare_with_reference

    row = compare_with_reference(preset_name, batch_size, 1, steps, device)
    return {"batch_size": batch_size, "samples_per_s": round(row["samples_per_s"], 2),
            "steps_per_s": round(row["samples_per_s"] / batch_size, 4),
            "ratio_vs_reference": round(row["ratio_vs_reference"], 3), "params": row["params"], "device": str(device)}


def time_generator(kind: str, preset_name: str, steps: int = 2) -> dict[str, Any]:
    """Training steps/s of a VAE/DCGAN generator preset at its own batch (synthetic inputs, after a warm-up)."""
    import torch

    from pretraining.generators.common import build_model, preset

    config = preset(kind, preset_name)
    torch.manual_seed(0)
    model = build_model(config)
    model.train()
    optimizers = model.make_optimizers()
    x = torch.randn(config.batch_size, N_SAMPLES)
    model.train_step(x, 0, optimizers, torch.Generator().manual_seed(0))  # warm-up
    start = time.perf_counter()
    for step in range(1, steps + 1):
        model.train_step(x, step, optimizers, torch.Generator().manual_seed(step))
    seconds = (time.perf_counter() - start) / steps
    return {"batch_size": config.batch_size, "steps_per_s": round(1 / seconds, 4),
            "samples_per_s": round(config.batch_size / seconds, 2), "device": "cpu"}


def _names(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


class FinetuneBench:
    """Fine-tuning samples/s per model, MAE pretraining and generator speed; written for `run --dry-run`."""

    @staticmethod
    def add_arguments(parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--only", action="append", metavar="KEY",
                            help="measure only this model (registry name or speed key, e.g. mae@preset=tiny)")
        parser.add_argument("--suite", default=None,
                            help="measure the models of this suite as it configures them, at its batch size "
                                 "(default: every registered model at its default config)")
        parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="--set of the suite")
        parser.add_argument("--batch-size", type=int, default=None,
                            help="fine-tuning batch (default 256, or the suite's with --suite)")
        parser.add_argument("--steps", type=int, default=2, help="training batches per timed round (default 2)")
        parser.add_argument("--rounds", type=int, default=2,
                            help="timed rounds per model; the fastest counts (default 2)")
        parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
        parser.add_argument("--estimator-samples", type=int, default=200,
                            help="simulated ECGs for the estimator fit (default 200)")
        parser.add_argument("--pretrain-presets", default="tiny,paper",
                            help="MAE presets to time pretraining for ('' = none; default tiny,paper)")
        parser.add_argument("--pretrain-steps", type=int, default=2, help="timed pretraining steps (default 2)")
        parser.add_argument("--generator-presets", default="tiny,paper",
                            help="VAE/DCGAN presets to time ('' = none; default tiny,paper)")
        parser.add_argument("--out", default=None,
                            help="throughput file (default <cache>/throughput/<device>-<host>.json)")

    @staticmethod
    def run(args: argparse.Namespace) -> int:
        import torch

        from benchmark.perf.pretrain import DEFAULT_BATCH
        from benchmark.planning import device_name, write_throughput
        from simecg.registries import BASELINES

        if args.threads:
            torch.set_num_threads(args.threads)
        threads = torch.get_num_threads()
        variants = default_variants()
        batch = args.batch_size or 256
        if args.suite:
            from benchmark.config import load_suite
            from simecg.config import parse_set_args

            suite = load_suite(args.suite, parse_set_args(args.set))
            batch = args.batch_size or suite.finetune.batch_size
            variants = suite_variants(suite)
        if args.only:
            variants = [v for v in variants if v.key in args.only or v.spec.entry in args.only]
        device = device_name()
        print(f"device {device}, {threads} torch threads, torch {torch.__version__}; fine-tuning on CPU, batch {batch} "
              f"x 1 x {N_SAMPLES}; per model the fastest of {args.rounds} rounds of {args.steps} batches, after a "
              "warm-up (other jobs only add time)")
        finetune: dict[str, dict[str, Any]] = {}
        print(f"{'model':34s} {'train samples/s':>15s} {'predict/s':>10s} {'bare loop/s':>11s} {'loop/bare':>9s}")
        for v in variants:
            if BASELINES.get(v.spec.entry).kind != "neural":
                continue
            row = time_finetune(v, batch, args.steps, args.rounds)
            finetune[v.key] = row
            print(f"{v.key:34s} {row['train_samples_per_s']:15.1f} {row['predict_samples_per_s']:10.1f} "
                  f"{row['bare_samples_per_s']:11.1f} {row['loop_vs_bare']:8.2f}x", flush=True)
        for v in variants:
            if BASELINES.get(v.spec.entry).kind == "neural" or v.key in finetune:
                continue
            row = time_estimator_fit(v.spec.entry, args.estimator_samples)
            finetune[v.key] = row
            print(f"{v.key:34s} features {row['feature_ms_per_ecg']:.1f} ms/ECG, fit {row['fit_s_per_1000']:.2f} s "
                  f"per 1000 training ECGs (measured on {row['samples']} simulated ECGs, {row['rounds']} rounds)",
                  flush=True)
        pretrain: dict[str, dict[str, Any]] = {}
        for name in _names(args.pretrain_presets):
            row = time_pretrain(name, DEFAULT_BATCH.get(name, 32), args.pretrain_steps, torch.device(device))
            pretrain[name] = row
            print(f"MAE pretraining {name:6s}: {row['samples_per_s']:.1f} samples/s at batch {row['batch_size']} "
                  f"({row['steps_per_s']:.3f} steps/s); step time vs plain PyTorch MAE "
                  f"{row['ratio_vs_reference']:.2f}x",
                  flush=True)
        generators: dict[str, dict[str, Any]] = {}
        for kind in GENERATOR_KINDS if _names(args.generator_presets) else ():
            for name in _names(args.generator_presets):
                row = time_generator(kind, name, args.pretrain_steps)
                generators[f"{kind}@{name}"] = row
                print(f"generator {kind}@{name:6s}: {row['steps_per_s']:.3f} steps/s at batch {row['batch_size']}",
                      flush=True)
        figures = {"device": device, "threads": threads, "torch": torch.__version__, "finetune": finetune,
                   "pretrain": pretrain, "generators": generators}
        path = write_throughput(figures, args.out)
        print(f"wrote {path} (read by `simecg-bench run --dry-run`)")
        if args.json:
            print(json.dumps({**figures, "path": str(path)}, sort_keys=True))
        return 0
