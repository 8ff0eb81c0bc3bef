"""A grid of sample ECGs with the parameters that made them: to look at a corpus before using it.

``simecg-bench corpus preview`` saves it as a PNG, and pretraining logs the same figure to
MLflow, so every pretrained encoder's artifacts show what it was trained on.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from pretraining.corpora.base import Corpus
from simecg.signal import FS


def _label(info: dict[str, Any]) -> str:
    parts = []
    for key, value in info.items():
        if isinstance(value, float):
            parts.append(f"{key}={value:.3g}")
        else:
            parts.append(f"{key}={value}")
    text = ", ".join(parts)
    return text if len(text) <= 110 else text[:107] + "..."


def preview_figure(corpus: Corpus, n: int = 12, seed: int = 0, seconds: float = 10.0, columns: int = 2):
    """Matplotlib Figure with ``n`` ECGs of ``corpus`` (indices drawn with ``seed``) and their parameters.

    Works for any corpus: what its ``describe(indices)`` says of each ECG (a simulator's parameters,
    for ``sim``) titles its panel, after its index.
    """
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    size = len(corpus)
    n = max(1, min(int(n), size))
    rng = np.random.default_rng(seed)
    indices = np.sort(rng.choice(size, size=n, replace=False)) if size > n else np.arange(n)
    signals = corpus.get_batch(indices)
    infos = corpus.describe(indices)
    rows = -(-n // columns)
    fig, axes = plt.subplots(rows, columns, figsize=(7.5 * columns, 1.7 * rows), squeeze=False, sharex=True)
    keep = int(seconds * FS)
    t = np.arange(min(keep, signals.shape[1])) / FS
    for k, ax in enumerate(axes.ravel()):
        if k >= n:
            ax.axis("off")
            continue
        ax.plot(t, signals[k, : len(t)], lw=0.6, color="black")
        ax.set_title(f"#{indices[k]}  {_label(infos[k])}", fontsize=6.5, loc="left")
        ax.tick_params(labelsize=6)
        ax.grid(alpha=0.3, lw=0.4)
    for ax in axes[-1]:
        ax.set_xlabel("s", fontsize=7)
    # generated corpora are on the z-scored scale
    fig.suptitle(f"corpus {corpus.name}: {n} of {size} ECGs ({corpus.unit}, lead II, 500 Hz)", fontsize=9)
    fig.tight_layout()
    return fig
