"""The MAE of docs/protocol.md: masking share, loss only on masked patches, shapes, and that it can learn."""

from __future__ import annotations

import pytest
import torch

from pretraining.mae import PRESETS, ECGEncoder, EncoderClassifier, MaskedAutoencoder, preset
from simecg.errors import ConfigError

pytestmark = pytest.mark.usefixtures("one_thread")


def _signals(batch: int, seed: int = 0) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    t = torch.arange(5000) / 500.0
    freq = 1.0 + torch.rand(batch, 1, generator=gen)
    phase = 6.28 * torch.rand(batch, 1, generator=gen)
    x = torch.sin(2 * torch.pi * freq * t + phase) + 0.5 * torch.sin(2 * torch.pi * 3 * freq * t)
    return ((x - x.mean(-1, keepdim=True)) / x.std(-1, keepdim=True)).unsqueeze(1)


def test_exactly_75_percent_of_tokens_masked_and_loss_only_on_them():
    model = MaskedAutoencoder(preset("tiny"))
    x = _signals(6)
    loss, pred, mask = model(x, generator=torch.Generator().manual_seed(1))
    assert mask.shape == (6, 100)
    assert torch.equal(mask.sum(dim=1), torch.full((6,), 75.0))
    assert set(mask.unique().tolist()) == {0.0, 1.0}
    target = x.reshape(6, 100, 50)
    manual = ((pred - target) ** 2).mean(-1)[mask.bool()].mean()
    torch.testing.assert_close(loss, manual)
    pred.retain_grad()
    loss.backward()
    grad_norm_per_patch = pred.grad.abs().sum(-1)
    assert torch.all(grad_norm_per_patch[mask == 0] == 0), "visible patches must not enter the loss"
    assert torch.all(grad_norm_per_patch[mask == 1] > 0)


def test_masks_differ_per_sample_and_follow_given_noise():
    model = MaskedAutoencoder(preset("tiny"))
    x = _signals(4)
    noise = torch.rand(4, 100, generator=torch.Generator().manual_seed(3))
    _, _, mask_a = model(x, noise=noise)
    _, _, mask_b = model(x, noise=noise)
    assert torch.equal(mask_a, mask_b)
    assert not torch.equal(mask_a[0], mask_a[1])
    # the lowest-noise quarter of the tokens stays visible
    visible = noise.argsort(dim=1)[:, :25]
    assert torch.all(mask_a.gather(1, visible) == 0)
    with pytest.raises(ConfigError, match="mask noise"):
        model(x, noise=torch.rand(4, 99))


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_shapes_of_encoder_autoencoder_and_classifier(name):
    config = preset(name)
    model = MaskedAutoencoder(config)
    x = _signals(2)
    loss, pred, mask = model(x)
    assert loss.shape == ()
    assert pred.shape == (2, config.num_patches, config.patch_size)
    assert mask.shape == (2, config.num_patches)
    tokens = model.encoder(x)
    assert tokens.shape == (2, 1 + config.num_patches, config.embed_dim)
    for pooling in ("cls", "mean"):
        logits = EncoderClassifier(model.encoder, head_width=16, pooling=pooling)(x)
        assert logits.shape == (2,)


def test_paper_preset_matches_protocol():
    c = preset("paper")
    assert (c.patch_size, c.num_patches, c.embed_dim, c.depth, c.num_heads, c.mlp_ratio) == (50, 100, 128, 10, 8, 4.0)
    decoder = (c.decoder_embed_dim, c.decoder_depth, c.decoder_num_heads, c.mask_ratio, c.qk_norm)
    assert decoder == (128, 2, 16, 0.75, True)
    encoder = ECGEncoder(c)
    assert sum(p.numel() for p in encoder.blocks.parameters()) > 1_900_000  # 10 blocks of width 128


def test_encoder_rejects_wrong_signal_length():
    with pytest.raises(ConfigError, match="5000 samples"):
        ECGEncoder(preset("tiny"))(torch.zeros(1, 1, 4000))


@pytest.mark.slow
def test_tiny_batch_overfits_tenfold():
    torch.manual_seed(0)
    model = MaskedAutoencoder(preset("tiny"))
    x = _signals(2, seed=5)
    noise = torch.rand(2, 100, generator=torch.Generator().manual_seed(7))
    optimizer = torch.optim.Adam(model.parameters(), lr=5e-3)
    losses = []
    for _ in range(400):  # typically reached after ~250 steps
        loss, _, _ = model(x, noise=noise)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
        if losses[-1] < losses[0] / 10:
            break
    assert losses[-1] < losses[0] / 10, f"loss fell only from {losses[0]:.3f} to {losses[-1]:.3f}"


def test_attention_runs_through_the_fused_kernel():
    model = MaskedAutoencoder(preset("tiny"))
    blocks = list(model.encoder.blocks) + list(model.decoder_blocks)
    assert blocks and all(block.attn.fused_attn for block in blocks)
    assert all(not isinstance(block.attn.q_norm, torch.nn.Identity) for block in blocks), "qk-norm is on"
