"""Figures of a pretraining run: masked-patch reconstructions and the loss curve (logged to MLflow)."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from pretraining.mae import MaskedAutoencoder


def loss_curve_figure(history: list[dict[str, Any]], loss_name: str = "masked-patch MSE") -> Any:
    """Training and validation loss over steps (log scale); ``loss_name`` is the method's
    (:attr:`pretraining.methods.base.PretrainingMethod.loss_label`: the MAE's masked-patch MSE)."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    figure, ax = plt.subplots(figsize=(6, 3.5))
    for key in ("train_loss", "val_loss"):
        points = [(h["step"], h[key]) for h in history if key in h]
        if points:
            steps, values = zip(*points, strict=True)
            ax.plot(steps, values, marker="o" if key == "val_loss" else None, label=key.replace("_", " "))
    ax.set_xlabel("step")
    ax.set_ylabel(loss_name)
    ax.set_yscale("log")
    ax.legend()
    figure.tight_layout()
    return figure




@torch.no_grad()
def reconstruction_figure(model: MaskedAutoencoder, signals: torch.Tensor, noise: torch.Tensor,
                          device: torch.device | str = "cpu") -> Any:
    """A matplotlib figure: each ECG with its masked patches shaded and the reconstruction drawn there."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    model.eval()
    _, pred, mask = model(signals.to(device), noise=noise.to(device))
    model.train()
    patch = model.config.patch_size
    pred = pred.float().cpu().numpy().reshape(len(signals), -1)
    mask = mask.cpu().numpy()
    figure, axes = plt.subplots(len(signals), 1, figsize=(10, 2.0 * len(signals)), squeeze=False)
    t = np.arange(signals.shape[-1])
    for row, ax in enumerate(axes[:, 0]):
        x = signals[row, 0].numpy()
        ax.plot(t, x, color="0.6", lw=0.5, label="input")
        masked = np.repeat(mask[row] > 0.5, patch)
        ax.plot(t, np.where(masked, pred[row], np.nan), color="tab:red", lw=1.0, label="reconstruction (masked)",
                zorder=3)
        for i in np.flatnonzero(mask[row] > 0.5):
            ax.axvspan(i * patch, (i + 1) * patch, color="tab:blue", alpha=0.08, lw=0)
        ax.set_xlim(0, len(t))
        ax.set_yticks([])
        if row == 0:
            ax.legend(loc="upper right", fontsize=7)
    axes[-1, 0].set_xlabel("sample (500 Hz)")
    figure.tight_layout()
    return figure
