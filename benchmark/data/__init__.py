"""Downstream datasets; importing this package registers every built-in dataset and task.

One import line per dataset module (each registers itself in DATASETS / TASKS). The PTB-XL
pretraining corpora (``ptbxl_corpus``) are imported by their CORPORA entry points when first looked
up: they use the protocol's splits, a later stage than the datasets.
"""

from benchmark.data import (
    challenge,  # noqa: E402,F401
    ptbxl,  # noqa: E402,F401
)

from benchmark.data import demo  # noqa: E402,F401  # isort: skip
