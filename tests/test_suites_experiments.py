"""The authors' experiments as suites (docs/protocol.md, "The authors' experiments"): each loads and validates,
its cells are the product its experiment names (counted here from the experiment, not from the TOML), our wider
versions say they are ours, and the frozen suites take the values of full fine-tuning."""

from __future__ import annotations

import pytest

from benchmark.catalog import describe
from benchmark.registries import SUITES
from benchmark.run.cells import enumerate_cells
from benchmark.suites.config import load_suite
from pretraining.config import corpus_options

PTBXL, ALL_TASKS, SEEDS, BUDGETS = 13, 26, 5, 10
PAPER_SOURCES = {"sim", "ecgsyn", "ptbxl", "vae", "gan"}


def pretrained(suite) -> set[str]:
    return {c.model for c in enumerate_cells(suite)}


@pytest.mark.parametrize("name", SUITES.names())
def test_every_suite_loads_validates_and_states_its_question(name: str) -> None:
    suite = load_suite(name)
    assert suite.question, f"suite {name} has no question for `list suites`"
    assert describe("suites", name) == f"[{suite.experiment or 'ours'}] {suite.question}"


@pytest.mark.parametrize(("name", "cells", "models"), [
    ("budgets", 2 * PTBXL * BUDGETS * SEEDS, {"mae:sim", "mae:ptbxl"}),  # Exp04
    ("leads", PTBXL * 11 * SEEDS, {"mae:sim"}),  # Exp05: the 11 leads other than II
    ("demographics", 2 * PTBXL * SEEDS, {"mae:sim", "mae:ptbxl"}),  # Exp06: the main cells, broken down
    ("budgets-generative", 3 * PTBXL * BUDGETS * SEEDS, {"mae:ecgsyn", "mae:vae", "mae:gan"}),  # Exp07
    ("equal-compute", 8 * PTBXL * BUDGETS * SEEDS, {"mae:sim-2k", "mae:sim-5k", "mae:sim-20k", "mae:sim-50k",
                                                    "mae:sim-100k", "mae:sim-200k", "mae:ptbxl", "mae:g12ec"}),
    ("normal-vs-all", 4 * ALL_TASKS * SEEDS, {"mae:ptbxl-normal-5k", "mae:ptbxl-all-5k", "mae:sim-5k", "mae:sim"}),
    ("frozen", len(PAPER_SOURCES) * ALL_TASKS * SEEDS, {f"mae:{s}" for s in PAPER_SOURCES}),
])
def test_each_experiment_suite_holds_the_cells_of_its_experiment(name: str, cells: int, models: set[str]) -> None:
    suite = load_suite(name)
    assert len(enumerate_cells(suite)) == cells
    assert pretrained(suite) == models


def test_leads_are_the_eleven_other_than_lead_ii_and_budgets_the_authors_ten() -> None:
    leads = {c.lead for c in enumerate_cells(load_suite("leads"))}
    assert "II" not in leads and len(leads) == 11
    assert {c.budget for c in enumerate_cells(load_suite("budgets"))} == {1, 2, 5, 10, 25, 50, 100, 250, 500, 1000}
    assert {c.shift for c in enumerate_cells(load_suite("demographics"))} == {""}  # no retraining on a group


def test_our_wider_suites_say_they_are_ours() -> None:
    for name in ("budgets-extended", "leads-extended", "demographic-shift"):
        suite = load_suite(name)
        assert suite.experiment == "" and "ours" in suite.description  # `list suites` tags it [ours]
    assert {c.model for c in enumerate_cells(load_suite("budgets-extended"))} > {"mae:sim", "resnet18-1d"}


def test_normal_vs_all_pretrains_on_5k_ptbxl_records_normal_only_or_all() -> None:
    suite = load_suite("normal-vs-all")
    normal, everything = suite.source_config("ptbxl-normal-5k"), suite.source_config("ptbxl-all-5k")
    assert (normal.corpus, normal.corpus_size, normal.corpus_options["classes"]) == ("ptbxl", 5000, "normal")
    assert (everything.corpus, everything.corpus_size) == ("ptbxl", 5000)
    assert everything.corpus_options.get("classes", "all") == "all"
    options = corpus_options(normal)
    assert options.exclude_test_splits and (options.split, options.test_seed) == (suite.split, suite.test_seed)
    # the authors took the SimECG-N MAE's full fine-tuning values for the three 5k encoders (their pt_id_table)
    assert {donor for donor in suite.tuning.donors().values()} == {"mae:sim"}


def test_the_frozen_suites_freeze_the_encoder_and_borrow_full_fine_tuning_values() -> None:
    for name in ("frozen", "normal-vs-all"):
        suite = load_suite(name)
        assert suite.baselines["mae"]["mode"] == "probe"
        assert "frozen" not in suite.tuning.separate_studies  # so a probe is tuned as full fine-tuning


def test_equal_compute_trains_every_source_for_the_same_steps_and_shares_corpus_size_encoders() -> None:
    suite = load_suite("equal-compute")
    configs = {source: suite.source_config(source) for source in suite.corpora}
    assert len({c.steps for c in configs.values()}) == 1  # the same compute, whatever the corpus size
    assert {c.corpus for c in configs.values()} == {"sim", "ptbxl", "g12ec"}
    size = load_suite("corpus-size")
    for source in set(suite.corpora) & set(size.corpora):  # the same table: the same encoder, pretrained once
        assert size.source_config(source) == configs[source]


def test_a_frozen_5k_encoder_takes_exactly_the_study_of_the_fully_fine_tuned_simecg_n_mae() -> None:
    """normal-vs-all's rule on the demo tasks: the frozen mae:sim-5k borrows mae:sim's study, and that study is the
    one a suite fine-tuning mae:sim in full tunes (the same fingerprint: tuned once, in whichever suite runs first)."""
    from benchmark.run.cells import plan_cells
    from benchmark.run.encoders import SuiteEncoders

    base = {"grid.tasks": "demo/af", "grid.seeds": "1", "grid.models": "mae", "tuning.n_trials": "2",
            "sources.sim-5k.corpus": "sim", "sources.sim-5k.corpus_size": "5000", "sources.sim-5k.val_size": "500"}

    def studies(overrides: dict[str, str]) -> dict[str, str]:
        suite = load_suite("demo", {**base, **overrides}, corpora=["sim", "sim-5k"])
        cells = enumerate_cells(suite)
        planned = plan_cells(suite, cells, {(c.task, c.lead): "v1" for c in cells}, SuiteEncoders(suite))
        return {p.cell.model: p.study.fingerprint for p in planned}

    full = studies({})
    frozen = studies({"baselines.mae.mode": "probe", "tuning.shared_studies": "mae:sim-5k=mae:sim"})
    assert frozen["mae:sim-5k"] == frozen["mae:sim"] == full["mae:sim"] != full["mae:sim-5k"]
