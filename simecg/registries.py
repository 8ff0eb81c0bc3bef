"""The registries shared by every package, one per kind, the single way in for every name.

Entries come from entry-point groups, built-in ones too (``[project.entry-points]`` in our
``pyproject.toml``), so a third-party package adds one exactly as we do, e.g. in its
``pyproject.toml``::

    [project.entry-points."simecg_bench.baselines"]
    my-net = "my_package.my_net:MyNet"      # lazy: imported on the first lookup of "my-net"

Each registry names the contract its entries satisfy. Registries of the benchmark package
(datasets, tasks, suites, speed benchmarks) live there; this core
module imports none of them.
"""

from __future__ import annotations

from typing import Any

from simecg.registry import Registry

CORPORA: Registry[Any] = Registry(
    "corpus", "simecg_bench.corpora", contract="pretraining.corpora.base:Corpus",
    contract_doc="a class with an Options dataclass, built as cls(size=, seed=, options=), giving a Corpus "
    "(len, get_batch(indices) -> (n, 5000) float32, identity(); subclass pretraining.corpora.base.CorpusBase "
    "for the defaults of the optional members)",
)
SIMULATORS: Registry[Any] = Registry(
    "simulator", "simecg_bench.simulators", contract="pretraining.simulators.base:Simulator",
    contract_doc="a Simulator: a Config dataclass and simulate(indices, seed) -> (n, 5000) float32",
)
GENERATORS: Registry[Any] = Registry(
    "generator", "simecg_bench.generators", contract="pretraining.generators.common:GenerativeModel",
    contract_doc="a GenerativeModel subclass (trains on z-scored ECGs, samples z -> ECG) with a Config "
    "dataclass and PRESETS (paper, tiny), built as cls(config)",
)
BASELINES: Registry[Any] = Registry(
    "baseline", "simecg_bench.baselines", contract="baselines.base:Baseline",
    contract_doc="a subclass of baselines.base.Baseline (fit on train/validation arrays, predict_scores)",
)

METHODS: Registry[Any] = Registry(
    "method", "simecg_bench.methods", contract="pretraining.methods.base:PretrainingMethod",
    contract_doc="a subclass of pretraining.methods.base.PretrainingMethod (a Config dataclass, PRESETS paper and "
    "tiny, LIMITS; build() -> a module whose .encoder is the shared ECGEncoder, loss(model, signals, draws))",
)

SHARED = {"corpora": CORPORA, "simulators": SIMULATORS, "generators": GENERATORS, "baselines": BASELINES,
          "methods": METHODS}
