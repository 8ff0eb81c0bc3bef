"""`simecg-bench bench sim-fidelity`: sim against a folder of another generator's ECGs, with null references."""

from __future__ import annotations

import json

import numpy as np
import pytest

from benchmark.cli import main
from benchmark.corpora.sim import SimCorpus
from benchmark.registries import BENCHES
from pretraining.simulators.gaussian import GaussianBeat, GaussianBeatConfig

N = 60


def test_sim_fidelity_bench_is_registered_with_its_options():
    bench = BENCHES.get("sim-fidelity")
    assert callable(bench.run) and callable(bench.add_arguments)


@pytest.mark.slow
def test_a_copy_of_sim_is_indistinguishable_and_a_changed_simulator_is_not(tmp_path, capsys, one_openmp_thread):
    # "authors": sim ECGs of another corpus seed, read back as a folder; "old": sim with beats of
    # 0.4 s (150 bpm), a simulator that differs where the features look
    authors, old = tmp_path / "authors", tmp_path / "old"
    authors.mkdir()
    old.mkdir()
    np.save(authors / "ecgs.npy", SimCorpus(size=10_000, seed=7).get_batch(np.arange(N)))
    fast = GaussianBeatConfig(beat_length=0.4, beat_length_sd_record=0.05)
    np.save(old / "ecgs.npy", GaussianBeat(fast).simulate(np.arange(N), seed=3))
    assert main(["bench", "sim-fidelity", "--authors", str(authors), "--old", str(old), "--n", str(N),
                 "--permutations", "50", "--json"]) == 0
    out = capsys.readouterr().out
    result = json.loads(out.strip().splitlines()[-1])
    pairs = {row["pair"]: row for row in result["pairs"]}
    assert set(pairs) == {"authors vs sim", "sim vs sim-seed1", "authors vs old"}
    assert set(result["features"]) == {"authors", "sim", "sim-seed1", "old"}
    assert not pairs["authors vs sim"]["distinguishable"] and pairs["authors vs sim"]["n"] == [N, N]
    assert pairs["authors vs old"]["distinguishable"] and pairs["authors vs old"]["c2st_auroc"] > 0.8
    assert result["features"]["old"]["hr_bpm"] > result["features"]["sim"]["hr_bpm"] + 40
    assert "indistinguishable" in out and "feature means" in out
