"""``simecg-bench bench baselines`` end to end, on a tiny batch (the figures themselves are not
asserted: benchmarks print, tests check behaviour)."""

from __future__ import annotations

import json

from baselines.base import NeuralBaseline
from benchmark.cli import main
from benchmark.registries import BENCHES
from simecg.registries import BASELINES


def test_bench_is_registered():
    assert "baselines" in BENCHES


def test_bench_prints_a_table_and_json_rows_with_parameters_and_timings(capsys):
    code = main(["bench", "baselines", "--only", "emb-gru", "--only", "transformer-scratch", "--only",
                 "xgboost-features", "--batch-size", "2", "--repeats", "1", "--estimator-samples", "8",
                 "--threads", "1", "--json"])
    assert code == 0
    out = capsys.readouterr().out.strip().splitlines()
    figures = json.loads(out[-1])
    rows = {row["name"]: row for row in figures["rows"]}
    assert set(rows) == {"emb-gru", "transformer-scratch", "xgboost-features"}
    for name in ("emb-gru", "transformer-scratch"):
        cls = BASELINES.get(name)
        assert rows[name]["parameters"] == cls.count_parameters()
        assert rows[name]["fwd_bwd_ms"] > 0 and rows[name]["batch_size"] == 2
    assert rows["transformer-scratch"]["vs_scratch"] == 1.0
    assert rows["xgboost-features"]["samples"] == 8 and rows["xgboost-features"]["rounds"] >= 1
    assert any(line.startswith("emb-gru") for line in out)


def test_listing_helpers_describe_every_baseline():
    for _name, cls in BASELINES.items():
        assert cls.describe() and "\n" not in cls.describe()
        if issubclass(cls, NeuralBaseline):
            assert cls.count_parameters() > 0
