"""The models a cell trains: the supervised baselines and the pretrained MAE, one contract for all.

Entries are declared in ``pyproject.toml`` (``simecg_bench.baselines``) and imported on first
lookup. Plugin authors: subclass :class:`baselines.base.NeuralBaseline` or
:class:`~baselines.base.EstimatorBaseline` and test it with :func:`check_baseline`.
"""

from baselines.base import Baseline, EstimatorBaseline, NeuralBaseline, resolve_model
from baselines.checks import check_baseline

__all__ = ["Baseline", "EstimatorBaseline", "NeuralBaseline", "check_baseline", "resolve_model"]
