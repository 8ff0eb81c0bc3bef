"""``simecg-bench bench simulators``: ECGs/s of both simulators vs neurokit2's ECGSYN, same run.

Prints, for each simulator, ECGs per second on one core and on all cores; neurokit2's
``ecg_simulate(method="ecgsyn")`` ECGs per second on one core, measured now; the speedup of our
ECGSYN per core; and the minimum waveform correlation between our ECGSYN and neurokit2's on the
same RR series and parameters (plus against a tight-tolerance solution of neurokit2's own
equations, which isolates neurokit2's solver error). Targets (issue 3): ECGSYN >= 300x neurokit2
per core, Gaussian >= 5,000 ECGs/s per core. Defaults run in about a minute on 2 cores.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from concurrent.futures import ProcessPoolExecutor

import numpy as np

from simecg.registries import SIMULATORS

CHUNK = 256


def _simulate_range(name: str, start: int, stop: int, seed: int) -> int:
    sim = SIMULATORS.get(name)()
    for lo in range(start, stop, CHUNK):
        sim.simulate(np.arange(lo, min(lo + CHUNK, stop)), seed)
    return stop - start


def _timed(fn, n: int) -> tuple[float, float]:
    """(ECGs per CPU-second of this process, ECGs per wall-clock second) of ``fn()`` making ``n`` ECGs.

    CPU time is the per-core figure that stays meaningful when other jobs share the machine;
    wall time is what a user waits.
    """
    c0, w0 = time.process_time(), time.perf_counter()
    fn()
    return n / max(time.process_time() - c0, 1e-9), n / max(time.perf_counter() - w0, 1e-9)


def rate_one_core(name: str, n: int, seed: int = 0) -> tuple[float, float]:
    """(per CPU-second, per wall second) of simulator ``name`` in this process, after a warm-up batch."""
    _simulate_range(name, 10**9, 10**9 + 32, seed)
    return _timed(lambda: _simulate_range(name, 0, n, seed), n)


def rate_all_cores(name: str, n: int, workers: int, seed: int = 0) -> float:
    """ECGs/s with ``workers`` processes, each simulating its own index range (pool warmed first)."""
    with ProcessPoolExecutor(max_workers=workers) as pool:
        list(pool.map(_simulate_range, [name] * workers, [10**9] * workers, [10**9 + 32] * workers, [seed] * workers))
        bounds = np.linspace(0, n, workers + 1).astype(int)
        t0 = time.perf_counter()
        list(pool.map(_simulate_range, [name] * workers, bounds[:-1], bounds[1:], [seed] * workers))
        return n / (time.perf_counter() - t0)


def neurokit_rate(n: int) -> tuple[float, float]:
    """neurokit2 ECGSYN, 10 s at 500 Hz: (per CPU-second, per wall second) on one core."""
    import neurokit2 as nk

    nk.ecg_simulate(duration=10, sampling_rate=500, heart_rate=80, method="ecgsyn", random_state=0)

    def run() -> None:
        for i in range(n):
            nk.ecg_simulate(duration=10, sampling_rate=500, heart_rate=80, method="ecgsyn", random_state=i + 1)

    return _timed(run, n)


def waveform_correlations(heart_rates: list[float], seed: int = 0) -> tuple[float, float]:
    """Minimum correlation of our ECGSYN with neurokit2's output, and with the exact solution."""
    from pretraining.simulators.reference import correlation, exact_reference, neurokit_run, ours_on

    vs_output, vs_exact = [], []
    for k, hr in enumerate(heart_rates):
        z_nk, rrn = neurokit_run(hr, seed=seed + k)
        ours = ours_on(rrn, hr)
        vs_output.append(correlation(ours, z_nk))
        vs_exact.append(correlation(ours, exact_reference(rrn, hr)))
    return min(vs_output), min(vs_exact)


class SimulatorsBench:
    """ECGs/s of the ECGSYN and Gaussian simulators vs neurokit2's ECGSYN (issue 3 item 6)."""

    @staticmethod
    def add_arguments(parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--n", type=int, default=4096, help="ECGs per simulator and setting (default 4096)")
        parser.add_argument("--neurokit-n", type=int, default=10, help="neurokit2 ECGs timed (default 10)")
        parser.add_argument("--workers", type=int, default=None, help="processes for 'all cores' (default: all)")
        parser.add_argument("--heart-rates", default="60,70,80,90",
                            help="heart rates of the waveform comparison (default 60,70,80,90)")

    @staticmethod
    def run(args: argparse.Namespace) -> int:
        workers = args.workers or os.cpu_count() or 1
        figures: dict[str, float] = {"cores": workers}
        nk_rate, nk_wall = neurokit_rate(args.neurokit_n)
        print("one-core figures are ECGs per CPU-second of the process (robust to other jobs on the machine);")
        print("wall-clock figures in brackets.")
        print(f"neurokit2 ecg_simulate(ecgsyn), one core: {nk_rate:10.1f} ECGs/s [{nk_wall:.1f}] "
              f"({1000 / nk_rate:.0f} CPU-ms/ECG)")
        for name in ("ecgsyn", "gaussian"):
            one, one_wall = rate_one_core(name, args.n)
            many = rate_all_cores(name, args.n * workers, workers)
            figures[f"{name}_per_s"] = round(one, 1)
            figures[f"{name}_per_wall_s"] = round(one_wall, 1)
            figures[f"{name}_per_s_all_cores"] = round(many, 1)
            line = (f"{name:9s} one core: {one:10.1f} ECGs/s [{one_wall:.1f}]   "
                    f"all {workers} cores (wall): {many:10.1f} ECGs/s")
            if name == "ecgsyn":
                line += f"   speedup vs neurokit2 per core: {one / nk_rate:.0f}x"
            print(line)
        rates = [float(h) for h in str(args.heart_rates).split(",") if h.strip()]
        corr, corr_exact = waveform_correlations(rates)
        print(f"ECGSYN waveform vs neurokit2 on the same RR series, heart rates {rates}: "
              f"min correlation {corr:.4f} (vs the exact solution of neurokit2's equations: {corr_exact:.6f})")
        print(f"million-ECG corpus: ECGSYN {1e6 / figures['ecgsyn_per_s'] / 60:.1f} CPU-minutes, "
              f"Gaussian {1e6 / figures['gaussian_per_s'] / 60:.1f} CPU-minutes")
        figures.update(
            neurokit2_per_s=round(nk_rate, 2),
            neurokit2_per_wall_s=round(nk_wall, 2),
            speedup_vs_neurokit2=round(figures["ecgsyn_per_s"] / nk_rate, 1),
            min_waveform_corr=round(corr, 5),
            min_waveform_corr_exact=round(corr_exact, 7),
        )
        if args.json:
            print(json.dumps(figures, sort_keys=True))
        return 0


