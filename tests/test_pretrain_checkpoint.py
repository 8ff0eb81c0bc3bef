"""Checkpoints: atomic, safe to load (weights_only), and clear errors for the wrong architecture."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from pretraining import checkpoint as ckpt
from pretraining.mae import ECGEncoder, MaskedAutoencoder, preset
from simecg.errors import CheckpointError


def test_encoder_file_round_trips_and_loads_with_weights_only(tmp_path):
    encoder = ECGEncoder(preset("tiny"))
    path = ckpt.save_encoder(encoder, tmp_path / "encoder.pt")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["encoder.pt", "encoder.pt.integrity.json"], \
        "the file and its size+hash sidecar, no temporary file left behind"
    raw = torch.load(path, weights_only=True)
    assert raw["format"] == ckpt.FORMAT
    loaded = ckpt.load_encoder(path, expected=preset("tiny"))
    for (name, a), (_, b) in zip(encoder.state_dict().items(), loaded.state_dict().items(), strict=True):
        assert torch.equal(a, b), name
    x = torch.randn(2, 1, 5000)
    torch.testing.assert_close(encoder(x), loaded(x))


def test_encoder_loads_from_a_training_checkpoint(tmp_path):
    model = MaskedAutoencoder(preset("tiny"))
    path = tmp_path / "step-00000001.pt"
    ckpt.atomic_save({"format": ckpt.FORMAT, "kind": "training", "model": model.state_dict(),
                      "model_config": dataclasses.asdict(model.config)}, path)
    loaded = ckpt.load_encoder(path)
    assert torch.equal(loaded.patch_embed.weight, model.encoder.patch_embed.weight)


def test_loading_into_a_different_architecture_fails_clearly(tmp_path):
    path = ckpt.save_encoder(ECGEncoder(preset("tiny")), tmp_path / "encoder.pt")
    with pytest.raises(CheckpointError) as info:
        ckpt.load_encoder(path, expected=preset("paper"))
    message = str(info.value)
    assert str(path) in message
    assert "embed_dim=64 (expected 128)" in message and "depth=2 (expected 10)" in message


def test_weights_that_do_not_fit_the_declared_architecture_fail_clearly(tmp_path):
    encoder = ECGEncoder(preset("tiny"))
    state = encoder.state_dict()
    state.pop("norm.weight")
    ckpt.atomic_save({"format": ckpt.FORMAT, "kind": "encoder", "encoder": state,
                      "model_config": dataclasses.asdict(preset("tiny"))}, tmp_path / "broken.pt")
    with pytest.raises(CheckpointError, match="does not fit"):
        ckpt.load_encoder(tmp_path / "broken.pt")


def test_missing_corrupt_and_foreign_files_fail_clearly(tmp_path):
    with pytest.raises(CheckpointError, match="does not exist"):
        ckpt.load_encoder(tmp_path / "absent.pt")
    (tmp_path / "garbage.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="cannot read checkpoint"):
        ckpt.load_encoder(tmp_path / "garbage.pt")
    torch.save({"state_dict": {}}, tmp_path / "foreign.pt")
    with pytest.raises(CheckpointError, match="not a SimECG MAE checkpoint"):
        ckpt.load_encoder(tmp_path / "foreign.pt")


def test_checkpoint_listing_and_pruning(tmp_path):
    for step in (3, 12, 6):
        ckpt.atomic_save({"format": ckpt.FORMAT, "step": step}, ckpt.step_path(tmp_path, step))
    (tmp_path / ".step-00000099.pt.abc.tmp").write_bytes(b"half written")
    assert [s for s, _ in ckpt.list_checkpoints(tmp_path)] == [3, 6, 12]
    assert ckpt.latest_checkpoint(tmp_path) == ckpt.step_path(tmp_path, 12)
    ckpt.prune_checkpoints(tmp_path, keep=2)
    assert [s for s, _ in ckpt.list_checkpoints(tmp_path)] == [6, 12]
