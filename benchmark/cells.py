"""Cells, the unit of work, and their fingerprints, the unit of identity.

A cell is (model, task, lead, label budget, seed). Its fingerprint hashes everything that can
change its numbers: the cell, the split and fine-tuning settings, the tuning settings, the
model's resolved config (for a pretrained model: the pretraining fingerprint), the data version
and the protocol version. MLflow keeps one FINISHED run per fingerprint; a rerun skips it.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from benchmark.config import PRETRAINED, SuiteConfig
from simecg.config import stable_hash, to_dict
from simecg.errors import ConfigError

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

    def tags(self) -> dict[str, str]:
        return {
            "model": self.model,
            "task": self.task,
            "lead": self.lead,
            "budget": str(self.budget),
            "positives_only": str(self.positives_only).lower(),
            "seed": str(self.seed),
            "corpus": self.corpus or "",
            "shift": self.shift,
        }


def enumerate_cells(suite: SuiteConfig) -> list[Cell]:
    """All cells of a suite (union of its grids, duplicates removed, stable order)."""
    cells: list[Cell] = []
    seen: set[Cell] = set()
    for grid in suite.grids:
        models = [m for name in grid.models for m in _expand_model(name, suite.corpora)]
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


def pretrain_fingerprint(suite: SuiteConfig, corpus: str) -> str:
    """Identity of the encoder pretrained on ``corpus`` with the suite's pretraining settings."""
    config = dataclasses.replace(suite.pretrain, corpus=corpus)
    return stable_hash({"pretrain": to_dict(config), "protocol": PROTOCOL_VERSION})


def cell_fingerprint(
    suite: SuiteConfig, cell: Cell, data_version: str, model_config: dict[str, Any]
) -> str:
    """The deterministic identity of a cell's result (see module docstring)."""
    return stable_hash(
        {
            "cell": dataclasses.asdict(cell),
            "split": suite.split,
            "test_seed": suite.test_seed,
            "age_bins": list(suite.age_bins),
            "finetune": to_dict(suite.finetune),
            "tuning": to_dict(suite.tuning),
            "model_config": model_config,
            "data_version": data_version,
            "protocol": PROTOCOL_VERSION,
        }
    )


def shard(cells: list[Cell], index: int, count: int) -> list[Cell]:
    """Cells of shard ``index`` of ``count`` (round robin, so shards get similar work)."""
    if count < 1 or not 0 <= index < count:
        raise ConfigError(f"--shard must be i/n with 0 <= i < n, got {index}/{count}")
    return cells[index::count]
