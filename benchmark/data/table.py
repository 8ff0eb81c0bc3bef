"""The task table ``benchmark/data/tasks.toml`` as parsed data, shared by the tasks and the readers.

It lives here (not in ``benchmark.data.tasks``) so dataset readers can use the code tables without
importing the task registry module, which itself imports this package.
"""

from __future__ import annotations

import functools
import tomllib
from pathlib import Path
from typing import Any

from simecg.errors import ConfigError

TABLE_PATH = Path(__file__).resolve().parent / "tasks.toml"


@functools.lru_cache(maxsize=1)
def task_table() -> dict[str, Any]:
    """The parsed ``tasks.toml`` (datasets, code tables, tasks)."""
    try:
        with TABLE_PATH.open("rb") as fh:
            return tomllib.load(fh)
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"{TABLE_PATH}: cannot read the task table ({exc})") from None
