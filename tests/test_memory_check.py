"""A model too big to train on this machine is one ConfigError when the suite is loaded, not a crash in a cell."""

from __future__ import annotations

import pytest

from benchmark.suites.config import load_suite
from pretraining.mae import PRESETS, ECGEncoder, MAEConfig, MaskedAutoencoder
from simecg import memory
from simecg.errors import ConfigError

GIB = 2**30


@pytest.mark.parametrize("config", [*PRESETS.values(), MAEConfig(
    embed_dim=48, depth=3, num_heads=6, mlp_ratio=2.5, decoder_embed_dim=24, decoder_depth=2, decoder_num_heads=3,
    qk_norm=False, patch_size=25)], ids=[*PRESETS, "odd"])
def test_the_mae_parameter_count_from_settings_is_the_built_models(config: MAEConfig) -> None:
    def count(module) -> int:
        return sum(p.numel() for p in module.parameters() if p.requires_grad)

    assert config.parameter_count() == count(MaskedAutoencoder(config))
    assert config.parameter_count(decoder=False) == count(ECGEncoder(config))


def test_a_typed_width_too_big_for_the_machine_is_refused_before_anything_runs(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(memory, "usable_memory", lambda: 8 * GIB)
    with pytest.raises(ConfigError) as info:
        load_suite("demo", {"pretrain.model.embed_dim": "1048576"})
    message = str(info.value)
    assert "pretrain.model (embed_dim=1048576) has " in message and "more than the 8.0 GiB" in message
    assert "\n" not in message
    with pytest.raises(ConfigError, match=r"\[baselines\.resnet18-1d\] with base_width=4096 has .* parameters"):
        load_suite("smoke", {"baselines.resnet18-1d.base_width": "4096"})
    # what fits is accepted: a wider-than-paper MAE and a wider ResNet are ordinary choices
    assert load_suite("demo", {"pretrain.model.embed_dim": "512"}).pretrain.model == {"embed_dim": 512}
    load_suite("smoke", {"baselines.resnet18-1d.base_width": "128"})


def test_the_limit_is_the_lower_of_ram_and_the_container(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    ram = memory.usable_memory()
    assert ram is not None and ram > GIB  # this machine says what it has
    limit = tmp_path / "memory.max"
    limit.write_text(f"{GIB}\n")
    monkeypatch.setattr(memory, "_CGROUP_LIMITS", (str(limit),))
    assert memory.usable_memory() == min(GIB, ram)
    limit.write_text("max\n")  # a container without a limit
    assert memory.usable_memory() <= ram
    memory.check_trainable(GIB // 16, "a model", usable=GIB)  # exactly fits
    with pytest.raises(ConfigError, match=r"a model has 67,108,865 parameters: training it needs at least 1\.0 GiB"):
        memory.check_trainable(GIB // 16 + 1, "a model", usable=GIB)
    # a width typed with an exponent (--set pretrain.model.embed_dim=2.2e157): past what a float holds, still one line
    with pytest.raises(ConfigError, match=r"has ~1e300 parameters: training it needs at least ~1e\d+ GiB"):
        memory.check_trainable(10**300, "a model", usable=GIB)


def test_a_generator_too_wide_to_train_is_refused_and_one_that_fits_is_not(monkeypatch: pytest.MonkeyPatch) -> None:
    from pretraining.generators.common import resolve_config

    monkeypatch.setattr(memory, "usable_memory", lambda: 8 * GIB)
    for kind in ("vae", "gan"):
        with pytest.raises(ConfigError, match=rf"\({kind} generator, decoder_width=200000\) has .* "
                                              r"more than the 8\.0 GiB"):
            resolve_config(kind, "paper", {"decoder_width": "200000"})
        assert resolve_config(kind, "tiny", {"decoder_width": "64"}).decoder_width == 64
