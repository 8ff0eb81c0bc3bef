"""Where caches, data and the MLflow store live; every location is overridable.

Nothing is ever written beside the input data (``../shared`` is read-only in CI).
"""

from __future__ import annotations

import os
from pathlib import Path


def cache_dir() -> Path:
    """Root for generated corpora, preprocessed arrays, encoders: ``$SIMECG_CACHE`` or ~/.cache."""
    root = os.environ.get("SIMECG_CACHE")
    path = Path(root) if root else Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "simecg-bench"
    path.mkdir(parents=True, exist_ok=True)
    return path


def data_dir(explicit: str | os.PathLike[str] | None = None) -> Path:
    """Downstream data root: the explicit argument, ``$SIMECG_DATA``, or ``<cache>/data``."""
    if explicit:
        return Path(explicit).expanduser()
    env = os.environ.get("SIMECG_DATA")
    if env:
        return Path(env).expanduser()
    return cache_dir() / "data"


def default_tracking_uri() -> str:
    """``$MLFLOW_TRACKING_URI`` or a SQLite store under ``./mlruns``."""
    uri = os.environ.get("MLFLOW_TRACKING_URI")
    if uri:
        return uri
    return f"sqlite:///{Path('mlruns').resolve() / 'mlflow.db'}"
