"""Cell internals: tuned values reach the right config; tuning runs once per study and resumes."""

from __future__ import annotations

import optuna
import pytest

from benchmark.cells import Cell
from benchmark.cli import main
from benchmark.config import load_suite
from benchmark.evaluation import build_neural


def test_tuned_values_go_to_the_baseline_config_or_the_finetune_config() -> None:
    suite = load_suite("demo")
    cell = Cell("transformer-scratch", "demo/af", "II", 0, 1)
    model, finetune = build_neural(suite, cell, None, {"head_width": 16, "lr": 0.01, "mask_ratio": 0.2}, seed=1)
    assert model.head[0].out_features == 16  # the scratch model's own head_width (an architecture field)
    assert finetune.lr == pytest.approx(0.01) and finetune.mask_ratio == pytest.approx(0.2)
    assert finetune.head_width == suite.finetune.head_width


@pytest.mark.slow
def test_tuning_stores_a_study_and_logs_the_chosen_values(tracking_uri: str, tmp_path, capsys) -> None:
    storage = f"sqlite:///{tmp_path / 'optuna.db'}"
    args = ["run", "--suite", "demo", "--tracking-uri", tracking_uri, "--optuna-storage", storage, "--no-progress",
            "--set", "grid.tasks=demo/af", "--set", "grid.models=transformer-scratch", "--set", "grid.seeds=1",
            "--set", "tuning.n_trials=2", "--set", "finetune.max_epochs=1", "--set", "finetune.eval_every=1"]
    assert main(args) == 0
    studies = optuna.get_all_study_summaries(storage)
    assert len(studies) == 1 and studies[0].n_trials == 2
    import mlflow

    client = mlflow.tracking.MlflowClient(tracking_uri)
    exp = client.get_experiment_by_name("simecg-bench/demo")
    run = client.search_runs([exp.experiment_id], "tags.kind = 'cell'")[0]
    assert {"tuned.lr", "tuned.head_width", "tuned.mask_ratio"} <= set(run.data.params)
    # a new seed reuses the finished study: no new trials
    assert main([*args[:-8], "--set", "grid.seeds=2", *args[-6:]]) == 0
    assert optuna.get_all_study_summaries(storage)[0].n_trials == 2
