"""The registries of SimECG-Bench, one per kind, the single way in for every name.

Built-in entries live in the modules named in ``builtins`` and register themselves with a
decorator when imported (on the first lookup). Third-party packages add entries through the
entry-point groups below, e.g. in their ``pyproject.toml``::

    [project.entry-points."simecg_bench.baselines"]
    my-net = "my_package.my_net"      # a module whose @BASELINES.register(...) runs on import
"""

from __future__ import annotations

from typing import Any

from simecg.registry import Registry

CORPORA: Registry[Any] = Registry(
    "corpus", "simecg_bench.corpora", builtins=("pretraining.corpora", "benchmark.datasets")
)
SIMULATORS: Registry[Any] = Registry(
    "simulator", "simecg_bench.simulators", builtins=("pretraining.simulators",)
)
BASELINES: Registry[Any] = Registry("baseline", "simecg_bench.baselines", builtins=("baselines",))
DATASETS: Registry[Any] = Registry("dataset", "simecg_bench.datasets", builtins=("benchmark.datasets",))
TASKS: Registry[Any] = Registry("task", "simecg_bench.tasks", builtins=("benchmark.tasks", "benchmark.datasets"))
SUITES: Registry[Any] = Registry("suite", "simecg_bench.suites", builtins=("benchmark.suites",))

ALL = {"corpora": CORPORA, "simulators": SIMULATORS, "baselines": BASELINES, "datasets": DATASETS,
       "tasks": TASKS, "suites": SUITES}

# Speed benchmarks (`simecg-bench bench NAME`): functions taking parsed args, printing figures.
BENCHES: Registry[Any] = Registry("benchmark", builtins=("benchmark.perf",))
ALL["benchmarks"] = BENCHES
