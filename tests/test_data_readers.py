"""Readers on the real subsets: every good record loads, known records carry their labels and metadata."""

from __future__ import annotations

import numpy as np
import pytest

from benchmark.data.challenge import normalize_codes
from benchmark.data.tasks import load_task
from benchmark.registries import DATASETS
from simecg.errors import ConfigError, DataMissingError

pytestmark = pytest.mark.realdata


def test_ptbxl_index_reads_all_400_records_with_metadata(shared_data):
    index = DATASETS.get("ptbxl").index(shared_data)
    assert len(index) == 400
    assert (index["problem"] == "").all()
    first = index.set_index("record_id").loc["1"]
    assert first["age"] == 56.0 and first["sex"] == "F" and first["patient_id"] == "15709"
    assert first["strat_fold"] == 3 and first["codes"]["NORM"] == 100.0
    second = index.set_index("record_id").loc["2"]
    assert second["sex"] == "M" and second["age"] == 19.0


def test_ptbxl_label_rules_follow_likelihood_thresholds(shared_data):
    from benchmark.data.base import DataConfig
    from benchmark.registries import TASKS

    ptbxl = DATASETS.get("ptbxl")
    index = ptbxl.index(shared_data)
    ids = index["record_id"].tolist()
    positive, negative = ptbxl.classes(TASKS.get("ptbxl/AFIB"), index, DataConfig())
    afib, normal = dict(zip(ids, positive, strict=True)), dict(zip(ids, negative, strict=True))
    assert afib["17"] and not normal["17"]  # AFIB at likelihood 0 counts for AFIB (any likelihood)
    assert normal["1"] and not afib["1"]  # NORM 100
    assert not afib["2"] and not normal["2"]  # NORM 80 is below the negative threshold
    imi, _ = ptbxl.classes(TASKS.get("ptbxl/IMI"), index, DataConfig())
    assert not dict(zip(ids, imi, strict=True))["8"]  # IMI at likelihood 35 is not a positive (needs 100)


def test_challenge_readers_map_abbreviations_and_equivalences(shared_data):
    cpsc = DATASETS.get("cpsc2018").index(shared_data).set_index("record_id")
    assert "164889003" in cpsc.loc["A0003", "codes"] and cpsc.loc["A0003", "sex"] == "F"
    assert cpsc.loc["A0003", "age"] == 81.0
    assert len(cpsc.index.unique()) == len(cpsc)  # A0001-A0010 appear in two releases, kept once
    assert normalize_codes(["713427006"])[0] == normalize_codes(["RBBB"])[0]
    assert normalize_codes(["63593006"])[0] == normalize_codes(["284470004"])[0]
    assert normalize_codes(["XYZ"])[1] == ["XYZ"]
    g12ec = DATASETS.get("g12ec").index(shared_data).set_index("record_id")
    assert len(g12ec) == 49
    assert g12ec.loc["E00271", "codes"] == frozenset({"59118001"}) and g12ec.loc["E00271", "sex"] == "F"
    assert np.isnan(g12ec.loc["E00001", "age"])


@pytest.mark.parametrize("dataset", ["ptbxl", "g12ec", "cpsc2018"])
def test_every_good_record_loads_on_every_reader(shared_data, dataset, tmp_path):
    reader = DATASETS.get(dataset)
    cache = reader.lead_cache(shared_data, "II", tmp_path)
    status = [s["status"] for s in cache.status]
    expected_rejected = {"ptbxl": 0, "g12ec": 2, "cpsc2018": 10}[dataset]  # gains 4880/mV; unlabelled originals
    assert status.count("rejected") == expected_rejected
    good = {i for i, s in enumerate(status) if s != "rejected"}
    assert set(cache.window_record.tolist()) == good
    assert np.isfinite(cache.signals).all()


def test_load_task_memmaps_zscored_windows_and_reuses_cache(shared_data, tmp_path, monkeypatch):
    data = load_task("cpsc2018/AF", shared_data, lead="II", cache_dir=tmp_path)
    assert data.signals.shape[1] == 5000 and data.signals.dtype == np.float32
    assert isinstance(data.signals, np.memmap)
    assert data.n_windows > data.n_records  # CPSC records longer than 10 s give several windows
    in_task = data.window_record >= 0
    assert set(np.unique(data.window_record[in_task])) == set(range(data.n_records))
    # a record's windows are cut from the record z-scored as a whole: its samples have mean 0, sd 1
    ten_s = int(np.flatnonzero(data.records["record_id"] == "A0002")[0])  # 5000 samples: windows 0-10 s, 5-15 s
    first, second = np.asarray(data.signals[data.windows_of(np.array([ten_s]))])
    assert abs(first.mean()) < 1e-3 and abs(first.std() - 1) < 1e-3
    np.testing.assert_array_equal(second[:2500], first[2500:])
    assert not second[2500:].any()
    assert set(np.unique(data.labels)) == {0, 1}
    assert list(data.records.columns) == ["record_id", "patient_id", "age", "sex", "strat_fold"]

    import benchmark.data.signals as signals

    def no_wfdb(*args, **kwargs):
        raise AssertionError("second load read a signal file")

    monkeypatch.setattr(signals, "read_digital", no_wfdb)
    again = load_task("cpsc2018/AF", shared_data, lead="II", cache_dir=tmp_path)
    assert again.data_version == data.data_version
    np.testing.assert_array_equal(np.asarray(again.signals), np.asarray(data.signals))
    np.testing.assert_array_equal(again.window_record, data.window_record)
    # another task on the same lead maps the same lead cache; a task's own cache holds no windows
    other = load_task("cpsc2018/PVC", shared_data, lead="II", cache_dir=tmp_path)
    assert other.signals.filename == data.signals.filename
    assert not np.array_equal(other.window_record >= 0, in_task)
    task_bytes = sum(f.stat().st_size for f in (tmp_path / "tasks").rglob("*") if f.is_file())
    assert task_bytes < data.signals.nbytes / 20


def test_lead_by_name_gives_that_lead(shared_data, tmp_path):
    lead_ii = load_task("ptbxl/AFIB", shared_data, lead="II", cache_dir=tmp_path)
    lead_v1 = load_task("ptbxl/AFIB", shared_data, lead="v1", cache_dir=tmp_path)
    assert lead_v1.lead == "V1"
    assert not np.allclose(np.asarray(lead_ii.signals[:5]), np.asarray(lead_v1.signals[:5]))
    assert lead_ii.data_version != lead_v1.data_version
    with pytest.raises(ConfigError, match="unknown lead"):
        load_task("ptbxl/AFIB", shared_data, lead="V7", cache_dir=tmp_path)


def test_rejected_records_are_quarantined_not_loaded(shared_data, tmp_path):
    data = load_task("g12ec/PAC", shared_data, cache_dir=tmp_path)
    files = [q["file"] for q in data.quarantine]
    assert any("E00015" in f for f in files)
    assert "E00015" not in set(data.records["record_id"])
    assert "4880" in data.quarantine[0]["reason"]


def test_missing_dataset_names_layout_and_download_command(tmp_path):
    with pytest.raises(DataMissingError, match="simecg-bench data download ptbxl --dir"):
        load_task("ptbxl/AFIB", tmp_path, cache_dir=tmp_path)


def test_a_root_without_the_dataset_folder_is_not_mistaken_for_it(shared_data, tmp_path):
    import shutil

    root = tmp_path / "root"
    shutil.copytree(shared_data / "cpsc2018" / "challenge2020_dx_snomed", root / "cpsc2018")
    assert DATASETS.get("cpsc2018").find_root(root) == root / "cpsc2018"
    assert DATASETS.get("cpsc2018").find_root(root / "cpsc2018") == root / "cpsc2018"
    with pytest.raises(DataMissingError):
        DATASETS.get("g12ec").find_root(root)  # A*.hea of CPSC2018 are not G12EC records
    with pytest.raises(DataMissingError):
        DATASETS.get("g12ec").find_root(shared_data / "ptbxl")


def test_cpsc2018_original_release_reads_struct_and_reference_csv(shared_data, tmp_path):
    import shutil

    folder = tmp_path / "cpsc2018" / "TrainingSet1"
    shutil.copytree(shared_data / "cpsc2018" / "original", folder)
    names = sorted(p.stem for p in folder.glob("*.mat"))
    rows = [f"{name},{1 if i % 2 else 2},," for i, name in enumerate(names)]  # labels made up for the test
    (folder / "REFERENCE.csv").write_text("Recording,First_label,Second_label,Third_label\n" + "\n".join(rows) + "\n")
    index = DATASETS.get("cpsc2018").index(tmp_path).set_index("record_id")
    assert len(index) == 10 and (index["problem"] == "").all()
    assert index.loc["A1980", "sex"] == "M" and index.loc["A1980", "age"] == 52.0
    assert index.loc["A1980", "codes"] == frozenset({"164889003"})  # label 2 = AF
    assert index.loc["A1981", "codes"] == frozenset({"426783006"})  # label 1 = Normal
    data = load_task("cpsc2018/AF", tmp_path, cache_dir=tmp_path / "cache")
    assert data.n_records == 10 and data.labels.sum() == 5 and data.signals.shape[0] >= 10
