"""Pretraining methods: the registry and its contract, the authors' views and SimCLR loss, identities,
each method's loss falling on ``sim``, and exact resumption of a method with a momentum teacher."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from pretraining.config import PretrainConfig, build_corpus, build_method, encoder_identity, method_config
from pretraining.figures import loss_curve_figure
from pretraining.loop import pretrain, stalled_warning
from pretraining.methods.base import PretrainingMethod
from pretraining.methods.simclr import contrastive_loss
from pretraining.methods.views import augment
from simecg.errors import ConfigError
from simecg.registries import METHODS
from simecg.seeding import rng_for
from simecg.signal import zscore
from tests.test_pretrain_train import SMALL_MODEL, SineCorpus

pytestmark = pytest.mark.usefixtures("one_thread")

BUILT_IN = ("mae", "simclr", "byol", "dino", "ibot")


def test_every_built_in_method_is_registered_with_paper_and_tiny_presets():
    assert set(BUILT_IN) <= set(METHODS.names())
    for name in BUILT_IN:
        cls = METHODS.get(name)
        assert issubclass(cls, PretrainingMethod) and {"paper", "tiny"} <= set(cls.PRESETS)
        assert cls.fidelity in ("authors", "inferred")
        for preset in ("paper", "tiny"):
            method = build_method(PretrainConfig(method=name, preset=preset))
            model = method.build()
            assert model.encoder.config == method.encoder_config  # the shared encoder, handed out
            assert method.draw(np.random.default_rng(0), 3).shape == (3, method.draw_width())


def test_an_object_that_is_not_a_method_breaks_the_contract():
    with pytest.raises(ConfigError, match="method contract"):
        METHODS.check("not-a-method", object)


def test_the_authors_views_mask_a_fixed_width_then_shift_with_zeros():
    signals = torch.arange(1, 101, dtype=torch.float32).reshape(1, 1, 100)
    masked = augment(signals, torch.tensor([[0.5, 0.0, 0.9]]), mask_ratio=0.3, max_shift_ratio=0.5)
    assert int((masked == 0).sum()) == 30  # int(100 * 0.3) consecutive samples, no shift
    start = int(np.flatnonzero(masked.numpy().ravel() == 0)[0])
    assert start == math.floor(0.5 * 70)
    shifted = augment(signals, torch.tensor([[0.0, 0.5, 0.1]]), mask_ratio=0.0, max_shift_ratio=0.4)
    # 0.5 * 0.4 * 100 = 20 samples later, zeros in front (draw < 0.5)
    assert torch.equal(shifted.ravel()[:20], torch.zeros(20))
    assert torch.equal(shifted.ravel()[20:], signals.ravel()[:80])
    earlier = augment(signals, torch.tensor([[0.0, 0.5, 0.9]]), mask_ratio=0.0, max_shift_ratio=0.4)
    assert torch.equal(earlier.ravel()[:80], signals.ravel()[20:])
    assert torch.equal(earlier.ravel()[80:], torch.zeros(20))


def test_simclr_authors_loss_takes_each_rows_own_similarity_as_its_positive():
    torch.manual_seed(0)
    z1, z2 = torch.randn(4, 8), torch.randn(4, 8)
    features = F.normalize(torch.cat([z1, z2]), dim=1)
    sims = features @ features.T / 0.5
    by_hand = torch.stack([torch.logsumexp(sims[i], 0) - sims[i, i] for i in range(8)]).mean()
    assert float(contrastive_loss(z1, z2, 0.5, "authors")) == pytest.approx(float(by_hand), rel=1e-5)
    # NT-Xent's positive is the other view: identical views make it lower than the authors' loss
    assert float(contrastive_loss(z1, z1, 0.5, "nt_xent")) < float(contrastive_loss(z1, z1, 0.5, "authors"))


def test_the_method_and_its_settings_are_in_the_encoder_identity_and_the_mae_payload_names_none():
    base = PretrainConfig(corpus_size=100, val_size=10)
    mae = encoder_identity(base)
    assert "method" not in mae.payload and "method" not in mae.payload["pretrain"]
    simclr = encoder_identity(dataclasses.replace(base, method="simclr"))
    assert simclr.fingerprint != mae.fingerprint
    assert simclr.payload["method"] == {"name": "simclr", "config": {**dataclasses.asdict(
        method_config(dataclasses.replace(base, method="simclr")))}}
    warmer = encoder_identity(dataclasses.replace(base, method="simclr", method_options={"temperature": "0.5"}))
    assert warmer.fingerprint != simclr.fingerprint
    assert warmer.payload["method"]["config"]["temperature"] == 0.5
    dino = encoder_identity(dataclasses.replace(base, method="dino"))
    assert dino.fingerprint not in (mae.fingerprint, simclr.fingerprint)


def test_the_loss_curve_names_the_methods_loss():
    history = [{"step": 1, "train_loss": 2.0}, {"step": 2, "train_loss": 1.5, "val_loss": 1.4}]
    labels = {}
    for name, options in (("mae", {}), ("simclr", {}), ("simclr", {"loss": "nt_xent"}), ("dino", {})):
        label = build_method(PretrainConfig(method=name, method_options=options)).loss_label
        figure = loss_curve_figure(history, label)
        assert figure.axes[0].get_ylabel() == label
        figure.clear()
        labels[(name, bool(options))] = label
    assert labels[("mae", False)] == "masked-patch MSE"
    assert len(set(labels.values())) == len(labels)  # the two SimCLR losses are told apart too


def test_only_the_mae_loss_is_judged_against_the_chance_mse():
    """A contrastive loss ends far above the MAE's chance MSE 1.0 and learned; only its fall counts."""
    assert "1.0" in stalled_warning(1.2, 0.95)  # the MAE: within 10% of predicting zeros
    assert stalled_warning(4.2, 2.5, "simclr") is None
    assert "barely fell" in stalled_warning(4.2, 4.0, "simclr")
    assert "did not fall" in stalled_warning(0.8, 1.3, "simclr")  # a loss that rose is not said to have fallen


@pytest.mark.parametrize(("options", "message"), [
    ({"temprature": 0.5}, "pretrain.method_options.temprature"),
    ({"temperature": 0}, "temperature"),
    ({"loss": "infonce"}, "loss"),
    ({"val_views": "noisy"}, "val_views"),
])
def test_bad_method_settings_fail_naming_the_key(options, message):
    with pytest.raises(ConfigError, match=message):
        PretrainConfig(method="simclr", method_options=options)


def test_an_unknown_method_lists_the_known_ones():
    with pytest.raises(ConfigError, match="Known: .*simclr"):
        PretrainConfig(method="simclear")


def test_the_mae_has_no_method_settings_of_its_own():
    with pytest.raises(ConfigError, match="pretrain.model"):
        PretrainConfig(method_options={"mask_ratio": 0.5})


@pytest.mark.parametrize("name", BUILT_IN)
def test_the_validation_loss_is_a_function_of_the_seeded_draws(name):
    method = build_method(PretrainConfig(method=name, preset="tiny", model=SMALL_MODEL))
    torch.manual_seed(0)
    model = method.build().eval()
    signals = torch.from_numpy(zscore(SineCorpus().get_batch(np.arange(6)))).unsqueeze(1)
    draws = torch.from_numpy(method.draw(rng_for(0, "val-mask", 10), 6))
    with torch.no_grad():
        first, second = float(method.loss(model, signals, draws)), float(method.loss(model, signals, draws))
    assert math.isfinite(first) and first == second


@pytest.mark.slow  # 15-35 s each on a loaded 2-core machine
@pytest.mark.parametrize("name", BUILT_IN)
def test_each_methods_loss_falls_on_sim(name):
    """A tiny encoder, 120 steps on 64 ``sim`` ECGs: the method's loss on fresh views falls (means of the
    first and last 20 steps; DINO-like losses first rise while the teacher sharpens, so from step 20)."""
    config = PretrainConfig(corpus="sim", corpus_size=64, val_size=0, method=name, preset="tiny", model=SMALL_MODEL)
    method = build_method(config)
    signals = torch.from_numpy(zscore(build_corpus(config).get_batch(np.arange(64)))).unsqueeze(1)
    torch.manual_seed(0)
    model = method.build()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    losses = []
    for step in range(120):
        batch = signals[np.random.default_rng(step).choice(64, 16, replace=False)]
        draws = torch.from_numpy(method.draw(rng_for(0, "pretrain-mask", step), 16))
        loss = method.loss(model, batch, draws)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        method.after_step(model)
        losses.append(float(loss.detach()))
    start = 20 if name in ("dino", "ibot") else 0
    assert np.mean(losses[-20:]) < np.mean(losses[start:start + 20])


def test_a_resumed_run_of_a_method_with_a_momentum_teacher_equals_an_uninterrupted_one(tmp_path):
    config = PretrainConfig(
        corpus="test-sines", corpus_size=64, preset="tiny", model=SMALL_MODEL, steps=6, batch_size=4, lr=1e-3,
        val_size=4, val_every=3, checkpoint_every=3, log_every=3, num_workers=0, method="dino",
    )
    straight = pretrain(config, tmp_path / "straight", progress=False, corpus=SineCorpus())
    pretrain(dataclasses.replace(config, steps=3), tmp_path / "resumed", progress=False, corpus=SineCorpus())
    resumed = pretrain(config, tmp_path / "resumed", progress=False, corpus=SineCorpus())
    a = torch.load(straight.training_checkpoint, weights_only=True)["model"]
    b = torch.load(resumed.training_checkpoint, weights_only=True)["model"]
    assert any(key.startswith("teacher_") for key in a) and "center" in a  # the teacher and centre travel too
    for key in a:
        torch.testing.assert_close(a[key], b[key], atol=1e-6, rtol=1e-5, msg=key)
    assert resumed.val_loss == pytest.approx(straight.val_loss, rel=1e-5)
