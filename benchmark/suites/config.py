"""Suite configuration: what to pretrain, which cells to run, how to fine-tune and tune.

A suite is a data file (TOML, ``benchmark/suites/*.toml`` or any path) resolved into the frozen
:class:`SuiteConfig`. Its ``[[grid]]`` tables each span a product of tasks x models x leads x
budgets x seeds; the suite's cells are the union of its grids (a cell shared by two grids runs
once, as its fingerprint is the same).
"""

from __future__ import annotations

import dataclasses
import fnmatch
import functools
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from baselines.base import expands_over_sources, resolve_model
from baselines.names import ModelName
from baselines.pretrained_mae import PAPER_MODEL
from baselines.training import TrainConfig, resolve_device
from benchmark.data.base import DataConfig
from benchmark.data.demographics import age_group_names
from benchmark.data.splits import DUPLICATES
from benchmark.data.splits import PRESETS as SPLITS
from benchmark.data.tasks import is_ours
from benchmark.registries import SUITES, TASKS
from pretraining.config import PretrainConfig, check_pretraining, corpus_options, options_class
from simecg.config import (
    NON_NEGATIVE,
    SEED,
    SEED_BOUND,
    Limits,
    apply_overrides,
    check_limits,
    coerce,
    flatten,
    from_dict,
    parse_set_args,
    read_toml,
)
from simecg.errors import ConfigError, SimECGError
from simecg.memory import check_trainable
from simecg.registries import BASELINES, CORPORA
from simecg.signal import LEADS

log = logging.getLogger(__name__)

FULL_BUDGET = 0  # budget 0 = the whole training split


@dataclass(frozen=True)
class TuningConfig:
    """Optuna as the authors ran it (docs/protocol.md, tuning): TPE with seed 6,
    PatientPruner(MedianPruner, 5), minimising validation loss.

    **Budgets.** A study stops at whichever it reaches first: ``n_trials`` finished trials or
    ``timeout_s`` seconds of trials, both counted over all sessions of the study (a resumed study
    runs only what is left). The authors gave each study up to 10,000 trials and 6 h
    (``timeout_s = 21600`` in the paper suites); a time budget makes the chosen values depend on
    the machine's speed. ``n_trials = 0`` skips tuning and fine-tunes with the defaults.

    **Trials.** A trial trains on the split of ``tune_seed`` (6: not one of the five scored
    seeds 1-5) for up to ``trial_max_epochs`` (the authors' 250, never more than
    ``finetune.max_epochs``) without early stopping: only the pruner ends it early
    (``trial_early_stopping = true`` stops it as a cell's training stops).

    **Which study a cell takes its values from.** One study per (task, model), on the full
    training split, lead II, no demographic shift: label-budget, single-lead and shifted cells
    take the values of that study, as the authors' budget, random-init and frozen runs loaded
    the search result of the full-data run; a frozen-encoder MAE takes that of full fine-tuning
    (:attr:`baselines.base.Baseline.tuned_as`). ``separate_studies`` names what gets a study of its
    own instead: the cell coordinates ``budget``, ``lead``, ``shift``, and ``frozen`` (a model's
    ``tuned_as`` settings, the frozen encoder's ``mode = "probe"``). ``shared_studies``
    lists ``MODEL=DONOR`` pairs: the cells of MODEL take the values of DONOR's study of the same
    task when the suite runs DONOR (the authors' random-init encoder took those of the SimECG-N
    MAE, ``transformer-scratch=mae:sim``); an empty list tunes every model on its own.
    """

    n_trials: int = 0
    sampler_seed: int = 6
    pruner_patience: int = 5
    tune_seed: int = 6  # the run seed whose split the trials use: the authors' 6, outside the scored 1-5
    timeout_s: float = 0.0  # seconds of trials per study, over all its sessions; 0 = no limit
    trial_max_epochs: int = 250  # the authors' hps_epochs (capped by finetune.max_epochs)
    trial_early_stopping: bool = False  # the authors' trials only end early when pruned
    separate_studies: tuple[str, ...] = ()  # what gets a study of its own: budget, lead, shift, frozen
    shared_studies: tuple[str, ...] = (f"transformer-scratch={PAPER_MODEL}",)  # MODEL=DONOR: MODEL takes DONOR's values

    def __post_init__(self) -> None:
        check_limits(self, "tuning", TUNING_LIMITS)
        for pair in self.shared_studies:
            model, sep, donor = pair.partition("=")
            if not sep or not model.strip() or not donor.strip() or model.strip() == donor.strip():
                raise ConfigError(f"tuning.shared_studies items must be MODEL=DONOR (two different model names, "
                                  f"e.g. transformer-scratch={PAPER_MODEL}), got {pair!r}")

    def donors(self) -> dict[ModelName, ModelName]:
        """``shared_studies`` as {model: the model whose study it takes its values from}."""
        pairs = (p.partition("=") for p in self.shared_studies)
        return {ModelName.parse(model): ModelName.parse(donor) for model, _, donor in pairs}


STUDY_COORDINATES = ("budget", "lead", "shift", "frozen")  # what tuning.separate_studies may name
TUNING_LIMITS = {"n_trials": NON_NEGATIVE, "sampler_seed": SEED, "pruner_patience": NON_NEGATIVE,
                 "tune_seed": SEED, "timeout_s": NON_NEGATIVE, "trial_max_epochs": Limits(ge=1),
                 "separate_studies": Limits(choices=STUDY_COORDINATES)}


@dataclass(frozen=True)
class GridConfig:
    """One block of cells: the product of its fields. Task names accept shell patterns."""

    tasks: tuple[str, ...] = ()
    models: tuple[str, ...] = (PAPER_MODEL.entry,)  # the paper's pretrained model, on each source
    leads: tuple[str, ...] = ("II",)
    budgets: tuple[int, ...] = (FULL_BUDGET,)
    seeds: tuple[int, ...] = (1, 2, 3, 4, 5)
    positives_only: bool = False
    shifts: tuple[str, ...] = ("",)  # "" = no shift; "sex:M->F" = train/validate on M, test on F
    corpora: tuple[str, ...] | None = None  # pretraining sources of this grid's pretrained models: None = the
    # suite's; a list keeps those of the suite's it names (so `--corpus` narrows every grid)
    name: str = "main"

    def __post_init__(self) -> None:
        check_limits(self, "grid", GRID_LIMITS)  # tasks may be empty here; SuiteConfig.validate refuses it


# A grid's lists must each hold something: an empty one would make a grid of no cells, in silence.
GRID_LIMITS = {"models": Limits(non_empty=True), "leads": Limits(choices=LEADS, non_empty=True),
               "budgets": Limits(ge=FULL_BUDGET, non_empty=True), "seeds": Limits(ge=0, lt=SEED_BOUND, non_empty=True),
               "shifts": Limits(non_empty=True)}


@dataclass(frozen=True)
class SuiteConfig:
    """A resolved suite. Defaults are the paper's protocol."""

    name: str
    description: str = ""
    synthetic: bool = False  # True: data made by the simulator; results are pipeline checks, not evidence
    corpora: tuple[str, ...] = ("sim",)  # pretraining sources: corpus names or names of [sources.*] tables
    split: str = "paper"
    test_seed: int = 123
    # records with identical signals: "group" keeps them on one side of every split (and out of the
    # ptbxl corpus with a test record); "ignore" splits them independently, as the authors' code did
    duplicates: str = "group"
    age_bins: tuple[int, ...] = (40, 60, 80)  # age-group edges for per-group metrics and shifts
    grids: tuple[GridConfig, ...] = ()
    pretrain: PretrainConfig = field(default_factory=PretrainConfig)
    finetune: TrainConfig = field(default_factory=TrainConfig)
    tuning: TuningConfig = field(default_factory=TuningConfig)
    data: DataConfig = field(default_factory=DataConfig)  # which records a task holds, how labelled ([data])
    baselines: dict[str, dict[str, Any]] = field(default_factory=dict)  # per-baseline Config overrides
    # Named pretraining sources: [sources.sim-2k] corpus = "sim", corpus_size = 2000 makes a column
    # mae:sim-2k; [sources.vae] corpus_options.preset = "tiny" sets one corpus's own options. Keys
    # are PretrainConfig fields (dotted), applied over [pretrain]; "corpus" defaults to the name.
    sources: dict[str, dict[str, Any]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        check_limits(self, "", {"split": Limits(choices=SPLITS), "test_seed": SEED,
                                "duplicates": Limits(choices=DUPLICATES), "age_bins": Limits(gt=0, non_empty=True)})
        if list(self.age_bins) != sorted(set(self.age_bins)):
            raise ConfigError(f"age_bins must be strictly increasing, got {', '.join(map(str, self.age_bins))}")

    def grid_corpora(self, grid: GridConfig) -> tuple[str, ...]:
        """The pretraining sources a grid's pretrained models run on (``mae`` stands for ``mae:<source>`` of each)."""
        if grid.corpora is None:
            return self.corpora
        return tuple(c for c in grid.corpora if c in self.corpora)

    def source_config(self, source: str) -> PretrainConfig:
        """The pretraining config of one source: ``[pretrain]``, then its ``[sources.<name>]`` table."""
        overrides = flatten(dict(self.sources.get(source, {})))  # corpus_options.* merge into [pretrain]'s
        corpus = str(overrides.pop("corpus", source))
        try:
            config = apply_overrides(dataclasses.replace(self.pretrain, corpus=corpus), overrides)
        except ConfigError as exc:
            raise ConfigError(f"suite {self.name!r}: [sources.{source}] {exc}") from None
        return with_split_settings(config, self)

    def resolved_tasks(self, grid: GridConfig) -> list[str]:
        """Expand task patterns (``ptbxl/*``) against our tasks, keeping order; a task added from outside
        (``--include-path``, a plugin) is named in full, so adding one never changes a suite such as ``paper``."""
        ours = [t for t in TASKS.names() if is_ours(t)]
        out: list[str] = []
        for pattern in grid.tasks:
            matches = [t for t in ours if fnmatch.fnmatchcase(t, pattern)] if _is_pattern(pattern) else [pattern]
            if not matches:
                outside = [t for t in TASKS.names() if fnmatch.fnmatchcase(t, pattern)]
                hint = f"; tasks added from outside are named in full: {', '.join(outside)}" if outside else ""
                raise ConfigError(f"suite {self.name!r}: task pattern {pattern!r} matches no task{hint}")
            for task in matches:
                TASKS.get(task)  # unknown names fail with the known ones listed
                if task not in out:
                    out.append(task)
        return out

    def validate(self) -> SuiteConfig:
        if not self.grids:
            raise ConfigError(f"suite {self.name!r} has no [[grid]] table: nothing to run")
        for grid in self.grids:
            if not grid.tasks:
                raise ConfigError(f"suite {self.name!r}: grid {grid.name!r} names no task (grid.tasks is empty)")
            self.resolved_tasks(grid)
            for model in grid.models:
                if not expands_over_sources(model):  # one per source: the sources are checked below
                    resolve_model(model, self.baselines)
            for shift in grid.shifts:
                parsed = parse_shift(shift, f"suite {self.name!r}")
                known = ["M", "F"] if parsed and parsed[0] == "sex" else age_group_names(self.age_bins)
                if parsed and not {parsed[1], parsed[2]} <= set(known):
                    raise ConfigError(f"suite {self.name!r}: shift {shift!r} names an unknown group; known: {known}")
        pretrained = [m for grid in self.grids for m in grid.models if expands_over_sources(m)]
        if pretrained:
            if not self.corpora:
                raise ConfigError(f"suite {self.name!r}: corpora is empty, but a grid has model {pretrained[0]!r} "
                                  "(a pretrained model, run on each pretraining source); name one, e.g. --corpus sim")
            for source in self.corpora:  # an unknown corpus or a wrong option fails now, not after hours
                config = self.source_config(source)
                try:
                    CORPORA.get(config.corpus)
                except ConfigError as exc:
                    if source in self.sources:
                        raise ConfigError(f"suite {self.name!r}: [sources.{source}] {exc}") from None
                    raise
                corpus_options(config)
                try:
                    check_pretraining(config)
                except ConfigError as exc:
                    where = f"[sources.{source}] " if source in self.sources else ""
                    raise ConfigError(f"suite {self.name!r}: {where}{exc}") from None
        for name, overrides in self.baselines.items():
            check_baseline_settings(self.name, name, overrides)
        if self.tuning.n_trials > 0:
            scored = sorted({seed for grid in self.grids for seed in grid.seeds})
            if self.tuning.tune_seed in scored:
                _warn_once(f"suite {self.name!r} scores seed {self.tuning.tune_seed}, the split its tuning trials "
                           f"use (tuning.tune_seed): those cells are selected on their own validation split; "
                           f"the authors tune on seed 6 and score 1-5 (scored seeds here: "
                           f"{', '.join(map(str, scored))})")
        return self


@functools.lru_cache(maxsize=64)
def _warn_once(message: str) -> None:
    """A warning about a suite, once per process (a suite is validated again after ``--corpus``)."""
    log.warning(message)


def check_baseline_settings(suite: str, name: str, overrides: Mapping[str, Any]) -> None:
    """A ``[baselines.<name>]`` table checked before anything runs: known keys of the right types, finite
    numbers, and (for a network) a model that can be built with them (a negative width fails here, once,
    not in each of its cells). The model's own checks raise their own errors; others are named here."""
    entry = BASELINES.get(name)
    config = entry.make_config(overrides)
    if dataclasses.is_dataclass(config):
        try:
            check_limits(config, f"baselines.{name}", {})
        except ConfigError as exc:
            raise ConfigError(f"suite {suite!r}: {exc}") from None
    # a pretrained model's network is its encoder's, shaped by pretraining (pretrain.preset), not by this table
    if not overrides or entry.role == "pretrained" or getattr(entry, "kind", "") != "neural":
        return
    settings = ", ".join(f"{k}={v}" for k, v in flatten(dict(overrides)).items())
    try:
        model = _build_without_storage(entry, config)
    except SimECGError:
        raise
    except Exception as exc:  # any failure of the model's constructor means a bad setting
        raise ConfigError(f"suite {suite!r}: [baselines.{name}] cannot build the model with {settings} "
                          f"({type(exc).__name__}: {exc})") from None
    check_trainable(sum(p.numel() for p in model.parameters()),
                    f"suite {suite!r}: [baselines.{name}] with {settings}")


def _build_without_storage(entry: Any, config: Any) -> Any:
    """Build the model on PyTorch's ``meta`` device (shapes, no memory), so checking a hostile width such as
    ``base_width=4096`` cannot allocate gigabytes; a model whose constructor copies a real tensor into it (a
    fixed position table) fails there and is built on the CPU instead."""
    import torch

    try:
        with torch.device("meta"):
            return entry.build(config)
    except RuntimeError as exc:
        if "meta" not in str(exc):
            raise
    return entry.build(config)


def parse_shift(text: str, where: str = "suite") -> tuple[str, str, str] | None:
    """``"sex:M->F"`` -> ``("sex", "M", "F")``; ``""`` -> None (no demographic shift)."""
    if not text:
        return None
    by, sep, rest = text.partition(":")
    train_group, arrow, test_group = rest.partition("->")
    if not sep or not arrow or by not in ("sex", "age") or not train_group or not test_group:
        raise ConfigError(
            f"{where}: demographic shift {text!r} must look like 'sex:M->F' or 'age:<40->80+' (by sex or age)"
        )
    return by, train_group.strip(), test_group.strip()


def _is_pattern(text: str) -> bool:
    return any(ch in text for ch in "*?[")


# Corpus options that must follow the suite's split, so that a corpus which keeps the test records
# out (``ptbxl``, and the generators of ``vae``/``gan``) keeps out the suite's own test records.
SPLIT_SETTINGS = {"split": lambda suite: suite.split, "test_seed": lambda suite: suite.test_seed,
                  "duplicates": lambda suite: suite.duplicates, "overlap": lambda suite: suite.data.overlap,
                  "lengths": lambda suite: suite.data.lengths}
SUITE_KEYS = {"overlap": "data.overlap", "lengths": "data.lengths"}  # their --set keys, where not the same


def with_split_settings(config: PretrainConfig, suite: SuiteConfig) -> PretrainConfig:
    """``config`` whose corpus options ``split``, ``test_seed``, ``duplicates``, ``overlap`` and ``lengths`` are the
    suite's (:data:`SPLIT_SETTINGS`: what decides which records a task tests on).

    Only a corpus whose ``Options`` declare such a field gets it (the simulators have none); a value
    set explicitly in ``pretrain.corpus_options`` must equal the suite's, since a corpus that
    excluded another split's test records would leak this suite's test records into pretraining.
    """
    try:
        options_cls = options_class(config.corpus)
    except ConfigError:
        return config  # an unknown corpus, or one without options, is reported where the suite is validated
    declared = {f.name for f in dataclasses.fields(options_cls)}
    options = dict(config.corpus_options)
    for key, of_suite in SPLIT_SETTINGS.items():
        if key not in declared:
            continue
        wanted = of_suite(suite)
        given = options.get(key)
        if given is not None and coerce(given, type(wanted), f"pretrain.corpus_options.{key}") != wanted:
            raise ConfigError(
                f"suite {suite.name!r}: pretrain.corpus_options.{key}={given!r} (corpus {config.corpus}) differs from "
                f"the suite's {key}={wanted!r}; the corpus keeps out the suite's own test records, so set {key} "
                f"for the suite instead (e.g. --set {SUITE_KEYS.get(key, key)}={given})"
            )
        options[key] = wanted
    return dataclasses.replace(config, corpus_options=options) if options != config.corpus_options else config


def suite_from_mapping(data: Mapping[str, Any], source: str) -> SuiteConfig:
    """Build a :class:`SuiteConfig` from a parsed TOML document (``source`` names it in errors)."""
    data = dict(data)
    grids = data.pop("grid", [])
    if not isinstance(grids, list):
        raise ConfigError(f"{source}: 'grid' must be an array of tables ([[grid]])")
    nested = {"pretrain": PretrainConfig, "finetune": TrainConfig, "tuning": TuningConfig, "data": DataConfig}
    kwargs: dict[str, Any] = {}
    for key, cls in nested.items():
        if key in data:
            table = data.pop(key)
            try:
                kwargs[key] = apply_overrides(cls(), _dotted(table))
            except ConfigError as exc:
                raise ConfigError(f"{source}: [{key}] {exc}") from None
    try:
        kwargs["grids"] = tuple(from_dict(GridConfig, g, f"{source} [[grid]]") for g in grids)
        suite = from_dict(SuiteConfig, {**data, **kwargs}, source)
    except TypeError as exc:
        raise ConfigError(f"{source}: {exc}") from None
    except ConfigError as exc:  # a value out of range (the dataclass's own checks) names the file too
        message = str(exc)
        raise ConfigError(message if message.startswith(source) else f"{source}: {message}") from None
    return suite


def _dotted(table: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in table.items():
        if isinstance(value, Mapping) and not key.endswith("options"):
            out.update(_dotted(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def load_suite(name_or_path: str | Path, overrides: Mapping[str, Any] | None = None,
               corpora: Sequence[str] | None = None) -> SuiteConfig:
    """Load a registered suite by name (or a TOML file by path) and apply ``--set`` overrides.

    Override keys address the suite's fields (``finetune.lr=1e-3``, ``pretrain.steps=100``,
    ``tuning.n_trials=20``); ``grid.<field>=value`` sets a field in every grid
    (``grid.seeds=1,2``). ``corpora`` (``--corpus``) replaces the suite's corpora before the
    suite is checked, so ``pretrain.corpus_options.*`` are checked against the corpora named.
    """
    path = Path(name_or_path)
    if str(name_or_path).endswith(".toml"):
        if not path.is_file():
            raise ConfigError(f"suite file {path} does not exist")
        source: str | Path = path
    else:
        source = SUITES.get(str(name_or_path))
    suite = source() if callable(source) and not isinstance(source, Path) else _read_toml(Path(source))
    grid_overrides = {k[5:]: v for k, v in (overrides or {}).items() if k.startswith("grid.")}
    other = {k: v for k, v in (overrides or {}).items() if not k.startswith("grid.")}
    suite = apply_overrides(suite, other)
    if grid_overrides:
        suite = dataclasses.replace(suite, grids=tuple(apply_overrides(g, grid_overrides) for g in suite.grids))
    if corpora:
        suite = dataclasses.replace(suite, corpora=tuple(corpora))
    return suite.validate()


def pretrain_overrides(items: list[str], options_only: bool = False) -> dict[str, Any]:
    """``--set`` items of ``pretrain`` and ``corpus build|preview``, as keys of :class:`PretrainConfig`.

    Every command takes suite-config paths (the one ``--set`` dialect of ``run`` too), and these
    commands set only pretraining, so each key must start with ``pretrain.``:
    ``["pretrain.steps=100", "pretrain.corpus_options.path=DIR"]`` ->
    ``{"steps": "100", "corpus_options.path": "DIR"}``. The corpus commands (``options_only``) take
    only ``pretrain.corpus_options.*``: their corpus, size and seed are arguments. Any other key
    raises :class:`ConfigError` saying this command's syntax and, when it can tell, the item meant
    (``--set path=DIR`` -> ``did you mean --set pretrain.corpus_options.path=DIR?``).
    """
    out: dict[str, Any] = {}
    for key, value in parse_set_args(items).items():
        field_path = key.removeprefix("pretrain.")
        if options_only and field_path != key and field_path and not field_path.startswith("corpus_options."):
            raise ConfigError(
                f"--set {key}={value}: corpus commands take only pretrain.corpus_options.* keys (the corpus, its size "
                "and seed are the NAME, --n/--size and --seed arguments), e.g. "
                "--set pretrain.corpus_options.simulator=gaussian"
            )
        if field_path == key or not field_path:
            if options_only:
                option = key.removeprefix("corpus_options.") or "KEY"
                raise ConfigError(
                    f"--set {key}={value}: corpus commands take corpus options as pretrain.corpus_options.KEY=VALUE "
                    f"(their path in a suite, as in run and pretrain); did you mean "
                    f"--set pretrain.corpus_options.{option}={value}?"
                )
            raise ConfigError(
                f"--set {key}={value}: this command takes only pretrain.* keys (the suite-config path of a "
                "pretraining setting), e.g. --set pretrain.steps=1000 or --set pretrain.corpus_options.path=DIR"
                + _meant(key, value)
            )
        out[field_path] = value
    return out


def corpus_config(name: str, size: int, seed: int, overrides: list[str]) -> PretrainConfig:
    """The ``PretrainConfig`` naming corpus ``name`` of ``size`` ECGs with ``seed`` and the
    ``--set pretrain.corpus_options.*`` items (the corpus commands' and the corpus report's); its
    options are resolved (and checked) here."""
    if size <= 0:
        raise ConfigError(f"corpus {name}: the number of ECGs must be positive, got {size}")
    settings = pretrain_overrides(overrides, options_only=True)
    config = apply_overrides(PretrainConfig(corpus=name, corpus_size=size, corpus_seed=seed), settings)
    corpus_options(config)
    return config


def _meant(key: str, value: str) -> str:
    """``; did you mean --set pretrain.<key>=<value>?`` when ``key`` is a pretraining setting (or, without a
    dot and naming none, a corpus option), else nothing."""
    head = key.split(".", 1)[0]
    if head in {f.name for f in dataclasses.fields(PretrainConfig)}:
        return f"; did you mean --set pretrain.{key}={value}?"
    if "." not in key and key:
        return f"; did you mean --set pretrain.corpus_options.{key}={value}?"
    return ""


def _read_toml(path: Path) -> SuiteConfig:
    data = read_toml(path, "suite file")
    data.setdefault("name", path.stem)
    return suite_from_mapping(data, str(path))


def require_devices(suite: SuiteConfig) -> None:
    """Refuse a suite whose devices this machine does not have (``finetune.device=cuda:7``, or
    ``pretrain.device=cuda`` without a GPU), before any work: a run would pretrain first and then
    fail every cell. Checked by ``run`` and by its ``--dry-run``, not when a suite is loaded (a
    suite for a GPU machine can still be listed or reported anywhere)."""
    import torch

    resolve_device(suite.finetune.device)
    if suite.pretrain.device == "cuda" and not torch.cuda.is_available():
        raise ConfigError("pretrain.device is 'cuda' but no GPU is visible; use auto or cpu")


def with_corpora(suite: SuiteConfig, corpora: Sequence[str] | None) -> SuiteConfig:
    """The suite with the ``--corpus`` choice applied (comma-separated names allowed)."""
    if not corpora:
        return suite
    return dataclasses.replace(suite, corpora=tuple(corpora)).validate()
