"""Downstream datasets; importing this package registers every built-in dataset and task.

One import line per dataset module (each registers itself in DATASETS / TASKS / CORPORA).
"""

from benchmark.datasets import (
    challenge,  # noqa: E402,F401
    ptbxl,  # noqa: E402,F401
    ptbxl_corpus,  # noqa: E402,F401
)

from benchmark.datasets import demo  # noqa: E402,F401  # isort: skip
