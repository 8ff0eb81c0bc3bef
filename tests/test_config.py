"""Config overrides, suites as data, and stable hashing."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pytest

from simecg.config import apply_overrides, parse_set_args, stable_hash
from simecg.errors import ConfigError


@dataclass(frozen=True)
class Inner:
    lr: float = 1e-4
    seeds: tuple[int, ...] = (1, 2)
    flag: bool = False
    width: int | None = None


@dataclass(frozen=True)
class Outer:
    name: str = "x"
    inner: Inner = field(default_factory=Inner)
    options: dict = field(default_factory=dict)


def test_overrides_are_typed_from_the_declared_fields() -> None:
    cfg = apply_overrides(Outer(), parse_set_args(
        ["inner.lr=1e-3", "inner.seeds=1,2,3", "inner.flag=true", "inner.width=none", "options.simulator=gaussian"]
    ))
    assert cfg.inner.lr == pytest.approx(1e-3)
    assert cfg.inner.seeds == (1, 2, 3)
    assert cfg.inner.flag is True
    assert cfg.inner.width is None
    assert cfg.options == {"simulator": "gaussian"}
    assert Outer().inner.lr == pytest.approx(1e-4)  # the original is untouched


@pytest.mark.parametrize(
    ("item", "message"),
    [("inner.lrr=1", "unknown config key 'inner.lrr'"), ("inner.seeds=a,b", "expected an integer"),
     ("inner.flag=maybe", "expected true/false"), ("noequals", "key=value")],
)
def test_bad_overrides_name_the_key(item: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        apply_overrides(Outer(), parse_set_args([item]))


def test_hash_is_stable_and_sensitive() -> None:
    a = stable_hash(Outer())
    assert a == stable_hash(Outer())
    assert a != stable_hash(apply_overrides(Outer(), {"inner.lr": "2e-4"}))
    assert stable_hash({"b": 1, "a": 2}) == stable_hash({"a": 2, "b": 1})


def test_suite_files_load_and_overrides_reach_grids_and_nested_configs() -> None:
    from benchmark.suites.config import load_suite

    suite = load_suite("demo", {"pretrain.steps": "7", "grid.seeds": "3", "finetune.lr": "0.01"})
    assert suite.pretrain.steps == 7
    assert all(g.seeds == (3,) for g in suite.grids)
    assert suite.finetune.lr == pytest.approx(0.01)
    assert suite.synthetic is True


def test_paper_suite_expands_to_the_tasks_of_our_table() -> None:
    from benchmark.data.table import TABLE_PATH
    from benchmark.data.tasks import source_of
    from benchmark.registries import TASKS
    from benchmark.run.cells import enumerate_cells
    from benchmark.suites.config import load_suite

    suite = load_suite("paper")
    tasks = {c.task for c in enumerate_cells(suite)}
    assert tasks == {t for t in TASKS.names() if source_of(t) == str(TABLE_PATH)}
    assert {c.model for c in enumerate_cells(suite)} >= {"mae:sim", "resnet18-1d"}


def test_bad_suite_file_gives_a_clear_error(tmp_path: Path) -> None:
    from benchmark.suites.config import load_suite

    bad = tmp_path / "bad.toml"
    bad.write_text('[[grid]]\ntasks = ["ptbxl/NOPE"]\n')
    with pytest.raises(ConfigError, match="unknown task 'ptbxl/NOPE'"):
        load_suite(str(bad))
    bad.write_text("[finetune]\nlearning_rate = 1\n[[grid]]\ntasks=['demo/af']\n")
    with pytest.raises(ConfigError, match="learning_rate"):
        load_suite(str(bad))

