"""Two augmented views of each ECG, as the authors' contrastive pretraining makes them (docs/protocol.md).

For every method but the MAE, the authors' pretraining loader z-scores a record and then applies
``RandomMask(aug_mask_ratio)`` and ``RandomShift(max_shift_ratio)`` (their ``config.yaml``:
0.5 and 0.5), once per view, two views per record; at validation it applies neither, so the two
views are the record itself. Here the views are made on the model's device from three uniform
numbers per view (:data:`VIEW_DRAWS`), drawn by the data stream from ``(seed, step)``:

1. the mask: ``int(L * mask_ratio)`` consecutive samples set to 0 (a fixed width, not a random
   one), starting uniformly in ``[0, L - width)``;
2. the shift: ``int(L * U(0, max_shift_ratio))`` samples, towards the end (zeros in front) or
   the start (zeros at the end) with equal chance.
"""

from __future__ import annotations

import torch

VIEW_DRAWS = 3  # uniform numbers per view: mask start, shift size, shift direction


def augment(signals: torch.Tensor, draws: torch.Tensor, mask_ratio: float, max_shift_ratio: float) -> torch.Tensor:
    """One view of each signal: masked, then shifted, as the authors' ``RandomMask`` then ``RandomShift``.

    Args:
        signals: z-scored ``(batch, 1, L)``.
        draws: ``(batch, 3)`` uniform in [0, 1): mask start, shift size, shift direction.
        mask_ratio, max_shift_ratio: the share of samples masked; the largest share shifted.
    """
    x = signals.reshape(signals.shape[0], -1)
    length = x.shape[1]
    positions = torch.arange(length, device=x.device)
    width = int(length * mask_ratio)
    if width > 0:
        start = torch.floor(draws[:, 0] * (length - width)).long().unsqueeze(1)
        x = x * ((positions < start) | (positions >= start + width)).to(x.dtype)
    shift = torch.floor(length * draws[:, 1].double() * max_shift_ratio).long().unsqueeze(1)
    forward = (draws[:, 2] < 0.5).unsqueeze(1)  # zeros in front: the record moves later
    source = torch.where(forward, positions - shift, positions + shift)
    inside = (source >= 0) & (source < length)
    x = torch.gather(x, 1, source.clamp(0, length - 1)) * inside.to(x.dtype)
    return x.reshape(signals.shape)


def two_views(signals: torch.Tensor, draws: torch.Tensor, mask_ratio: float, max_shift_ratio: float,
              augmented: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """Two views of each signal from the first ``2 * VIEW_DRAWS`` columns of ``draws``; the signals
    themselves when not ``augmented`` (the authors' validation)."""
    if not augmented:
        return signals, signals
    first = augment(signals, draws[:, :VIEW_DRAWS], mask_ratio, max_shift_ratio)
    second = augment(signals, draws[:, VIEW_DRAWS:2 * VIEW_DRAWS], mask_ratio, max_shift_ratio)
    return first, second
