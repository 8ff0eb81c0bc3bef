"""Optuna tuning of one (model, task, lead, budget) before its seeds run (PROTOCOL.md).

TPE sampler with seed 6, PatientPruner(MedianPruner, patience 5), minimising validation loss.
The space is each model's ``tuning_space`` (:class:`baselines.base.Baseline`): for neural
models learning rate log-uniform [5e-6, 5e-3], augmentation mask ratio [0, 0.5], max shift ratio
[0, 0.75], plus the model's own space (the pretrained MAE's head width 2^4..2^10). Studies live
in an RDB named by the study's identity (:func:`simecg.identity.study_identity`), so a killed
tuning resumes with the trials it finished.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from benchmark.config import TuningConfig

log = logging.getLogger(__name__)


def tune(
    objective: Callable[[Any], float],
    config: TuningConfig,
    study_name: str,
    storage: str,
) -> dict[str, Any]:
    """Run (or resume) the study and return the best trial's ``user_attrs['params']``.

    ``objective(trial)`` must store the overrides it used in ``trial.set_user_attr("params", ...)``,
    report validation losses with ``trial.report`` and return the best validation loss.
    """
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    sampler = optuna.samplers.TPESampler(seed=config.sampler_seed)
    pruner = optuna.pruners.PatientPruner(optuna.pruners.MedianPruner(), patience=config.pruner_patience)
    study = optuna.create_study(
        study_name=study_name, storage=storage, sampler=sampler, pruner=pruner,
        direction="minimize", load_if_exists=True,
    )
    done = sum(t.state.is_finished() for t in study.trials)
    remaining = max(config.n_trials - done, 0)
    if remaining:
        log.info("tuning %s: %d trials (%d already done)", study_name, remaining, done)
        study.optimize(objective, n_trials=remaining, timeout=config.timeout_s or None, catch=(RuntimeError,))
    complete = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    if not complete:
        return {}
    return dict(study.best_trial.user_attrs.get("params", {}))
