"""The downstream tasks: task files registered in ``TASKS``, and task loading.

A task file is data (docs/protocol.md, "Tasks"): ``[datasets.<name>]`` tables give a dataset's
normal class (``negative`` codes), ``[[tasks]]`` rows one diagnosis each (``dataset``, ``label``,
``positive`` codes, ``min_likelihood``, ``description``). This module checks a file, turns each
row into a :class:`TaskSpec` named ``"<dataset>/<label>"`` and dispatches ``load_task`` to the
reader registered under the task's dataset.

Ours are read on import (the ``simecg_bench.tasks`` entry point names this module): the study's
26 tasks (``tasks.toml``) and the simulator-made ``demo`` tasks (``demo_tasks.toml``). A user's
files come in through :func:`include_tasks`, from ``--include-path DIR`` or from a package's own
entry point (README, "Adding tasks"), as lm-evaluation-harness adds task folders: the same schema,
a task of its own on any registered dataset, no edit of ours. Suites' wildcards (``ptbxl/*``)
match only our tasks, so adding tasks never changes what the ``paper`` suite runs.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from benchmark.data.base import DataConfig, TaskData, TaskSpec
from benchmark.data.table import TABLE_PATH
from benchmark.registries import DATASETS, TASKS
from simecg import paths
from simecg.config import read_toml
from simecg.errors import ConfigError, DataMissingError

if TYPE_CHECKING:
    import pandas as pd

HERE = Path(__file__).resolve().parent
OURS = (TABLE_PATH, HERE / "demo_tasks.toml")  # read on import, in this order
LABEL = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.+-]*")  # "1AVB", "STD_": no "/", no space (task names are paths in MLflow)
TASK_KEYS = ("dataset", "label", "positive", "min_likelihood", "description")
DATASET_KEYS = ("negative", "description")
# read by our readers from the study's table alone (benchmark.data.table), so only ours may hold them
OURS_ONLY_TABLES = ("codes",)
OURS_ONLY_DATASET_KEYS = ("negative_min_likelihood",)

_normal_class: dict[str, tuple[tuple[str, ...], Path]] = {}  # dataset -> (its negative codes, the file declaring it)
_sources: dict[str, Path] = {}  # task name -> the file that registered it, in the order the files list them


def include_tasks(*places: Path | str) -> list[str]:
    """Register the tasks of task files: each place a TOML file, or a folder whose ``*.toml`` files
    (sorted by name, not recursive) are all task files. Returns the names added, in file order.

    A file is checked whole before any of its tasks is registered, and any problem is one
    :class:`ConfigError` naming the file, the task and what is wrong: an unknown key, a missing or
    mistyped value, a dataset with no registered reader or no normal class, or a name already
    registered from another file (a clash with one of our tasks included). Including the same file
    again adds nothing.
    """
    TASKS.names()  # ours and every installed plugin's first, so a clash names the task it clashes with
    added: list[str] = []
    for path in task_files(places):
        added += _register(path, check_registry=True)
    return added


def task_files(places: Iterable[Path | str]) -> list[Path]:
    """The task files of ``--include-path`` places: a file itself, a folder its ``*.toml`` files."""
    files: list[Path] = []
    for place in places:
        path = Path(place).expanduser()
        if path.is_dir():
            found = sorted(p for p in path.glob("*.toml") if p.is_file())
            if not found:
                raise ConfigError(f"--include-path {path}: the folder holds no *.toml task file")
            files += found
        elif path.is_file():
            files.append(path)
        else:
            raise ConfigError(f"--include-path {path}: no such file or folder (a task file, or a folder of them)")
    return [p.resolve() for p in files]


def is_ours(name: str) -> bool:
    """Whether task ``name`` comes from one of our task files (a suite's wildcard matches only these)."""
    return bool(TASKS.metadata(name).get("ours"))


def source_of(name: str) -> str:
    """The task file that registered task ``name`` ("" for a task registered in Python)."""
    return str(TASKS.metadata(name).get("source", ""))


def _register(path: Path, check_registry: bool = False) -> list[str]:
    """Check the task file ``path`` whole, then register its tasks. ``check_registry``: also refuse a
    name registered in Python (not on our own import: looking into ``TASKS`` would load every plugin
    while this module is half-imported, and a plugin's task file needs our datasets declared)."""
    ours = path in OURS
    table = read_toml(path, "task file")
    _check_top_level(table, path, ours)
    declared = _datasets(table, path, ours)
    normal = {name: codes for name, (codes, _) in _normal_class.items()} | declared
    specs = _specs(table, path, normal)
    for spec in specs:
        _check_no_clash(spec.name, path, check_registry)
    for name, codes in declared.items():
        _normal_class.setdefault(name, (codes, path))
    added = []
    for spec in specs:
        if spec.name in _sources:
            continue  # the same file again
        TASKS.add(spec.name, spec, dataset=spec.dataset, source=str(path), ours=ours)
        _sources[spec.name] = path
        added.append(spec.name)
    return added


def _check_top_level(table: Mapping[str, Any], path: Path, ours: bool) -> None:
    allowed = ("datasets", "tasks", *(OURS_ONLY_TABLES if ours else ()))
    for key in table:
        if key in OURS_ONLY_TABLES and not ours:
            raise ConfigError(f"{path}: [{key}] is read from the study's table ({TABLE_PATH}) only; a task file of "
                              "yours holds [datasets.NAME] tables and [[tasks]] rows")
        if key not in allowed:
            raise ConfigError(f"{path}: unknown key {key!r}; a task file holds [datasets.NAME] tables and [[tasks]] "
                              "rows (README, 'Adding tasks')")
    if not isinstance(table.get("tasks", []), list):
        raise ConfigError(f"{path}: 'tasks' must be [[tasks]] rows, got {type(table['tasks']).__name__}")
    if not table.get("tasks"):
        raise ConfigError(f"{path}: no [[tasks]] row: a task file lists at least one task")


def _datasets(table: Mapping[str, Any], path: Path, ours: bool) -> dict[str, tuple[str, ...]]:
    """The normal class of each dataset the file declares, checked: a registered reader, declared once."""
    datasets = table.get("datasets", {})
    if not isinstance(datasets, dict):
        raise ConfigError(f"{path}: 'datasets' must be [datasets.NAME] tables")
    allowed = (*DATASET_KEYS, *(OURS_ONLY_DATASET_KEYS if ours else ()))
    out = {}
    for name, row in datasets.items():
        where = f"{path}: [datasets.{name}]"
        if not isinstance(row, dict):
            raise ConfigError(f"{where} must be a table (negative = [...], description = \"...\")")
        if name in _normal_class and _normal_class[name][1] != path:
            codes, other = _normal_class[name]
            raise ConfigError(f"{where}: dataset {name!r} is declared by {other} already; leave this table out: "
                              f"tasks on {name} take its normal class ({', '.join(codes)})")
        for key in row:
            if key not in allowed:
                raise ConfigError(f"{where}: unknown key {key!r} (a dataset table has {', '.join(DATASET_KEYS)})")
        if name not in DATASETS:
            raise ConfigError(f"{where}: no reader is registered for dataset {name!r} (known: "
                              f"{', '.join(DATASETS.names())}); a package registers one through the "
                              "simecg_bench.datasets entry-point group (README, 'Adding tasks')")
        out[name] = _codes(row.get("negative"), f"{where} negative")
        _text(row.get("description", ""), f"{where} description", empty=True)
    return out


def _specs(table: Mapping[str, Any], path: Path, normal: Mapping[str, tuple[str, ...]]) -> list[TaskSpec]:
    specs: list[TaskSpec] = []
    for i, row in enumerate(table["tasks"], start=1):
        where = f"{path}: task #{i}"
        if not isinstance(row, dict):
            raise ConfigError(f"{where} must be a [[tasks]] table")
        if isinstance(row.get("dataset"), str) and isinstance(row.get("label"), str):
            where += f" ({row['dataset']}/{row['label']})"
        spec = _spec(row, where, normal)
        if any(s.name == spec.name for s in specs):
            raise ConfigError(f"{where}: task {spec.name!r} is listed twice in this file")
        specs.append(spec)
    return specs


def _spec(row: Mapping[str, Any], where: str, normal: Mapping[str, tuple[str, ...]]) -> TaskSpec:
    """One ``[[tasks]]`` row as a TaskSpec (the same fields and types as before task files were
    checked: the spec is part of every task's data version)."""
    for key in row:
        if key not in TASK_KEYS:
            raise ConfigError(f"{where}: unknown key {key!r} (a task has {', '.join(TASK_KEYS)})")
    for key in ("dataset", "label", "positive"):
        if key not in row:
            raise ConfigError(f"{where}: missing key {key!r} (a task has {', '.join(TASK_KEYS)})")
    dataset, label = _text(row["dataset"], f"{where} dataset"), _text(row["label"], f"{where} label")
    if not LABEL.fullmatch(label):
        raise ConfigError(f"{where}: label {label!r} must be letters, digits, '_', '.', '+' or '-' "
                          "(no '/' or space: it names the task as DATASET/LABEL)")
    if dataset not in normal:
        raise ConfigError(f"{where}: dataset {dataset!r} has no normal class: add a [datasets.{dataset}] table "
                          f"with negative = [...] (declared datasets: {', '.join(sorted(normal))})")
    min_likelihood = row.get("min_likelihood", 0.0)
    if isinstance(min_likelihood, bool) or not isinstance(min_likelihood, (int, float)) or not (
            0 <= min_likelihood <= 100):
        raise ConfigError(f"{where}: min_likelihood must be a number from 0 to 100, got {min_likelihood!r}")
    description = _text(row.get("description", ""), f"{where} description", empty=True)
    return TaskSpec(name=f"{dataset}/{label}", dataset=dataset, label=label,
                    positive=_codes(row["positive"], f"{where} positive"), negative=normal[dataset],
                    min_likelihood=float(min_likelihood), description=description)


def _codes(value: Any, where: str) -> tuple[str, ...]:
    """A non-empty list of codes (text, or whole numbers as SNOMED CT ids are) as a tuple of text."""
    if not isinstance(value, list) or not value:
        raise ConfigError(f"{where} must be a non-empty list of codes, e.g. [\"NORM\"], got {value!r}")
    for code in value:
        if isinstance(code, bool) or not isinstance(code, (str, int)) or not str(code).strip():
            raise ConfigError(f"{where}: each code must be text or a whole number, got {code!r}")
    return tuple(str(code) for code in value)


def _text(value: Any, where: str, empty: bool = False) -> str:
    if not isinstance(value, str) or not (empty or value.strip()):
        raise ConfigError(f"{where} must be {'text' if empty else 'non-empty text'}, got {value!r}")
    return value


def _check_no_clash(name: str, path: Path, check_registry: bool) -> None:
    other = _sources.get(name)
    if other is not None and other != path:
        whose = "one of our tasks" if other in OURS else "registered"
        raise ConfigError(f"{path}: task {name!r} is {whose} already ({other}); give yours another label")
    if other is None and check_registry and name in TASKS:
        raise ConfigError(f"{path}: task {name!r} is registered already (in Python, not from a task file); "
                          "give yours another label")


for _path in OURS:
    _register(_path)


def tasks_of(dataset: str) -> list[TaskSpec]:
    """Every registered task of one dataset, ours and included ones, in the order their files list them."""
    return [TASKS.get(name) for name in ordered(TASKS.names()) if TASKS.get(name).dataset == dataset]


def ordered(names: Iterable[str]) -> list[str]:
    """``names`` in task-file order (ours first), then any registered in Python, by name."""
    position = {name: i for i, name in enumerate(_sources)}
    return sorted(names, key=lambda name: (position.get(name, len(position)), name))


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
    import pandas as pd  # ~0.5 s: `simecg-bench list tasks` without --data-dir needs no frame

    root = paths.data_dir(data_dir)
    rows = []
    for name in ordered(TASKS.names()):
        spec = TASKS.get(name)
        dataset = DATASETS.get(spec.dataset)
        try:
            counts = dataset.label_counts(spec, root, options)
        except DataMissingError:
            rows.append({"task": name, "dataset": spec.dataset, "positives": 0, "negatives": 0, "both": 0,
                         "available": False})
            continue
        rows.append({"task": name, "dataset": spec.dataset, "positives": counts.positives,
                     "negatives": counts.negatives, "both": counts.both, "available": True})
    return pd.DataFrame(rows, columns=SUMMARY_COLUMNS)
