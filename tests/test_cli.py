"""The command line: listing, errors as one line, --debug for tracebacks."""

from __future__ import annotations

import json

import pytest

from benchmark.cli import main


@pytest.mark.parametrize("kind", ["corpora", "baselines", "tasks", "suites"])
def test_list_prints_registered_names(kind: str, capsys) -> None:
    assert main(["list", kind, "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    names = {r["name"] for r in rows}
    expected = {"corpora": "sim", "baselines": "resnet18-1d", "tasks": "ptbxl/AFIB", "suites": "smoke"}[kind]
    assert expected in names


def test_bad_override_is_one_line_and_debug_raises(capsys) -> None:
    assert main(["run", "--suite", "demo", "--set", "finetune.nope=1"]) == 2
    err = capsys.readouterr().err
    assert "unknown config key 'finetune.nope'" in err and err.count("\n") == 1
    from simecg.errors import ConfigError

    with pytest.raises(ConfigError):
        main(["--debug", "run", "--suite", "demo", "--set", "finetune.nope=1"])


def test_bad_shard_is_rejected(capsys) -> None:
    assert main(["run", "--suite", "demo", "--shard", "3/2"]) == 2
    assert "--shard" in capsys.readouterr().err


def test_optuna_studies_sit_beside_a_sqlite_store_else_in_the_cache(tmp_path, monkeypatch) -> None:
    from benchmark.run.opening import default_optuna_storage

    monkeypatch.setenv("SIMECG_CACHE", str(tmp_path / "cache"))
    assert default_optuna_storage(f"sqlite:///{tmp_path}/runs/mlflow.db") == f"sqlite:///{tmp_path}/runs/optuna.db"
    assert default_optuna_storage("http://tracking:5000") == f"sqlite:///{tmp_path}/cache/optuna.db"


def test_list_without_a_kind_shows_every_registry(capsys) -> None:
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    for kind, group in (("baselines", "simecg_bench.baselines"), ("corpora", "simecg_bench.corpora"),
                        ("suites", "simecg_bench.suites"), ("tasks", "simecg_bench.tasks")):
        assert any(line.startswith(kind) and f"[{group}]" in line for line in out.splitlines()), kind
    assert main(["list", "--json"]) == 0
    rows = {r["kind"]: r for r in json.loads(capsys.readouterr().out)}
    assert rows["baselines"]["entries"] >= 5 and "Baseline" in rows["baselines"]["contract"]


def test_a_narrowing_corpus_is_stated(capsys) -> None:
    from benchmark.commands.run import corpus_note

    declared = ("sim", "ecgsyn", "ptbxl", "vae", "gan")
    assert corpus_note("corpora", declared, ("sim",)) == (
        "corpora: running 1 of 5 sources (sim); --corpus narrowed sim, ecgsyn, ptbxl, vae, gan")
    assert corpus_note("corpora", declared, declared) is None
    assert corpus_note("smoke", ("sim",), ("sim", "ptbxl")) is None  # adding a source narrows nothing
    assert main(["run", "--suite", "corpora", "--corpus", "sim", "--set", "finetune.nope=1"]) == 2  # before the error
    assert "corpora" not in capsys.readouterr().out  # a config error stops first: nothing else is said
