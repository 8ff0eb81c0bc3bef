"""Every value a suite or ``--set`` can hold is checked when the config is built: one ConfigError naming the key."""

from __future__ import annotations

import dataclasses
import math

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from baselines.training import TrainConfig
from benchmark.suites.config import GridConfig, TuningConfig, load_suite
from pretraining.config import PRETRAIN_LIMITS, PretrainConfig, model_config
from simecg.config import Limits, apply_overrides, check_limits, check_value, coerce
from simecg.errors import ConfigError


@pytest.mark.parametrize(("key", "value", "message"), [
    ("finetune.lr", "-1", "finetune.lr must be > 0, got -1"),
    ("finetune.lr", "0", "finetune.lr must be > 0, got 0"),
    ("finetune.lr", "inf", "finetune.lr must be a finite number, got inf"),
    ("finetune.lr", "nan", "finetune.lr: expected a number, got 'nan'"),
    ("finetune.batch_size", "0", "finetune.batch_size must be >= 1, got 0"),
    ("finetune.patience", "-2", "finetune.patience must be >= 1, got -2"),
    ("finetune.mask_ratio", "1", "finetune.mask_ratio must be >= 0 and < 1, got 1"),
    ("finetune.max_shift_ratio", "-0.1", "finetune.max_shift_ratio must be >= 0 and < 1, got -0.1"),
    ("finetune.grad_clip", "-1", "finetune.grad_clip must be >= 0, got -1"),
    ("finetune.weight_decay", "-0.01", "finetune.weight_decay must be >= 0, got -0.01"),
    ("tuning.n_trials", "-3", "tuning.n_trials must be >= 0, got -3"),
    ("tuning.timeout_s", "-1", "tuning.timeout_s must be >= 0, got -1"),
    ("tuning.sampler_seed", "-1", "tuning.sampler_seed must be >= 0 and < 4294967296, got -1"),
    ("tuning.pruner_patience", "-1", "tuning.pruner_patience must be >= 0, got -1"),
    ("pretrain.lr", "-1e-4", "pretrain.lr must be > 0, got -0.0001"),
    ("pretrain.steps", "0", "pretrain.steps must be > 0, got 0"),
    ("pretrain.batch_size", "-64", "pretrain.batch_size must be > 0, got -64"),
    ("pretrain.betas", "0.9,1.5", "pretrain.betas values must be >= 0 and < 1, got 1.5"),
    ("pretrain.min_lr_ratio", "2", "pretrain.min_lr_ratio must be >= 0 and <= 1, got 2"),
    ("pretrain.keep_checkpoints", "0", "pretrain.keep_checkpoints must be >= 1, got 0"),
    ("pretrain.device", "gpu", "pretrain.device must be one of auto, cpu, cuda, got 'gpu'"),
    ("pretrain.schedule", "linear", "pretrain.schedule must be one of constant, cosine, got 'linear'"),
    ("pretrain.model.mask_ratio", "1.5", "pretrain.model.mask_ratio must be > 0 and < 1, got 1.5"),
    ("pretrain.model.patch_size", "0", "pretrain.model.patch_size must be > 0, got 0"),
    ("pretrain.model.num_heads", "-4", "pretrain.model.num_heads must be > 0, got -4"),
    ("pretrain.val_size", "3000", "pretrain.val_size 3000 leaves too little of the 4000-ECG corpus"),
    ("grid.seeds", "1,-1", "grid.seeds values must be >= 0 and < 4294967296, got -1"),
    ("grid.budgets", "-5", "grid.budgets values must be >= 0, got -5"),
    ("grid.leads", "II,XX", "grid.leads values must be one of I, II, III"),
    ("grid.models", "", "grid.models must not be empty"),
    ("grid.tasks", "", "grid 'main' names no task"),
    ("split", "random", "split must be one of paper, patient, got 'random'"),
    ("test_seed", "-1", "test_seed must be >= 0 and < 4294967296, got -1"),
    ("duplicates", "merge", "duplicates must be one of group, ignore, got 'merge'"),
    ("age_bins", "60,40", "age_bins must be strictly increasing, got 60, 40"),
    ("age_bins", "0,40", "age_bins values must be > 0, got 0"),
    ("corpora", "", "corpora is empty, but a grid has model 'mae'"),
])
def test_a_bad_override_fails_when_the_suite_is_loaded_naming_its_key(key: str, value: str, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_suite("demo", {key: value})
    assert message in str(info.value)
    assert "\n" not in str(info.value)


def test_a_bad_value_in_a_suite_file_names_the_file_and_the_key(tmp_path) -> None:
    path = tmp_path / "mine.toml"
    path.write_text('[finetune]\nlr = -1\n\n[[grid]]\ntasks = ["sim/*"]\nmodels = ["resnet18-1d"]\n')
    with pytest.raises(ConfigError, match=r"mine\.toml: \[finetune\] finetune\.lr must be > 0, got -1"):
        load_suite(str(path))
    path.write_text('[[grid]]\ntasks = ["sim/*"]\nmodels = ["resnet18-1d"]\nseeds = [1, -2]\n')
    with pytest.raises(ConfigError, match=r"mine\.toml.*grid\.seeds values must be >= 0.*got -2"):
        load_suite(str(path))


def test_a_source_table_is_checked_like_pretrain() -> None:
    with pytest.raises(ConfigError, match=r"\[sources\.fast\] pretrain\.lr must be > 0, got -1"):
        load_suite("demo", {"corpora": "fast", "sources.fast.corpus": "sim", "sources.fast.lr": "-1"})


def test_baseline_settings_are_built_once_before_anything_runs() -> None:
    with pytest.raises(ConfigError, match=r"\[baselines\.resnet18-1d\] cannot build the model with base_width=-1"):
        load_suite("smoke", {"baselines.resnet18-1d.base_width": "-1"})
    with pytest.raises(ConfigError, match=r"dropout=2 \(ValueError: dropout probability"):
        load_suite("smoke", {"baselines.resnet18-1d.dropout": "2"})
    assert load_suite("smoke", {"baselines.resnet18-1d.base_width": "8"}).baselines["resnet18-1d"]["base_width"] == 8


def test_every_registered_suite_and_every_default_is_valid() -> None:
    from benchmark.registries import SUITES

    for name in SUITES.names():
        load_suite(name)
    TrainConfig(), TuningConfig(), GridConfig(), PretrainConfig()  # noqa: B018 - constructing is the check


def test_configs_built_in_python_are_checked_too() -> None:
    with pytest.raises(ConfigError, match="finetune.lr must be a finite number, got inf"):
        TrainConfig(lr=math.inf)
    with pytest.raises(ConfigError, match="finetune.grad_clip must be >= 0, got -1"):
        TrainConfig(grad_clip=-1.0)
    with pytest.raises(ConfigError, match="finetune.lr must be a number, got 'fast'"):
        TrainConfig(lr="fast")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="tuning.n_trials must be >= 0, got -3"):
        TuningConfig(n_trials=-3)
    with pytest.raises(ConfigError, match="pretrain.prefetch_factor must be >= 1, got 0"):
        PretrainConfig(prefetch_factor=0)
    with pytest.raises(ConfigError, match=r"pretrain\.model\.depth must be > 0, got 0"):
        PretrainConfig(model={"depth": 0})
    assert model_config(PretrainConfig(preset="tiny", model={"depth": "3"})).depth == 3


def test_limits_describe_and_judge_values() -> None:
    assert Limits(gt=0).describe() == "> 0"
    assert Limits(ge=0, lt=1).describe() == ">= 0 and < 1"
    assert Limits(choices=("a", "b")).describe() == "one of a, b"
    assert Limits(gt=0).problem(1e-9) is None and Limits(gt=0).problem(0) == "must be > 0"
    assert Limits(ge=0).problem(math.nan) == "must be a finite number"
    assert Limits(ge=0, allow_inf=True).problem(math.inf) is None
    assert Limits(ge=0).problem(True) == "must be a number"  # a bool is not a count
    assert Limits().problem(math.inf) == "must be a finite number"  # every number is finite unless allowed
    assert Limits().problem("text") is None
    with pytest.raises(ConfigError, match="x must not be empty"):
        check_value("x", (), Limits(non_empty=True))


def test_a_limits_table_naming_no_field_is_a_programming_error() -> None:
    with pytest.raises(TypeError, match="lrr"):
        check_limits(TrainConfig(), "finetune", {"lrr": Limits(gt=0)})
    fields = {f.name for f in dataclasses.fields(PretrainConfig)}
    assert set(PRETRAIN_LIMITS) <= fields


def test_nan_is_never_a_config_number_but_inf_can_be_allowed_by_a_field() -> None:
    with pytest.raises(ConfigError, match="expected a number"):
        coerce("nan", float, "k")
    assert coerce("inf", float, "k") == math.inf  # e.g. the gaussian simulator's noise scaler: inf turns it off


# Keys of every table a suite has, with text as a user would type it after `--set KEY=`.
KEYS = ["finetune.lr", "finetune.batch_size", "finetune.max_epochs", "finetune.eval_every", "finetune.patience",
        "finetune.weight_decay", "finetune.mask_ratio", "finetune.max_shift_ratio", "finetune.grad_clip",
        "tuning.n_trials", "tuning.timeout_s", "tuning.tune_seed", "pretrain.lr", "pretrain.steps",
        "pretrain.batch_size", "pretrain.betas", "pretrain.val_size", "pretrain.threads", "pretrain.model.mask_ratio",
        "pretrain.model.embed_dim", "grid.seeds", "grid.budgets", "test_seed", "age_bins"]
TEXT = st.one_of(
    st.integers(-10**12, 10**12).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.sampled_from(["", "nan", "inf", "-inf", "1e400", "true", "none", "[]", "1,2", "0x10", "1_000", " 3 "]),
    st.text(max_size=12),
)


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(key=st.sampled_from(KEYS), value=TEXT)
def test_any_set_value_gives_a_valid_suite_or_one_config_error(key: str, value: str) -> None:
    """Fuzzing ``--set KEY=VALUE``: the suite loads with the value in range, or a ConfigError names the key."""
    try:
        suite = load_suite("demo", {key: value})
    except ConfigError as exc:
        text = str(exc)
        assert "\n" not in text
        assert key in text or key.split(".")[-1] in text or "leaves too little" in text
        return
    table, _, name = key.rpartition(".")
    if table == "pretrain.model":
        resolved = getattr(model_config(suite.pretrain), name)
    elif table == "grid":
        resolved = getattr(suite.grids[0], name)
    else:
        resolved = getattr(getattr(suite, table) if table else suite, name)
    for number in resolved if isinstance(resolved, tuple) else (resolved,):
        assert number is None or math.isfinite(number)


def test_apply_overrides_checks_the_final_value() -> None:
    config = apply_overrides(TrainConfig(), {"lr": "1e-3"})
    assert config.lr == pytest.approx(1e-3)
    with pytest.raises(ConfigError, match="finetune.lr must be > 0, got -0.001"):
        apply_overrides(config, {"lr": "-1e-3"})
