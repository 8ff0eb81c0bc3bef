"""The frozen-encoder evaluation (the authors' ``freeze: True``, template006; suite ``frozen``): a cell of the
pretrained model with ``mode = "probe"`` trains its head only, the encoder's weights stay as pretraining left
them; full fine-tuning (the default) moves them."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from baselines.base import EncoderNeed, resolve_model
from baselines.training import TrainConfig
from pretraining.checkpoint import load_encoder
from pretraining.mae import METHOD

TRAINING = TrainConfig(lr=1e-2, batch_size=16, max_epochs=2, eval_every=1, patience=5, device="cpu")


def fitted(mode: str, encoders):
    """The MAE on ``sim`` fitted for two epochs on a small random task, with the encoder ``mode``."""
    rng = np.random.default_rng(0)
    x, xv = rng.standard_normal((48, 5000)).astype(np.float32), rng.standard_normal((16, 5000)).astype(np.float32)
    y, yv = np.tile([0, 1], 24).astype(np.float32), np.tile([0, 1], 8).astype(np.float32)
    spec = resolve_model("mae:sim", {"mae": {"mode": mode}})
    return spec.create(TRAINING, seed=1, encoders=encoders).fit(x, y, xv, yv)


def moved(before: dict[str, torch.Tensor], after: dict[str, torch.Tensor]) -> set[str]:
    return {name for name, value in before.items() if not torch.equal(value, after[name])}


@pytest.mark.usefixtures("one_thread")
def test_a_frozen_cell_trains_the_head_only_and_full_fine_tuning_moves_the_encoder(random_encoders) -> None:
    encoders = random_encoders
    pretrained = load_encoder(encoders.path(EncoderNeed(METHOD, "sim"))).state_dict()  # the file mae:sim loads

    probe = fitted("probe", encoders).module_
    assert moved(pretrained, probe.encoder.state_dict()) == set()  # every encoder weight as pretrained
    assert all(not p.requires_grad for p in probe.encoder.parameters())
    torch.manual_seed(1)  # as fit() seeds before building: the head the probe started from
    initial = resolve_model("mae:sim", {"mae": {"mode": "probe"}}).create(
        TRAINING, seed=1, encoders=encoders).build_module().head.state_dict()
    assert moved(initial, probe.head.state_dict())  # the head did learn

    full = fitted("full", encoders).module_
    assert moved(pretrained, full.encoder.state_dict())  # the default fine-tunes the encoder too
