"""Built-in suites: every ``*.toml`` beside this file is registered under its file name.

Users can also pass a path to their own TOML file (``--suite my_suite.toml``), or register
suites from another package through the ``simecg_bench.suites`` entry-point group (an entry
point may name a TOML path string or a function returning a SuiteConfig).
"""

from pathlib import Path
from typing import Any

from benchmark.registries import SUITES


def SuiteSource(entry: Any) -> bool:  # noqa: N802 - named as the contract it checks
    """The contract of a suite entry: a TOML file path, or a function returning a SuiteConfig."""
    return isinstance(entry, (str, Path)) or callable(entry)


for _path in sorted(Path(__file__).parent.glob("*.toml")):
    SUITES.add(_path.stem, _path, source="builtin")
