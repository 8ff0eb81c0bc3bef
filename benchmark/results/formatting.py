"""Numbers as text, written once for every table and line SimECG-Bench prints.

The leaderboard (terminal, markdown, CSV details), the HTML report and the run's progress lines
show the same numbers; each kind of number has one function here, so a test F1, a gain or a
p-value reads the same wherever it appears. A number that is not there (``None`` or NaN: a seed
without a standard deviation, a gain without a baseline) is :data:`MISSING` in a table cell,
blank as pandas leaves an absent cell; a sentence that must still say something says ``n/a``
(:func:`p_value_text`).
"""

from __future__ import annotations

import math
from typing import Any

MISSING = ""  # a number that is not there, in a table cell


def is_missing(value: Any) -> bool:
    """Whether ``value`` stands for no number: ``None`` or a float NaN (numpy's included)."""
    if value is None:
        return True
    try:
        return math.isnan(value)
    except TypeError:  # text, a label: there, not a number
        return False


def number(value: Any) -> str:
    """A score or loss with three decimals (``0.812``); text passes through as it is."""
    if is_missing(value):
        return MISSING
    try:
        return f"{float(value):.3f}"
    except (TypeError, ValueError):
        return str(value)


def mean_sd(mean: Any, sd: Any) -> str:
    """``0.812 ± 0.013``: a mean over seeds and its standard deviation (just the mean with one seed)."""
    if is_missing(mean):
        return MISSING
    return number(mean) if is_missing(sd) else f"{number(mean)} ± {number(sd)}"


def gain(value: Any) -> str:
    """A relative gain in percent with its sign (``+5.49%``)."""
    return MISSING if is_missing(value) else f"{float(value):+.2f}%"


def count(value: Any) -> str:
    """A count stored as a float (MLflow metrics are floats): ``40``."""
    return MISSING if is_missing(value) else str(int(value))


def interval(low: Any, high: Any) -> str:
    """``[0.750, 0.860]``: a 95% interval of a score."""
    return MISSING if is_missing(low) or is_missing(high) else f"[{number(low)}, {number(high)}]"


def p_value(value: Any) -> str:
    """A p-value: three decimals, two significant digits below 0.001 (``3.8e-06``, never ``0.000``)."""
    if is_missing(value):
        return MISSING
    value = float(value)
    return f"{value:.3f}" if value >= 0.001 else f"{value:.1e}"


def p_value_text(value: Any) -> str:
    """A p-value inside a sentence (``sign test p = n/a``): ``n/a`` when undefined."""
    return p_value(value) or "n/a"


def duration(seconds: float | None) -> str:
    """``41 s``, ``27 min``, ``3.2 h``, ``12.0 d``, ``14.5 years``; ``?`` when unknown."""
    if seconds is None:
        return "?"
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 90 * 60:
        return f"{seconds / 60:.0f} min"
    if seconds < 48 * 3600:
        return f"{seconds / 3600:.1f} h"
    if seconds < 365 * 86400:
        return f"{seconds / 86400:.1f} d"
    return f"{seconds / (365.25 * 86400):.1f} years"
