"""``simecg-bench bench baselines`` end to end, on a tiny batch (the figures themselves are not
asserted: benchmarks print, tests check behaviour)."""

from __future__ import annotations

import json

import pytest

from baselines.base import NeuralBaseline
from benchmark.cli import main
from benchmark.registries import BENCHES
from simecg.registries import BASELINES


def test_bench_is_registered():
    assert "baselines" in BENCHES


@pytest.mark.slow
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


@pytest.mark.slow
def test_bench_finetune_sets_the_loop_beside_a_plain_pytorch_loop_and_writes_what_the_plan_reads(tmp_path, capsys):
    from benchmark.run.planning import load_throughput

    out = tmp_path / "throughput.json"
    code = main(["bench", "finetune", "--only", "mae@preset=tiny", "--only", "emb-gru", "--batch-size", "2",
                 "--steps", "1", "--rounds", "1", "--threads", "1", "--device", "cpu", "--pretrain-presets", "",
                 "--generator-presets", "", "--out", str(out), "--json"])
    assert code == 0
    printed = capsys.readouterr()
    stdout = printed.out.strip().splitlines()
    assert len(stdout) == 1  # --json: stdout holds only the JSON, the table goes to stderr
    figures = json.loads(stdout[0])
    lines = printed.err.splitlines()
    assert figures["device"] == "cpu" and figures["threads"] == 1
    rows = figures["finetune"]
    assert set(rows) == {"mae@preset=tiny", "emb-gru"}
    for row in rows.values():
        assert row["device"] == "cpu" and row["batch_size"] == 2 and row["kind"] == "neural"
        assert min(row["train_samples_per_s"], row["reference_samples_per_s"], row["predict_samples_per_s"]) > 0
        ratio = row["reference_samples_per_s"] / row["train_samples_per_s"]
        assert abs(row["ratio_vs_reference"] - ratio) <= 0.01 * ratio + 1e-3  # loop time / reference time
        assert 0 < row["data_share"] < 1 and row["cpu_time_ratio"] > 0  # CPU seconds: robust on a busy machine
    assert any(line.startswith("emb-gru") and line.rstrip().endswith("%") for line in lines)
    stored = load_throughput(out)
    assert stored is not None and stored["finetune"]["emb-gru"]["train_samples_per_s"] == \
        rows["emb-gru"]["train_samples_per_s"]


def test_bench_finetune_names_a_bad_device_in_one_line(capsys):
    assert main(["bench", "finetune", "--device", "gpu0", "--only", "emb-gru"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "'gpu0'" in err[0]


def test_the_plan_reads_the_figures_of_the_device_the_suite_fine_tunes_on():
    import torch

    from benchmark.run.planning import device_name, throughput_path

    assert device_name("cpu") == "cpu" and device_name("cuda:1") == "cuda"  # no GPU needed to plan for one
    assert device_name("auto") == ("cuda" if torch.cuda.is_available() else "cpu")
    assert throughput_path(device_name("cuda:1")).name.startswith("cuda-")
