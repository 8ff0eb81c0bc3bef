"""The fidelity table: each point of the study's protocol, what the authors' code does, what we run.

Why a table computed from the code: a benchmark whose defaults quietly differ from the study it
reproduces publishes wrong comparisons. Each :class:`Point` holds the authors' value (as their
code runs it, which is not always what their config files declare) and a function that reads our
value from the *resolved* suite (its config, ``--set`` overrides included, and the registries).
:func:`fidelity_rows` compares the two, so ``simecg-bench protocol`` shows what a run of that suite
would actually do, and ``tests/test_fidelity.py`` fails when code and table disagree.

A point either matches the authors, or it is a *declared* deviation: our default deliberately
differs (better practice, e.g. pretraining on PTB-XL without the downstream test records), and
``option`` says how to get the authors' behaviour. Any other difference shows as ``differs``: a suite
setting or a ``--set`` moved the point away from the authors' value (the row's ``option`` names the key),
or, in the ``paper`` suite, a bug.
The prose behind each point is ``docs/protocol.md``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import cached_property
from typing import Any

from baselines.base import resolve_model
from benchmark.data import splits
from benchmark.data.budgets import BUDGETS
from benchmark.registries import TASKS
from benchmark.suites.config import SuiteConfig
from pretraining.config import model_config
from simecg import signal
from simecg.registries import BASELINES

SAME, DEVIATION, DIFFERS = "as authors", "deviation", "differs"
COLUMNS = ("area", "point", "authors", "authors_file", "ours", "status", "option")


@dataclass(frozen=True)
class Setup:
    """What a suite resolves to, for the readers of :data:`POINTS` (each property built once)."""

    suite: SuiteConfig

    def source(self, name: str = "sim") -> Any:
        """The pretraining config of one source (``[pretrain]`` and its ``[sources.*]`` table)."""
        return self.suite.source_config(name)

    def model(self, name: str) -> Any:
        """An unfitted model as a cell makes it: registry config, the suite's overrides, the fine-tuning
        config resolved with the model's own defaults."""
        return resolve_model(name, self.suite.baselines).create(self.suite.finetune, seed=1)

    @cached_property
    def architecture(self) -> Any:
        return model_config(self.source())

    def grid(self, name: str) -> Any:
        """The suite's grid called ``name`` (None when it has none)."""
        return next((g for g in self.suite.grids if g.name == name), None)


Reader = Callable[[Setup], Any]


@dataclass(frozen=True)
class Point:
    """One protocol point.

    ``authors`` is the authors' value in our terms (what :attr:`read` returns when we do what they
    do); ``shown`` replaces it in the table when words say it better. ``deviation`` is non-empty
    when our default differs on purpose: why; ``option`` then says how to get the authors' value,
    else how to deviate from it.
    """

    area: str
    point: str
    authors: Any
    source: str
    read: Reader
    option: str = ""
    shown: str = ""
    deviation: str = ""


def _close(a: Any, b: Any) -> bool:
    """Equality, with floats compared to a relative 1e-9 and sequences element-wise."""
    if isinstance(a, float) or isinstance(b, float):
        try:
            return math.isclose(float(a), float(b), rel_tol=1e-9, abs_tol=1e-12)
        except (TypeError, ValueError):
            return False
    if isinstance(a, list | tuple) and isinstance(b, list | tuple):
        return len(a) == len(b) and all(_close(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_close(a[k], b[k]) for k in a)
    return a == b


def show(value: Any) -> str:
    """A value as the table prints it: compact, lists joined, floats in their shortest form."""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, list | tuple):
        return ", ".join(show(v) for v in value) if value else "(none)"
    if isinstance(value, dict):
        return ", ".join(f"{k} {show(v)}" for k, v in sorted(value.items()))
    if value is None:
        return "(none)"
    return str(value)


def fidelity_rows(suite: SuiteConfig, points: Iterable[Point] | None = None) -> list[dict[str, str]]:
    """The table for a resolved suite: one dict per point with the keys of :data:`COLUMNS`.

    ``status`` is ``as authors`` when our value equals theirs, ``deviation`` when it differs and the
    point declares the difference, and ``differs`` when it differs undeclared (a suite setting or a
    ``--set`` moved it: the row's ``option`` names the key).
    """
    setup = Setup(suite)
    rows = []
    for point in POINTS if points is None else points:
        ours = point.read(setup)
        same = _close(ours, point.authors)
        status = SAME if same else DEVIATION if point.deviation else DIFFERS
        rows.append({"area": point.area, "point": point.point, "authors": point.shown or show(point.authors),
                     "authors_file": point.source, "ours": show(ours), "status": status, "option": point.option})
    return rows


def _field(obj: Any, name: str) -> Any:
    value = getattr(obj, name)
    return list(value) if isinstance(value, tuple) else value


# ----- the points -------------------------------------------------------------------------------------------
# Readers take what a cell or a pretraining of the suite would take: the resolved suite, its sources and
# models. The authors' files are paths in seitalab/SynECG-Pub (baselines: seitalab/SynECG).
SSL_CLF = "src/ssl_clf/codes"
SSL_PT = "src/ssl_pt/codes"
PREP = "src/prep"


def _signal(setup: Setup) -> Any:
    return [signal.FS, signal.N_SAMPLES]


def _task_counts(setup: Setup) -> dict[str, int]:
    counts: dict[str, int] = {}
    for name in TASKS.names():
        dataset = name.split("/", 1)[0]
        if dataset in ("ptbxl", "g12ec", "cpsc2018"):
            counts[dataset] = counts.get(dataset, 0) + 1
    return counts


def _main_seeds(setup: Setup) -> Any:
    grid = setup.grid("main") or (setup.suite.grids[0] if setup.suite.grids else None)
    return list(grid.seeds) if grid is not None else None


def _budgets(setup: Setup) -> Any:
    grid = setup.grid("budgets")
    return [b for b in grid.budgets if b] if grid is not None else list(BUDGETS)


def _leads(setup: Setup) -> Any:
    grid = setup.grid("leads")
    return len(grid.leads) if grid is not None else len(signal.LEADS)


def _head(setup: Setup) -> Any:
    config = setup.model("mae:sim").config
    return [config.pooling, config.head_width, config.activation, config.dropout]


def _mae(*names: str) -> Reader:
    return lambda setup: [_field(setup.architecture, n) for n in names] if len(names) > 1 else \
        _field(setup.architecture, names[0])


def _pretrain(*names: str) -> Reader:
    return lambda setup: [_field(setup.source(), n) for n in names] if len(names) > 1 else \
        _field(setup.source(), names[0])


def _finetune(name: str, model: str = "mae:sim") -> Reader:
    return lambda setup: _field(setup.model(model).training, name)


def _tuning(name: str) -> Reader:
    return lambda setup: _field(setup.suite.tuning, name)


BASELINE_POOL = ["resnet18-1d", "mega", "luna", "emb-gru", "emb-lstm"]


def _pool(setup: Setup) -> Any:
    return sorted(name for name, cls in BASELINES.items() if cls.role == "baseline")


def _all_weight_decay(setup: Setup) -> Any:
    names = ["mae:sim", *BASELINE_POOL, "transformer-scratch"]
    values = {setup.model(n).training.weight_decay for n in names}
    return values.pop() if len(values) == 1 else sorted(values)


POINTS: tuple[Point, ...] = (
    # signals
    Point("signals", "sampling rate, window (samples)", [500, 5000], f"{PREP}/dataset/prep_base.py", _signal),
    Point("signals", "split preset (unit of the split)", "paper", f"{PREP}/dataset/prep_base.py",
          lambda s: s.suite.split, option="split=patient (patient-disjoint; PTB-XL strat_fold 1-8/9/10)",
          shown="paper (by record, stratified by class)"),
    Point("signals", "test split: fraction, seed", [0.2, 123], f"{PREP}/dataset/prep_base.py",
          lambda s: [splits.TEST_FRACTION, s.suite.test_seed],
          option="test_seed=<int>"),
    Point("signals", "train/validation: validation fraction", 0.2, f"{PREP}/dataset/prep_base.py",
          lambda s: splits.VAL_FRACTION),
    Point("signals", "scored seeds", [1, 2, 3, 4, 5], f"{SSL_CLF}/hyperparam_search.py", _main_seeds,
          option="grid.seeds=<list>"),
    # tasks
    Point("tasks", "tasks per dataset", {"ptbxl": 13, "g12ec": 7, "cpsc2018": 6}, f"{PREP}/dataset/*.py",
          _task_counts),
    # MAE
    Point("MAE", "patch (samples), width, depth, heads, MLP ratio", [50, 128, 10, 8, 4.0],
          f"{SSL_PT}/models/ssl/mae.py", _mae("patch_size", "embed_dim", "depth", "num_heads", "mlp_ratio"),
          option="pretrain.preset=tiny, pretrain.model.<field>=..."),
    Point("MAE", "decoder width, depth, heads", [128, 2, 16], f"{SSL_PT}/models/ssl/mae.py",
          _mae("decoder_embed_dim", "decoder_depth", "decoder_num_heads"), option="pretrain.model.decoder_*=..."),
    Point("MAE", "mask ratio", 0.75, f"{SSL_PT}/models/ssl/mae.py", _mae("mask_ratio"),
          option="pretrain.model.mask_ratio=..."),
    Point("MAE", "qk-norm in the Transformer blocks", True, f"{SSL_PT}/models/transformer.py", _mae("qk_norm")),
    Point("MAE", "optimizer, lr, batch", ["adam", 1e-4, 512], f"{SSL_PT}/train_base.py",
          _pretrain("optimizer", "lr", "batch_size"), option="pretrain.optimizer|lr|batch_size=..."),
    Point("MAE", "weight decay in pretraining", 0.0, f"{SSL_PT}/train_base.py", _pretrain("weight_decay"),
          option="pretrain.weight_decay=..."),
    Point("MAE", "corpus size (ECGs)", 1_000_000, "scripts/prepare_simecg-n.sh", _pretrain("corpus_size"),
          option="pretrain.corpus_size=..."),
    # fine-tuning
    Point("fine-tuning", "head on the CLS token: pooling, width, activation, dropout", ["cls", 32, "relu", 0.25],
          f"{SSL_CLF}/models/prepare_model.py", _head, shown="Linear(128, 32), ReLU, Dropout 0.25, Linear(32, 1)",
          option="baselines.mae.head_width|activation|dropout|pooling=..."),
    Point("fine-tuning", "batch size", 256, f"{SSL_CLF}/train_base.py", _finetune("batch_size"),
          option="finetune.batch_size=..."),
    Point("fine-tuning", "max epochs, evaluate every", [500, 5], f"{SSL_CLF}/train_base.py",
          lambda s: [s.model("mae:sim").training.max_epochs, s.model("mae:sim").training.eval_every],
          option="finetune.max_epochs|eval_every=..."),
    Point("fine-tuning", "weight decay (every model: Adam(params, lr) ignores the YAML's 0.01)", 0.0,
          f"{SSL_CLF}/train_base.py; SynECG src/*/train_base.py", _all_weight_decay,
          option="finetune.weight_decay=0.01 (what the YAML declares)"),
    # tuning
    Point("tuning", "sampler seed (TPE)", 6, f"{SSL_CLF}/hyperparam_search.py", _tuning("sampler_seed"),
          option="tuning.sampler_seed=..."),
    Point("tuning", "pruner patience (PatientPruner over MedianPruner)", 5, f"{SSL_CLF}/hyperparam_search.py",
          _tuning("pruner_patience"), option="tuning.pruner_patience=..."),
    Point("tuning", "time per study (s)", 21600.0, f"{SSL_CLF}/hyperparam_search.py", _tuning("timeout_s"),
          option="tuning.timeout_s=..."),
    # baselines
    Point("baselines", "the pool of the strongest baseline", sorted(BASELINE_POOL), "SynECG src/", _pool,
          option="a plugin with role 'baseline' joins the pool"),
    # budgets and leads
    Point("budgets", "labels per class", [1, 2, 5, 10, 25, 50, 100, 250, 500, 1000],
          "src/ssl_clf/resources/README.md (Exp04)", _budgets, option="grid.budgets=<list>"),
    Point("leads", "leads fine-tuned (lead-II encoder)", 12, "src/ssl_clf/resources/README.md (Exp05)", _leads,
          option="grid.leads=<list>"),
)


def as_markdown(rows: list[dict[str, str]]) -> str:
    """The table in GitHub markdown (README carries it)."""
    header = ["area", "point", "authors (their code)", "authors' file", "ours", "status", "option"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in rows:
        cells = [row[c].replace("|", "\\|") for c in COLUMNS]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)
