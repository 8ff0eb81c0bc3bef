"""The protocol as the authors ran it (docs/protocol.md): no weight decay, the search spaces, the head,
early stopping, CPSC2018's random crops and half-overlapping evaluation windows, and tuning (trials in
MLflow, the tuning seed, one study per task and model)."""

from __future__ import annotations

import dataclasses
import logging
import math

import numpy as np
import optuna
import pandas as pd
import pytest
import torch

from baselines.base import ModelSpec, resolve_model
from baselines.training import GroupedWindows, TrainConfig, train_classifier
from benchmark.data.base import LongRecords, TaskData
from benchmark.data.preprocess import (
    PreprocessConfig,
    RandomCrops,
    prepare_record,
    record_windows,
    single_window,
    whole_record,
    window_starts,
)
from simecg.registries import BASELINES
from simecg.signal import zscore

SUPERVISED = ["resnet18-1d", "mega", "luna", "emb-gru", "emb-lstm", "transformer-scratch"]


# ----- 1. weight decay: none for any model (the authors' Adam never gets their YAML's 0.01) -------------------
@pytest.mark.parametrize("name", [*SUPERVISED, "mae:sim", "xgboost-features"])
def test_every_model_trains_without_weight_decay_in_the_paper_setup(name: str) -> None:
    from benchmark.suites.config import load_suite

    model = resolve_model(name).create(load_suite("paper").finetune, seed=1)
    assert model.training.weight_decay == 0.0
    assert "training_defaults" not in resolve_model(name).identity(None if "mae" not in name else _Encoders())


@pytest.mark.parametrize("name", [*SUPERVISED, "mae:sim"])
def test_finetune_weight_decay_sets_the_declared_001_for_every_model(name: str) -> None:
    from benchmark.suites.config import load_suite

    suite = load_suite("paper", {"finetune.weight_decay": "0.01"})
    assert resolve_model(name).create(suite.finetune, seed=1).training.weight_decay == pytest.approx(0.01)


def test_a_suite_or_tuner_value_overrides_the_model_default() -> None:
    spec = resolve_model("mega")
    assert spec.create(TrainConfig(weight_decay=0.0), seed=1).training.weight_decay == 0.0  # [finetune] says 0
    tuned = spec.create(TrainConfig(), seed=1, params={"weight_decay": 0.05})
    assert tuned.training.weight_decay == pytest.approx(0.05)
    assert TrainConfig().weight_decay is None and TrainConfig().resolved().weight_decay == 0.0


def test_training_defaults_enter_the_model_identity(monkeypatch: pytest.MonkeyPatch) -> None:
    spec = resolve_model("resnet18-1d")
    identity = spec.identity(None)
    cls = BASELINES.get("resnet18-1d")
    monkeypatch.setattr(cls, "training_defaults", {"weight_decay": 0.02})
    assert spec.identity(None)["training_defaults"] == {"weight_decay": 0.02} and spec.identity(None) != identity


class _Encoders:
    """An encoder source that names an encoder without one (identity only)."""

    def identity(self, need):
        from simecg.identity import Identity

        return Identity("encoder", {"corpus": {"name": need.source}})

    def path(self, need):
        raise AssertionError("no encoder is needed")


# ----- 2. search spaces ----------------------------------------------------------------------------------------
def _pow2(lo: int, hi: int) -> set[int]:
    return {2**k for k in range(lo, hi + 1)}


RANGES: dict[str, dict[str, set]] = {
    "mega": {"chunk_length": {50, 100, 250}, "depth": set(range(3, 7)), "ema_dim": _pow2(4, 6),
             "ffn_dim": _pow2(5, 8), "zdim": _pow2(4, 6), "head_width": _pow2(4, 10)},
    "luna": {"chunk_length": {50, 100, 250}, "depth": set(range(3, 7)), "num_heads": _pow2(4, 6),
             "qkv_dim": _pow2(4, 6), "ffn_dim": _pow2(5, 8), "context_length": _pow2(4, 6),
             "head_width": _pow2(4, 10)},
    "emb-gru": {"chunk_length": {50, 100, 250}, "num_layers": set(range(1, 5)), "hidden_size": _pow2(4, 8),
                "head_width": _pow2(4, 10)},
    "emb-lstm": {"chunk_length": {50, 100, 250}, "num_layers": set(range(1, 5)), "hidden_size": _pow2(4, 8),
                 "head_width": _pow2(4, 10)},
    "resnet18-1d": {"head_width": _pow2(4, 10)},
}


@pytest.mark.parametrize("name", sorted(RANGES))
def test_search_spaces_propose_protocol_values_and_valid_models(name: str, one_thread) -> None:
    cls = BASELINES.get(name)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    seen: dict[str, set] = {key: set() for key in RANGES[name]}
    for _ in range(30):
        params = cls.search_space(study.ask())
        assert set(params) == set(RANGES[name]), params
        for key, value in params.items():
            assert value in RANGES[name][key], (key, value)
            seen[key].add(value)
        config = cls.make_config(params)  # the config's own checks pass
        if name in ("mega", "luna", "emb-gru", "emb-lstm"):
            assert config.embed_dim == 64  # docs/protocol.md: embedding 64, fixed
            model = cls.build(config)
            assert model(torch.zeros(1, 1, 5000)).shape == (1,)
        if name == "luna":
            assert config.qkv_dim % config.num_heads == 0
    assert all(len(values) > 1 for values in seen.values())  # every dimension is explored
    tuning = cls.tuning_space(study.ask())  # and the fine-tuning space beside it
    assert 5e-6 <= tuning["lr"] <= 5e-3 and 0 <= tuning["mask_ratio"] <= 0.5 and 0 <= tuning["max_shift_ratio"] <= 0.75


@pytest.mark.parametrize("name", ["mae", "transformer-scratch"])
def test_the_encoder_head_is_not_searched_unless_asked(name: str) -> None:
    """The authors search backbone_out_dim for the MAE, but its head is Linear(128, 32) whatever it is:
    the paper space spends no trial on it; tune_head_width = true searches 2^4..2^10."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    variant = "mae:sim" if name == "mae" else name
    paper = resolve_model(variant)
    widths = set()
    for _ in range(30):
        assert set(paper.tuning_space(study.ask())) == {"lr", "mask_ratio", "max_shift_ratio"}
        params = resolve_model(variant, {name: {"tune_head_width": True}}).tuning_space(study.ask())
        assert set(params) == {"lr", "mask_ratio", "max_shift_ratio", "head_width"}
        widths.add(params["head_width"])
    assert widths <= _pow2(4, 10) and len(widths) > 3
    assert paper.config.head_width == 32


# ----- 3. the head ---------------------------------------------------------------------------------------------
def test_pretrained_encoder_head_is_linear128_32_relu_dropout025_linear32_1() -> None:
    from pretraining.mae import ECGEncoder, EncoderClassifier, preset

    config = BASELINES.get("mae").make_config()
    assert (config.head_width, config.dropout, config.activation) == (32, 0.25, "relu")
    head = EncoderClassifier(ECGEncoder(preset("paper"))).head
    kinds = [type(m) for m in head]
    assert kinds == [torch.nn.Linear, torch.nn.ReLU, torch.nn.Dropout, torch.nn.Linear]
    assert (head[0].in_features, head[0].out_features, head[2].p, head[3].in_features, head[3].out_features) == \
        (128, 32, 0.25, 32, 1)
    gelu = EncoderClassifier(ECGEncoder(preset("tiny")), activation="gelu").head
    assert isinstance(gelu[1], torch.nn.GELU)
    scratch = BASELINES.get("transformer-scratch").build(BASELINES.get("transformer-scratch").make_config())
    assert [type(m) for m in scratch.head] == kinds and scratch.head[0].out_features == 32


@pytest.mark.parametrize("name", ["resnet18-1d", "mega", "luna", "emb-gru"])
def test_baselines_end_in_the_same_head_of_width_head_width(name: str) -> None:
    cls = BASELINES.get(name)
    model = cls.build(cls.make_config({"head_width": 64}))
    linears = [m for m in model.head.modules() if isinstance(m, torch.nn.Linear)]
    assert [lin.out_features for lin in linears] == [64, 1]
    assert any(isinstance(m, torch.nn.ReLU) for m in model.head.modules())


# ----- 4. CPSC2018: random crops in training, half-overlapping windows at evaluation ----------------------------
LENGTHS = [5000, 8000, 12000, 3000, 7500, 30000]  # 10 s, 16 s, 24 s, 6 s, 15 s, 60 s at 500 Hz


def long_record_task(lengths: list[int] = LENGTHS, seed: int = 0,
                     fixed_length: bool = False) -> tuple[TaskData, list[np.ndarray]]:
    """A CPSC2018-like task: records of several lengths, kept the way the lead cache keeps them
    (``fixed_length``: as a PTB-XL/G12EC lead cache keeps its 10-s records, one window each)."""
    rng = np.random.default_rng(seed)
    config = PreprocessConfig()
    raws = [np.cumsum(rng.standard_normal(n)).astype(np.float32) for n in lengths]
    windows, owner, samples, span = [], [], [], np.zeros((len(raws), 2), dtype=np.int64)
    offset = 0
    for i, raw in enumerate(raws):
        record = prepare_record(raw, 500, config)
        one = fixed_length and len(record) == config.window
        w = single_window(record, config) if one else record_windows(record, config)
        windows.append(w)
        owner += [i] * len(w)
        if len(record) > config.window:
            samples.append(whole_record(record, config))
            span[i] = (offset, len(record))
            offset += len(record)
    n = len(raws)
    records = pd.DataFrame({"record_id": [f"A{i:04d}" for i in range(n)], "patient_id": [f"A{i:04d}" for i in range(n)],
                            "age": np.nan, "sex": None, "strat_fold": -1})
    data = TaskData(task="cpsc2018/AF", dataset="cpsc2018", lead="II", signals=np.concatenate(windows),
                    window_record=np.asarray(owner, dtype=np.int64), labels=(np.arange(n) % 2).astype(np.int8),
                    records=records, data_version="test",
                    long_records=LongRecords(np.concatenate(samples) if samples else np.zeros(0, np.float32), span))
    return data, raws


def test_evaluation_windows_step_5s_over_the_whole_record_zscored_and_zero_padded() -> None:
    data, raws = long_record_task()
    for i, raw in enumerate(raws):
        windows = np.asarray(data.signals[data.windows_of(np.array([i]))])
        starts = window_starts(len(raw), 5000)
        assert len(windows) == len(starts) == max(len(raw) // 2500, 1)
        assert starts == list(range(0, starts[-1] + 1, 2500))
        whole = zscore(raw)  # the record is z-scored once, then cut
        for start, window in zip(starts, windows, strict=True):
            real = whole[start : start + 5000]
            np.testing.assert_allclose(window[: len(real)], real, atol=1e-5)
            assert not window[len(real) :].any()  # zero-padded
    ten_s = np.asarray(data.signals[data.windows_of(np.array([0]))])  # a 10-s record: two windows
    assert len(ten_s) == 2 and not ten_s[1][2500:].any() and ten_s[1][:2500].any()
    sixteen_s = np.asarray(data.signals[data.windows_of(np.array([1]))])
    assert len(sixteen_s) == 3 and not sixteen_s[2][3000:].any() and sixteen_s[2][:3000].any()


def test_training_draws_a_random_10s_crop_per_record_and_epoch_seeded() -> None:
    data, raws = long_record_task()
    records = np.arange(len(raws))
    crops, labels = data.training_samples(records, seed=7)
    assert isinstance(crops, RandomCrops) and len(crops) == len(raws) and np.array_equal(labels, data.labels)
    every = np.arange(len(raws))
    epoch1, epoch2 = crops.batch(every, 1), crops.batch(every, 2)
    again, _ = data.training_samples(records, seed=7)
    other, _ = data.training_samples(records, seed=8)
    np.testing.assert_array_equal(again.batch(every, 1), epoch1)  # the same for the same (seed, epoch)
    np.testing.assert_array_equal(crops.batch(every[::-1], 1), epoch1[::-1])  # whatever the batch order
    long = np.array([len(r) > 5000 for r in raws])
    for i in np.flatnonzero(long):
        assert not np.array_equal(epoch1[i], epoch2[i])  # a new crop each epoch
        start = crops.starts(1)[i]
        assert 0 <= start < len(raws[i]) - 5000  # the authors' randint(0, length - 5000) excludes its bound
        np.testing.assert_allclose(epoch1[i], zscore(raws[i])[start : start + 5000], atol=1e-5)  # a real 10 s
    assert not np.array_equal(other.batch(every, 1)[long], epoch1[long])
    for i in np.flatnonzero(~long):  # records of at most 10 s are their first window, every epoch
        np.testing.assert_array_equal(epoch1[i], data.signals[data.windows_of(np.array([i]))[0]])
        np.testing.assert_array_equal(epoch2[i], epoch1[i])


def test_validation_and_test_score_a_record_by_the_max_over_its_windows() -> None:
    data, raws = long_record_task()
    val, labels = data.evaluation_samples(np.array([5, 1, 0]))
    assert isinstance(val, GroupedWindows) and np.array_equal(labels, data.labels[[0, 1, 5]])
    counts = [len(window_starts(n, 5000)) for n in (5000, 8000, 30000)]
    assert counts == [2, 3, 12] and len(val.signals) == sum(counts)
    window_scores = np.arange(len(val.signals), dtype=float)
    np.testing.assert_array_equal(val.item_max(window_scores), np.cumsum(counts) - 1)  # each record's last window
    from benchmark.results.metrics import record_scores

    windows = data.windows_of(np.array([0, 1, 5]))
    assert np.array_equal(record_scores(window_scores, data.window_record[windows], np.array([0, 1, 5])),
                          val.item_max(window_scores))


def test_ten_second_records_keep_plain_arrays() -> None:
    data, _ = long_record_task([5000] * 6, fixed_length=True)  # PTB-XL, G12EC: one window per record
    data = dataclasses.replace(data, long_records=None)
    x, y = data.training_samples(np.arange(6), seed=1)
    v, _ = data.evaluation_samples(np.arange(6))
    assert isinstance(x, np.ndarray) and x.shape == (6, 5000) and isinstance(v, np.ndarray)


def test_ten_second_cpsc2018_records_train_whole_and_are_evaluated_on_two_windows() -> None:
    data, raws = long_record_task([5000] * 6)
    assert data.long_records is not None and not data.long_records.span[:, 1].any()  # nothing to crop
    x, y = data.training_samples(np.arange(6), seed=1)
    assert isinstance(x, np.ndarray) and x.shape == (6, 5000) and np.array_equal(y, data.labels)
    np.testing.assert_allclose(x, np.stack([zscore(r) for r in raws]), atol=1e-5)  # the whole record
    v, labels = data.evaluation_samples(np.arange(6))
    assert isinstance(v, GroupedWindows) and len(v.signals) == 12 and np.array_equal(labels, data.labels)


class _Recorder(torch.nn.Module):
    """Logit = a weighted mean of the input; remembers what each epoch fed it."""

    def __init__(self) -> None:
        super().__init__()
        self.w = torch.nn.Parameter(torch.zeros(1))
        self.seen: list[torch.Tensor] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training:
            self.seen.append(x.detach().clone())
        return self.w * x.mean(dim=(1, 2))


def test_the_training_loop_takes_the_crops_and_the_grouped_validation(one_thread) -> None:
    data, raws = long_record_task()
    crops, labels = data.training_samples(np.arange(len(raws)), seed=3)
    val, val_labels = data.evaluation_samples(np.arange(len(raws)))
    model = _Recorder()
    config = TrainConfig(batch_size=len(raws), max_epochs=2, eval_every=1, patience=5)
    fit = train_classifier(model, crops, val, config, seed=0)
    assert len(model.seen) == 2 and not torch.equal(model.seen[0], model.seen[1])
    np.testing.assert_allclose(model.seen[0][:, 0].numpy(), crops.batch(np.arange(len(raws)), 1))
    # the validation loss is that of each record's max logit (w = 0 at first: log 2)
    assert math.isfinite(fit.best_val_loss) and len(fit.history) == 2


def test_prepare_gives_crops_and_grouped_windows_for_long_records() -> None:
    from benchmark.run.cells import Cell
    from benchmark.run.run_cell import prepare
    from benchmark.suites.config import load_suite

    data, _ = long_record_task(LENGTHS * 5)
    prepared = prepare(load_suite("demo"), data, Cell("resnet18-1d", "cpsc2018/AF", "II", 0, 1), seed=1)
    assert isinstance(prepared.x_train, RandomCrops) and isinstance(prepared.x_val, GroupedWindows)
    assert len(prepared.y_train) == len(prepared.x_train) and len(prepared.y_val) == len(prepared.x_val.labels)


@pytest.mark.realdata
def test_cpsc2018_keeps_whole_records_and_half_overlapping_windows(shared_data, tmp_path) -> None:
    from benchmark.data.tasks import load_task
    from benchmark.registries import DATASETS

    data = load_task("cpsc2018/AF", shared_data, lead="II", cache_dir=tmp_path)
    assert data.long_records is not None
    assert (data.long_records.span[:, 1] > 5000).any()
    cpsc = DATASETS.get("cpsc2018")
    cache = cpsc.lead_cache(shared_data, "II", tmp_path)
    length_of = dict(zip(cpsc.index(shared_data)["record_id"], cache.lengths.tolist(), strict=True))
    lengths = [length_of[r] for r in data.records["record_id"]]
    assert 5000 in lengths  # 10-s records are there
    for i, length in enumerate(lengths):
        n_windows = len(data.windows_of(np.array([i])))
        assert n_windows == len(window_starts(length, 5000)) == max(length // 2500, 1)
        assert (n_windows >= 2) == (length >= 5000)
    crops, _ = data.training_samples(np.arange(data.n_records), seed=1)
    assert crops.batch(np.arange(3), 1).shape == (3, 5000)
    ptbxl = load_task("ptbxl/AFIB", shared_data, lead="II", cache_dir=tmp_path)
    assert ptbxl.long_records is None and ptbxl.n_windows == ptbxl.n_records  # 10-s records: unchanged
    # a data version changes exactly when the arrays do: the long-record layout moves CPSC2018's only
    consecutive = PreprocessConfig(stride=5000, tail="end")
    assert load_task("ptbxl/AFIB", shared_data, "II", tmp_path / "c", consecutive).data_version == ptbxl.data_version
    assert load_task("cpsc2018/AF", shared_data, "II", tmp_path / "c", consecutive).data_version != data.data_version


# ----- 5. tuning trials as nested MLflow runs -------------------------------------------------------------------
@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> str:
    """One MLflow store for this module's tests (creating one takes seconds); each test its own experiment."""
    return f"sqlite:///{tmp_path_factory.mktemp('mlflow') / 'mlflow.db'}"


def _study_runs(tracking_uri: str, experiment: str, parent_name: str = "cell"):
    from benchmark.run.tuning import StudyRuns
    from benchmark.tracking.tags import RunTags
    from benchmark.tracking.tracker import Tracker

    tracker = Tracker(tracking_uri, experiment)
    parent = tracker.client.create_run(tracker.experiment_id, run_name=parent_name).info.run_id
    tags = RunTags(kind="tuning", fingerprint="f" * 16, model="resnet18-1d", task="demo/af", study="f" * 16)
    return tracker, StudyRuns(tracker, parent, "tuning | test", tags, {"tuning.n_trials": 3})


def _space(trial) -> dict:
    return {"lr": trial.suggest_float("lr", 5e-6, 5e-3, log=True)}


def _fit(params: dict, on_eval) -> float:
    losses = [1.0, 0.8, 0.7]
    for epoch, loss in enumerate(losses, 1):
        on_eval(epoch, loss + params["lr"])
    return min(losses) + params["lr"]


def _runs(tracker, kind: str) -> list:
    return tracker.client.search_runs([tracker.experiment_id], f"tags.kind = '{kind}'")


@pytest.mark.slow
def test_trials_are_nested_runs_with_params_curves_and_state(store: str, tmp_path) -> None:
    from benchmark.run.tuning import tune
    from benchmark.suites.config import TuningConfig

    tracker, runs = _study_runs(store, "nested")
    storage = f"sqlite:///{tmp_path / 'optuna.db'}"
    best = tune(_space, _fit, TuningConfig(n_trials=3), "study-test", storage, runs)
    (session,) = _runs(tracker, "tuning")
    assert session.data.tags["mlflow.parentRunId"] == runs.parent and session.info.status == "FINISHED"
    assert session.data.metrics["trials_complete"] == 3 and set(best) == {"lr"}
    assert float(session.data.params["best.lr"]) == pytest.approx(best["lr"])
    # Optuna's own views of the study, on the tuning run
    figures = {a.path for a in tracker.client.list_artifacts(session.info.run_id, "optuna")}
    assert figures == {"optuna/optimization_history.png", "optuna/param_importances.png"}
    trials = _runs(tracker, "trial")
    assert sorted(int(t.data.tags["trial"]) for t in trials) == [0, 1, 2]
    assert {t.info.run_name for t in trials} == {f"trial {n} · resnet18-1d · demo/af" for n in range(3)}
    for trial in trials:
        assert trial.data.tags["mlflow.parentRunId"] == session.info.run_id
        assert trial.data.tags["trial_state"] == "COMPLETE" and trial.info.status == "FINISHED"
        assert "lr" in trial.data.params
        curve = tracker.client.get_metric_history(trial.info.run_id, "val_loss")
        assert [m.step for m in sorted(curve, key=lambda m: m.step)] == [1, 2, 3]

    # resuming: a finished study adds no run; a larger budget adds runs for the new trials only
    tune(_space, _fit, TuningConfig(n_trials=3), "study-test", storage, runs)
    assert len(_runs(tracker, "tuning")) == 1 and len(_runs(tracker, "trial")) == 3
    tune(_space, _fit, TuningConfig(n_trials=5), "study-test", storage, runs)
    numbers = [int(t.data.tags["trial"]) for t in _runs(tracker, "trial")]
    assert sorted(numbers) == [0, 1, 2, 3, 4] and len(_runs(tracker, "tuning")) == 2


@pytest.mark.slow
def test_pruned_failed_and_killed_trials_end_in_their_states(store: str, tmp_path) -> None:
    from benchmark.run.tuning import tune
    from benchmark.suites.config import TuningConfig

    tracker, runs = _study_runs(store, "states")
    storage = f"sqlite:///{tmp_path / 'optuna.db'}"
    calls = iter(["prune", "fail", "kill"])

    def fit(params: dict, on_eval) -> float:
        on_eval(1, 0.9)
        what = next(calls)
        if what == "prune":
            raise optuna.TrialPruned()
        if what == "fail":
            raise RuntimeError("out of memory")  # caught: the study goes on
        raise KeyboardInterrupt  # Ctrl-C (SIGTERM is a KeyboardInterrupt too)

    with pytest.raises(KeyboardInterrupt):
        tune(_space, fit, TuningConfig(n_trials=4), "study-states", storage, runs)
    by_number = {int(t.data.tags["trial"]): t for t in _runs(tracker, "trial")}
    assert {n: (t.data.tags["trial_state"], t.info.status) for n, t in by_number.items()} == {
        0: ("PRUNED", "FINISHED"), 1: ("FAIL", "FAILED"), 2: ("FAIL", "KILLED")}
    assert _runs(tracker, "tuning")[0].info.status == "KILLED"
    # resuming runs new trial numbers only (no run is doubled), and the failed and the killed trial
    # do not count towards n_trials: 1 done (pruned), so 3 new trials
    tune(_space, _fit, TuningConfig(n_trials=4), "study-states", storage, runs)
    numbers = sorted(int(t.data.tags["trial"]) for t in _runs(tracker, "trial"))
    assert numbers == [0, 1, 2, 3, 4, 5]


@pytest.mark.slow
def test_a_trial_of_a_dead_process_ends_killed_on_resume(store: str, tmp_path, monkeypatch) -> None:
    import time

    import benchmark.run.tuning as tuning
    from benchmark.suites.config import TuningConfig

    monkeypatch.setattr(tuning, "GRACE_S", 1)
    tracker, runs = _study_runs(store, "dead")
    storage = f"sqlite:///{tmp_path / 'optuna.db'}"
    study = tuning._open_study(TuningConfig(), "study-dead", storage)
    trial = study.ask()  # a trial whose process then died: RUNNING in Optuna and in MLflow
    study._storage.record_heartbeat(trial._trial_id)
    tags = dataclasses.replace(runs.tags, kind="trial", fingerprint="", trial=trial.number)
    dead = tracker.client.create_run(tracker.experiment_id, run_name="trial 0", tags=tags.to_mlflow()).info.run_id
    time.sleep(2.5)
    tuning.tune(_space, _fit, TuningConfig(n_trials=3), "study-dead", storage, runs)
    assert tracker.client.get_run(dead).info.status == "KILLED"
    states = {t.number: t.state for t in optuna.load_study(study_name="study-dead", storage=storage).trials}
    # the dead trial does not count towards n_trials: 3 complete trials were run after it
    assert states[0] == optuna.trial.TrialState.FAIL and len(states) == 4


@pytest.mark.slow
def test_time_budget_counts_over_sessions(tmp_path) -> None:
    from benchmark.run.tuning import tune
    from benchmark.suites.config import TuningConfig

    storage = f"sqlite:///{tmp_path / 'optuna.db'}"

    def slow(params: dict, on_eval) -> float:
        import time

        time.sleep(0.3)
        return params["lr"]

    budget = TuningConfig(n_trials=3, timeout_s=0.25)
    tune(_space, slow, budget, "study-time", storage)  # the first trial outlasts the budget: Optuna stops
    assert len(optuna.load_study(study_name="study-time", storage=storage).trials) == 1
    tune(_space, slow, budget, "study-time", storage)  # a new session: the study's budget is already spent
    assert len(optuna.load_study(study_name="study-time", storage=storage).trials) == 1
    tune(_space, slow, dataclasses.replace(budget, timeout_s=0.0), "study-time", storage)  # no time limit
    assert len(optuna.load_study(study_name="study-time", storage=storage).trials) == 3  # trial budget only


@pytest.mark.slow
def test_a_tuned_cell_nests_its_study_and_logs_its_weight_decay(store: str, tmp_path, one_thread) -> None:
    """run_cell end to end on a CPSC2018-like task: crops in training, tuning nested under the cell, on the
    tuning seed's split, and a budget cell that takes the full-data study's values without tuning again."""
    from benchmark.run.cells import Cell, plan_cells
    from benchmark.run.run_cell import CellContext, run_cell
    from benchmark.suites.config import load_suite
    from benchmark.tracking.tags import RunTags
    from benchmark.tracking.tracker import Tracker

    suite = load_suite("demo", {"finetune.max_epochs": 2, "finetune.eval_every": 1, "finetune.batch_size": 16,
                                "tuning.n_trials": 2, "baselines.resnet18-1d": {"base_width": 4}})
    data, _ = long_record_task(LENGTHS * 6)
    tracker = Tracker(store, "cell")
    with tracker.run("invocation", RunTags(kind="invocation")) as invocation:
        context = CellContext(suite, tracker, invocation.run_id, f"sqlite:///{tmp_path / 'optuna.db'}", None,
                              {("cpsc2018/AF", "II"): data})
        cells = [Cell("resnet18-1d", "cpsc2018/AF", "II", 0, seed) for seed in (1, 2)]
        budget = Cell("resnet18-1d", "cpsc2018/AF", "II", 5, 1)
        planned = plan_cells(suite, [*cells, budget], {("cpsc2018/AF", "II"): data.data_version}, None)
        for cell in planned:
            assert run_cell(context, cell) is None
    cell_runs = {(int(r.data.tags["seed"]), int(r.data.tags["budget"])): r for r in _runs(tracker, "cell")}
    first = cell_runs[(1, 0)]
    assert first.data.params["train.weight_decay"] == "0.0"
    assert "model.training_defaults.weight_decay" not in first.data.params
    assert "tuned.lr" in first.data.params and "tuned.head_width" in first.data.params
    (session,) = _runs(tracker, "tuning")  # one study for both seeds and the budget, tuned by the first cell
    assert session.data.tags["mlflow.parentRunId"] == first.info.run_id
    assert session.data.tags["seed"] == "6" and session.data.tags["budget"] == "0"  # the tuning seed's full split
    assert {r.data.tags["study"] for r in cell_runs.values()} == {session.data.tags["study"]}
    trials = _runs(tracker, "trial")
    assert len(trials) == 2 and {t.data.tags["mlflow.parentRunId"] for t in trials} == {session.info.run_id}
    for run in cell_runs.values():  # each cell says which study its values come from, and takes them
        assert run.data.params["study"] == f"study-{session.data.tags['study']}"
        assert run.data.params["study.cell"] == "resnet18-1d | cpsc2018/AF | II | budget all"
        assert run.data.params["tuning.tune_seed"] == "6"
        assert run.data.params["tuned.lr"] == first.data.params["tuned.lr"]
    assert cell_runs[(1, 5)].data.metrics["n_train"] == 10  # the budget cell trained on its 5 + 5 records
    split = pd.read_csv(tracker.client.download_artifacts(first.info.run_id, "split.csv", str(tmp_path)))
    train = split[(split.split == "train") & split.in_budget]
    assert first.data.metrics["n_train"] == len(train)  # one training sample per record (a crop), not per window


def test_model_spec_create_applies_the_defaults_for_plugins_too() -> None:
    from baselines.base import NeuralBaseline

    class Plugin(NeuralBaseline):
        training_defaults = {"weight_decay": 0.3}

    spec = ModelSpec("plugin", "plugin", Plugin, Plugin.make_config())
    assert spec.create(TrainConfig(), seed=0).training.weight_decay == pytest.approx(0.3)
    assert spec.identity(None)["training_defaults"] == {"weight_decay": 0.3}


# ----- 6. early stopping and the trials' training ----------------------------------------------------------------
class _Stalled(torch.nn.Module):
    """Learns nothing after the first step: the validation loss stops improving at once."""

    def __init__(self) -> None:
        super().__init__()
        self.b = torch.nn.Parameter(torch.zeros(1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.b.expand(x.shape[0]) * 0.0  # no gradient reaches b: the same loss at every evaluation


@pytest.mark.parametrize("patience", [1, 2, 5])
def test_training_stops_after_more_than_patience_evaluations_without_improvement(patience: int, one_thread) -> None:
    """The authors' EarlyStopper: ``bad > patience``; the first evaluation is the best, so the stop comes at
    evaluation patience + 2 (patience 5, every 5 epochs: epoch 35)."""
    x = np.random.default_rng(0).standard_normal((8, 50)).astype(np.float32)
    y = np.arange(8) % 2
    config = TrainConfig(batch_size=8, max_epochs=100, eval_every=1, patience=patience)
    fit = train_classifier(_Stalled(), (x, y), (x, y), config, seed=0)
    assert fit.epochs_run == patience + 2 and fit.best_epoch == 1
    never = train_classifier(_Stalled(), (x, y), (x, y), dataclasses.replace(config, early_stopping=False), seed=0)
    assert never.epochs_run == 100 and never.best_epoch == 1 and len(never.history) == 100


def test_trials_run_up_to_250_epochs_without_early_stopping_and_never_longer_than_a_cell() -> None:
    from benchmark.run.run_cell import trial_training
    from benchmark.suites.config import load_suite

    paper = load_suite("paper")
    assert (paper.tuning.trial_max_epochs, paper.tuning.trial_early_stopping) == (250, False)
    assert paper.finetune.early_stopping and paper.finetune.max_epochs == 500 and paper.finetune.patience == 5
    trial = trial_training(paper)
    assert trial.max_epochs == 250 and not trial.early_stopping
    assert dataclasses.replace(trial, max_epochs=500, early_stopping=True) == paper.finetune  # nothing else differs
    smoke = load_suite("smoke", {"tuning.trial_early_stopping": "true"})
    assert trial_training(smoke).max_epochs == smoke.finetune.max_epochs == 20 and trial_training(smoke).early_stopping


# ----- 7. which study a cell takes its values from, and on which split --------------------------------------------
def test_the_tuning_split_is_seed_6_outside_the_scored_seeds() -> None:
    from benchmark.suites.config import load_suite

    for name in ("paper", "all", "budgets", "leads"):
        suite = load_suite(name)
        assert suite.tuning.tune_seed == 6 and suite.tuning.sampler_seed == 6 and suite.tuning.pruner_patience == 5
        assert all(6 not in grid.seeds for grid in suite.grids)


def test_a_suite_that_scores_its_tuning_seed_is_warned(caplog: pytest.LogCaptureFixture) -> None:
    from benchmark.suites.config import load_suite

    with caplog.at_level(logging.WARNING, logger="benchmark.suites.config"):
        load_suite("demo", {"tuning.n_trials": "2", "grid.seeds": "1,2"})
        assert not caplog.records
        load_suite("demo", {"tuning.n_trials": "2", "grid.seeds": "5,6"})
    assert len(caplog.records) == 1 and "scores seed 6" in caplog.text and "tuning.tune_seed" in caplog.text


def test_study_cells_are_the_full_lead_ii_split_of_the_tuning_seed_unless_separated() -> None:
    from benchmark.run.cells import Cell, study_cell
    from benchmark.suites.config import TuningConfig

    cell = Cell("mae:sim", "ptbxl/AFIB", "V1", 10, 3, positives_only=True, shift="sex:M->F")
    assert study_cell(cell, TuningConfig()) == Cell("mae:sim", "ptbxl/AFIB", "II", 0, 6)
    assert study_cell(cell, TuningConfig(), donor="mae:ptbxl").model == "mae:ptbxl"
    own = study_cell(cell, TuningConfig(separate_studies=("budget", "lead", "shift")))
    assert own == dataclasses.replace(cell, seed=6)  # the former layout: a study per cell less its seed
    assert study_cell(cell, TuningConfig(separate_studies=("lead",))) == Cell("mae:sim", "ptbxl/AFIB", "V1", 0, 6)


@pytest.mark.parametrize(("key", "value", "message"), [
    ("tuning.shared_studies", "transformer-scratch", "MODEL=DONOR"),
    ("tuning.shared_studies", "mae:sim=mae:sim", "MODEL=DONOR"),
    ("tuning.separate_studies", "seed", "tuning.separate_studies values must be one of budget, lead, shift, frozen"),
    ("tuning.trial_max_epochs", "0", "tuning.trial_max_epochs must be >= 1"),
])
def test_tuning_scope_settings_are_checked(key: str, value: str, message: str) -> None:
    from benchmark.suites.config import load_suite
    from simecg.errors import ConfigError

    with pytest.raises(ConfigError, match=message):
        load_suite("demo", {key: value})


def test_the_all_suite_tunes_one_study_per_task_and_model() -> None:
    """The studies of `all` (767 for the 12,480 cells of the 26 tasks): the main grid's tasks x 11 models (the
    scratch encoder borrows mae:sim's), the methods grid's tasks x 8 (4 methods x 2 sources), the 7 progress
    checkpoints' tasks and the PTB-XL tasks of the 7 corpus-size encoders not in the main grid, whatever their
    budgets, leads and seeds; a study per lead adds the 11 other leads' (PTB-XL tasks x mae:sim); without shared
    studies the scratch encoder has a study per task of its own."""
    from benchmark.data.table import task_table
    from benchmark.run.cells import enumerate_cells, study_cell, study_donors
    from benchmark.suites.config import load_suite

    tasks = len(task_table()["tasks"])  # the study's table, however many tasks are included beside it
    ptbxl = len([t for t in task_table()["tasks"] if t["dataset"] == "ptbxl"])

    def count(overrides: dict[str, str]) -> tuple[int, int]:
        suite = load_suite("all", overrides)
        cells = enumerate_cells(suite)
        donors = study_donors(suite)
        studies = {study_cell(c, suite.tuning, donors.get((c.model, c.task))) for c in cells}
        return len(cells), len(studies)

    studies = tasks * 11 + tasks * 8 + 7 * tasks + 7 * ptbxl
    main, methods, progress = tasks * 12 * 5, tasks * 8 * 5, 7 * tasks * 5
    exp04, exp05, exp07 = 2 * ptbxl * 10 * 5, ptbxl * 11 * 5, 3 * ptbxl * 10 * 5
    sizes = 8 * ptbxl * 11 * 5 - ptbxl * 5 - ptbxl * 10 * 5  # less mae:ptbxl at full data (main), under budgets (Exp04)
    cells = main + methods + progress + exp04 + exp05 + exp07 + sizes
    assert count({}) == (cells, studies)
    assert count({"tuning.separate_studies": "lead"}) == (cells, studies + ptbxl * 11)
    assert count({"tuning.shared_studies": ""}) == (cells, studies + tasks)
