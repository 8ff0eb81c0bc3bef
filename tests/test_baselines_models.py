"""Every built-in neural baseline: registered, right shapes, configurable, searchable, and able
to learn a clearly separable synthetic task in a few seconds."""

from __future__ import annotations

import dataclasses

import numpy as np
import optuna
import pytest
import torch

from baselines.base import EstimatorBaseline, NeuralBaseline
from simecg.errors import ConfigError
from simecg.registries import BASELINES

NEURAL = ["resnet18-1d", "mega", "luna", "emb-gru", "emb-lstm", "transformer-scratch"]

# Smaller widths/depths of the same architectures (and a learning rate that suits each), so the
# learning test takes seconds on a CPU. Batch-norm running statistics lag behind fast-moving
# weights, hence the gentler rate for the ResNet; recurrent stacks want a brisker one.
SMALL: dict[str, tuple[dict, float]] = {
    "resnet18-1d": ({"base_width": 8}, 1e-3),
    "mega": ({"embed_dim": 32, "depth": 2, "hdim": 64, "ffn_dim": 64}, 3e-3),
    "luna": ({"embed_dim": 32, "depth": 2}, 3e-3),
    "emb-gru": ({"hidden_size": 32, "num_layers": 1}, 5e-3),
    "emb-lstm": ({"hidden_size": 32, "num_layers": 1}, 1e-2),
    "transformer-scratch": ({"preset": "tiny"}, 3e-3),
}


@pytest.fixture(autouse=True)
def _one_torch_thread():
    """One intra-op thread: much faster than two on a shared, busy 2-core machine; restored after."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def n_parameters(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def test_all_builtin_baselines_are_registered_with_their_kind():
    names = set(BASELINES.names())
    assert set(NEURAL) | {"xgboost-features"} <= names
    for name in NEURAL:
        assert issubclass(BASELINES.get(name), NeuralBaseline)
    assert issubclass(BASELINES.get("xgboost-features"), EstimatorBaseline)
    assert BASELINES.get("xgboost-features").kind == "estimator"


@pytest.mark.parametrize("name", NEURAL)
def test_default_model_maps_batch_of_ecgs_to_one_logit_each(name: str):
    cls = BASELINES.get(name)
    config = cls.make_config()
    assert dataclasses.is_dataclass(config)
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.__setattr__(dataclasses.fields(config)[0].name, None)
    torch.manual_seed(0)
    model = cls.build(config)
    x = torch.randn(2, 1, 5000)
    logits = model(x)
    assert logits.shape == (2,)
    assert logits.dtype == torch.float32
    assert torch.isfinite(logits).all()
    logits.sum().backward()
    assert all(p.grad is not None for p in model.parameters() if p.requires_grad)
    count = n_parameters(model)
    print(f"{name}: {count:,} parameters")
    assert 10_000 < count < 20_000_000


@pytest.mark.parametrize("name", NEURAL)
def test_search_space_returns_config_overrides_that_build(name: str):
    from baselines.base import resolve_model
    from simecg.config import apply_overrides

    cls = BASELINES.get(name)
    fields = {f.name for f in dataclasses.fields(cls.Config)}
    # the scratch encoder searches its head only when asked (the paper space is the fine-tuning one)
    spec = resolve_model(name, {name: {"tune_head_width": True} if "tune_head_width" in fields else {}})
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    for _ in range(2):
        trial = study.ask()
        overrides, training = spec.split_overrides(spec.tuning_space(trial))
        assert overrides and set(overrides) <= fields
        assert set(training) == {"lr", "mask_ratio", "max_shift_ratio"}
        model = cls.build(apply_overrides(spec.config, overrides))
        assert model(torch.randn(1, 1, 5000)).shape == (1,)


def test_emb_rnn_search_covers_the_papers_chunk_lengths():
    chunks = set()
    for seed in range(30):
        trial = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=seed)).ask()
        chunks.add(BASELINES.get("emb-gru").search_space(trial)["chunk_length"])
    assert chunks == {50, 100, 250}


def test_unknown_config_key_names_the_baseline_and_valid_keys():
    with pytest.raises(ConfigError, match=r"LunaBaseline.*depthh.*valid: .*depth"):
        BASELINES.get("luna").make_config({"depthh": 3})


def test_chunk_length_that_does_not_divide_the_signal_is_a_config_error():
    cls = BASELINES.get("emb-lstm")
    with pytest.raises(ConfigError, match="chunk_length must divide"):
        cls.build(cls.make_config({"chunk_length": 300}))


def test_transformer_scratch_uses_the_mae_encoder_preset_with_random_weights():
    from pretraining.mae import ECGEncoder, EncoderClassifier

    cls = BASELINES.get("transformer-scratch")
    torch.manual_seed(0)
    a = cls.build(cls.make_config({"preset": "tiny", "head_width": 16}))
    torch.manual_seed(1)
    b = cls.build(cls.make_config({"preset": "tiny", "head_width": 16}))
    assert isinstance(a, EncoderClassifier) and isinstance(a.encoder, ECGEncoder)
    assert a.encoder.config.depth == 2 and a.head[0].out_features == 16
    assert not torch.equal(a.encoder.patch_embed.weight, b.encoder.patch_embed.weight)
    with pytest.raises(ConfigError, match="unknown preset 'huge'"):
        cls.make_config({"preset": "huge"})


def beat_trains(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Z-scored spike trains at 50 vs 120 beats per minute with noise: separable by rate."""
    rng = np.random.default_rng(seed)
    t = np.arange(5000) / 500.0
    y = np.arange(n) % 2
    x = np.empty((n, 5000), dtype=np.float32)
    for i, label in enumerate(y):
        period = 60.0 / (120.0 if label else 50.0)
        phase = (t + rng.uniform(0, period)) % period
        x[i] = np.exp(-0.5 * ((phase - period / 2) / 0.02) ** 2) + 0.2 * rng.standard_normal(5000)
    x = (x - x.mean(1, keepdims=True)) / x.std(1, keepdims=True)
    return x[:, None, :].astype(np.float32), y.astype(np.float32)


@pytest.mark.slow
@pytest.mark.parametrize("name", NEURAL)
def test_each_baseline_learns_a_separable_task_above_chance(name: str, one_thread: None):
    torch.manual_seed(0)
    cls = BASELINES.get(name)
    overrides, lr = SMALL[name]
    model = cls.build(cls.make_config(overrides))
    x_train, y_train = map(torch.from_numpy, beat_trains(64, seed=1))
    x_test, y_test = map(torch.from_numpy, beat_trains(64, seed=2))
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    generator = torch.Generator().manual_seed(0)
    model.train()
    for _ in range(10):
        for idx in torch.randperm(64, generator=generator).split(16):
            loss = torch.nn.functional.binary_cross_entropy_with_logits(model(x_train[idx]), y_train[idx])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    model.eval()
    with torch.no_grad():
        accuracy = ((model(x_test) > 0).float() == y_test).float().mean().item()
    print(f"{name}: held-out accuracy {accuracy:.2f}")
    assert accuracy >= 0.8


@pytest.mark.parametrize("name", ["emb-gru", "mega"])
def test_a_model_trains_and_scores_on_the_suites_device(name: str):
    from baselines.base import resolve_model
    from baselines.training import TrainConfig

    x, y = beat_trains(12, seed=1)
    spec = resolve_model(name, {name: SMALL[name][0]})
    model = spec.create(TrainConfig(batch_size=6, max_epochs=1, device="cpu"), seed=0)
    model.fit(x[:, 0], y, x[:4, 0], y[:4])
    assert {p.device.type for p in model.module_.parameters()} == {"cpu"}
    assert model.predict_scores(x[:5, 0]).shape == (5,)
    with pytest.raises(ConfigError, match="'gpu'"):
        spec.create(TrainConfig(max_epochs=1, device="gpu"), seed=0).fit(x[:, 0], y, x[:4, 0], y[:4])


def test_under_bf16_autocast_recurrences_and_the_ema_convolution_stay_fp32():
    """A GPU fine-tunes under bf16 autocast; cuDNN's bf16 RNNs are recent and cuFFT has no bf16, so
    those parts run in fp32 (checked here under the CPU's bf16 autocast, the same code path)."""
    from baselines.mega import _causal_conv

    seen = []
    cls = BASELINES.get("emb-gru")
    model = cls.build(cls.make_config(SMALL["emb-gru"][0]))
    model.rnn.register_forward_pre_hook(lambda module, args: seen.append(args[0].dtype))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        logits = model(torch.randn(2, 1, 5000))
        conv = _causal_conv(torch.randn(2, 3, 8, dtype=torch.bfloat16), torch.randn(3, 8), 16)
    logits.float().sum().backward()
    assert seen == [torch.float32] and conv.dtype == torch.float32


def test_xgboost_grows_its_trees_on_the_gpu_only_when_fine_tuning_runs_on_one():
    from baselines.xgboost_features import XGBoostFeatures

    cls = XGBoostFeatures
    estimator = cls.make_estimator(cls.make_config(), seed=0)
    assert cls.on_device(estimator, torch.device("cpu")).get_params()["device"] == "cpu"
    assert cls.on_device(estimator, torch.device("cuda", 1)).get_params()["device"] == "cuda:1"
    plain = object()
    assert EstimatorBaseline.on_device(plain, torch.device("cuda")) is plain  # other estimators: unchanged
