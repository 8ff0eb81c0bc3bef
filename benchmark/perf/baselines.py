"""``simecg-bench bench baselines``: size and CPU speed of every registered baseline.

For each neural baseline (built-in or plugin) at its default config: trainable parameters and
the milliseconds of one forward+backward pass over a batch of 256 z-scored 10-s ECGs, as the
median of a few timed repeats after a warm-up; the same-run reference is
``transformer-scratch`` (the study's encoder architecture), so every row also reads as a ratio
to it. For estimator baselines (XGBoost on ECG features): feature-extraction milliseconds per
ECG and the fit time on a small simulated set. Defaults take about two minutes on 2 cores.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from typing import Any

import numpy as np

from simecg.registries import BASELINES
from simecg.signal import N_SAMPLES, zscore

REFERENCE = "transformer-scratch"


def time_neural(name: str, batch_size: int = 256, repeats: int = 2, seed: int = 0) -> dict[str, Any]:
    """Parameters and median forward+backward milliseconds of baseline ``name`` (default config)."""
    import torch

    cls = BASELINES.get(name)
    torch.manual_seed(seed)
    model = cls.build(cls.make_config())
    model.train()
    x = torch.randn(batch_size, 1, N_SAMPLES, generator=torch.Generator().manual_seed(seed))
    y = (torch.arange(batch_size) % 2).float()

    def step() -> float:
        model.zero_grad(set_to_none=True)
        start = time.perf_counter()
        loss = torch.nn.functional.binary_cross_entropy_with_logits(model(x), y)
        loss.backward()
        return time.perf_counter() - start

    step()  # warm-up: allocator, kernels, lazy init
    times = [step() for _ in range(max(1, repeats))]
    return {
        "name": name,
        "kind": "neural",
        "parameters": sum(p.numel() for p in model.parameters() if p.requires_grad),
        "fwd_bwd_ms": round(1000 * statistics.median(times), 1),
        "batch_size": batch_size,
    }


def simulated_ecgs(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``n`` z-scored neurokit2 ECGs: label 1 at 100-130 bpm, label 0 at 55-75 bpm."""
    import neurokit2 as nk

    rng = np.random.default_rng(seed)
    y = np.arange(n) % 2
    rates = np.where(y == 1, rng.uniform(100, 130, n), rng.uniform(55, 75, n))
    x = np.stack([
        nk.ecg_simulate(duration=10, sampling_rate=500, heart_rate=float(r), noise=0.05, method="simple",
                        random_state=int(rng.integers(2**31)))
        for r in rates
    ])
    return zscore(x), y


def time_estimator(name: str, n_samples: int = 100, seed: int = 0) -> dict[str, Any]:
    """Feature ms per ECG and fit seconds (features cached, early stopping on a held-out fifth)."""
    from baselines import ecg_features

    cls = BASELINES.get(name)
    x, y = simulated_ecgs(n_samples, seed)
    n_val = max(2, n_samples // 5)
    train, val = (x[n_val:], y[n_val:]), (x[:n_val], y[:n_val])
    start = time.perf_counter()
    ecg_features.extract_features(train[0])
    ecg_features.extract_features(val[0])
    feature_s = time.perf_counter() - start
    estimator = cls.make_estimator(cls.make_config(), seed)
    start = time.perf_counter()
    estimator.fit(*train, X_val=val[0], y_val=val[1])  # features now come from the extraction cache
    fit_s = time.perf_counter() - start
    return {
        "name": name,
        "kind": "estimator",
        "samples": n_samples,
        "feature_ms_per_ecg": round(1000 * feature_s / n_samples, 1),
        "fit_s": round(fit_s, 2),
        "accuracy_val": round(float(np.mean(estimator.predict(val[0]) == val[1])), 3),
        "rounds": int(estimator.model_.get_booster().num_boosted_rounds()),
    }


def benchmark_baselines(
    names: list[str] | None = None, batch_size: int = 256, repeats: int = 2, estimator_samples: int = 100
) -> list[dict[str, Any]]:
    """One row of figures per baseline (all registered ones by default)."""
    rows = []
    for name in names or BASELINES.names():
        if BASELINES.get(name).kind == "neural":
            rows.append(time_neural(name, batch_size, repeats))
        else:
            rows.append(time_estimator(name, estimator_samples))
    reference = next((r for r in rows if r["name"] == REFERENCE), None)
    for row in rows:
        if reference and row["kind"] == "neural":
            row["vs_scratch"] = round(row["fwd_bwd_ms"] / reference["fwd_bwd_ms"], 2)
    return rows


def format_table(rows: list[dict[str, Any]]) -> str:
    lines = [f"{'baseline':22s} {'parameters':>12s} {'fwd+bwd ms':>11s} {'vs scratch':>10s}"]
    for r in rows:
        if r["kind"] == "neural":
            ratio = f"{r['vs_scratch']:.2f}x" if "vs_scratch" in r else "-"
            lines.append(f"{r['name']:22s} {r['parameters']:12,d} {r['fwd_bwd_ms']:11.1f} {ratio:>10s}")
    for r in rows:
        if r["kind"] == "estimator":
            lines.append(
                f"{r['name']:22s} features {r['feature_ms_per_ecg']:.1f} ms/ECG; fit on {r['samples']} ECGs "
                f"{r['fit_s']:.2f} s after extraction ({r['rounds']} rounds with early stopping; "
                f"validation accuracy {r['accuracy_val']:.2f})"
            )
    return "\n".join(lines)


class BaselinesBench:
    """Parameters and CPU forward+backward ms per batch of 256 for every registered baseline."""

    @staticmethod
    def add_arguments(parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--only", action="append", metavar="NAME", help="benchmark only this baseline (repeatable)")
        parser.add_argument("--batch-size", type=int, default=256, help="ECGs per forward+backward (default 256)")
        parser.add_argument("--repeats", type=int, default=2, help="timed repeats after one warm-up (default 2)")
        parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's)")
        parser.add_argument("--estimator-samples", type=int, default=100,
                            help="simulated ECGs for the estimator fit (default 100)")

    @staticmethod
    def run(args: argparse.Namespace) -> int:
        import torch

        if args.threads:
            torch.set_num_threads(args.threads)
        print(f"CPU, {torch.get_num_threads()} torch threads, batch {args.batch_size} x 1 x {N_SAMPLES}, "
              f"median of {args.repeats} after a warm-up")
        rows = benchmark_baselines(args.only, args.batch_size, args.repeats, args.estimator_samples)
        print(format_table(rows))
        if args.json:
            print(json.dumps({"threads": torch.get_num_threads(), "rows": rows}, sort_keys=True))
        return 0


