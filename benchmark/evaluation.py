"""One cell, end to end: split, budget, (tune,) train, evaluate on test, log to MLflow.

Every model goes through the same path: neural models through
:func:`benchmark.training.train_classifier`, scikit-learn style estimators through
``fit``/``predict_proba``. Test scores are per record (CPSC2018: max over windows), and the
test set is also scored per demographic group when the data has age and sex.
"""

from __future__ import annotations

import dataclasses
import logging
import re
import tempfile
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from sklearn.metrics import log_loss

from benchmark import demographics
from benchmark.budgets import apply_budget
from benchmark.cells import Cell, pretrain_fingerprint
from benchmark.config import SuiteConfig, parse_shift
from benchmark.datasets.base import TaskData
from benchmark.metrics import binary_metrics, record_scores
from benchmark.splits import make_split
from benchmark.tracking import Tracker
from benchmark.training import predict_scores, train_classifier
from benchmark.tuning import training_space, tune
from simecg.config import apply_overrides, flatten, stable_hash, to_dict
from simecg.errors import SimECGError
from simecg.registries import BASELINES

log = logging.getLogger(__name__)


@dataclass
class CellContext:
    """What all cells of one invocation share."""

    suite: SuiteConfig
    tracker: Tracker
    parent_id: str
    storage: str
    data: dict[tuple[str, str], TaskData] = field(default_factory=dict)


@dataclass
class Prepared:
    """A cell's arrays: training/validation windows and test records."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    test_records: np.ndarray
    budget_info: dict[str, Any]
    split_frame: pd.DataFrame  # record_id, split (train/val/test), in_budget


def model_identity(suite: SuiteConfig, cell: Cell) -> dict[str, Any]:
    """The part of a cell's fingerprint that describes its model."""
    if cell.corpus:
        return {"encoder": pretrain_fingerprint(suite, cell.corpus), "preset": suite.pretrain.preset}
    baseline = BASELINES.get(cell.model)
    return {"baseline": cell.model, "config": to_dict(baseline.make_config(suite.baselines.get(cell.model, {})))}


def prepare(suite: SuiteConfig, data: TaskData, cell: Cell, seed: int) -> Prepared:
    """Split by record, apply the label budget, and gather windows (records -> windows)."""
    split = make_split(data, suite.split, seed=seed, test_seed=suite.test_seed)
    shift = parse_shift(cell.shift)
    if shift:
        split = demographics.shift_split(split, data.records, *shift, age_bins=suite.age_bins)
    budget = cell.budget or None
    train_records, info = apply_budget(split.train, data.labels, budget, seed, cell.positives_only)
    train_windows = data.windows_of(train_records)
    val_windows = data.windows_of(split.val)
    return Prepared(
        x_train=np.asarray(data.signals[train_windows]),
        y_train=data.labels[data.window_record[train_windows]].astype(np.float32),
        x_val=np.asarray(data.signals[val_windows]),
        y_val=data.labels[data.window_record[val_windows]].astype(np.float32),
        test_records=np.asarray(split.test),
        budget_info=info,
        split_frame=split.to_frame().assign(
            in_budget=lambda f: f.record_id.isin(data.records.record_id.iloc[train_records].astype(str))
        ),
    )


def build_neural(suite: SuiteConfig, cell: Cell, encoder_path: Path | None, overrides: dict[str, Any], seed: int):
    """The model of a neural cell, initialised from ``seed`` (pretrained weights when it has them).

    ``overrides`` (tuned values) go to the baseline's own Config where it has the field (its
    architecture, e.g. the scratch model's ``head_width``) and to the fine-tuning config otherwise.
    """
    torch.manual_seed(seed)
    if cell.corpus:
        from pretraining.checkpoint import load_encoder
        from pretraining.mae import EncoderClassifier

        finetune = apply_overrides(suite.finetune, overrides)
        encoder = load_encoder(encoder_path)
        return EncoderClassifier(
            encoder, head_width=finetune.head_width, pooling=finetune.pooling, freeze_encoder=finetune.mode == "probe"
        ), finetune
    baseline = BASELINES.get(cell.model)
    arch_fields = {f.name for f in dataclasses.fields(baseline.Config)}
    arch = {**suite.baselines.get(cell.model, {}), **{k: v for k, v in overrides.items() if k in arch_fields}}
    finetune = apply_overrides(suite.finetune, {k: v for k, v in overrides.items() if k not in arch_fields})
    return baseline.build(baseline.make_config(arch)), finetune


def _tuned_overrides(context: CellContext, cell: Cell, encoder_path: Path | None) -> dict[str, Any]:
    """Best hyper-parameters for this cell's (model, task, lead, budget), tuned once for all seeds."""
    suite = context.suite
    if suite.tuning.n_trials <= 0:
        return {}
    baseline = None if cell.corpus else BASELINES.get(cell.model)
    data = context.data[(cell.task, cell.lead)]
    prepared = prepare(suite, data, cell, suite.tuning.tune_seed)
    seedless = dataclasses.replace(cell, seed=0)
    study = "cell-" + stable_hash({"cell": dataclasses.asdict(seedless), "split": suite.split,
                                   "suite_finetune": to_dict(suite.finetune), "tuning": to_dict(suite.tuning),
                                   "data": data.data_version, "model": model_identity(suite, cell)})

    def objective(trial: Any) -> float:
        import optuna

        if baseline is not None and baseline.kind == "estimator":  # its own space; validation log loss
            params = baseline.search_space(trial)
            trial.set_user_attr("params", params)
            config = baseline.make_config({**suite.baselines.get(cell.model, {}), **params})
            estimator = baseline.make_estimator(config, suite.tuning.tune_seed)
            estimator.fit(prepared.x_train, prepared.y_train.astype(int), prepared.x_val, prepared.y_val.astype(int))
            return float(log_loss(prepared.y_val.astype(int), estimator.predict_proba(prepared.x_val)[:, 1],
                                  labels=[0, 1]))
        params = training_space(trial, pretrained=cell.corpus is not None)
        if baseline is not None:
            params.update(baseline.search_space(trial))
        trial.set_user_attr("params", params)
        model, finetune = build_neural(suite, cell, encoder_path, params, suite.tuning.tune_seed)

        def on_eval(epoch: int, val_loss: float) -> None:
            trial.report(val_loss, epoch)
            if trial.should_prune():
                raise optuna.TrialPruned()

        fit = train_classifier(model, (prepared.x_train, prepared.y_train), (prepared.x_val, prepared.y_val),
                               finetune, seed=suite.tuning.tune_seed, on_eval=on_eval)
        return fit.best_val_loss

    return tune(objective, suite.tuning, study, context.storage)


def run_cell(context: CellContext, cell: Cell, fingerprint: str, encoder_path: Path | None) -> str | None:
    """Run one cell in its own MLflow child run; return an error line, or None on success."""
    tracker = context.tracker
    suite = context.suite
    tracker.kill_stale(fingerprint)
    data = context.data[(cell.task, cell.lead)]
    tags = {"kind": "cell", "fingerprint": fingerprint, "suite": suite.name, "dataset": data.dataset,
            "data_version": data.data_version, "synthetic": str(data.synthetic).lower(), **cell.tags()}
    run_id = tracker.start_run(cell.label, tags=tags, params={
        **flatten({"finetune": to_dict(suite.finetune), "tuning": to_dict(suite.tuning)}),
        **flatten({"model": model_identity(suite, cell)}),
        "split": suite.split, "test_seed": suite.test_seed,
    }, parent_id=context.parent_id)
    try:
        overrides = _tuned_overrides(context, cell, encoder_path)
        if overrides:
            tracker.log_params(run_id, {f"tuned.{k}": v for k, v in overrides.items()})
        metrics, history, predictions, split_frame = _train_and_test(context, cell, data, encoder_path, overrides)
        tracker.log_metrics(run_id, metrics)
        if history:
            tracker.log_history(run_id, history)
        with tempfile.TemporaryDirectory() as tmp:
            for name, frame in (("test_predictions.csv", predictions), ("split.csv", split_frame)):
                frame.to_csv(Path(tmp) / name, index=False)
                tracker.log_artifact(run_id, Path(tmp) / name)
        tracker.finish_with_input(run_id, split_frame, name=f"{cell.task} split seed {cell.seed}", context="split")
    except KeyboardInterrupt:
        tracker.end_run(run_id, "KILLED")
        raise
    except Exception as exc:
        detail = str(exc) if isinstance(exc, SimECGError) else f"{type(exc).__name__}: {exc}"
        log.error("cell %s failed: %s", cell.label, detail)
        tracker.set_tags(run_id, {"error": detail[:5000], "traceback": traceback.format_exc()[-5000:]})
        tracker.end_run(run_id, "FAILED")
        return detail
    return None


def _train_and_test(
    context: CellContext, cell: Cell, data: TaskData, encoder_path: Path | None, overrides: dict[str, Any]
) -> tuple[dict[str, float], list[dict[str, float]], pd.DataFrame, pd.DataFrame]:
    suite = context.suite
    prepared = prepare(suite, data, cell, cell.seed)
    test_windows = data.windows_of(prepared.test_records)
    x_test = np.asarray(data.signals[test_windows])
    baseline = None if cell.corpus else BASELINES.get(cell.model)
    history: list[dict[str, float]] = []
    if baseline is not None and baseline.kind == "estimator":
        config = baseline.make_config({**suite.baselines.get(cell.model, {}), **overrides})
        estimator = baseline.make_estimator(config, cell.seed)
        estimator.fit(prepared.x_train, prepared.y_train.astype(int), prepared.x_val, prepared.y_val.astype(int))
        window_scores = estimator.predict_proba(x_test)[:, 1]
        extra: dict[str, float] = {}
    else:
        model, finetune = build_neural(suite, cell, encoder_path, overrides, cell.seed)
        fit = train_classifier(model, (prepared.x_train, prepared.y_train), (prepared.x_val, prepared.y_val),
                               finetune, seed=cell.seed)
        window_scores = predict_scores(fit.model, x_test, finetune.batch_size)
        history = fit.history
        extra = {"best_epoch": fit.best_epoch, "epochs_run": fit.epochs_run, "best_val_loss": fit.best_val_loss,
                 "train_seconds": fit.seconds}
    scores = record_scores(window_scores, data.window_record[test_windows], prepared.test_records)
    labels = data.labels[prepared.test_records]
    metrics = {f"test_{k}": v for k, v in binary_metrics(labels, scores).items()}
    metrics.update(extra)
    metrics["n_train"] = float(len(prepared.y_train))
    metrics["n_val"] = float(len(prepared.y_val))
    metrics.update({f"budget.{k}": float(v) for k, v in prepared.budget_info.items() if _is_number(v)})
    records = data.records.iloc[prepared.test_records].reset_index(drop=True)
    predictions = pd.DataFrame({"record_id": records["record_id"], "label": labels, "score": scores,
                                "age": records.get("age"), "sex": records.get("sex")})
    metrics.update(group_metrics(records, labels, scores, suite.age_bins))
    return metrics, history, predictions, prepared.split_frame


def group_metrics(
    records: pd.DataFrame, labels: np.ndarray, scores: np.ndarray, age_bins: tuple[int, ...] = demographics.AGE_BINS
) -> dict[str, float]:
    """Test F1/AUROC per sex and per age group, where the data has them."""
    out: dict[str, float] = {}
    for by in ("sex", "age"):
        if by not in records or records[by].isna().all():
            continue
        groups = demographics.groups(records, by, age_bins).to_numpy()
        for group in pd.unique(groups[pd.notna(groups)]):
            members = groups == group
            if members.sum() == 0:
                continue
            m = binary_metrics(labels[members], scores[members])
            key = _metric_key(f"{by}.{group}")
            out[f"test_f1.{key}"] = m["f1"]
            out[f"test_auroc.{key}"] = m["auroc"]
            out[f"n_test.{key}"] = float(members.sum())
    return out


def _metric_key(text: str) -> str:
    text = str(text).replace("+", "plus").replace("<", "lt").replace(">", "gt")
    return re.sub(r"[^A-Za-z0-9_\-. /]", "_", text)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool)
