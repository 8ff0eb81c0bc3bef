"""The ``folder`` corpus: a user's WFDB or NumPy files as 10-s, 500-Hz lead-II corpus items."""

from __future__ import annotations

import numpy as np
import pytest

from pretraining.config import PretrainConfig, corpus_options
from simecg.errors import ConfigError, DataError
from simecg.registries import CORPORA


def folder(size: int | None = None, seed: int = 0, **options):
    """The folder corpus, its options given as ``pretrain.corpus_options`` (CLI text allowed)."""
    entry = CORPORA.get("folder")
    return entry(size=size, seed=seed, options=corpus_options(PretrainConfig(corpus="folder", corpus_options=options)))


def _sine(seconds: float, fs: float, freq: float = 1.2) -> np.ndarray:
    t = np.arange(int(seconds * fs)) / fs
    return np.sin(2 * np.pi * freq * t).astype(np.float32)


def _write_wfdb(folder_path, name, signals, names, fs=500, units="mV"):
    import wfdb

    wfdb.wrsamp(name, fs=fs, units=[units] * len(names), sig_name=list(names), p_signal=np.stack(signals, axis=1),
                fmt=["16"] * len(names), adc_gain=[1000.0] * len(names), baseline=[0] * len(names),
                write_dir=str(folder_path))


def test_numpy_files_are_cut_into_10s_windows(tmp_path):
    np.save(tmp_path / "a.npy", _sine(25, 500))  # one ECG of 25 s: 2 windows
    np.save(tmp_path / "b.npy", np.stack([_sine(12, 500, 2.0), _sine(12, 500, 3.0)]))  # two ECGs: 1 window each
    corpus = folder(path=tmp_path)
    assert len(corpus) == 4
    batch = corpus.get_batch(np.array([1, 2, 3]))
    np.testing.assert_array_equal(batch[0], _sine(25, 500)[5000:10000])
    np.testing.assert_array_equal(batch[1], _sine(12, 500, 2.0)[:5000])
    np.testing.assert_array_equal(batch[2], _sine(12, 500, 3.0)[:5000])


def test_numpy_sampling_rate_option_resamples(tmp_path):
    np.save(tmp_path / "b.npy", np.stack([_sine(10, 250), 2 * _sine(10, 250)]))
    corpus = folder(path=str(tmp_path), fs="250")
    assert len(corpus) == 2
    batch = corpus.get_batch(np.array([0, 1]))
    assert batch.shape == (2, 5000) and batch.dtype == np.float32
    np.testing.assert_allclose(batch[0, 1000:4000], _sine(10, 500)[1000:4000], atol=2e-3)


def test_wfdb_records_give_lead_ii_in_mv(tmp_path):
    _write_wfdb(tmp_path, "r1", [0.2 * _sine(10, 500), 1.5 * _sine(10, 500)], ["I", "II"])
    _write_wfdb(tmp_path, "r2", [_sine(20, 500)], ["ECG"], units="uV")
    corpus = folder(path=tmp_path)
    assert len(corpus) == 3
    batch = corpus.get_batch(np.arange(3))
    assert np.abs(batch[0]).max() == pytest.approx(1.5, abs=1e-2)
    assert np.abs(batch[1]).max() == pytest.approx(1e-3, abs=1e-4)  # microvolts became millivolts
    assert set(corpus.identity()["files"]) == {"r1.hea", "r1.dat", "r2.hea", "r2.dat"}  # headers and signals


def test_size_draws_a_seeded_subset(tmp_path):
    np.save(tmp_path / "many.npy", np.stack([_sine(10, 500, 1 + i / 10) for i in range(10)]))
    a, b = folder(size=4, seed=0, path=tmp_path), folder(size=4, seed=0, path=tmp_path)
    c = folder(size=4, seed=1, path=tmp_path)
    assert len(a) == 4
    assert np.array_equal(a.get_batch(np.arange(4)), b.get_batch(np.arange(4)))
    assert not np.array_equal(a.windows, c.windows)
    assert len(folder(size=100, path=tmp_path)) == 10


def test_bad_files_raise_clear_errors_or_are_skipped(tmp_path):
    np.save(tmp_path / "good.npy", _sine(10, 500))
    np.save(tmp_path / "short.npy", _sine(4, 500))
    with pytest.raises(DataError, match=r"short\.npy.*4\.0 s"):
        folder(path=tmp_path)
    corpus = folder(path=tmp_path, skip_bad="true")
    assert len(corpus) == 1 and len(corpus.skipped) == 1
    (tmp_path / "short.npy").unlink()
    _write_wfdb(tmp_path, "limb", [_sine(10, 500)] * 2, ["I", "III"])
    with pytest.raises(DataError, match=r"limb\.hea.*no lead 'II'"):
        folder(path=tmp_path)
    (tmp_path / "limb.hea").write_text("garbage header\n")
    with pytest.raises(DataError, match=r"limb\.hea: unreadable WFDB header"):
        folder(path=tmp_path)


def test_options_are_checked(tmp_path):
    with pytest.raises(ConfigError, match="needs a path"):
        folder()
    with pytest.raises(ConfigError, match=r"unknown option pretrain\.corpus_options\.leads .*valid: fs, lead, path, "
                                          "skip_bad"):
        folder(path=tmp_path, leads="II")
    with pytest.raises(ConfigError, match=r"pretrain\.corpus_options\.fs .*positive"):
        folder(path=tmp_path, fs="0")
    with pytest.raises(ConfigError, match=r"pretrain\.corpus_options\.skip_bad: expected true/false"):
        folder(path=tmp_path, skip_bad="maybe")
    with pytest.raises(DataError, match="not a folder"):
        folder(path=tmp_path / "absent")
    with pytest.raises(DataError, match="no usable 10-s ECG"):
        folder(path=tmp_path)


@pytest.mark.realdata
def test_real_ptbxl_and_g12ec_folders(shared_data):
    ptbxl = folder(path=shared_data / "ptbxl" / "records100", size=20)  # 100 Hz records, resampled
    batch = ptbxl.get_batch(np.arange(20))
    assert batch.shape == (20, 5000) and np.all(np.isfinite(batch))
    assert 0.02 < float(np.median(batch.std(axis=1))) < 2.0  # plausible millivolts
    with pytest.raises(DataError, match="unreadable WFDB header"):
        folder(path=shared_data / "g12ec")
    assert len(folder(path=shared_data / "g12ec", skip_bad=True)) == 7


@pytest.mark.parametrize("bad, reason", [
    (np.zeros((0, 5000), np.float32), r"empty\.npy: holds no ECG"),
    (np.where(np.arange(6000) == 100, np.nan, _sine(12, 500)).astype(np.float32), r"nan\.npy: .*NaN"),
    (np.full((2, 6000), 0.3, np.float32), r"flat\.npy: .*constant"),
    (_sine(12, 500).astype(np.complex64), r"complex\.npy: .*complex"),
], ids=["empty", "nan", "constant", "complex"])
def test_unusable_numpy_files_are_one_clear_error_naming_them_or_skipped(tmp_path, bad, reason):
    """Each refused when the corpus is built (before any training), and skipped with skip_bad as the
    docstring says: an empty array, NaN values, a constant ECG (z-scoring it is undefined), complex values."""
    name = reason.split("\\.")[0]
    np.save(tmp_path / "good.npy", _sine(10, 500))
    np.save(tmp_path / f"{name}.npy", bad)
    with pytest.raises(DataError, match=reason) as error:
        folder(path=tmp_path)
    assert "\n" not in str(error.value)
    corpus = folder(path=tmp_path, skip_bad="true")
    assert len(corpus) == 1 and [s["file"] for s in corpus.skipped] == [str(tmp_path / f"{name}.npy")]
    assert np.isfinite(corpus.get_batch(np.arange(len(corpus)))).all()


def test_a_wfdb_record_with_nan_or_a_flat_lead_is_refused_or_skipped(tmp_path):
    _write_wfdb(tmp_path, "good", [_sine(10, 500)], ["II"])
    _write_wfdb(tmp_path, "flat", [np.zeros(5000, np.float32) + 0.5], ["II"])
    with pytest.raises(DataError, match=r"flat\.hea: .*constant"):
        folder(path=tmp_path)
    corpus = folder(path=tmp_path, skip_bad="true")
    assert len(corpus) == 1 and len(corpus.skipped) == 1
