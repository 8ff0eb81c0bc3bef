"""Test metrics of the protocol: F1 of the positive class at sigmoid > 0.5, AUROC, AUPRC.

CPSC2018 records are longer than one window; a record's score is the max over its windows.
Their uncertainty (bootstrap intervals, tests over seeds) is in :mod:`benchmark.results.statistics`.
"""

from __future__ import annotations

import math

import numpy as np
from sklearn.metrics import average_precision_score, f1_score, roc_auc_score

THRESHOLD = 0.5


def binary_metrics(labels: np.ndarray, scores: np.ndarray, threshold: float = THRESHOLD) -> dict[str, float]:
    """F1 (positive class, ``score > threshold``), AUROC and AUPRC; NaN when a class is absent.

    Also the counts they rest on (``n``, ``n_pos``, ``n_neg``): a score of a test set with one
    positive is a coin, and the leaderboard flags such tasks from these counts.
    """
    labels = np.asarray(labels).astype(int)
    scores = np.asarray(scores, dtype=float)
    if labels.shape != scores.shape:
        raise ValueError(f"labels {labels.shape} and scores {scores.shape} differ in shape")
    predictions = (scores > threshold).astype(int)
    both_classes = 0 < labels.sum() < len(labels)
    return {
        "f1": float(f1_score(labels, predictions, zero_division=0)),
        "auroc": float(roc_auc_score(labels, scores)) if both_classes else math.nan,
        "auprc": float(average_precision_score(labels, scores)) if both_classes else math.nan,
        "n": float(len(labels)),
        "n_pos": float(labels.sum()),
        "n_neg": float(len(labels) - labels.sum()),
    }


def record_scores(window_scores: np.ndarray, window_record: np.ndarray, records: np.ndarray) -> np.ndarray:
    """Max window score of each record in ``records`` (order kept)."""
    best = np.full(int(window_record.max()) + 1 if len(window_record) else 0, -np.inf)
    np.maximum.at(best, window_record, window_scores)
    out = best[records]
    if np.isinf(out).any():
        missing = records[np.isinf(out)][:5]
        raise ValueError(f"records without windows: {missing.tolist()}")
    return out
