"""What ``simecg-bench list`` shows: the registries, and one line per entry of one kind.

Each line is read without importing what the entry needs to run: a lazy entry's description comes
from its module's source (:meth:`simecg.registry.Registry.summary`), a suite's from its TOML file
(not the checked config, which builds every model of the suite), a task's from its row. Only
``parameters=True`` builds the baselines' default models, to count their weights. So every
``list`` answers in about a second (``simecg-bench bench listing`` measures it).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from benchmark.registries import ALL, SUITES, TASKS
from simecg.config import read_toml
from simecg.registries import BASELINES


def overview() -> list[dict[str, Any]]:
    """One row per registry: its kind, how many entries it has, its entry-point group and contract."""
    return [{"kind": kind, "entries": len(registry), "group": registry.group or "", "contract": registry.contract_doc}
            for kind, registry in sorted(ALL.items())]


def entries(kind: str, parameters: bool = False) -> list[dict[str, Any]]:
    """One row per entry of ``kind`` (a key of :data:`benchmark.registries.ALL`): ``name`` and
    ``description``; tasks also ``source``, the task file a task added from outside came from ("" for
    ours); baselines, with ``parameters``, also ``parameters`` (trainable weights of the default
    model, None for an estimator), which builds every model (seconds: torch is imported)."""
    registry = ALL[kind]
    rows = [{"name": name, "description": describe(kind, name)} for name in registry.names()]
    if kind == "tasks":  # the metadata benchmark.data.tasks registers a task with
        for row in rows:
            metadata = TASKS.metadata(row["name"])
            row["source"] = "" if metadata.get("ours") else str(metadata.get("source", "(registered in Python)"))
    if kind == "baselines" and parameters:
        for row in rows:
            row["parameters"] = parameter_count(row["name"])
    return rows


def describe(kind: str, name: str) -> str:
    """One line saying what entry ``name`` of ``kind`` is, importing none of the code it runs."""
    if kind == "tasks":
        spec = TASKS.get(name)
        return spec.description or f"{spec.label} vs {', '.join(spec.negative)}"
    if kind == "suites":
        return suite_description(name)
    return ALL[kind].summary(name)


def suite_description(name: str) -> str:
    """A registered suite's ``description``: read from its TOML file (a suite made by a function is built)."""
    source = SUITES.get(name)
    if isinstance(source, (str, Path)):
        return str(read_toml(source, "suite file").get("description", ""))
    return source().description


def parameter_count(name: str) -> int | None:
    """Trainable weights of baseline ``name``'s default model (None for an estimator such as XGBoost)."""
    entry = BASELINES.get(name)
    return entry.count_parameters() if getattr(entry, "kind", "") == "neural" else None
