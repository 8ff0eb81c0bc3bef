"""The task table ``benchmark/data/tasks.toml`` as parsed data, shared by the tasks and the readers.

It lives here (not in ``benchmark.data.tasks``) so dataset readers can use the code tables without
importing the task registry module, which itself imports this package.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

from simecg.config import read_toml

TABLE_PATH = Path(__file__).resolve().parent / "tasks.toml"


@functools.lru_cache(maxsize=1)
def task_table() -> dict[str, Any]:
    """The parsed ``tasks.toml`` (datasets, code tables, tasks)."""
    return read_toml(TABLE_PATH, "task table")
