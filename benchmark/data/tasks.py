"""The 26 downstream tasks: the table in ``tasks.toml`` registered in ``TASKS``, and task loading.

The table is data (dataset, positive codes, negative class, likelihood threshold, code
equivalences); this module turns it into :class:`TaskSpec` entries named ``"<dataset>/<label>"``
and dispatches ``load_task`` to the dataset reader registered under the task's dataset.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from benchmark.data.base import DataConfig, TaskData, TaskSpec
from benchmark.data.table import TABLE_PATH, task_table
from benchmark.registries import DATASETS, TASKS
from simecg import paths
from simecg.errors import ConfigError, DataMissingError


def _specs() -> list[TaskSpec]:
    table = task_table()
    datasets = table.get("datasets", {})
    specs = []
    for i, row in enumerate(table.get("tasks", [])):
        try:
            dataset, label = row["dataset"], row["label"]
            specs.append(
                TaskSpec(
                    name=f"{dataset}/{label}",
                    dataset=dataset,
                    label=label,
                    positive=tuple(str(c) for c in row["positive"]),
                    negative=tuple(str(c) for c in datasets[dataset]["negative"]),
                    min_likelihood=float(row.get("min_likelihood", 0.0)),
                    description=row.get("description", ""),
                )
            )
        except KeyError as exc:
            raise ConfigError(f"{TABLE_PATH}: task #{i + 1} lacks key {exc} (or its dataset no negative)") from None
    return specs


for _spec in _specs():
    TASKS.add(_spec.name, _spec, dataset=_spec.dataset)


def tasks_of(dataset: str) -> list[TaskSpec]:
    """The registered tasks of one dataset, in table order."""
    return [spec for spec in _specs() if spec.dataset == dataset and spec.name in TASKS]


def load_task(
    name: str,
    data_dir: Path | str | None = None,
    lead: str = "II",
    cache_dir: Path | None = None,
    preprocess: Any = None,
    options: DataConfig | None = None,
) -> TaskData:
    """Load task ``name`` ("ptbxl/AFIB") on ``lead`` from ``data_dir`` (the folder holding ``ptbxl/`` etc.).

    The first call reads the WFDB files, checks every record and caches the preprocessed windows
    under ``cache_dir``; later calls memory-map the cache and read no WFDB file. ``preprocess``
    is an optional :class:`benchmark.data.preprocess.PreprocessConfig` (default: the protocol's);
    ``options`` a :class:`~benchmark.data.base.DataConfig` (a suite's ``[data]``; default: the
    paper's rows and labels).
    """
    spec: TaskSpec = TASKS.get(name)
    dataset = DATASETS.get(spec.dataset)
    root = paths.data_dir(data_dir)
    cache = Path(cache_dir) if cache_dir is not None else paths.cache_dir()
    kwargs: dict[str, Any] = {"preprocess": preprocess} if preprocess is not None else {}
    if options is not None:
        kwargs["options"] = options
    return dataset.load_task(spec, root, lead, cache, **kwargs)


SUMMARY_COLUMNS = ["task", "dataset", "positives", "negatives", "both", "available"]


def task_summary(data_dir: Path | str | None = None, options: DataConfig = DataConfig()) -> pd.DataFrame:
    """One row per task, from labels alone (no signal read): its records per class under ``options``.

    Columns: ``task``, ``dataset``, ``positives``, ``negatives`` (the normal class as the task
    lists it: under ``overlap = "both"`` it includes the records that are also positive),
    ``both`` (records that are a positive and normal: the paper lists them in both classes) and
    ``available`` (the dataset was found).
    """
    root = paths.data_dir(data_dir)
    rows = []
    for name, spec in TASKS.items():
        dataset = DATASETS.get(spec.dataset)
        try:
            counts = dataset.label_counts(spec, root, options)
        except DataMissingError:
            rows.append({"task": name, "dataset": spec.dataset, "positives": 0, "negatives": 0, "both": 0,
                         "available": False})
            continue
        rows.append({"task": name, "dataset": spec.dataset, "positives": counts.positives,
                     "negatives": counts.negatives, "both": counts.both, "available": True})
    order = {spec.name: i for i, spec in enumerate(_specs())}
    frame = pd.DataFrame(rows, columns=SUMMARY_COLUMNS)
    return frame.sort_values("task", key=lambda s: s.map(lambda n: order.get(n, len(order)))).reset_index(drop=True)
