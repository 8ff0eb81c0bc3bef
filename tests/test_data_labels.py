"""Labels, records and windows as the authors had them (docs/protocol.md, "Tasks" and "Signals").

A record both positive and normal is in both classes (two rows); PTB-XL and G12EC records not of
exactly 10 s are left out; G12EC codes are found as text in #Dx; CPSC2018 records are z-scored
whole and evaluated on windows at every 5 s of the record padded to the next 5-s step. Each rule
has its named alternative (``[data]`` of a suite). Data folders are synthesized here; the counts
on ../shared/data are checked against the files themselves.
"""

from __future__ import annotations

import ast
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from benchmark.data.base import AliasedWindows, DataConfig, TaskData
from benchmark.data.preprocess import RandomCrops, window_starts
from benchmark.data.tasks import load_task, task_summary
from benchmark.registries import DATASETS, TASKS
from simecg.errors import ConfigError
from simecg.signal import LEADS, zscore

BOTH, POSITIVE = DataConfig(), DataConfig(overlap="positive")


# ---- synthesized data folders ------------------------------------------------------------------------------
def _digital(n: int, seed: int) -> np.ndarray:
    """``(n, 12)`` int16 ADC samples at 1000/mV of an ECG-like signal (~1.5 mV), different per seed."""
    rng = np.random.default_rng(seed)
    t = np.arange(n) / 500
    mv = 0.75 * np.sin(2 * np.pi * rng.uniform(0.8, 1.6) * t[:, None] + rng.uniform(0, 6, 12))
    return np.round((mv + 0.02 * rng.standard_normal((n, 12))) * 1000).astype(np.int16)


def _write_wfdb(folder: Path, name: str, n: int, seed: int, comments: list[str] = ()) -> np.ndarray:
    folder.mkdir(parents=True, exist_ok=True)
    digital = _digital(n, seed)
    (folder / f"{name}.dat").write_bytes(digital.astype("<i2").tobytes())
    checksums = [int(c) & 0xFFFF for c in digital.astype(np.int64).sum(axis=0)]
    lines = [f"{name} 12 500 {n}"] + [f"{name}.dat 16 1000/mV 16 0 0 {c} 0 {lead}" for c, lead in zip(checksums, LEADS,
                                                                                                      strict=True)]
    (folder / f"{name}.hea").write_text("\n".join(lines + list(comments)) + "\n")
    return digital[:, LEADS.index("II")] / 1000.0


def _challenge(folder: Path, records: dict[str, tuple[str, int]]) -> dict[str, np.ndarray]:
    """CinC-format records ``name -> (Dx codes, samples)``; returns lead II of each in mV."""
    return {name: _write_wfdb(folder, name, n, seed, ["#Age: 50", "#Sex: Male", f"#Dx: {dx}"])
            for seed, (name, (dx, n)) in enumerate(records.items())}


def _ptbxl(root: Path, codes: list[dict[str, float]]) -> Path:
    """A PTB-XL folder of 10-s records ``1..len(codes)`` with these SCP codes."""
    folder = root / "ptbxl"
    rows = []
    for ecg_id, scp in enumerate(codes, start=1):
        _write_wfdb(folder / "records500" / "00000", f"{ecg_id:05d}_hr", 5000, ecg_id)
        rows.append({"ecg_id": ecg_id, "patient_id": 100 + ecg_id, "age": 50, "sex": ecg_id % 2,
                     "scp_codes": str(scp), "strat_fold": 1 + ecg_id % 10,
                     "filename_hr": f"records500/00000/{ecg_id:05d}_hr", "filename_lr": ""})
    pd.DataFrame(rows).to_csv(folder / "ptbxl_database.csv", index=False)
    known = sorted({code for scp in codes for code in scp})
    pd.DataFrame({"code": known}).to_csv(folder / "scp_statements.csv", index=False)
    return root


IRBBB_RECORDS = [{"NORM": 100.0}, {"NORM": 100.0, "IRBBB": 100.0}, {"IRBBB": 100.0}, {"NORM": 100.0},
                 {"IRBBB": 100.0, "SR": 0.0}, {"NORM": 80.0}, {"IRBBB": 50.0}]


# ---- a record in both classes --------------------------------------------------------------------------------
def test_a_record_positive_and_normal_is_a_row_of_each_class(tmp_path):
    root = _ptbxl(tmp_path / "data", IRBBB_RECORDS)
    data = load_task("ptbxl/IRBBB", root, cache_dir=tmp_path / "cache")
    # the normal class first, then the positives, each in the dataset's order (the authors' lists)
    assert data.records["record_id"].tolist() == ["1", "2", "4", "2", "3", "5"]
    assert data.labels.tolist() == [0, 0, 0, 1, 1, 1]
    assert isinstance(data.signals, AliasedWindows) and data.n_windows == 6
    first, second = (np.asarray(data.signals[data.windows_of(np.array([row]))]) for row in (1, 3))
    np.testing.assert_array_equal(first, second)  # one record, two rows: the same ECG, labelled 0 and 1
    x, y = data.training_samples(np.arange(6), seed=1)
    assert x.shape == (6, 5000) and y.tolist() == [0, 0, 0, 1, 1, 1]
    v, labels = data.evaluation_samples(np.array([3, 1]))
    np.testing.assert_array_equal(v[0], v[1])
    assert labels.tolist() == [0, 1]

    positive_wins = load_task("ptbxl/IRBBB", root, cache_dir=tmp_path / "cache", options=POSITIVE)
    assert positive_wins.records["record_id"].tolist() == ["1", "4", "2", "3", "5"]
    assert positive_wins.labels.tolist() == [0, 0, 1, 1, 1] and positive_wins.n_windows == 5
    assert not isinstance(positive_wins.signals, AliasedWindows)
    assert positive_wins.data_version != data.data_version


def test_list_tasks_counts_the_records_in_both_classes(tmp_path):
    root = _ptbxl(tmp_path / "data", IRBBB_RECORDS)
    for options, negatives in ((BOTH, 3), (POSITIVE, 2)):
        summary = task_summary(root, options).set_index("task")
        assert summary.loc["ptbxl/IRBBB", ["positives", "negatives", "both"]].tolist() == [3, negatives, 1]
        assert summary.loc["ptbxl/LVH", ["positives", "both"]].tolist() == [0, 0]


def _both_task(n_normal: int = 100, n_positive: int = 30, n_both: int = 60) -> TaskData:
    """Rows as the readers make them: normal records (some also positive), then positives."""
    normal = [f"N{i}" for i in range(n_normal)] + [f"B{i}" for i in range(n_both)]
    positive = [f"P{i}" for i in range(n_positive)] + [f"B{i}" for i in range(n_both)]
    ids = normal + positive
    labels = np.array([0] * len(normal) + [1] * len(positive), dtype=np.int8)
    records = pd.DataFrame({"record_id": ids, "patient_id": ids, "age": 60.0, "sex": "F", "strat_fold": -1})
    # a signal per record (a record's two rows share it), so no two records are duplicate signals
    number = {rid: k for k, rid in enumerate(dict.fromkeys(ids))}
    signals = np.zeros((len(ids), 5000), np.float32)
    signals[:, 0] = [number[rid] for rid in ids]
    return TaskData("g12ec/AF", "g12ec", "II", signals, np.arange(len(ids)), labels, records, "v")


def test_the_two_rows_of_a_record_are_split_and_budgeted_apart_as_the_authors_lists_were():
    from benchmark.data.budgets import apply_budget
    from benchmark.data.splits import make_split

    data = _both_task()
    split = make_split(data, "paper", seed=1)
    side = {}
    for part in ("train", "val", "test"):
        for row in getattr(split, part):
            side.setdefault(data.records.record_id[row], []).append(part)
    both = {rid: parts for rid, parts in side.items() if rid.startswith("B")}
    assert all(len(parts) == 2 for parts in both.values())
    # each class list is split on its own, so a record can be a test positive and a training negative
    assert any("test" in parts and "train" in parts for parts in both.values())
    chosen, info = apply_budget(split.train, data.labels, 5, seed=1)
    assert info["used"] == {"0": 5, "1": 5}


def test_split_frame_and_budget_flags_tell_the_two_rows_apart():
    from benchmark.run.cells import Cell
    from benchmark.run.run_cell import prepare
    from benchmark.suites.config import load_suite

    data = _both_task()
    prepared = prepare(load_suite("demo"), data, Cell("resnet18-1d", "g12ec/AF", "II", 10, 1), seed=1)
    frame = prepared.split_frame
    assert list(frame.columns) == ["record_id", "split", "label", "in_budget"] and len(frame) == data.n_records
    assert frame.groupby("record_id").label.nunique().max() == 2  # the rows of one record: labels 0 and 1
    assert not frame[frame.split != "train"].in_budget.any()  # per row, not per record_id
    assert frame.in_budget.sum() == 20


def test_test_predictions_pair_the_rows_of_a_record_in_both_classes(tmp_path):
    from benchmark.results.leaderboard import _read_predictions, _reindex

    rows = pd.DataFrame({"record_id": ["7", "8", "7"], "label": [0, 0, 1], "score": [0.1, 0.2, 0.3]})
    rows.to_csv(tmp_path / "a.csv", index=False)
    rows.iloc[::-1].to_csv(tmp_path / "b.csv", index=False)
    a, b = _read_predictions(tmp_path / "a.csv"), _read_predictions(tmp_path / "b.csv")
    assert a[0].tolist() == ["7#0", "8", "7#1"]
    keys, labels, scores = _reindex(b, a[0])
    assert labels.tolist() == a[1].tolist() and scores.tolist() == [0.1, 0.2, 0.3]


def test_aliased_windows_index_like_one_array():
    base = np.arange(12, dtype=np.float32).reshape(4, 3)
    windows = AliasedWindows(base, np.array([1, 3]))
    assert len(windows) == 6 and windows.shape == (6, 3)
    np.testing.assert_array_equal(windows[4], base[1])
    np.testing.assert_array_equal(windows[-1], base[3])
    np.testing.assert_array_equal(windows[np.array([5, 0])], base[[3, 0]])
    np.testing.assert_array_equal(windows[3:], base[[3, 1, 3]])
    np.testing.assert_array_equal(windows[np.arange(6) % 2 == 0], base[[0, 2, 1]])
    assert windows[4, 2] == base[1, 2]
    assert np.asarray(windows).shape == (6, 3)
    with pytest.raises(IndexError):
        windows[6]


# ---- record lengths ------------------------------------------------------------------------------------------
G12EC_LENGTHS = {"E00001": ("164889003", 5000), "E00002": ("426783006", 5000), "E00003": ("164889003", 7500),
                 "E00004": ("426783006", 5000), "E00005": ("426783006", 4000), "E00006": ("164889003", 5000)}


def test_g12ec_records_not_of_10_s_are_left_out_unless_lengths_is_any(tmp_path):
    _challenge(tmp_path / "data" / "g12ec", G12EC_LENGTHS)
    data = load_task("g12ec/AF", tmp_path / "data", cache_dir=tmp_path / "cache")
    assert data.records["record_id"].tolist() == ["E00002", "E00004", "E00001", "E00006"]
    left_out = {Path(q["file"]).stem: q["reason"] for q in data.quarantine}
    assert set(left_out) == {"E00003", "E00005"} and "7500 samples, not 5000" in left_out["E00003"]
    assert data.long_records is None and data.n_windows == 4

    kept = load_task("g12ec/AF", tmp_path / "data", cache_dir=tmp_path / "cache", options=DataConfig(lengths="any"))
    assert kept.n_records == 6 and not kept.quarantine
    row = {rid: i for i, rid in enumerate(kept.records["record_id"])}
    assert len(kept.windows_of(np.array([row["E00003"]]))) == 3  # windowed like a CPSC2018 record
    assert len(kept.windows_of(np.array([row["E00005"]]))) == 1
    assert len(kept.windows_of(np.array([row["E00001"]]))) == 1  # 10-s records stay one window
    assert kept.long_records is not None and kept.data_version != data.data_version


def test_data_check_counts_the_records_the_length_rule_leaves_out(tmp_path, capsys):
    from benchmark.cli import main
    from benchmark.data.datacheck import check_folder

    _challenge(tmp_path / "g12ec", G12EC_LENGTHS)
    report = check_folder(tmp_path, progress=False)
    read, off = report.lengths["g12ec"]
    assert read == 6 and sorted(Path(f).stem for f in off) == ["E00003", "E00005"]
    assert report.counts["rejected"] == 0
    assert main(["data", "check", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "g12ec: 2 of 6 readable records are not exactly 5000 samples" in out


# ---- G12EC codes ---------------------------------------------------------------------------------------------
def test_g12ec_codes_are_found_as_text_without_equivalences_unless_equivalent(tmp_path):
    _challenge(tmp_path / "g12ec", {
        "E00001": ("713427006", 5000),  # CRBBB (= RBBB in the CinC scoring)
        "E00002": ("59118001", 5000),  # RBBB
        "E00003": ("426783006", 5000),  # sinus rhythm
        "E00004": ("117338001", 5000),  # a code holding the VPB code as text
        "E00005": ("427172004", 5000),  # PVC (= VPB in the CinC scoring)
        "E00006": ("17338001,426783006", 5000),  # VPB and sinus rhythm
    })
    g12ec = DATASETS.get("g12ec")
    index = g12ec.index(tmp_path)
    ids = np.array(index["record_id"])

    def members(task: str, dx_match: str) -> tuple[list[str], list[str]]:
        positive, normal = g12ec.classes(TASKS.get(task), index, DataConfig(dx_match=dx_match))
        return sorted(ids[positive]), sorted(ids[normal])

    assert members("g12ec/RBBB", "substring") == (["E00002"], ["E00003", "E00006"])
    assert members("g12ec/RBBB", "equivalent")[0] == ["E00001", "E00002"]
    assert members("g12ec/PVC", "substring")[0] == ["E00004", "E00006"]
    assert members("g12ec/PVC", "equivalent")[0] == ["E00005", "E00006"]


# ---- CPSC2018 windows ----------------------------------------------------------------------------------------
def test_cpsc2018_records_are_zscored_whole_cropped_in_training_and_windowed_for_evaluation(tmp_path):
    seconds = {"A0001": 6, "A0002": 10, "A0003": 12.3, "A0004": 60}
    leads = _challenge(tmp_path / "data" / "cpsc2018", {
        name: ("164889003" if i % 2 == 0 else "426783006", int(round(s * 500)))
        for i, (name, s) in enumerate(seconds.items())})
    data = load_task("cpsc2018/AF", tmp_path / "data", cache_dir=tmp_path / "cache")
    row = {rid: i for i, rid in enumerate(data.records["record_id"])}
    counts = {name: len(data.windows_of(np.array([row[name]]))) for name in seconds}
    assert counts == {"A0001": 1, "A0002": 2, "A0003": 2, "A0004": 12}
    for name, signal in leads.items():
        whole = zscore(signal)
        windows = np.asarray(data.signals[data.windows_of(np.array([row[name]]))])
        for start, window in zip(window_starts(len(signal), 5000), windows, strict=True):
            real = whole[start : start + 5000]
            np.testing.assert_allclose(window[: len(real)], real, atol=1e-4)
            assert not window[len(real) :].any()
    crops, labels = data.training_samples(np.arange(data.n_records), seed=3)
    assert isinstance(crops, RandomCrops)
    batch = crops.batch(np.arange(data.n_records), 1)
    np.testing.assert_allclose(batch[row["A0002"]], zscore(leads["A0002"]), atol=1e-4)  # 10 s: itself, whole
    start = crops.starts(1)[row["A0004"]]
    np.testing.assert_allclose(batch[row["A0004"]], zscore(leads["A0004"])[start : start + 5000], atol=1e-4)
    # the lengths rule is PTB-XL's and G12EC's: CPSC2018 records of any length stay
    assert load_task("cpsc2018/AF", tmp_path / "data", cache_dir=tmp_path / "cache",
                     options=DataConfig(lengths="exact")).n_records == 4


# ---- the options are suite settings --------------------------------------------------------------------------
def test_data_options_are_suite_settings_checked_like_the_others(tmp_path):
    from benchmark.suites.config import load_suite

    paper = load_suite("paper")
    assert (paper.data.overlap, paper.data.lengths, paper.data.dx_match) == ("both", "exact", "substring")
    assert load_suite("paper", {"data.overlap": "positive"}).data.overlap == "positive"
    with pytest.raises(ConfigError, match="data.overlap must be one of both, positive, got 'first'"):
        load_suite("paper", {"data.overlap": "first"})
    suite = tmp_path / "mine.toml"
    suite.write_text('[data]\ndx_match = "equivalent"\n\n[[grid]]\ntasks = ["g12ec/AF"]\nmodels = ["resnet18-1d"]\n')
    assert load_suite(suite).data.dx_match == "equivalent"


# ---- ../shared/data --------------------------------------------------------------------------------------------
@pytest.mark.realdata
def test_positive_and_normal_counts_on_the_shared_data_match_the_label_files(shared_data):
    summary = task_summary(shared_data).set_index("task")
    db = pd.read_csv(shared_data / "ptbxl" / "ptbxl_database.csv")
    scp = [ast.literal_eval(text) for text in db.scp_codes]
    normal = np.array([codes.get("NORM", -1) >= 100 for codes in scp])
    for spec in (TASKS.get(name) for name in summary.index if name.startswith("ptbxl/")):
        positive = np.array([any(c in codes and codes[c] >= spec.min_likelihood for c in spec.positive)
                             for codes in scp])
        assert summary.loc[spec.name, ["positives", "negatives", "both"]].tolist() == [
            positive.sum(), normal.sum(), (positive & normal).sum()], spec.name
    assert summary.loc["ptbxl/ABQRS", "both"] > 0
    g12ec = pd.read_csv(shared_data / "g12ec" / "records.csv", dtype=str)  # labels only: every record counts
    for spec in (TASKS.get(name) for name in summary.index if name.startswith("g12ec/")):
        positive = g12ec.dx_snomed.apply(lambda dx, s=spec: any(code in dx for code in s.positive))
        normal = g12ec.dx_snomed.str.contains("426783006")
        assert summary.loc[spec.name, "both"] == int((positive & normal).sum()), spec.name


@pytest.mark.realdata
def test_the_normal_class_split_is_the_same_for_every_task_of_a_dataset(shared_data, tmp_path):
    from benchmark.data.splits import make_split

    tests = []
    for name in ("ptbxl/AFIB", "ptbxl/LVH", "ptbxl/ABQRS"):
        data = load_task(name, shared_data, cache_dir=tmp_path)
        split = make_split(data, "paper", seed=2)
        normal = split.test[data.labels[split.test] == 0]
        tests.append(set(data.records.record_id.iloc[normal]))
    assert tests[0] == tests[1] == tests[2] and len(tests[0]) > 10  # as the authors' one NORM test list
