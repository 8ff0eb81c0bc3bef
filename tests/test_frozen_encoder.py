"""The frozen-encoder evaluation (the authors' ``freeze: True``, template006; suite ``frozen``): a cell of the
pretrained model with ``mode = "probe"`` trains its head only, the encoder's weights stay as pretraining left
them; full fine-tuning (the default) moves them."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from baselines.base import resolve_model
from baselines.training import TrainConfig
from pretraining.checkpoint import load_encoder, save_encoder
from pretraining.mae import ECGEncoder, preset
from simecg.identity import Identity

TRAINING = TrainConfig(lr=1e-2, batch_size=16, max_epochs=2, eval_every=1, patience=5, device="cpu")


class TinyEncoders:
    """An encoder source holding one tiny randomly initialised encoder (what matters is whether it moves)."""

    def __init__(self, folder: Path):
        self.folder = folder

    def identity(self, corpus: str) -> Identity:
        return Identity("encoder", {"tiny": corpus})

    def path(self, corpus: str) -> Path:
        path = self.folder / f"{corpus}.pt"
        if not path.exists():
            torch.manual_seed(0)
            save_encoder(ECGEncoder(preset("tiny")), path, extra={"fingerprint": self.identity(corpus).fingerprint})
        return path


def fitted(mode: str, encoders: TinyEncoders):
    """The MAE on ``sim`` fitted for two epochs on a small random task, with the encoder ``mode``."""
    rng = np.random.default_rng(0)
    x, xv = rng.standard_normal((48, 5000)).astype(np.float32), rng.standard_normal((16, 5000)).astype(np.float32)
    y, yv = np.tile([0, 1], 24).astype(np.float32), np.tile([0, 1], 8).astype(np.float32)
    spec = resolve_model("mae:sim", {"mae": {"mode": mode}})
    return spec.create(TRAINING, seed=1, encoders=encoders).fit(x, y, xv, yv)


def moved(before: dict[str, torch.Tensor], after: dict[str, torch.Tensor]) -> set[str]:
    return {name for name, value in before.items() if not torch.equal(value, after[name])}


@pytest.mark.usefixtures("one_thread")
def test_a_frozen_cell_trains_the_head_only_and_full_fine_tuning_moves_the_encoder(tmp_path: Path) -> None:
    encoders = TinyEncoders(tmp_path)
    pretrained = load_encoder(encoders.path("sim")).state_dict()

    probe = fitted("probe", encoders).module_
    assert moved(pretrained, probe.encoder.state_dict()) == set()  # every encoder weight as pretrained
    assert all(not p.requires_grad for p in probe.encoder.parameters())
    torch.manual_seed(1)  # as fit() seeds before building: the head the probe started from
    initial = resolve_model("mae:sim", {"mae": {"mode": "probe"}}).create(
        TRAINING, seed=1, encoders=encoders).build_module().head.state_dict()
    assert moved(initial, probe.head.state_dict())  # the head did learn

    full = fitted("full", encoders).module_
    assert moved(pretrained, full.encoder.state_dict())  # the default fine-tunes the encoder too
