"""What a run and its dry run do first, written once so both see the same cells, data and identities.

:func:`benchmark.run.runner.run_suite` and :func:`benchmark.run.planning.make_plan` both open a suite
with :func:`open_suite` (the run's ``--data-dir`` given to the corpora of real data, this shard's
cells, each task's data loaded once) and resolve each cell's model and fingerprint with
:func:`plan`; a run then trains, a plan only counts. Both find the Optuna studies (and the workers'
claims) where :func:`default_optuna_storage` says.
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmark.data.base import DataConfig, TaskData
from benchmark.data.tasks import load_task
from benchmark.run.cells import Cell, PlannedCell, enumerate_cells, plan_cells, shard, study_cells
from benchmark.run.encoders import SuiteEncoders
from benchmark.suites.config import SuiteConfig, require_devices
from benchmark.tracking.tracker import sqlite_path
from simecg.paths import cache_dir
from simecg.urls import redact

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class OpenedSuite:
    """A suite ready to plan or run: the suite (with the run's data folder), this shard's cells, and
    the data of every (task, lead) they and their tuning studies need."""

    suite: SuiteConfig
    cells: list[Cell]
    data: dict[tuple[str, str], TaskData]


def open_suite(suite: SuiteConfig, data_dir: str | Path | None = None,
               shard_spec: tuple[int, int] = (0, 1)) -> OpenedSuite:
    """The first steps of a run and of its plan. Data is loaded first of all, so missing data fails
    before anything is logged; the studies' data too (their cells are on lead II, say). A device the
    machine lacks (``finetune.device = "cuda:7"``) fails here too, for the plan as for the run, rather
    than in every cell after pretraining."""
    require_devices(suite)
    suite = with_data_dir(suite, data_dir)
    cells = shard(enumerate_cells(suite), *shard_spec)
    data = load_data([*cells, *study_cells(suite, cells)], data_dir, suite.data)
    return OpenedSuite(suite, cells, data)


def with_data_dir(suite: SuiteConfig, data_dir: str | Path | None) -> SuiteConfig:
    """The suite whose corpora of real data (``ptbxl``, ``vae``, ``gan``) read the run's ``--data-dir``."""
    if data_dir is None or suite.pretrain.data_dir is not None:
        return suite
    return dataclasses.replace(suite, pretrain=dataclasses.replace(suite.pretrain, data_dir=str(data_dir)))


def load_data(cells: list[Any], data_dir: str | Path | None,
              options: DataConfig | None = None) -> dict[tuple[str, str], TaskData]:
    """Each (task, lead) the cells need, loaded once (from the on-disk cache after the first time),
    with the suite's ``[data]`` rows and labels (``options``; None: the paper's)."""
    data: dict[tuple[str, str], TaskData] = {}
    for cell in cells:
        if (cell.task, cell.lead) not in data:
            data[(cell.task, cell.lead)] = load_task(cell.task, data_dir, lead=cell.lead, options=options)
    return data


def plan(suite: SuiteConfig, cells: list[Any], data: dict[tuple[str, str], TaskData],
         encoders: SuiteEncoders) -> list[PlannedCell]:
    """Each cell with its resolved model and identity (``data`` holds its study cells' data too)."""
    return plan_cells(suite, cells, {key: d.data_version for key, d in data.items()}, encoders)


def default_optuna_storage(tracking_uri: str) -> str:
    """Optuna studies (and worker claims) beside a local SQLite MLflow store, else in the cache folder.

    The cache folder is this machine's: with a shared store (a server, PostgreSQL) workers on other
    machines would neither see this one's claims nor share its studies, so that case warns; a
    cluster passes ``--optuna-storage postgresql://...``.
    """
    db = sqlite_path(tracking_uri)
    if db is None:
        log.warning("MLflow store %s is shared, but the Optuna studies and cell claims are in this machine's "
                    "cache (%s): workers on other machines will not coordinate with this one; pass "
                    "--optuna-storage postgresql://... on a cluster", redact(tracking_uri), cache_dir())
    return f"sqlite:///{(db.parent if db is not None else cache_dir()) / 'optuna.db'}"
