"""Shared fixtures: real data from ../shared/data (skipped when absent), temporary stores."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _shared_data() -> Path:
    env = os.environ.get("SIMECG_TEST_DATA")
    return Path(env) if env else ROOT.parent / "shared" / "data"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The read-only real-data subsets; the test is skipped when the folder is absent."""
    path = _shared_data()
    if not (path / "ptbxl").is_dir():
        pytest.skip(f"real data subsets not found at {path} (set SIMECG_TEST_DATA)")
    return path


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every test writes caches to a temporary folder, never beside the data or in ~/.cache."""
    cache = tmp_path_factory.getbasetemp() / "simecg-cache"
    monkeypatch.setenv("SIMECG_CACHE", str(cache))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)


@pytest.fixture
def one_thread():
    """Tiny models run fastest on one thread, and do not fight parallel jobs for the cores."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def tracking_uri(tmp_path: Path) -> str:
    """A fresh SQLite MLflow store for one test."""
    return f"sqlite:///{tmp_path / 'mlflow.db'}"
