"""Speed benchmarks (not tests), registered in ``benchmark.registries.BENCHES`` by entry points.

A benchmark has ``run(args) -> int`` and optionally ``add_arguments(parser)``; it prints
figures, compares against a reference measured in the same run, and with ``--json`` prints one
JSON object as its last line. Modules are imported only when their benchmark runs.
"""

from typing import Any


def Bench(entry: Any) -> bool:  # noqa: N802 - named as the contract it checks
    """The contract of a speed benchmark: it has a callable ``run(args)``."""
    return callable(getattr(entry, "run", None))
