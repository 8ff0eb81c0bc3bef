"""Run one cell: split, budget, (tune,) fit, score the test records, log it all to one MLflow run.

Every model takes the same path (:class:`baselines.base.Baseline`): the cell's
:class:`~baselines.base.ModelSpec` creates it, ``fit`` learns from training/validation
windows, ``predict_scores`` scores test windows. Test scores are per record (CPSC2018: max over
windows), and the test set is also scored per demographic group when the data has age and sex.
"""

from __future__ import annotations

import dataclasses
import logging
import re
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from baselines.base import EncoderSource
from baselines.training import TrainConfig
from benchmark.data import demographics
from benchmark.data.base import TaskData
from benchmark.data.budgets import apply_budget
from benchmark.data.splits import make_split
from benchmark.results.metrics import binary_metrics, record_scores
from benchmark.results.report import log_curves
from benchmark.results.statistics import bootstrap_intervals
from benchmark.run.cells import Cell, PlannedCell
from benchmark.run.tuning import StudyRuns, tune
from benchmark.suites.config import SuiteConfig, parse_shift
from benchmark.tracking.tags import RunTags
from benchmark.tracking.tracker import ActiveRun, Tracker
from simecg.config import flatten, to_dict
from simecg.errors import SimECGError, StoreLost, Superseded
from simecg.failpoints import failpoint
from simecg.identity import without_ignored

log = logging.getLogger(__name__)


@dataclass
class CellContext:
    """What all cells of one invocation share."""

    suite: SuiteConfig
    tracker: Tracker
    parent_id: str
    storage: str
    encoders: EncoderSource
    data: dict[tuple[str, str], TaskData] = field(default_factory=dict)
    workers: Any = None  # benchmark.run.claims.Coordinator: this process as one of the suite's workers


@dataclass
class Prepared:
    """A cell's training/validation inputs and test records.

    For records of one window (PTB-XL, G12EC) the inputs are arrays, a window per record. For
    records longer than a window (CPSC2018, docs/protocol.md "Signals"), ``x_train`` is a
    :class:`~benchmark.data.preprocess.RandomCrops` (a fresh random 10-s crop of each record per epoch,
    seeded by the cell's seed) and ``x_val`` a :class:`~baselines.training.GroupedWindows` (each
    record's 10-s windows at a 5-s stride, its score the max over them, as at test time);
    ``y_train``/``y_val`` then hold one label per record.
    """

    x_train: Any  # np.ndarray (n, L) | RandomCrops
    y_train: np.ndarray
    x_val: Any  # np.ndarray (n, L) | GroupedWindows
    y_val: np.ndarray
    test_records: np.ndarray
    budget_info: dict[str, Any]
    split_frame: pd.DataFrame  # record_id, split (train/val/test), label, in_budget (one row per task row)


def prepare(suite: SuiteConfig, data: TaskData, cell: Cell, seed: int) -> Prepared:
    """Split by record, apply the label budget, and gather the training and validation inputs.

    Validation of long records uses the evaluation windows (max over a record's windows), not a
    random crop: early stopping and tuning then select on the very score the test set gets, and
    the validation loss does not move with crop noise between evaluations.
    """
    split = make_split(data, suite.split, seed=seed, test_seed=suite.test_seed, duplicates=suite.duplicates)
    shift = parse_shift(cell.shift)
    if shift:
        split = demographics.shift_split(split, data.records, *shift, age_bins=suite.age_bins)
    budget = cell.budget or None
    train_records, info = apply_budget(split.train, data.labels, budget, seed, cell.positives_only)
    x_train, y_train = data.training_samples(train_records, seed)
    x_val, y_val = data.evaluation_samples(split.val)
    # the frame lists the split's rows by row index; a record in both classes is two rows of one
    # record_id (data.overlap = "both"), told apart by their label, each with its own budget flag
    rows = np.sort(np.concatenate([split.train, split.val, split.test]))
    return Prepared(
        x_train=x_train,
        y_train=y_train,
        x_val=x_val,
        y_val=y_val,
        test_records=np.asarray(split.test),
        budget_info=info,
        split_frame=split.to_frame().assign(label=data.labels[rows].astype(int),
                                            in_budget=np.isin(rows, train_records)),
    )


def run_cell(context: CellContext, planned: PlannedCell) -> str | None:
    """Run one cell in its own MLflow child run; return an error line, or None on success.

    The run ends FINISHED, FAILED (with the error and traceback) or KILLED through
    :meth:`Tracker.run`; a failed cell does not stop the suite.
    """
    cell, suite = planned.cell, context.suite
    data = context.data[(cell.task, cell.lead)]
    spec = planned.model
    tags = RunTags(
        kind="cell", fingerprint=planned.fingerprint, suite=suite.name, model=cell.model, task=cell.task,
        lead=cell.lead, budget=cell.budget, positives_only=cell.positives_only, seed=cell.seed, shift=cell.shift,
        dataset=data.dataset, data_version=data.data_version, synthetic=data.synthetic,
        study=planned.tuning.fingerprint if planned.tuning is not None else "", corpus=spec.source,
        encoder=planned.encoder, sees_test_records=planned.sees_test_records,
    )
    # settings that cannot move the numbers (the device) are not params: the leaderboard groups
    # runs into configurations by their params
    params = {**flatten({"finetune": without_ignored("finetune", suite.finetune), "tuning": to_dict(suite.tuning)}),
              **flatten({"model": spec.identity(context.encoders)}),
              "split": suite.split, "test_seed": suite.test_seed, "duplicates": suite.duplicates,
              "age_bins": list(suite.age_bins)}
    params.update(flatten({"data": to_dict(suite.data)}))  # the task's rows and labels (its data_version tag)
    if planned.tuning is not None:  # the study whose best values this cell trains with, and its cell
        params.update({"study": planned.tuning.name, "study.cell": planned.tuning.label,
                       "study.model": planned.tuning.cell.model})
    context.tracker.kill_stale(planned.fingerprint)
    try:
        with context.tracker.run(tags.run_name(), tags, params, parent=context.parent_id) as run:
            tuned = tuned_params(context, planned, run)
            if tuned:
                run.log_params({f"tuned.{k}": v for k, v in tuned.items()})
            _train_test_log(context, planned, data, tuned, run)
    except (KeyboardInterrupt, Superseded, StoreLost):  # Superseded: the run ended KILLED; the worker says so
        raise
    except Exception as exc:  # the run is FAILED with its traceback; the suite goes on
        if context.tracker.lost_store() is not None:  # not this cell's fault: every next cell would fail too
            raise context.tracker.store_lost_error(f"cell {cell.label}") from None
        detail = str(exc) if isinstance(exc, SimECGError) else f"{type(exc).__name__}: {exc}"
        log.error("cell %s failed: %s", cell.label, detail)
        return detail
    return None


def tuned_params(context: CellContext, planned: PlannedCell, run: ActiveRun | None = None) -> dict[str, Any]:
    """Best hyper-parameters of the cell's study, tuned once for every cell that shares it.

    The study's trials train the study cell's model on its split (docs/protocol.md, tuning: the
    tuning seed's split of the full training set, lead II, the cell's own model or the one whose
    study it borrows; :func:`benchmark.run.cells.study_cell`), for up to ``tuning.trial_max_epochs``
    and, as the authors', without early stopping: the pruner ends poor trials. A cell whose study
    is finished takes its values and logs nothing new.

    With the cell's ``run``, a session that runs trials is logged under it: a run of kind
    ``tuning`` nested in the cell run (the cell whose ``tuned.*`` values it produced, so the UI
    shows cell -> tuning -> trials), and a ``trial`` run per Optuna trial under that
    (:mod:`benchmark.run.tuning`).
    """
    suite, study = context.suite, planned.tuning
    if study is None:
        return {}
    source = study.cell
    data = context.data[(source.task, source.lead)]
    prepared = prepare(suite, data, source, source.seed)
    training = trial_training(suite)

    def fit(params: dict[str, Any], on_eval: Any) -> float:
        model = study.model.create(training, source.seed, context.encoders, params)
        model.fit(prepared.x_train, prepared.y_train, prepared.x_val, prepared.y_val, on_eval=on_eval)
        return float(model.val_loss_)

    runs = None
    if run is not None:
        model_id = study.model.identity(context.encoders)
        tags = RunTags(
            kind="tuning", fingerprint=study.fingerprint, suite=suite.name, model=source.model, task=source.task,
            lead=source.lead, budget=source.budget, positives_only=source.positives_only, seed=source.seed,
            shift=source.shift, dataset=data.dataset, data_version=data.data_version, synthetic=data.synthetic,
            study=study.fingerprint, corpus=study.model.source, encoder=str(model_id.get("encoder", "")),
            sees_test_records=bool(model_id.get("sees_test_records", False)),
        )
        params = {**flatten({"tuning": to_dict(suite.tuning), "finetune": without_ignored("finetune", training)}),
                  "study": study.name, "study.cell": study.label}
        runs = StudyRuns(run.tracker, run.run_id, tags.run_name(), tags, params)
    best = tune(study.model.tuning_space, fit, suite.tuning, study.name, context.storage, runs, context.workers)
    if context.workers is not None:  # the study is done: other workers' cells of it may go on now
        context.workers.release(f"study:{study.fingerprint}")
    return best


def trial_training(suite: SuiteConfig) -> TrainConfig:
    """The fine-tuning config of a tuning trial: ``[finetune]`` for at most ``tuning.trial_max_epochs``
    (never more than a cell trains), early-stopped only with ``tuning.trial_early_stopping``."""
    return dataclasses.replace(suite.finetune, max_epochs=min(suite.tuning.trial_max_epochs, suite.finetune.max_epochs),
                               early_stopping=suite.tuning.trial_early_stopping)


def _train_test_log(context: CellContext, planned: PlannedCell, data: TaskData, tuned: dict[str, Any],
                    run: ActiveRun) -> None:
    suite, cell = context.suite, planned.cell
    prepared = prepare(suite, data, cell, cell.seed)
    model = planned.model.create(suite.finetune, cell.seed, context.encoders, tuned)
    # what the model trains with: [finetune], its own defaults (a plugin's weight decay, say), tuned values
    run.log_params({f"train.{k}": v for k, v in to_dict(model.training).items()})
    # the cell's own training (not a tuning trial's); the failpoint lets a test kill it mid-way
    model.fit(prepared.x_train, prepared.y_train, prepared.x_val, prepared.y_val,
              on_eval=lambda epoch, loss: failpoint("cell.train"))
    test_windows = data.windows_of(prepared.test_records)
    window_scores = model.predict_scores(np.asarray(data.signals[test_windows]))
    scores = record_scores(window_scores, data.window_record[test_windows], prepared.test_records)
    labels = data.labels[prepared.test_records]
    metrics = {f"test_{k}": v for k, v in binary_metrics(labels, scores).items()}
    metrics.update(model.fit_metrics_)
    metrics["n_train"] = float(len(prepared.y_train))
    metrics["n_val"] = float(len(prepared.y_val))
    metrics.update({f"budget.{k}": float(v) for k, v in prepared.budget_info.items() if _is_number(v)})
    records = data.records.iloc[prepared.test_records].reset_index(drop=True)
    metrics.update(group_metrics(records, labels, scores, suite.age_bins))
    run.log_metrics(metrics)
    failpoint("cell.log")  # a kill here leaves a RUNNING run with half its logging: redone whole
    if model.history_:
        run.log_history(model.history_)
    predictions = pd.DataFrame({"record_id": records["record_id"], "label": labels, "score": scores,
                                "age": records.get("age"), "sex": records.get("sex")})
    with tempfile.TemporaryDirectory() as tmp:
        for name, frame in (("test_predictions.csv", predictions), ("split.csv", prepared.split_frame)):
            frame.to_csv(Path(tmp) / name, index=False)
            run.log_artifact(Path(tmp) / name)
    run.log_input(prepared.split_frame, name=f"{cell.task} split seed {cell.seed}", context="split")
    # ROC and PR curves of the test records, as pictures (roc_curve.png, pr_curve.png)

    log_curves(run, labels, scores, cell.label)

    # how precise the test scores are: 95% bootstrap intervals over the test records (stratified by
    # label, seeded from the cell's seed), as test_f1_ci_low/high, test_auroc_ci_*, test_auprc_ci_*

    run.log_metrics(bootstrap_intervals(labels, scores, seed=cell.seed))


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
