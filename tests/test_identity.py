"""Fingerprints change exactly when the numbers can: the invariance tests of the one identity module.

Each test changes one thing and says which fingerprints must move (encoder, cells of the
pretrained model, cells of baselines, tuning studies) and which must not.
"""

from __future__ import annotations

import dataclasses

import pytest

from baselines.base import EncoderNeed
from baselines.training import TrainConfig
from benchmark.run.cells import enumerate_cells, plan_cells
from benchmark.run.encoders import SuiteEncoders
from benchmark.suites.config import load_suite
from pretraining.config import PretrainConfig
from pretraining.mae import METHOD
from simecg.identity import IGNORED

BASE = {"grid.tasks": "demo/af", "grid.seeds": "1,2", "grid.models": "mae,resnet18-1d", "tuning.n_trials": "2"}


def fingerprints(overrides: dict[str, str] | None = None, data_version: str = "v1") -> dict[str, dict[str, str]]:
    """``{"encoder": {...}, "cells": {label: fp}, "studies": {label: fp}}`` of a small demo suite."""
    suite = load_suite("demo", {**BASE, **(overrides or {})})
    cells = enumerate_cells(suite)
    encoders = SuiteEncoders(suite)
    planned = plan_cells(suite, cells, {(c.task, c.lead): data_version for c in cells}, encoders)
    return {
        "encoder": {source: encoders.identity(EncoderNeed(METHOD, source)).fingerprint for source in suite.corpora},
        "cells": {p.cell.label: p.fingerprint for p in planned},
        "studies": {p.cell.label: p.study.fingerprint if p.study else "" for p in planned},
    }


def moved(before: dict[str, str], after: dict[str, str]) -> set[str]:
    assert before.keys() == after.keys()
    return {key for key in before if before[key] != after[key]}


MAE = {"mae:sim | demo/af | II | budget all | seed 1", "mae:sim | demo/af | II | budget all | seed 2"}
RESNET = {"resnet18-1d | demo/af | II | budget all | seed 1", "resnet18-1d | demo/af | II | budget all | seed 2"}


@pytest.mark.parametrize("setting", ["pretrain.num_workers=3", "pretrain.threads=2", "pretrain.device=cuda",
                                     "pretrain.prefetch_factor=8",
                                     "pretrain.checkpoint_every=11", "pretrain.log_every=3",
                                     "pretrain.keep_checkpoints=5", "finetune.device=cpu",
                                     "finetune.device=cuda:1"])
def test_workers_threads_device_and_bookkeeping_change_no_fingerprint(setting: str) -> None:
    key, value = setting.split("=")
    assert fingerprints({key: value}) == fingerprints()


def test_the_ignored_list_names_real_settings() -> None:
    fields = {f.name for f in dataclasses.fields(PretrainConfig)}
    assert IGNORED["pretrain"] <= fields  # a typo would silently put a setting back into every fingerprint
    assert IGNORED["finetune"] <= {f.name for f in dataclasses.fields(TrainConfig)}


def test_a_pretraining_setting_moves_the_encoder_and_its_cells_only() -> None:
    before, after = fingerprints(), fingerprints({"pretrain.lr": "0.002"})
    assert moved(before["encoder"], after["encoder"]) == {"sim"}
    assert moved(before["cells"], after["cells"]) == MAE
    assert moved(before["studies"], after["studies"]) == MAE


@pytest.mark.parametrize("setting", ["pretrain.val_every=7", "pretrain.val_every_samples=640",
                                     "pretrain.val_masks=fixed"])
def test_the_validation_cadence_moves_the_encoder_only_when_it_chooses_the_best_checkpoint(setting: str) -> None:
    """It decides which validation losses the best-validation encoder is chosen among; the last one it cannot move."""
    key, value = setting.split("=")
    before, after = fingerprints({"pretrain.val_every": "0"}), fingerprints({"pretrain.val_every": "0", key: value})
    assert moved(before["encoder"], after["encoder"]) == {"sim"}
    assert moved(before["cells"], after["cells"]) == MAE
    last = {"pretrain.select": "last", "pretrain.val_every": "0"}
    assert fingerprints({**last, key: value}) == fingerprints(last)
    assert moved(fingerprints(last)["encoder"], before["encoder"]) == {"sim"}  # the choice itself moves it


def test_a_simulator_parameter_moves_the_encoder_and_its_cells_only() -> None:
    before = fingerprints()
    after = fingerprints({"pretrain.corpus_options.gaussian.augment_rate": "1.0"})
    assert moved(before["encoder"], after["encoder"]) == {"sim"}
    assert moved(before["cells"], after["cells"]) == MAE


def test_the_simulator_version_moves_the_encoder(monkeypatch: pytest.MonkeyPatch) -> None:
    import benchmark.corpora.sim as sim

    before = fingerprints()
    monkeypatch.setattr(sim, "SIMULATOR_VERSION", "999")
    after = fingerprints()
    assert moved(before["encoder"], after["encoder"]) == {"sim"}
    assert moved(before["cells"], after["cells"]) == MAE


@pytest.mark.parametrize("override", [{"test_seed": "7"}, {"age_bins": "30,50,70"}, {"finetune.lr": "0.5"},
                                      {"tuning.n_trials": "3"}, {"split": "patient"}, {"duplicates": "ignore"}])
def test_a_protocol_setting_moves_every_cell_and_study_but_no_encoder(override: dict[str, str]) -> None:
    before, after = fingerprints(), fingerprints(override)
    assert before["encoder"] == after["encoder"]
    assert moved(before["cells"], after["cells"]) == MAE | RESNET
    assert moved(before["studies"], after["studies"]) == MAE | RESNET


def test_the_split_version_moves_every_cell_but_no_encoder(monkeypatch: pytest.MonkeyPatch) -> None:
    import benchmark.run.cells as cells

    before = fingerprints()
    monkeypatch.setattr(cells, "SPLIT_VERSION", "999")  # a change of split membership (e.g. duplicate grouping)
    after = fingerprints()
    assert before["encoder"] == after["encoder"]
    assert moved(before["cells"], after["cells"]) == MAE | RESNET


def test_the_protocol_version_moves_every_cell(monkeypatch: pytest.MonkeyPatch) -> None:
    import benchmark.run.cells as cells

    before = fingerprints()
    monkeypatch.setattr(cells, "PROTOCOL_VERSION", "999")
    after = fingerprints()
    assert before["encoder"] == after["encoder"]
    assert moved(before["cells"], after["cells"]) == MAE | RESNET


def test_the_data_version_moves_every_cell() -> None:
    assert moved(fingerprints()["cells"], fingerprints(data_version="v2")["cells"]) == MAE | RESNET


def test_a_baseline_setting_moves_its_cells_only() -> None:
    before, after = fingerprints(), fingerprints({"baselines.resnet18-1d.base_width": "12"})
    assert before["encoder"] == after["encoder"]
    assert moved(before["cells"], after["cells"]) == RESNET


def test_seeds_share_one_study_and_never_a_cell() -> None:
    fps = fingerprints()
    seeds = sorted(label for label in fps["cells"] if label.startswith("mae:sim"))
    assert fps["cells"][seeds[0]] != fps["cells"][seeds[1]]
    assert fps["studies"][seeds[0]] == fps["studies"][seeds[1]]
    assert len(set(fps["studies"].values())) == 2  # one study per model


def test_the_same_config_gives_the_same_fingerprints() -> None:
    assert fingerprints() == fingerprints()


def test_a_setting_of_a_simulator_the_corpus_does_not_use_moves_nothing() -> None:
    # sim is SimECG-N (the Gaussian simulator): ECGSYN's settings cannot change its ECGs
    assert fingerprints({"pretrain.corpus_options.ecgsyn.noise_mu": "0.0"}) == fingerprints()


# ----- which study a cell takes its values from (docs/protocol.md, tuning) ------------------------------------
def _studies(overrides: dict[str, str]) -> dict[str, str]:
    return fingerprints(overrides)["studies"]


def test_budget_cells_share_the_full_data_study_of_their_task_and_model() -> None:
    studies = _studies({"grid.budgets": "0,5,10"})
    for model in ("mae:sim", "resnet18-1d"):
        mine = {fp for label, fp in studies.items() if label.startswith(model)}
        assert len(mine) == 1  # every budget and seed of the model: one study, the full-data one
    assert _studies({})["mae:sim | demo/af | II | budget all | seed 1"] == studies[
        "mae:sim | demo/af | II | budget 5 | seed 2"]  # the same study a full-data-only suite has


def test_separate_studies_gives_each_budget_its_own_study_and_leaves_the_full_data_one_alone() -> None:
    shared = _studies({"grid.budgets": "0,5"})
    separate = _studies({"grid.budgets": "0,5", "tuning.separate_studies": "budget"})
    full = "resnet18-1d | demo/af | II | budget all | seed 1"
    five = "resnet18-1d | demo/af | II | budget 5 | seed 1"
    assert separate[five] != separate[full]
    assert separate[full] == shared[full]  # the scope setting is in no study's identity


def test_a_cell_moves_when_the_study_it_takes_its_values_from_moves() -> None:
    before = fingerprints({"grid.budgets": "0,5"})
    after = fingerprints({"grid.budgets": "0,5", "tuning.separate_studies": "budget"})
    moved_cells = moved(before["cells"], after["cells"])
    assert moved_cells == {label for label in before["cells"] if "budget 5" in label}  # full-data cells keep theirs


def test_scratch_borrows_the_simecg_n_mae_study_when_the_suite_runs_it() -> None:
    fps = fingerprints({"grid.models": "mae,transformer-scratch"})
    scratch = fps["studies"]["transformer-scratch | demo/af | II | budget all | seed 1"]
    assert scratch == fps["studies"]["mae:sim | demo/af | II | budget all | seed 1"]
    # the MAE's encoder reaches the scratch cells through the study they take their values from
    after = fingerprints({"grid.models": "mae,transformer-scratch", "pretrain.lr": "0.002"})
    assert moved(fps["cells"], after["cells"]) == set(fps["cells"])
    alone = fingerprints({"grid.models": "transformer-scratch"})["studies"]  # no mae:sim to borrow from
    own = fingerprints({"grid.models": "mae,transformer-scratch", "tuning.shared_studies": ""})["studies"]
    label = "transformer-scratch | demo/af | II | budget all | seed 1"
    assert alone[label] == own[label] != scratch


def test_tuning_settings_move_no_cell_that_is_not_tuned() -> None:
    untuned = {"tuning.n_trials": "0"}
    before = fingerprints(untuned)
    assert fingerprints({**untuned, "tuning.tune_seed": "3", "tuning.trial_max_epochs": "7"}) == before
    assert set(before["studies"].values()) == {""}
    assert moved(fingerprints({"tuning.tune_seed": "3"})["cells"], fingerprints()["cells"]) == MAE | RESNET


def test_a_frozen_encoder_takes_the_values_tuned_with_full_fine_tuning() -> None:
    label = "mae:sim | demo/af | II | budget all | seed 1"
    full, frozen = fingerprints(), fingerprints({"baselines.mae.mode": "probe"})
    assert frozen["studies"][label] == full["studies"][label]  # the authors' frozen runs: the full-data search
    assert frozen["cells"][label] != full["cells"][label]
    own = fingerprints({"baselines.mae.mode": "probe", "tuning.separate_studies": "frozen"})["studies"]
    assert own[label] != full["studies"][label]
    assert fingerprints({"tuning.separate_studies": "frozen"}) == full  # nothing frozen: nothing moves
