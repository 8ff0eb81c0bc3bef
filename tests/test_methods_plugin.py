"""The example plugin package outside the project adds a pretraining method through the real
``simecg_bench.methods`` and ``simecg_bench.baselines`` entry points (importlib.metadata scanning a
dist-info): listed, pretrained by the suite's loop, fine-tuned, and shown in a leaderboard as
``example-flip:sim``. Each check runs in a fresh interpreter with the plugin on ``PYTHONPATH``.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from simecg.registries import METHODS

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "simecg-example-method"

SUITE = """
description = "Plugin check: the example method pretrained on sim, on one synthetic demo task"
synthetic = true
corpora = ["sim"]

[pretrain]
preset = "tiny"
corpus_size = 96
steps = 6
batch_size = 8
val_size = 16
val_every = 3
checkpoint_every = 3
num_workers = 0
lr = 1e-3

[finetune]
lr = 1e-3
batch_size = 32
max_epochs = 2
eval_every = 1
patience = 1

[[grid]]
tasks = ["demo/af"]
models = ["example-flip:sim"]
seeds = [1]
"""


def _site(tmp_path: Path) -> Path:
    """A hand-written dist-info whose entry_points.txt is generated from the example's pyproject."""
    from setuptools.config.pyprojecttoml import read_configuration

    project = read_configuration(EXAMPLE / "pyproject.toml", expand=False)["project"]
    site = tmp_path / "site"
    dist_info = site / f"simecg_example_method-{project['version']}.dist-info"
    dist_info.mkdir(parents=True)
    shutil.copy(EXAMPLE / "simecg_example_method.py", site)
    (dist_info / "METADATA").write_text(
        f"Metadata-Version: 2.1\nName: {project['name']}\nVersion: {project['version']}\n")
    groups = []
    for group, entries in project["entry-points"].items():
        groups.append(f"[{group}]\n" + "\n".join(f"{name} = {target}" for name, target in entries.items()))
    (dist_info / "entry_points.txt").write_text("\n\n".join(groups) + "\n")
    return site


def _run(site: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")]),
           "OMP_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, *args], env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return done


def test_plugin_method_is_not_registered_without_its_distribution():
    assert "example-flip" not in METHODS


def test_plugin_method_is_listed_beside_the_built_in_ones(tmp_path: Path):
    done = _run(_site(tmp_path), "-m", "benchmark.cli", "list", "methods", "--json")
    names = {row["name"] for row in json.loads(done.stdout[done.stdout.index("["):])}
    assert {"example-flip", "mae", "simclr", "byol", "dino", "ibot"} <= names


@pytest.mark.slow
def test_plugin_method_pretrains_fine_tunes_and_shows_in_the_leaderboard(tmp_path: Path):
    site = _site(tmp_path)
    suite = tmp_path / "plugin-method.toml"
    suite.write_text(SUITE)
    done = _run(site, "-m", "benchmark.cli", "run", "--suite", str(suite), "--no-progress", "--format", "json",
                "--tracking-uri", f"sqlite:///{tmp_path / 'mlflow.db'}")
    board = json.loads(done.stdout[done.stdout.index("{"):])
    (row,) = board["rows"]
    assert row["model"] == "example-flip:sim" and row["task"] == "demo/af"
    assert 0.0 <= row["test_auroc"] <= 1.0
    encoders = list(Path(os.environ["SIMECG_CACHE"]).glob("encoders/*/identity.json"))
    methods = [json.loads(path.read_text())["payload"].get("method", {}) for path in encoders]
    assert {"name": "example-flip", "config": {"reverse_share": 0.5}} in methods  # pretrained by the plugin
