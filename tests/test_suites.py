"""Suites ask the study's questions: which pretraining sources each compares, and `--corpus` narrowing."""

from __future__ import annotations

import pytest

from benchmark.run.cells import enumerate_cells
from benchmark.suites.config import load_suite, with_corpora
from simecg.errors import ConfigError

FIVE = {"mae:sim", "mae:ecgsyn", "mae:ptbxl", "mae:vae", "mae:gan"}


def models(suite, grid: str | None = None) -> set[str]:
    return {c.model for c in enumerate_cells(suite) if c.model.startswith("mae:")
            and (grid is None or any(g.name == grid and c.task in suite.resolved_tasks(g) and
                                     c.budget in g.budgets and c.lead in g.leads for g in suite.grids))}


@pytest.mark.parametrize("name", ["paper", "corpora"])
def test_the_comparison_suites_pretrain_on_all_five_sources(name: str) -> None:
    assert models(load_suite(name)) == FIVE


def test_the_main_grid_of_all_pretrains_on_the_five_sources() -> None:
    suite = load_suite("all")
    main = next(grid for grid in suite.grids if grid.name == "main")
    assert {f"mae:{source}" for source in suite.grid_corpora(main)} == FIVE


@pytest.mark.parametrize("name", ["budgets", "demographics"])
def test_budgets_and_demographics_compare_simecg_n_with_real_data(name: str) -> None:
    assert models(load_suite(name)) == {"mae:sim", "mae:ptbxl"}


def test_in_all_budgets_run_the_authors_encoders_and_leads_use_sim() -> None:
    suite = load_suite("all")
    budget_cells = {c.model for c in enumerate_cells(suite) if c.budget == 10 and c.model.startswith("mae:")}
    lead_cells = {c.model for c in enumerate_cells(suite) if c.lead == "V1" and c.model.startswith("mae:")}
    exp04, exp07 = {"mae:sim", "mae:ptbxl"}, {"mae:ecgsyn", "mae:vae", "mae:gan"}
    exp09 = {f"mae:sim-{size}" for size in ("2k", "5k", "20k", "50k", "100k", "200k")} | {"mae:ptbxl", "mae:g12ec"}
    assert budget_cells == exp04 | exp07 | exp09 and lead_cells == {"mae:sim"}
    assert not {c.model for c in enumerate_cells(suite) if c.budget == 10} - budget_cells  # no baseline under budgets


def test_a_corpus_list_narrows_every_grid() -> None:
    suite = with_corpora(load_suite("all"), ["sim"])
    assert {c.model for c in enumerate_cells(suite) if c.model.startswith("mae:")} == {"mae:sim"}
    suite = with_corpora(load_suite("all"), ["ptbxl", "sim-5k"])
    assert {c.model for c in enumerate_cells(suite) if c.lead == "V1" and c.model.startswith("mae:")} == set()
    assert {c.model for c in enumerate_cells(suite) if c.budget == 10} == {"mae:ptbxl", "mae:sim-5k"}
    with pytest.raises(ConfigError, match="unknown corpus 'simm'"):
        with_corpora(load_suite("all"), ["simm"])


def test_corpus_size_sources_are_simecg_n_corpora_of_each_size() -> None:
    suite = load_suite("corpus-size")
    configs = {source: suite.source_config(source) for source in suite.corpora}
    assert {c.corpus for c in configs.values()} == {"sim"}
    assert [c.corpus_size for c in configs.values()] == [2000, 5000, 10000, 20000, 50000, 100000, 200000, 1000000]
    assert all(c.val_size * 2 <= c.corpus_size for c in configs.values())  # every size leaves training data
    assert len(models(suite)) == 8


def test_progress_sources_are_seven_checkpoints_of_one_constant_schedule_trajectory() -> None:
    suite = load_suite("progress")
    configs = [suite.source_config(source) for source in suite.corpora]
    assert [c.steps for c in configs] == [31250 * 2**k for k in range(7)]
    assert {c.schedule for c in configs} == {"constant"}  # so the longer ones continue the shorter ones
    assert {c.select for c in configs} == {"last"}  # fixed-step checkpoints, not the best-validation one


def test_a_source_table_sets_values_for_that_source_alone() -> None:
    suite = load_suite("smoke", {"sources.tiny-sim.corpus": "sim", "sources.tiny-sim.corpus_size": "600",
                                 "sources.tiny-sim.corpus_options.gaussian.augment_rate": "0"})
    suite = with_corpora(suite, ["sim", "tiny-sim"])
    small, plain = suite.source_config("tiny-sim"), suite.source_config("sim")
    assert (small.corpus, small.corpus_size, small.corpus_options) == ("sim", 600, {"gaussian": {"augment_rate": 0}})
    assert plain.corpus_size == suite.pretrain.corpus_size and plain.corpus_options == {}
    assert models(suite) == {"mae:sim", "mae:tiny-sim"}
    with pytest.raises(ConfigError, match=r"\[sources.bad\] unknown corpus 'nope'"):
        with_corpora(load_suite("smoke", {"sources.bad.corpus": "nope"}), ["bad"])
