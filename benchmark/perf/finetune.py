"""``simecg-bench bench finetune``: training throughput on this device, for ``run --dry-run`` estimates.

Figures, each after a warm-up, with the torch thread count stated (the fastest of a few rounds,
as other jobs on the machine only ever add time):

* per registered neural model (the pretrained MAE and the scratch Transformer per encoder preset,
  ``tiny`` and ``paper``), on the fine-tuning device (``--device``, default the suite's
  ``finetune.device``, else ``auto``), at batch 256 (or ``--batch-size``, or the suite's): training
  samples/s of the shared loop (:func:`baselines.training.train_classifier`), beside a plain
  PyTorch loop on the same model and data (``ratio_vs_reference``, goal <= 1.1), the share of a
  step spent producing batches (``data_share``), and forward-only samples/s (validation and test
  scoring) (:func:`time_finetune`);
* per estimator (XGBoost on ECG features): feature milliseconds per ECG and fit seconds per 1000
  training ECGs, on simulated ECGs (:func:`benchmark.perf.baselines.time_estimator`);
* MAE pretraining samples/s per preset, with the plain-PyTorch reference of ``bench pretrain``
  (:func:`benchmark.perf.pretrain.compare_with_reference`);
* VAE/DCGAN generator training steps/s per preset (the ``vae``/``gan`` corpora train one first).

The figures are merged into ``<cache>/throughput/<device>-<host>.json`` (with the torch version
and thread count), which :mod:`benchmark.run.planning` reads. Defaults take about 15 minutes on 2 idle
cores (the paper-size models at batch 256 dominate); ``--batch-size 64 --steps 1`` about 3.
"""

from __future__ import annotations

import argparse
import functools
import json
import sys
import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from benchmark.perf.baselines import time_estimator
from simecg.config import parse_set_args
from simecg.registries import BASELINES, GENERATORS
from simecg.signal import N_SAMPLES

ENCODER_PRESETS = ("paper", "tiny")
# The augmentation the fine-tuning loop is timed with: the middle of the tuner's space
# (baselines.base.training_space: mask_ratio 0..0.5, max_shift_ratio 0..0.75), as tuned cells train.
AUGMENT = (0.25, 0.375)

@dataclass(frozen=True)
class Variant:
    """A model as a cell builds it: its spec, and for a pretrained model the encoder's pretraining config."""

    key: str
    spec: Any  # baselines.base.ModelSpec
    encoder: Any = None  # pretraining.config.PretrainConfig


def default_variants() -> list[Variant]:
    """Every registered model at its default config; the pretrained models and the scratch Transformer per preset."""
    from baselines.base import resolve_model
    from baselines.names import ModelName
    from benchmark.run.planning import speed_key
    from pretraining.config import PretrainConfig

    out = []
    for name in BASELINES.names():
        cls = BASELINES.get(name)
        if cls.pretraining_method is not None:  # fine-tunes a pretrained encoder: measured per encoder preset
            spec = resolve_model(ModelName(name, "sim"))
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
    from benchmark.run.cells import enumerate_cells
    from benchmark.run.planning import speed_key

    out = []
    for model in dict.fromkeys(c.model for c in enumerate_cells(suite)):
        spec = resolve_model(model, suite.baselines)
        need = spec.encoder_need()
        encoder = suite.source_config(need.source) if need is not None else None
        out.append(Variant(speed_key(spec, encoder), spec, encoder))
    return _unique(out)


def _unique(variants: list[Variant]) -> list[Variant]:
    return list({v.key: v for v in variants}.values())


def build_module(variant: Variant) -> Any:
    """The module a cell of ``variant`` trains, with random weights (a pretrained model: its encoder's shape)."""
    return variant.spec.cls.build_shaped(variant.spec.config, variant.encoder)


def _fastest(fn: Any, rounds: int) -> float:
    """Seconds of the fastest of ``rounds`` calls of ``fn()`` (other jobs on the machine only ever add time)."""
    times = []
    for _ in range(max(1, rounds)):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def time_finetune(variant: Variant, batch_size: int = 256, steps: int = 2, rounds: int = 3, seed: int = 0,
                  device: str = "auto", mask_ratio: float = AUGMENT[0],
                  max_shift_ratio: float = AUGMENT[1]) -> dict[str, Any]:
    """Samples/s of the shared loop and of a plain PyTorch loop on the same model and data; the data path's share.

    * loop: :func:`~baselines.training.train_classifier`, one epoch of ``steps`` batches of
      synthetic ``(n, 5000)`` signals (with the augmentation the tuner draws, by default the middle
      of its space), including what a fit pays once (moving the arrays, Adam's state, best-state
      copies) but not its one validation (2 windows), timed on its own and taken off: a cell
      validates every ``eval_every`` epochs, which ``run --dry-run`` counts at the predict rate;
    * reference: the loop anyone would write: the same model, the same data already on the device,
      the same batch size, Adam (and autocast) as the loop sets them; per batch a random index, a
      forward, a backward and a step. ``ratio_vs_reference`` = loop time per sample / reference time
      per sample (goal <= 1.1);
    * data path: the loop's own batch producer (:class:`~baselines.training.DeviceBatches`:
      shuffle, index, augment, transfer) alone over the same epoch; ``data_share`` = its time / the loop's;
    * predict: :func:`~baselines.training.predict_scores` from numpy (validation and test scoring).

    Loop, reference and data path are timed in turns (a slow spell of a busy machine hits all
    three), each the fastest of ``rounds``, after a warm-up; a GPU is synchronised before each clock.
    """
    import torch

    from baselines.training import (
        DeviceBatches,
        TrainConfig,
        as_training_samples,
        autocast,
        predict_scores,
        resolve_device,
        to_device,
        train_classifier,
    )

    dev = resolve_device(device)

    def sync() -> None:
        if dev.type == "cuda":
            torch.cuda.synchronize(dev)

    torch.manual_seed(seed)
    module = build_module(variant).to(dev)
    rng = np.random.default_rng(seed)
    n = batch_size * steps
    x = rng.standard_normal((n, N_SAMPLES), dtype=np.float32)
    y = (np.arange(n) % 2).astype(np.float32)
    val = (x[:2], y[:2])  # the one evaluation at the end of the epoch: negligible
    config = TrainConfig(batch_size=batch_size, max_epochs=1, eval_every=1, patience=1, mask_ratio=mask_ratio,
                         max_shift_ratio=max_shift_ratio, device=str(dev)).resolved(variant.spec.cls.training_defaults)

    def loop() -> None:
        train_classifier(module, (x, y), val, config, seed=seed)
        sync()

    data_x, data_y = to_device(x, dev), torch.from_numpy(y).to(dev)
    params = [p for p in module.parameters() if p.requires_grad]
    precision = autocast(dev)

    def reference() -> None:
        optimizer = torch.optim.Adam(params, lr=config.lr, weight_decay=config.weight_decay,
                                     **({"fused": True} if dev.type == "cuda" else {}))
        module.train()
        order = torch.randperm(n, device=dev)
        for start in range(0, n, batch_size):
            index = order[start : start + batch_size]
            with precision:
                loss = torch.nn.functional.binary_cross_entropy_with_logits(module(data_x[index]), data_y[index])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
        sync()

    batches = DeviceBatches(as_training_samples(x, y), config, dev, torch.Generator().manual_seed(seed))

    def data_path() -> None:
        for _ in batches.epoch(1):
            pass
        sync()

    def validation() -> None:  # what the loop adds once per evaluation: scoring the validation windows
        predict_scores(module, val[0], batch_size, dev)
        sync()

    clocks = {"loop": loop, "validation": validation, "reference": reference, "data": data_path}
    wall: dict[str, list[float]] = {name: [] for name in clocks}
    cpu: dict[str, list[float]] = {name: [] for name in clocks}  # this process's CPU seconds
    for round_ in range(max(1, rounds) + 1):  # round 0 is the warm-up (allocator, kernels, Adam's state)
        for name, fn in clocks.items():
            start, start_cpu = time.perf_counter(), time.process_time()
            fn()
            if round_:
                wall[name].append(time.perf_counter() - start)
                cpu[name].append(time.process_time() - start_cpu)

    def per_sample(times: dict[str, list[float]]) -> tuple[float, float, float]:
        fastest = {name: min(values) for name, values in times.items()}
        train = max(fastest["loop"] - fastest["validation"], 1e-9)  # training only: validation is per evaluation
        return train / n, fastest["reference"] / n, fastest["data"] / n

    loop_s, reference_s, data_s = per_sample(wall)
    loop_cpu, reference_cpu, _ = per_sample(cpu)
    predict_s = _fastest(lambda: (predict_scores(module, x, batch_size, dev), sync()), rounds) / n
    return {
        "model": variant.spec.entry, "kind": "neural", "device": str(dev), "batch_size": batch_size, "steps": steps,
        "rounds": rounds, "parameters": sum(p.numel() for p in params),
        "mask_ratio": mask_ratio, "max_shift_ratio": max_shift_ratio,
        "train_samples_per_s": round(1 / loop_s, 2),
        "predict_samples_per_s": round(1 / predict_s, 2),
        "reference_samples_per_s": round(1 / reference_s, 2),
        "ratio_vs_reference": round(loop_s / reference_s, 3),
        "data_share": round(data_s / loop_s, 4),
        # The same ratio in CPU seconds of this process: on a CPU, what the loop costs beside the
        # reference whatever other jobs take of the machine (on a GPU the wall ratio is the one).
        "cpu_time_ratio": round(loop_cpu / reference_cpu, 3) if dev.type == "cpu" else None,
    }


def time_estimator_fit(name: str, n_samples: int = 200) -> dict[str, Any]:
    """Feature ms per ECG and fit seconds per 1000 training ECGs (``bench baselines``' measurement)."""
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

    from pretraining.generators.common import TrainingBatch, build_model, preset

    config = preset(kind, preset_name)
    torch.manual_seed(0)
    model = build_model(config)
    model.train()
    optimizers = model.make_optimizers()
    x, mask = torch.randn(config.batch_size, N_SAMPLES), torch.ones(config.batch_size, N_SAMPLES)
    model.train_step(TrainingBatch(x, mask, 0, 0), optimizers, torch.Generator().manual_seed(0))  # warm-up
    cycle = getattr(config, "disc_every", 1)  # a GAN updates its discriminator on 1 step in disc_every
    steps = -(-steps // cycle) * cycle  # whole cycles, so the mean holds the discriminator's share
    start = time.perf_counter()
    for step in range(steps):
        model.train_step(TrainingBatch(x, mask, step, step), optimizers, torch.Generator().manual_seed(step))
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
        parser.add_argument("--rounds", type=int, default=3,
                            help="timed rounds per model, loop and reference in turns; the fastest of each counts "
                                 "(default 3; more on a busy machine)")
        parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
        parser.add_argument("--device", default=None,
                            help="auto, cpu, cuda or cuda:<index> (default: the suite's finetune.device, else auto)")
        parser.add_argument("--mask-ratio", type=float, default=AUGMENT[0],
                            help=f"augmentation the loop is timed with (default {AUGMENT[0]}, mid tuning space)")
        parser.add_argument("--max-shift-ratio", type=float, default=AUGMENT[1],
                            help=f"augmentation the loop is timed with (default {AUGMENT[1]}, mid tuning space)")
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

        from baselines.training import resolve_device
        from benchmark.perf.pretrain import DEFAULT_BATCH
        from benchmark.run.planning import write_throughput

        if args.threads:
            torch.set_num_threads(args.threads)
        threads = torch.get_num_threads()
        variants = default_variants()
        batch = args.batch_size or 256
        preference = args.device or "auto"
        if args.suite:
            from benchmark.suites.config import load_suite

            suite = load_suite(args.suite, parse_set_args(args.set))
            batch = args.batch_size or suite.finetune.batch_size
            preference = args.device or suite.finetune.device
            variants = suite_variants(suite)
        if args.only:
            variants = [v for v in variants if v.key in args.only or v.spec.entry in args.only]
        dev = resolve_device(preference)
        device = dev.type  # the throughput file is per kind of device (cpu, cuda), as `run --dry-run` looks it up
        say = functools.partial(print, file=sys.stderr if args.json else sys.stdout)  # --json: stdout is JSON
        say(f"device {dev}, {threads} torch threads, torch {torch.__version__}; fine-tuning batch {batch} x 1 x "
              f"{N_SAMPLES}, augmentation mask {args.mask_ratio} shift {args.max_shift_ratio}; per model the "
              f"fastest of {args.rounds} rounds of {args.steps} batches, loop and reference in turns after a warm-up "
              "(other jobs only add time)")
        finetune: dict[str, dict[str, Any]] = {}
        say(f"{'model':34s} {'train samples/s':>15s} {'predict/s':>10s} {'reference/s':>11s} {'ratio':>6s} "
              f"{'(CPU time)':>10s} {'data share':>10s}")
        for v in variants:
            if BASELINES.get(v.spec.entry).kind != "neural":
                continue
            row = time_finetune(v, batch, args.steps, args.rounds, device=str(dev), mask_ratio=args.mask_ratio,
                                max_shift_ratio=args.max_shift_ratio)
            finetune[v.key] = row
            say(f"{v.key:34s} {row['train_samples_per_s']:15.1f} {row['predict_samples_per_s']:10.1f} "
                  f"{row['reference_samples_per_s']:11.1f} {row['ratio_vs_reference']:5.2f}x "
                  f"{'-' if row['cpu_time_ratio'] is None else format(row['cpu_time_ratio'], '.2f') + 'x':>10s} "
                  f"{100 * row['data_share']:9.1f}%", flush=True)
        for v in variants:
            if BASELINES.get(v.spec.entry).kind == "neural" or v.key in finetune:
                continue
            row = time_estimator_fit(v.spec.entry, args.estimator_samples)
            finetune[v.key] = row
            say(f"{v.key:34s} features {row['feature_ms_per_ecg']:.1f} ms/ECG, fit {row['fit_s_per_1000']:.2f} s "
                  f"per 1000 training ECGs (measured on {row['samples']} simulated ECGs, {row['rounds']} rounds)",
                  flush=True)
        pretrain: dict[str, dict[str, Any]] = {}
        for name in _names(args.pretrain_presets):
            row = time_pretrain(name, DEFAULT_BATCH.get(name, 32), args.pretrain_steps, dev)
            pretrain[name] = row
            say(f"MAE pretraining {name:6s}: {row['samples_per_s']:.1f} samples/s at batch {row['batch_size']} "
                  f"({row['steps_per_s']:.3f} steps/s); step time vs plain PyTorch MAE "
                  f"{row['ratio_vs_reference']:.2f}x",
                  flush=True)
        generators: dict[str, dict[str, Any]] = {}
        for kind in GENERATORS.names() if _names(args.generator_presets) else ():
            for name in _names(args.generator_presets):
                row = time_generator(kind, name, args.pretrain_steps)
                generators[f"{kind}@{name}"] = row
                say(f"generator {kind}@{name:6s}: {row['steps_per_s']:.3f} steps/s at batch {row['batch_size']}",
                      flush=True)
        figures = {"device": device, "threads": threads, "torch": torch.__version__, "finetune": finetune,
                   "pretrain": pretrain, "generators": generators}
        path = write_throughput(figures, args.out)
        say(f"wrote {path} (read by `simecg-bench run --dry-run`)")
        if args.json:
            print(json.dumps({**figures, "path": str(path)}, sort_keys=True))
        return 0
