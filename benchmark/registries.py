"""The benchmark's own registries: downstream datasets, tasks, suites and speed benchmarks.

Filled like the shared ones (:mod:`simecg.registries`) through entry-point groups; our built-in
entries are declared in ``pyproject.toml``. ``ALL`` is every registry ``simecg-bench list`` shows.
"""

from __future__ import annotations

from typing import Any

from simecg.registries import SHARED
from simecg.registry import Registry

DATASETS: Registry[Any] = Registry(
    "dataset", "simecg_bench.datasets", contract="benchmark.data.base:Dataset",
    contract_doc="a Dataset: label_counts(spec, data_dir, options) -> ClassCounts and "
                 "load_task(spec, data_dir, lead, cache_dir) -> TaskData",
)
TASKS: Registry[Any] = Registry(
    "task", "simecg_bench.tasks", contract="benchmark.data.base:TaskSpec",
    contract_doc="a TaskSpec (dataset, positive codes, negative class)",
)
SUITES: Registry[Any] = Registry(
    "suite", "simecg_bench.suites", contract="benchmark.suites:SuiteSource",
    contract_doc="a path to a suite TOML file, or a function returning a SuiteConfig",
)
BENCHES: Registry[Any] = Registry(
    "benchmark", "simecg_bench.benchmarks", contract="benchmark.perf:Bench",
    contract_doc="an object (or class) with run(args) -> int and optionally add_arguments(parser)",
)

ALL: dict[str, Registry[Any]] = {**SHARED, "datasets": DATASETS, "tasks": TASKS, "suites": SUITES,
                                 "benchmarks": BENCHES}
