"""Speed benchmarks (not tests): each module registers itself in ``simecg.registries.BENCHES``.

A registered object has ``run(args) -> int`` and optionally ``add_arguments(parser)``; it prints
figures, compares against a reference measured in the same run, and with ``--json`` prints one
JSON object as its last line.
"""

from benchmark.perf import (
    baselines,  # noqa: E402,F401
    data,  # noqa: E402,F401
    pretrain,  # noqa: E402,F401
    simulators,  # noqa: E402,F401
)
