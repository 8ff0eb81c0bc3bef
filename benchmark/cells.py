"""Cells, the unit of work, and their plan: resolved model and identity, the unit of reuse.

A cell is (model, task, lead, label budget, seed[, demographic shift]). Its identity
(:func:`simecg.identity.cell_identity`) holds everything that can change its numbers: the cell,
the suite's protocol settings (:func:`protocol_settings`), the model's identity (registry name,
resolved config and, for a pretrained model, its encoder's fingerprint) and the task data's
version. MLflow keeps one FINISHED run per fingerprint; a rerun skips it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from baselines.base import EncoderSource, ModelSpec, resolve_model
from benchmark.config import PRETRAINED, SuiteConfig
from benchmark.splits import SPLIT_VERSION
from simecg.config import to_dict
from simecg.errors import ConfigError
from simecg.identity import Identity, cell_identity, study_identity

# Bump when a code change alters the numbers a given config produces (invalidates old cells).
PROTOCOL_VERSION = "1"


@dataclass(frozen=True, order=True)
class Cell:
    """One (model, task, lead, budget, seed) combination of a suite."""

    model: str  # a baseline name, or "mae:<corpus>" for the encoder pretrained on that corpus
    task: str
    lead: str
    budget: int  # training samples per class; 0 = the whole training split
    seed: int
    positives_only: bool = False
    shift: str = ""  # demographic shift, e.g. "sex:M->F" (train on M, test on F)

    @property
    def corpus(self) -> str | None:
        return self.model.split(":", 1)[1] if self.model.startswith(f"{PRETRAINED}:") else None

    @property
    def label(self) -> str:
        budget = "all" if self.budget == 0 else f"{self.budget}{'+' if self.positives_only else ''}"
        shift = f" | shift {self.shift}" if self.shift else ""
        return f"{self.model} | {self.task} | {self.lead} | budget {budget}{shift} | seed {self.seed}"


def enumerate_cells(suite: SuiteConfig) -> list[Cell]:
    """All cells of a suite (union of its grids, duplicates removed, stable order)."""
    cells: list[Cell] = []
    seen: set[Cell] = set()
    for grid in suite.grids:
        models = [m for name in grid.models for m in _expand_model(name, suite.grid_corpora(grid))]
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


def _expand_model(name: str, corpora: tuple[str, ...]) -> list[str]:
    return [f"{PRETRAINED}:{c}" for c in corpora] if name == PRETRAINED else [name]


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


@dataclass(frozen=True)
class PlannedCell:
    """A cell with its resolved model and its identity: everything needed to run or skip it."""

    cell: Cell
    model: ModelSpec
    identity: Identity
    encoder: str = ""  # the encoder's fingerprint, for pretrained models
    sees_test_records: bool = False  # the model was pretrained on records of downstream test splits

    @property
    def fingerprint(self) -> str:
        return self.identity.fingerprint

    @property
    def study(self) -> Identity:
        """The cell's tuning study (its identity without the seed)."""
        return study_identity(self.identity)


def plan_cells(
    suite: SuiteConfig, cells: list[Cell], data_versions: Mapping[tuple[str, str], str], encoders: EncoderSource
) -> list[PlannedCell]:
    """Resolve each cell's model through the registry and compute its identity (trains nothing)."""
    specs: dict[str, ModelSpec] = {}
    model_ids: dict[str, dict[str, Any]] = {}
    protocol = protocol_settings(suite)
    planned = []
    for cell in cells:
        if cell.model not in specs:
            specs[cell.model] = resolve_model(cell.model, suite.baselines)
            model_ids[cell.model] = specs[cell.model].identity(encoders)
        model_id = model_ids[cell.model]
        identity = cell_identity(cell, protocol, model_id, data_versions[(cell.task, cell.lead)])
        planned.append(PlannedCell(cell, specs[cell.model], identity, str(model_id.get("encoder", "")),
                                   bool(model_id.get("sees_test_records", False))))
    return planned


def shard(cells: list[Cell], index: int, count: int) -> list[Cell]:
    """Cells of shard ``index`` of ``count`` (round robin, so shards get similar work)."""
    if count < 1 or not 0 <= index < count:
        raise ConfigError(f"--shard must be i/n with 0 <= i < n, got {index}/{count}")
    return cells[index::count]
