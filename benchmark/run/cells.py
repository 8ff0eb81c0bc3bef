"""Cells, the unit of work, and their plan: resolved model and identity, the unit of reuse.

A cell is (model, task, lead, label budget, seed[, demographic shift]). Its identity
(:func:`simecg.identity.cell_identity`) holds everything that can change its numbers: the cell,
the suite's protocol settings (:func:`protocol_settings`), the model's identity (registry name,
resolved config and, for a pretrained model, its encoder's fingerprint), the task data's
version and, for a tuned cell, the fingerprint of the study it takes its values from. MLflow
keeps one FINISHED run per fingerprint; a rerun skips it.

A tuned cell takes its values from the study of its *study cell* (:func:`study_cell`): as the
authors ran it, one study per (task, model) on the full training split of lead II, shared by
the model's label-budget, single-lead and shifted cells, and by the models that borrow another
model's study (``tuning.shared_studies``: the scratch encoder takes the SimECG-N MAE's values).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from baselines.base import EncoderSource, ModelSpec, expand_model, resolve_model
from baselines.names import ModelName
from benchmark.data.splits import SPLIT_VERSION
from benchmark.suites.config import FULL_BUDGET, SuiteConfig, TuningConfig
from simecg.config import to_dict
from simecg.errors import ConfigError
from simecg.identity import Identity, cell_identity, study_identity

# Bump when a code change alters the numbers a given config produces (invalidates old cells).
# 2: early stopping after more than `patience` bad evaluations; trials without early stopping,
# on the tuning seed's split, one study per (task, model); no weight decay for any model.
PROTOCOL_VERSION = "2"
STUDY_LEAD = "II"  # the lead of the shared studies: the pretraining lead and the paper's main comparison


@dataclass(frozen=True, order=True)
class Cell:
    """One (model, task, lead, budget, seed) combination of a suite."""

    model: ModelName  # a baseline name, or a pretrained model on a source ("mae:sim"); text is parsed once, here
    task: str
    lead: str
    budget: int  # training samples per class; 0 = the whole training split
    seed: int
    positives_only: bool = False
    shift: str = ""  # demographic shift, e.g. "sex:M->F" (train on M, test on F)

    def __post_init__(self) -> None:
        object.__setattr__(self, "model", ModelName.parse(self.model))  # its identity holds the same text

    @property
    def label(self) -> str:
        """``mae:sim | ptbxl/AFIB | II | budget all | seed 1``: for people (run names, logs), never parsed back."""
        return f"{self.label_without_seed} | seed {self.seed}"

    @property
    def label_without_seed(self) -> str:
        """``mae:sim | ptbxl/AFIB | II | budget all``: what the cells of every seed share (a study's label)."""
        budget = "all" if self.budget == 0 else f"{self.budget}{'+' if self.positives_only else ''}"
        shift = f" | shift {self.shift}" if self.shift else ""
        return f"{self.model} | {self.task} | {self.lead} | budget {budget}{shift}"


def enumerate_cells(suite: SuiteConfig) -> list[Cell]:
    """All cells of a suite (union of its grids, duplicates removed, stable order)."""
    cells: list[Cell] = []
    seen: set[Cell] = set()
    for grid in suite.grids:
        models = [m for name in grid.models for m in expand_model(name, suite.grid_corpora(grid))]
        for task in suite.resolved_tasks(grid):
            for lead in grid.leads:
                for budget in grid.budgets:
                    for shift in grid.shifts:
                        for model in models:
                            for seed in grid.seeds:
                                cell = Cell(model, task, lead, int(budget), int(seed), grid.positives_only, shift)
                                if cell not in seen:
                                    seen.add(cell)
                                    cells.append(cell)
    return cells


def protocol_settings(suite: SuiteConfig) -> dict[str, Any]:
    """The suite's settings that shape every cell's numbers (part of each cell's identity)."""
    return {
        "split": suite.split,
        "test_seed": suite.test_seed,
        "duplicates": suite.duplicates,
        "split_version": SPLIT_VERSION,
        "age_bins": list(suite.age_bins),
        "finetune": to_dict(suite.finetune),
        "tuning": to_dict(suite.tuning),
        "protocol_version": PROTOCOL_VERSION,
    }


def study_cell(cell: Cell, tuning: TuningConfig, donor: str | None = None) -> Cell:
    """The cell whose split, lead, budget and model the trials of ``cell``'s study use.

    As the authors tuned (docs/protocol.md, tuning): the full training split (budget 0, all
    classes) of lead II, no demographic shift, the tuning seed's split, and the cell's own model
    or the ``donor`` whose study it borrows (``tuning.shared_studies``). A coordinate named in
    ``tuning.separate_studies`` keeps the cell's own value instead, so it gets a study of its own.
    (The model's config is the one it is tuned as: :meth:`baselines.base.ModelSpec.tuned_as`.)
    """
    separate = set(tuning.separate_studies)
    own_budget = "budget" in separate
    return Cell(
        model=donor or cell.model, task=cell.task, lead=cell.lead if "lead" in separate else STUDY_LEAD,
        budget=cell.budget if own_budget else FULL_BUDGET, seed=tuning.tune_seed,
        positives_only=cell.positives_only if own_budget else False,
        shift=cell.shift if "shift" in separate else "",
    )


def study_cells(suite: SuiteConfig, cells: list[Cell]) -> list[Cell]:
    """The study cells of ``cells`` (once each, in order): their task data must be loaded too. None
    when the suite does not tune."""
    if suite.tuning.n_trials <= 0:
        return []
    donors = study_donors(suite)
    return list(dict.fromkeys(study_cell(c, suite.tuning, donors.get((c.model, c.task))) for c in cells))


def study_donors(suite: SuiteConfig) -> dict[tuple[str, str], str]:
    """``{(model, task): donor}`` for the cells that borrow another model's study: ``tuning.shared_studies``
    pairs whose donor the suite runs on that task (a borrowed study needs the donor's model; without it,
    the model is tuned on its own, and its cells say so through their study)."""
    wanted = suite.tuning.donors()
    if not wanted:
        return {}
    runs = {(c.model, c.task) for c in enumerate_cells(suite)}
    return {(model, task): wanted[model] for model, task in runs if model in wanted and (wanted[model], task) in runs}


@dataclass(frozen=True)
class PlannedStudy:
    """A tuning study: the cell whose split and model its trials use, that model, and its identity."""

    cell: Cell  # the study cell (seed: the tuning seed)
    model: ModelSpec
    identity: Identity

    @property
    def fingerprint(self) -> str:
        return self.identity.fingerprint

    @property
    def name(self) -> str:
        """The study's name in the Optuna storage."""
        return f"study-{self.identity.fingerprint}"

    @property
    def label(self) -> str:
        """``mae:sim | ptbxl/AFIB | II | budget all``: the study cell without its seed."""
        return self.cell.label_without_seed


@dataclass(frozen=True)
class PlannedCell:
    """A cell with its resolved model and its identity: everything needed to run or skip it."""

    cell: Cell
    model: ModelSpec
    identity: Identity
    tuning: PlannedStudy | None = None  # the study the cell takes its values from (None: not tuned)
    encoder: str = ""  # the encoder's fingerprint, for pretrained models
    sees_test_records: bool = False  # the model was pretrained on records of downstream test splits

    @property
    def fingerprint(self) -> str:
        return self.identity.fingerprint

    @property
    def study(self) -> Identity | None:
        """The identity of the cell's tuning study (None when the suite does not tune)."""
        return self.tuning.identity if self.tuning is not None else None


def plan_cells(
    suite: SuiteConfig, cells: list[Cell], data_versions: Mapping[tuple[str, str], str], encoders: EncoderSource
) -> list[PlannedCell]:
    """Resolve each cell's model through the registry and compute its identity (trains nothing).

    ``data_versions`` holds the version of each (task, lead) of ``cells`` and, when the suite
    tunes, of their study cells (:func:`study_cells`).
    """
    specs: dict[tuple[str, bool], tuple[ModelSpec, dict[str, Any]]] = {}
    own_frozen = "frozen" in suite.tuning.separate_studies

    def resolved(name: str, study: bool = False) -> tuple[ModelSpec, dict[str, Any]]:
        """The model named ``name`` and its identity; for a ``study``, the model it is tuned as."""
        key = (name, study and not own_frozen)
        if key not in specs:
            spec = resolve_model(name, suite.baselines)
            spec = spec.tuned_as() if key[1] else spec
            specs[key] = (spec, spec.identity(encoders))
        return specs[key]

    protocol = protocol_settings(suite)
    donors = study_donors(suite) if suite.tuning.n_trials > 0 else {}
    studies: dict[Cell, PlannedStudy] = {}
    planned = []
    for cell in cells:
        spec, model_id = resolved(cell.model)
        study = None
        if suite.tuning.n_trials > 0:
            source = study_cell(cell, suite.tuning, donors.get((cell.model, cell.task)))
            if source not in studies:
                source_spec, source_id = resolved(source.model, study=True)
                studies[source] = PlannedStudy(source, source_spec, study_identity(
                    source, protocol, source_id, data_versions[(source.task, source.lead)]))
            study = studies[source]
        identity = cell_identity(cell, protocol, model_id, data_versions[(cell.task, cell.lead)],
                                 study.fingerprint if study is not None else "")
        planned.append(PlannedCell(cell, spec, identity, study, str(model_id.get("encoder", "")),
                                   bool(model_id.get("sees_test_records", False))))
    return planned


def shard(cells: list[Cell], index: int, count: int) -> list[Cell]:
    """Cells of shard ``index`` of ``count`` (round robin, so shards get similar work)."""
    if count < 1 or not 0 <= index < count:
        raise ConfigError(f"--shard must be i/n with 0 <= i < n, got {index}/{count}")
    return cells[index::count]
