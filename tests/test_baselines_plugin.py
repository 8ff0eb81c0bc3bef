"""The example plugin package outside the project registers a baseline through the real
``simecg_bench.baselines`` entry-point machinery (importlib.metadata scanning a dist-info).

The registry loads entry points once per process, so each check runs in a fresh interpreter
with the plugin's folder on ``PYTHONPATH``; the test process's own registry stays untouched.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from simecg.registries import BASELINES

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "simecg-example-baseline"

PROBE = textwrap.dedent(
    """
    import json, torch
    torch.set_num_threads(1)
    from simecg.registries import BASELINES
    cls = BASELINES.get("example-tiny-cnn")
    model = cls.build(cls.make_config({"width": 8}))
    torch.manual_seed(0)
    x = torch.randn(64, 1, 5000)
    y = (torch.arange(64) % 2).float()
    x[y == 1, :, ::50] += 8.0  # an obvious spike train marks the positives
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(30):
        loss = torch.nn.functional.binary_cross_entropy_with_logits(model(x), y)
        optimizer.zero_grad(); loss.backward(); optimizer.step()
    model.eval()
    accuracy = ((model(x) > 0).float() == y).float().mean().item()
    print(json.dumps({"names": BASELINES.names(), "module": cls.__module__, "kind": cls.kind,
                      "logits": list(model(x[:3]).shape), "accuracy": accuracy}))
    """
)


def _probe(site: Path) -> dict:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run([sys.executable, "-c", PROBE], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def _assert_plugin_found_and_trained(result: dict) -> None:
    assert "example-tiny-cnn" in result["names"]
    assert {"resnet18-1d", "xgboost-features"} <= set(result["names"])  # built-ins still there
    assert result["module"] == "simecg_example_baseline"
    assert result["kind"] == "neural"
    assert result["logits"] == [3]
    assert result["accuracy"] >= 0.9


def test_plugin_is_not_registered_without_its_distribution():
    assert "example-tiny-cnn" not in BASELINES


@pytest.mark.slow
def test_plugin_dist_info_on_sys_path_registers_and_trains_its_baseline(tmp_path: Path):
    """A hand-written dist-info whose entry_points.txt is generated from the example's pyproject."""
    from setuptools.config.pyprojecttoml import read_configuration  # a TOML reader on Python 3.10 too

    project = read_configuration(EXAMPLE / "pyproject.toml", expand=False)["project"]
    entry_points = project["entry-points"]["simecg_bench.baselines"]
    site = tmp_path / "site"
    dist_info = site / f"simecg_example_baseline-{project['version']}.dist-info"
    dist_info.mkdir(parents=True)
    shutil.copy(EXAMPLE / "simecg_example_baseline.py", site)
    (dist_info / "METADATA").write_text(
        f"Metadata-Version: 2.1\nName: {project['name']}\nVersion: {project['version']}\n"
    )
    lines = [f"{name} = {target}" for name, target in entry_points.items()]
    (dist_info / "entry_points.txt").write_text("[simecg_bench.baselines]\n" + "\n".join(lines) + "\n")
    _assert_plugin_found_and_trained(_probe(site))


TINY_SUITE = """
description = "Plugin check: the example baseline on one synthetic demo task"
synthetic = true
corpora = []

[finetune]
lr = 1e-3
batch_size = 32
max_epochs = 4
eval_every = 2
patience = 2

[baselines.example-tiny-cnn]
width = 8

[[grid]]
tasks = ["demo/af"]
models = ["example-tiny-cnn"]
seeds = [1]
"""


@pytest.mark.slow
def test_pip_installed_example_package_registers_its_baseline_and_runs_in_a_suite(tmp_path: Path):
    """The real path: build and install the example with pip (offline: no isolation, no deps),
    then run it through ``simecg-bench run`` on a one-cell synthetic suite."""
    source = tmp_path / "src"
    shutil.copytree(EXAMPLE, source)  # building writes build/ and egg-info: keep them out of the repo
    site = tmp_path / "site"
    done = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
         "--no-index", "--target", str(site), str(source)],
        capture_output=True, text=True, timeout=300,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert list(site.glob("simecg_example_baseline-*.dist-info/entry_points.txt"))
    _assert_plugin_found_and_trained(_probe(site))

    suite = tmp_path / "plugin-suite.toml"
    suite.write_text(TINY_SUITE)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run(
        [sys.executable, "-m", "benchmark.cli", "run", "--suite", str(suite), "--no-progress", "--format", "json",
         "--tracking-uri", f"sqlite:///{tmp_path / 'mlflow.db'}"],
        env=env, capture_output=True, text=True, timeout=600,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    board = json.loads(done.stdout[done.stdout.index("{"):])
    (row,) = board["rows"]
    assert row["model"] == "example-tiny-cnn" and row["task"] == "demo/af"
    assert 0.0 <= row["test_auroc"] <= 1.0
