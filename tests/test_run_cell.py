"""Cell internals: tuned values reach the right config; tuning runs once per study and resumes."""

from __future__ import annotations

import dataclasses
from types import SimpleNamespace

import optuna
import pytest

from baselines.base import resolve_model
from benchmark.cli import main
from benchmark.run.cells import Cell
from benchmark.suites.config import load_suite
from benchmark.tracking.tags import RunTags
from simecg.errors import ConfigError


def test_tuned_values_go_to_the_model_config_or_the_finetune_config() -> None:
    suite = load_suite("demo")
    spec = resolve_model("transformer-scratch", suite.baselines)
    model = spec.create(suite.finetune, seed=1, params={"head_width": 16, "lr": 0.01, "mask_ratio": 0.2})
    assert model.config.head_width == 16  # the scratch model's own head_width (an architecture field)
    assert model.config.preset == "tiny"  # the suite's [baselines.transformer-scratch] table still applies
    assert model.training.lr == pytest.approx(0.01) and model.training.mask_ratio == pytest.approx(0.2)
    assert model.training.batch_size == suite.finetune.batch_size
    assert model.build_module().head[0].out_features == 16
    with pytest.raises(ConfigError, match="name no setting"):
        spec.create(suite.finetune, seed=1, params={"no_such_knob": 1})


def test_a_pretrained_model_name_sets_its_variant_field() -> None:
    spec = resolve_model("mae:ptbxl", {"mae": {"head_width": 8}})
    assert spec.entry == "mae" and spec.config.corpus == "ptbxl" and spec.config.head_width == 8
    with pytest.raises(ConfigError, match="takes no"):
        resolve_model("resnet18-1d:sim")


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
    assert {"tuned.lr", "tuned.mask_ratio", "tuned.max_shift_ratio"} <= set(run.data.params)
    assert "tuned.head_width" not in run.data.params  # the paper space leaves the encoder's head as it is
    # no mae:sim in the suite to borrow a study from: the scratch encoder was tuned on its own, and says so
    assert run.data.params["study.model"] == "transformer-scratch"
    assert run.data.params["study"] == f"study-{run.data.tags['study']}" == studies[0].study_name
    (session,) = client.search_runs([exp.experiment_id], "tags.kind = 'tuning'")  # the study's run: its cell's tags
    same = ("suite", "model", "task", "lead", "dataset", "data_version", "synthetic", "study", "schema")
    assert {k: session.data.tags[k] for k in same} == {k: run.data.tags[k] for k in same}
    # a new seed reuses the finished study: no new trials
    assert main([*args[:-8], "--set", "grid.seeds=2", *args[-6:]]) == 0
    assert optuna.get_all_study_summaries(storage)[0].n_trials == 2


def test_cell_tags_come_from_the_cell_its_data_and_its_models_identity() -> None:
    cell = Cell("mae:ptbxl-authors", "ptbxl/AFIB", "V1", 10, 3, positives_only=True, shift="sex:M->F")
    data = SimpleNamespace(dataset="ptbxl", data_version="d" * 16, synthetic=False)
    tags = RunTags.of_cell("cell", cell, data, fingerprint="f" * 16, suite="paper", study="s" * 16,
                           source="ptbxl-authors",
                           model_identity={"entry": "mae", "encoder": "e" * 16, "sees_test_records": True})
    coordinates = (tags.model, tags.task, tags.lead, tags.budget, tags.seed)
    assert tags.kind == "cell" and coordinates == dataclasses.astuple(cell)[:5]
    assert tags.positives_only and tags.shift == "sex:M->F" and tags.corpus == "ptbxl-authors"
    assert (tags.dataset, tags.data_version, tags.study) == ("ptbxl", "d" * 16, "s" * 16)
    assert tags.encoder == "e" * 16 and tags.sees_test_records
    baseline = RunTags.of_cell("tuning", Cell("resnet18-1d", "ptbxl/AFIB", "II", 0, 6), data, fingerprint="s" * 16,
                               suite="paper", model_identity={"entry": "resnet18-1d"})
    assert (baseline.kind, baseline.corpus, baseline.encoder, baseline.sees_test_records) == ("tuning", "", "", False)


def test_shift_syntax_and_groups_are_checked() -> None:
    from simecg.errors import ConfigError

    assert load_suite("demographic-shift").grids[0].shifts[1] == "sex:M->F"
    with pytest.raises(ConfigError, match="must look like"):
        load_suite("demo", {"grid.shifts": "sex=M"})
    with pytest.raises(ConfigError, match="unknown group"):
        load_suite("demo", {"grid.shifts": "age:30-39->80+"})


@pytest.mark.slow
def test_shift_cell_trains_on_one_group_and_tests_on_the_other(tracking_uri: str) -> None:
    import mlflow
    import pandas as pd

    args = ["run", "--suite", "demo", "--tracking-uri", tracking_uri, "--no-progress", "--set", "grid.tasks=demo/af",
            "--set", "grid.models=resnet18-1d", "--set", "grid.seeds=1", "--set", "grid.shifts=[\"\", \"sex:M->F\"]",
            "--set", "finetune.max_epochs=1", "--set", "finetune.eval_every=1"]
    assert main(args) == 0
    client = mlflow.tracking.MlflowClient(tracking_uri)
    exp = client.get_experiment_by_name("simecg-bench/demo")
    runs = {r.data.tags["shift"]: r for r in client.search_runs([exp.experiment_id], "tags.kind = 'cell'")}
    assert set(runs) == {"", "sex:M->F"}
    path = client.download_artifacts(runs["sex:M->F"].info.run_id, "test_predictions.csv")
    assert set(pd.read_csv(path).sex) == {"F"}
    assert runs["sex:M->F"].data.metrics["n_train"] < runs[""].data.metrics["n_train"]
    from benchmark.results.leaderboard import build_leaderboard

    assert len(build_leaderboard(tracking_uri, "demo").rows) == 1  # the default board holds no shift cell
    assert len(build_leaderboard(tracking_uri, "demo", shift="sex:M->F").rows) == 1
