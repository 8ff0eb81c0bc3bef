"""``simecg-bench list``: the registries with no kind, and every kind answered without the heavy imports."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from benchmark.cli import main
from benchmark.registries import ALL

ROOT = Path(__file__).resolve().parents[1]


def test_list_without_a_kind_shows_every_registry_and_its_size(capsys) -> None:
    assert main(["list", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["kind"] for r in rows] == sorted(ALL)
    assert all(r["entries"] == len(ALL[r["kind"]]) and r["group"] == ALL[r["kind"]].group for r in rows)


def test_every_kind_is_listed_without_importing_torch_pandas_or_building_a_model(tmp_path) -> None:
    """One fresh process lists every kind; what it imported shows nothing was built (`list suites` used to
    build every model of every suite: 12 s)."""
    code = ("import sys; from benchmark.cli import main\n"
            f"for kind in {sorted(ALL)!r}: assert main(['list', kind]) == 0\n"
            "print(sorted(m for m in ('torch', 'pandas', 'mlflow', 'optuna', 'sklearn') if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300,
                          env={"PATH": "", "SIMECG_CACHE": str(tmp_path)})
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == "[]"


def test_descriptions_match_the_built_entries(capsys) -> None:
    """What is read from source or a suite file is what the imported entry says of itself."""
    from benchmark.suites.config import load_suite
    from simecg.registries import CORPORA

    assert main(["list", "corpora", "--json"]) == 0
    corpora = {r["name"]: r["description"] for r in json.loads(capsys.readouterr().out)}
    assert corpora["sim"] == CORPORA.get("sim").__doc__.strip().splitlines()[0]
    assert main(["list", "suites", "--json"]) == 0
    suites = {r["name"]: r["description"] for r in json.loads(capsys.readouterr().out)}
    assert suites["demo"] == load_suite("demo").description


@pytest.mark.slow
def test_baseline_parameters_are_counted_on_request(capsys) -> None:
    assert main(["list", "baselines", "--parameters", "--json"]) == 0
    rows = {r["name"]: r for r in json.loads(capsys.readouterr().out)}
    assert rows["resnet18-1d"]["parameters"] > 0 and rows["xgboost-features"]["parameters"] is None
