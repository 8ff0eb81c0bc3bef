"""The generic registry: decorators, clear unknown-name errors, and real entry-point plugins."""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

import pytest

from simecg.errors import ConfigError, UnknownNameError
from simecg.registry import Registry


def test_decorator_registers_and_lookup_returns_the_object() -> None:
    reg: Registry[object] = Registry("widget")

    @reg.register("round", colour="red")
    class Round:
        pass

    assert reg.get("round") is Round
    assert reg.metadata("round") == {"colour": "red"}
    assert "round" in reg and reg.names() == ["round"]


def test_unknown_name_lists_known_names_and_suggests_close_match() -> None:
    reg: Registry[int] = Registry("widget")
    reg.add("resnet18-1d", 1)
    reg.add("mega", 2)
    with pytest.raises(UnknownNameError) as info:
        reg.get("resnet18")
    message = str(info.value)
    assert "unknown widget 'resnet18'" in message
    assert "Did you mean 'resnet18-1d'?" in message
    assert "mega" in message


def test_two_different_objects_cannot_share_a_name() -> None:
    reg: Registry[object] = Registry("widget")
    reg.add("x", object())
    with pytest.raises(ConfigError, match="already registered"):
        reg.add("x", 3)


def _write_plugin(root: Path, group: str) -> None:
    """A real on-path distribution: a module plus a .dist-info with entry_points.txt."""
    (root / "simecg_test_plugin.py").write_text(
        textwrap.dedent(
            """
            def tiny_corpus(size=10, seed=0):
                return ("tiny", size, seed)
            """
        )
    )
    dist = root / "simecg_test_plugin-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: simecg-test-plugin\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text(f"[{group}]\ntiny = simecg_test_plugin:tiny_corpus\n")


def test_entry_point_plugin_is_found_through_importlib_metadata(tmp_path: Path, monkeypatch) -> None:
    _write_plugin(tmp_path, "simecg_bench.corpora")
    monkeypatch.syspath_prepend(str(tmp_path))
    reg: Registry[object] = Registry("corpus", group="simecg_bench.corpora")
    factory = reg.get("tiny")
    assert factory(size=3) == ("tiny", 3, 0)
    assert reg.metadata("tiny")["plugin"] == "simecg_test_plugin:tiny_corpus"
    sys.modules.pop("simecg_test_plugin", None)


def test_builtin_registries_hold_the_project_entries() -> None:
    from benchmark.registries import SUITES, TASKS
    from simecg.registries import BASELINES, CORPORA

    assert {"demo", "smoke", "paper", "all"} <= set(SUITES.names())
    assert "sim" in CORPORA
    assert "resnet18-1d" in BASELINES
    from benchmark.data.table import TABLE_PATH, task_table

    assert len([t for t in TASKS.names() if not t.startswith("demo/")]) == len(task_table()["tasks"])
    assert all(TASKS.metadata(t)["source"] == str(TABLE_PATH) for t in TASKS.names() if not t.startswith("demo/"))


def test_a_lazy_entry_is_imported_on_its_first_lookup_only(tmp_path: Path, monkeypatch) -> None:
    (tmp_path / "simecg_lazy_probe.py").write_text("class Thing:\n    pass\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    sys.modules.pop("simecg_lazy_probe", None)
    reg: Registry[object] = Registry("widget")
    reg.add_lazy("thing", "simecg_lazy_probe:Thing", colour="blue")
    assert reg.names() == ["thing"] and "thing" in reg
    assert "simecg_lazy_probe" not in sys.modules  # listing names imports nothing
    assert reg.get("thing").__name__ == "Thing"
    assert "simecg_lazy_probe" in sys.modules
    assert reg.metadata("thing") == {"colour": "blue"}
    sys.modules.pop("simecg_lazy_probe", None)


def test_a_lazy_entry_that_cannot_be_imported_says_which() -> None:
    reg: Registry[object] = Registry("widget")
    reg.add_lazy("ghost", "no_such_module_xyz:Ghost")
    with pytest.raises(ConfigError, match="cannot load 'no_such_module_xyz:Ghost'"):
        reg.get("ghost")
    with pytest.raises(ConfigError, match="must look like 'module:attr'"):
        reg.add_lazy("bad", "no_colon")


def test_builtins_are_declared_as_entry_points_like_plugins() -> None:
    from importlib.metadata import entry_points

    declared = {ep.name: ep.value for ep in entry_points(group="simecg_bench.baselines")}
    assert declared["resnet18-1d"] == "baselines.resnet1d:ResNet18_1d"
    assert declared["mae"] == "baselines.pretrained_mae:PretrainedMAE"



def test_every_kind_registers_one_way_through_its_entry_point_group() -> None:
    """One entry point per entry, ``"module:attr"``, imported on its first lookup; a bare module only
    for a table of entries (the task tables, the folder of suite files)."""
    from importlib.metadata import entry_points

    from benchmark.registries import ALL

    tables = {("simecg_bench.tasks", "table"), ("simecg_bench.tasks", "demo"), ("simecg_bench.suites", "builtin")}
    ours = ("simecg", "pretraining", "baselines", "benchmark")
    for kind, registry in ALL.items():
        assert registry.group == f"simecg_bench.{kind}", kind
        declared = [ep for ep in entry_points(group=registry.group) if ep.value.split(".")[0] in ours]
        assert declared, f"the built-in {kind} are not declared as entry points"
        assert all(":" in ep.value or (registry.group, ep.name) in tables for ep in declared), kind


def test_generators_are_a_registry_like_the_rest() -> None:
    from pretraining.generators.common import resolve_config
    from simecg.registries import GENERATORS

    assert GENERATORS.names() == ["gan", "vae"]
    for kind in GENERATORS.names():
        model = GENERATORS.get(kind)
        assert model.kind == kind and set(model.PRESETS) == {"paper", "tiny"}
        assert all(type(config) is model.Config and config.kind == kind for config in model.PRESETS.values())
    with pytest.raises(ConfigError, match="unknown generator 'diffusion'.*Known: gan, vae"):
        resolve_config("diffusion")

def test_the_core_imports_no_benchmark_module() -> None:
    import ast

    core = Path(__file__).resolve().parents[1] / "simecg"
    for file in core.glob("*.py"):
        for node in ast.walk(ast.parse(file.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
            if isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            assert not [n for n in names if n.split(".")[0] in ("benchmark", "pretraining", "baselines")], file
        assert "benchmark." not in file.read_text(), f"{file} names a benchmark module"
