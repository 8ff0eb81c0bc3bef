"""Hostile input for the config: ``--set KEY=VALUE`` items and suite TOML files (hypothesis).

Whatever a user types after ``--set`` or writes in a suite file, loading gives a resolved
:class:`SuiteConfig` holding no NaN, or a one-line :class:`ConfigError`: never another
exception. Keys are drawn from the suite's real settings (so values reach the checks of each
field) and from junk; values from text, numbers at and past every edge, lists and tables.
"""

from __future__ import annotations

import dataclasses
import json
import math
import tempfile
import tomllib
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from baselines.training import TrainConfig
from benchmark.suites.config import SUITES, GridConfig, SuiteConfig, TuningConfig, load_suite
from pretraining.config import PretrainConfig
from simecg.config import parse_set_args
from simecg.errors import ConfigError

pytestmark = pytest.mark.timeout(120)

FAST = settings(max_examples=150, deadline=3000, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.too_slow])


def _fields(cls: type, prefix: str) -> list[str]:
    return [f"{prefix}{f.name}" for f in dataclasses.fields(cls)]


REAL_KEYS = (_fields(PretrainConfig, "pretrain.") + _fields(TrainConfig, "finetune.") + _fields(TuningConfig, "tuning.")
             + _fields(GridConfig, "grid.")
             + [f.name for f in dataclasses.fields(SuiteConfig) if f.name not in ("pretrain", "finetune", "tuning")]
             + ["pretrain.corpus_options.simulator", "pretrain.corpus_options.path", "baselines.resnet18-1d.base_width",
                "baselines.nosuch.x", "sources.s.corpus", "grid.nosuch"])
KEYS = st.one_of(st.sampled_from(REAL_KEYS), st.text(max_size=20))
EDGE_TEXT = st.sampled_from([
    "", " ", "0", "-0", "-1", "1", "2", "0.5", "1e-300", "1e300", "1e999", "-1e999", "nan", "NaN", "inf", "-inf",
    str(2**31), str(2**32), str(2**63), str(-(2**63)), "9" * 5000, "true", "false", "none", "null", "[]", "[1, 2]",
    "[[1]]", "{}", '{"a": 1}', "1,2,3", ",", "[", "sim", "ptbxl/*", "II", "mae", "sex:M->F", "age:<40->80+", "paper",
    "é", "\x00", "a=b", "tiny", "cosine", "auto", "cpu", "gpu", "-", "1_000",
])
VALUES = st.one_of(EDGE_TEXT, st.text(max_size=30), st.integers(-(2**70), 2**70).map(str),
                   st.floats(allow_nan=True, allow_infinity=True).map(repr))


def _walk(value: Any):
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        for field in dataclasses.fields(value):
            yield from _walk(getattr(value, field.name))
    elif isinstance(value, dict):
        for item in value.values():
            yield from _walk(item)
    elif isinstance(value, (list, tuple)):
        for item in value:
            yield from _walk(item)
    else:
        yield value


def assert_config_or_config_error(load) -> Any:
    try:
        suite = load()
    except ConfigError as exc:
        text = str(exc)
        assert text and "\n" not in text, text
        return None
    assert isinstance(suite, SuiteConfig)
    assert not any(isinstance(v, float) and math.isnan(v) for v in _walk(suite)), suite
    return suite


@FAST
@given(items=st.lists(st.text(max_size=40), max_size=5))
def test_set_items_of_any_text_parse_or_give_a_config_error(items):
    try:
        parsed = parse_set_args(items)
    except ConfigError as exc:
        assert "\n" not in str(exc) or "\n" in "".join(items)  # the message quotes the item it refuses
        return
    assert all(key and key == key.strip() for key in parsed)
    assert set(parsed) <= {item.partition("=")[0].strip() for item in items}


@pytest.mark.slow
@FAST
@given(suite=st.sampled_from(["demo", "smoke"]), items=st.lists(st.tuples(KEYS, VALUES), min_size=1, max_size=3))
def test_set_overrides_of_any_key_and_value_give_a_suite_or_a_config_error(suite, items):
    overrides = {key: value for key, value in items}
    assert_config_or_config_error(lambda: load_suite(suite, overrides))


def test_set_overrides_that_are_valid_are_applied():
    """The property above is not vacuous: good values load and land where they were set."""
    suite = load_suite("demo", parse_set_args(["finetune.lr=0.01", "tuning.n_trials=3", "grid.seeds=4,5"]))
    assert suite.finetune.lr == 0.01 and suite.tuning.n_trials == 3 and suite.grids[0].seeds == (4, 5)
    for bad in ("finetune.lr=-1", "finetune.lr=nan", "tuning.n_trials=-3", "grid.seeds=", "grid.leads=XII"):
        with pytest.raises(ConfigError):
            load_suite("demo", parse_set_args([bad]))


# ---- suite files ---------------------------------------------------------------------------------------

def toml_value(value: Any) -> str:
    """``value`` as TOML (the subset used here: scalars, arrays, inline tables)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{json.dumps(str(k))} = {toml_value(v)}" for k, v in value.items()) + "}"
    raise TypeError(value)


def toml_document(data: dict[str, Any]) -> str:
    lines = [f"{json.dumps(k)} = {toml_value(v)}" for k, v in data.items() if not isinstance(v, dict) and k != "grid"]
    for key, table in data.items():
        if isinstance(table, dict):
            lines.append(f"[{json.dumps(key)}]")
            lines.extend(f"{json.dumps(str(k))} = {toml_value(v)}" for k, v in table.items())
    for grid in data.get("grid", []) if isinstance(data.get("grid"), list) else []:
        lines.append("[[grid]]")
        lines.extend(f"{json.dumps(str(k))} = {toml_value(v)}" for k, v in grid.items())
    return "\n".join(lines) + "\n"


SCALARS = st.one_of(st.integers(-(2**64), 2**64), st.floats(allow_nan=True, allow_infinity=True), st.booleans(),
                    EDGE_TEXT, st.text(max_size=12))
TOML_VALUES = st.one_of(SCALARS, st.lists(SCALARS, max_size=3), st.dictionaries(st.text(max_size=8), SCALARS,
                                                                                 max_size=2))
DEMO = tomllib.loads(Path(SUITES.get("demo")).read_text())


@FAST
@given(changes=st.lists(st.tuples(st.sampled_from(["", "pretrain", "finetune", "tuning", "grid", "baselines"]),
                                  st.one_of(st.sampled_from([k.split(".")[-1] for k in REAL_KEYS]),
                                            st.text(max_size=10)),
                                  TOML_VALUES), min_size=1, max_size=3))
def test_suite_files_with_any_values_give_a_suite_or_a_config_error(changes):
    data = json.loads(json.dumps(DEMO))
    for table, key, value in changes:
        if table == "":
            data[key] = value
        elif table == "grid":
            data["grid"][0][key] = value
        else:
            data.setdefault(table, {})
            if isinstance(data[table], dict):
                data[table][key] = value
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "hostile suite é.toml"
        try:
            path.write_text(toml_document(data))
        except UnicodeEncodeError:  # lone surrogates cannot be written to a file at all
            return
        assert_config_or_config_error(lambda: load_suite(path))


@FAST
@given(text=st.text(max_size=300))
def test_suite_file_of_any_text_gives_a_suite_or_a_config_error(text):
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "s.toml"
        path.write_bytes(text.encode("utf-8", errors="surrogatepass"))
        assert_config_or_config_error(lambda: load_suite(path))


def test_suite_file_that_is_not_utf8_or_a_folder_gives_a_config_error(tmp_path):
    bad = tmp_path / "latin1.toml"
    bad.write_bytes('description = "caf\xe9"\n'.encode("latin-1"))
    with pytest.raises(ConfigError, match="latin1.toml"):
        load_suite(bad)
    folder = tmp_path / "folder.toml"
    folder.mkdir()
    with pytest.raises(ConfigError, match="folder.toml"):
        load_suite(folder)
