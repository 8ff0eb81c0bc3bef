"""Label budgets: train on only k labelled records per class, nested and seeded.

docs/protocol.md: budgets are absolute counts of training samples per class (1 ... 1000), subsets of
the training split. Per class, one seeded permutation of the class's training records is drawn
and a budget takes its first k: so for one seed, every smaller budget is a subset of every larger
one (nested), and runs differ only through the seed. A budget above what a class has is capped
at the class size and the cap is recorded. ``positives_only`` limits the positive class only and
keeps every negative (the paper's positives-only variant).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from simecg.errors import ConfigError
from simecg.seeding import rng_for

BUDGETS = (1, 2, 5, 10, 25, 50, 100, 250, 500, 1000)


def apply_budget(
    train_idx: np.ndarray, labels: np.ndarray, budget: int | None, seed: int, positives_only: bool = False
) -> tuple[np.ndarray, dict[str, Any]]:
    """Subset of ``train_idx`` with at most ``budget`` records per class (None = all).

    Args:
        train_idx: record indices of the training split.
        labels: labels of ALL records of the task (``TaskData.labels``), indexed by record index.
        budget: records per class, or None for the full training split.
        seed: run seed; the same seed gives nested subsets across budgets.
        positives_only: apply the budget to the positive class (label 1) only.

    Returns:
        The chosen record indices (sorted) and a JSON-ready dict: budget, positives_only,
        per-class ``available`` and ``used`` counts, and ``capped`` (classes whose size was below
        the budget).
    """
    train_idx = np.asarray(train_idx, dtype=np.int64)
    labels = np.asarray(labels)
    if budget is not None and (int(budget) != budget or budget < 1):
        raise ConfigError(f"label budget must be a positive integer or None, got {budget!r}")
    if len(train_idx) and (train_idx.max() >= len(labels) or train_idx.min() < 0):
        raise ConfigError(f"train indices reach {train_idx.max()} but labels has {len(labels)} entries; "
                          "pass TaskData.labels (all records), not the training labels")
    chosen, info = [], {"budget": budget, "positives_only": positives_only, "available": {}, "used": {},
                        "capped": {}}
    for cls in np.unique(labels[train_idx]):
        members = np.sort(train_idx[labels[train_idx] == cls])
        key = str(int(cls))
        info["available"][key] = len(members)
        limited = budget is not None and (not positives_only or int(cls) == 1)
        if limited:
            order = rng_for(seed, "budget", int(cls)).permutation(members)
            take = order[: int(budget)]
            if len(members) < budget:
                info["capped"][key] = len(members)
        else:
            take = members
        info["used"][key] = len(take)
        chosen.append(take)
    out = np.sort(np.concatenate(chosen)) if chosen else train_idx[:0]
    return out, info
