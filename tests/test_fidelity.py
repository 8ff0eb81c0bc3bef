"""The fidelity table (``simecg-bench protocol``) is read from the resolved suite, so it cannot drift from
the code: the ``paper`` suite matches the authors on every point that is not a declared deviation, and a
``--set`` moving a setting shows in the table."""

from __future__ import annotations

import csv
import io
import json

import pytest

from benchmark.cli import main
from benchmark.results.fidelity import COLUMNS, DEVIATION, DIFFERS, POINTS, SAME, Point, fidelity_rows
from benchmark.suites.config import load_suite


def test_the_paper_suite_does_what_the_authors_code_does_on_every_undeclared_point() -> None:
    rows = fidelity_rows(load_suite("paper"))
    differing = [f"{r['area']}: {r['point']} (ours {r['ours']}, authors {r['authors']})"
                 for r in rows if r["status"] == DIFFERS]
    assert differing == []
    assert len(rows) == len(POINTS)


def test_every_declared_deviation_really_deviates_and_names_the_option_back() -> None:
    rows = {(r["area"], r["point"]): r for r in fidelity_rows(load_suite("paper"))}
    for point in POINTS:
        if point.deviation:
            row = rows[(point.area, point.point)]
            assert row["status"] == DEVIATION, f"{point.point}: declared a deviation but matches the authors"
            assert point.option, f"{point.point}: a deviation must say how to get the authors' behaviour"


def test_every_point_names_the_authors_file_and_reads_a_value() -> None:
    for point in POINTS:
        assert point.source and point.area and point.point
        assert point.read is not None


@pytest.mark.parametrize(("setting", "point"), [
    ("finetune.batch_size=64", "batch size"),
    ("pretrain.model.mask_ratio=0.5", "mask ratio"),
    ("tuning.sampler_seed=7", "sampler seed (TPE)"),
    ("test_seed=7", "test split: fraction, seed"),
    ("grid.seeds=1,2", "scored seeds"),
    ("finetune.weight_decay=0.01", "weight decay (every model: Adam(params, lr) ignores the YAML's 0.01)"),
    ("data.overlap=positive", "a record both positive and normal"),
    ("pretrain.select=last", "encoder handed to fine-tuning"),
    ("tuning.tune_seed=1", "split seed of the trials (outside the scored 1-5)"),
    ("tuning.separate_studies=budget", "budget, single-lead and frozen cells reuse the full-data study"),
    ("baselines.mae.tune_head_width=true", "the MAE's search space (its head width has no effect there)"),
])
def test_a_set_that_moves_a_setting_shows_as_differs(setting: str, point: str) -> None:
    key, value = setting.split("=")
    rows = {r["point"]: r for r in fidelity_rows(load_suite("paper", {key: value}))}
    assert rows[point]["status"] == DIFFERS
    untouched = [r for p, r in rows.items() if p != point and r["status"] == DIFFERS]
    assert untouched == []


def test_the_option_a_deviation_names_gives_the_authors_behaviour() -> None:
    rows = {r["point"]: r for r in fidelity_rows(load_suite("paper", {"duplicates": "ignore"}))}
    assert rows["exact duplicate signals (e.g. PTB-XL 137/138)"]["status"] == SAME


def test_values_compare_with_float_tolerance_and_element_wise() -> None:
    suite = load_suite("paper")
    point = Point("t", "p", [0.1 + 0.2, 5], "f", lambda s: (0.3, 5))
    assert fidelity_rows(suite, [point])[0]["status"] == SAME
    point = Point("t", "p", [0.3, 5], "f", lambda s: (0.3, 6))
    assert fidelity_rows(suite, [point])[0]["status"] == DIFFERS


def test_protocol_command_prints_every_format(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["protocol", "--format", "json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [set(r) for r in rows] == [set(COLUMNS)] * len(POINTS)
    assert main(["protocol", "--format", "csv"]) == 0
    parsed = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert parsed == rows
    assert main(["protocol", "--format", "markdown"]) == 0
    markdown = capsys.readouterr().out.splitlines()
    assert len(markdown) == 2 + len(POINTS) and markdown[0].startswith("| area |")
    assert main(["protocol", "--set", "finetune.batch_size=64"]) == 0
    text = capsys.readouterr().out
    assert "! batch size: ours 64; authors 256" in text
    assert text.rstrip().endswith("moved by this suite or --set (!)")


def test_protocol_command_refuses_a_bad_set_in_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["protocol", "--set", "finetune.batch_size=-1"]) == 2
    assert capsys.readouterr().err.count("\n") == 1


def test_readme_carries_the_paper_table_as_the_command_prints_it(capsys: pytest.CaptureFixture[str]) -> None:
    from pathlib import Path

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
    start, end = "<!-- protocol-table:start -->\n", "\n<!-- protocol-table:end -->"
    assert start in readme and end in readme
    copy = readme.split(start, 1)[1].split(end, 1)[0]
    assert main(["protocol", "--format", "markdown"]) == 0
    assert copy == capsys.readouterr().out.rstrip("\n"), "README's protocol table is stale: paste the command's output"
