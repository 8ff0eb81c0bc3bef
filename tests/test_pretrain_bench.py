"""``simecg-bench bench pretrain`` runs end to end and ends with the JSON figures (values not asserted)."""

from __future__ import annotations

import json

import pytest
import torch

from benchmark.cli import main
from benchmark.perf.pretrain import PlainMAE
from pretraining.mae import MaskedAutoencoder, preset


def test_reference_mae_has_the_same_shape_and_loss_scale():
    config = preset("tiny")
    ours, plain = MaskedAutoencoder(config), PlainMAE(config)
    assert sum(p.numel() for p in ours.parameters()) == sum(p.numel() for p in plain.parameters())
    x, noise = torch.randn(2, 1, 5000), torch.rand(2, 100)
    loss = plain(x, noise)
    assert loss.shape == () and 0.1 < float(loss.detach()) < 10


@pytest.mark.slow
def test_bench_pretrain_prints_json_figures(capsys):
    threads = torch.get_num_threads()
    args = ["bench", "pretrain", "--json", "--presets", "tiny", "--batch-size", "4", "--rounds", "1", "--steps", "1",
            "--loop-steps", "4", "--loop-batch-size", "8", "--num-workers", "1", "--threads", "1"]
    try:
        assert main(args) == 0
    finally:
        torch.set_num_threads(threads)
    figures = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert set(figures["samples_per_s"]) == {"tiny"} and figures["samples_per_s"]["tiny"] > 0
    assert 0 <= figures["data_wait_share"] <= 1
    assert figures["ratio_vs_reference"] > 0
