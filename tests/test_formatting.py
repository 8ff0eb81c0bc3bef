"""Numbers as text: one function per kind of number, and the leaderboard and the report agree on each."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest

from benchmark.results import formatting, report
from benchmark.results.leaderboard import ROW_COLUMNS, SUMMARY_COLUMNS, Leaderboard

NAN = float("nan")


@pytest.mark.parametrize("missing", [None, NAN, np.float64("nan"), np.float32("nan")])
def test_a_missing_number_is_blank_in_every_kind_of_cell(missing) -> None:
    assert formatting.is_missing(missing)
    for text in (formatting.number(missing), formatting.mean_sd(missing, 0.1), formatting.gain(missing),
                 formatting.count(missing), formatting.interval(missing, 0.9), formatting.interval(0.1, missing),
                 formatting.p_value(missing)):
        assert text == formatting.MISSING == ""


def test_numbers_read_the_same_whatever_their_type() -> None:
    assert formatting.number(0.81234) == formatting.number(np.float32(0.81234)) == "0.812"
    assert formatting.number("mae:sim") == "mae:sim" and not formatting.is_missing("text")
    assert formatting.mean_sd(0.8, 0.0125) == "0.800 ± 0.013" and formatting.mean_sd(0.8, NAN) == "0.800"
    assert (formatting.gain(5.4891), formatting.gain(-0.5)) == ("+5.49%", "-0.50%")
    assert formatting.count(40.0) == "40" and formatting.interval(0.75, 0.86) == "[0.750, 0.860]"


def test_p_values_are_printed_readably() -> None:
    values = (0.5, 0.0123, 3.8e-06, NAN)
    assert tuple(formatting.p_value_text(v) for v in values) == ("0.500", "0.012", "3.8e-06", "n/a")
    assert formatting.p_value(3.8e-06) == "3.8e-06" and formatting.p_value(NAN) == ""  # never "0.000"


def test_durations() -> None:
    assert [formatting.duration(s) for s in (None, 41, 27 * 60, 3.2 * 3600, 12 * 86400, 14.5 * 365.25 * 86400)] == \
        ["?", "41 s", "27 min", "3.2 h", "12.0 d", "14.5 years"]


def _board() -> Leaderboard:
    """Two pretrained sources and a baseline on two tasks; a mean without an sd, a mean and a gain undefined."""
    base = {c: NAN for c in ROW_COLUMNS}
    rows = []
    for task, model, role, f1, sd, gain in (
            ("ptbxl/AFIB", "mae:sim", "pretrained", 0.81234, 0.0125, 5.4891),
            ("ptbxl/AFIB", "mae:ptbxl", "pretrained", 0.8, NAN, -0.5),
            ("ptbxl/AFIB", "resnet18-1d", "baseline", 0.7, 0.02, NAN),
            ("ptbxl/STD", "mae:sim", "pretrained", 0.6, 0.01, NAN),
            ("ptbxl/STD", "mae:ptbxl", "pretrained", NAN, 0.03, 2.0),  # a run without its test F1
            ("ptbxl/STD", "resnet18-1d", "baseline", 0.0, 0.0, NAN)):
        rows.append({**base, "task": task, "model": model, "role": role, "test_f1": f1, "test_f1_sd": sd,
                     "relative_gain_pct": gain, "n_seeds": 2, "test_n_pos": 40.0, "few_positives": False,
                     "flag": "", "best_baseline": "resnet18-1d", "significant": False, "sees_test_records": False,
                     "config": "c"})
    summary = pd.DataFrame([{**{c: NAN for c in SUMMARY_COLUMNS}, "model": model, "mean_relative_gain_pct": gain,
                             "wins": 1, "tasks_counted": 2, "mean_relative_gain_ci_note": "too few tasks"}
                            for model, gain in (("mae:sim", 5.4891), ("mae:ptbxl", NAN))])
    return Leaderboard("s", "II", 0, pd.DataFrame(rows), summary, synthetic=False)


def _html_cells(page: str, row: str) -> list[str]:
    """The text of the cells of the table row whose header is ``row`` (the sd the page sets on a line
    of its own read back as `` ± sd``)."""
    match = re.search(rf"<tr><th>{re.escape(row)}</th>(.*?)</tr>", page)
    assert match, row
    cells = re.findall(r"<td[^>]*>(.*?)</td>", match.group(1))
    return [re.sub(r'<br><span class="sd">(.*?)</span>', r" \1", cell) for cell in cells]


def test_the_leaderboard_and_the_report_format_the_same_number_the_same_way() -> None:
    board = _board()
    wide = board.wide()
    page = report._sources_section(board).replace("&#x27;", "'")
    sources = ["mae:ptbxl", "mae:sim"]  # the report's column order
    for task in ("ptbxl/AFIB", "ptbxl/STD"):
        assert _html_cells(page, task) == [wide.loc[task, s] for s in sources]
    assert wide.loc["ptbxl/AFIB", "mae:ptbxl"] == "0.800"  # no sd: the mean alone, in both
    assert wide.loc["ptbxl/STD", "mae:ptbxl"] == ""  # no mean: blank, in both
    assert _html_cells(page, "mean (2 tasks counted)") == [wide.loc["mean", s] for s in sources]
    # the mean gain: undefined for mae:ptbxl, blank in both
    assert _html_cells(page, "mean gain") == [wide.loc["mean", f"gain {s}"] for s in sources] == ["", "+5.49%"]
    details = board.details().set_index(["task", "model"])
    frame = report._detail_frame(board.rows).set_index(["task", "model"])
    assert frame.test_f1.tolist() == details.test_f1.tolist()
    assert frame.test_f1_sd.tolist() == details.sd.tolist() and "" in details.sd.tolist()
