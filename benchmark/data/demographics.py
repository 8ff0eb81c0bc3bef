"""Demographic groups for per-group evaluation and for shift experiments (train on one group only).

The paper reports PTB-XL test results by sex and age group without publishing its bins. The
default bins follow common clinical age bands for adult ECG studies: < 40, 40-59, 60-79 and 80+
(young adults, middle age, older adults, very old). They are configurable: pass ``age_bins``.
Unknown age or sex gives the group "unknown", which is reported, never silently merged.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd

from benchmark.data.splits import Split
from simecg.errors import ConfigError

AGE_BINS = (40, 60, 80)  # edges: <40, 40-59, 60-79, 80+
UNKNOWN = "unknown"


def age_group_names(bins: tuple[int, ...] = AGE_BINS) -> list[str]:
    """Names of the groups made by ``bins``: ("<40", "40-59", "60-79", "80+") by default."""
    if list(bins) != sorted(set(bins)) or not bins:
        raise ConfigError(f"age bins must be increasing and non-empty, got {bins!r}")
    names = [f"<{bins[0]}"]
    names += [f"{lo}-{hi - 1}" for lo, hi in zip(bins[:-1], bins[1:], strict=True)]
    names.append(f"{bins[-1]}+")
    return names


def groups(records: pd.DataFrame, by: str, age_bins: tuple[int, ...] = AGE_BINS) -> pd.Series:
    """Group name of each record (index aligned with ``records``), by "sex" ("M"/"F") or "age"."""
    if by == "sex":
        sex = records["sex"].astype(object)
        return sex.where(sex.isin(["M", "F"]), UNKNOWN).rename("sex")
    if by == "age":
        names = age_group_names(tuple(age_bins))
        age = pd.to_numeric(records["age"], errors="coerce").to_numpy(dtype=float)
        position = np.searchsorted(np.asarray(age_bins, dtype=float), age, side="right")
        out = np.where(np.isnan(age), UNKNOWN, np.asarray(names, dtype=object)[np.minimum(position, len(names) - 1)])
        return pd.Series(out, index=records.index, name="age_group")
    raise ConfigError(f"unknown demographic attribute {by!r}; expected 'sex' or 'age'")


def shift_split(
    split: Split, records: pd.DataFrame, by: str, train_group: str, test_group: str,
    age_bins: tuple[int, ...] = AGE_BINS,
) -> Split:
    """A split restricted to ``train_group`` for train/validation and ``test_group`` for test.

    Train on one group, test on another (e.g. train on "M", test on "F") to measure how a model
    transfers across a demographic shift; raises when either side ends up empty.
    """
    names = groups(records, by, age_bins).to_numpy()
    train = split.train[names[split.train] == train_group]
    val = split.val[names[split.val] == train_group]
    test = split.test[names[split.test] == test_group]
    if len(train) == 0 or len(test) == 0:
        raise ConfigError(
            f"demographic shift {by}: {train_group!r} -> {test_group!r} leaves {len(train)} training and "
            f"{len(test)} test records; groups present: {sorted(set(names))}"
        )
    return replace(split, train=train, val=val, test=test)
