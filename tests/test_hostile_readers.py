"""Hostile input for the WFDB / PhysioNet-CinC readers: property-based tests (hypothesis).

Whatever a data folder holds (malformed headers, truncated or oversized signal files, absurd
sizes and sampling rates, odd names), a reader gives either a correct record or the suite's own
one-line error naming the file: never another exception, never a hang (pytest-timeout), and
never an allocation sized by what a file *declares* rather than by what it holds (tracemalloc).
Records are synthesized here (no real data needed), so every example is reproducible
(``derandomize``) and fast.
"""

from __future__ import annotations

import os
import struct
import tempfile
import tracemalloc
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from benchmark.data import challenge, matfile
from benchmark.data.datacheck import check_folder
from benchmark.data.header import parse_header, read_header
from benchmark.data.signals import read_and_check
from simecg.errors import DataError, SimECGError
from simecg.signal import LEADS

pytestmark = pytest.mark.timeout(60)

FAST = settings(max_examples=120, deadline=2000, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.too_slow])
FS = 500
N = 1000  # samples of a synthesized record (2 s at 500 Hz: enough for the amplitude check)
MEMORY_BOUND = 32 << 20  # bytes any single read may allocate (the synthesized files are < 1 MB)


# ---- helpers ---------------------------------------------------------------------------------------

def ecg_digital(n: int = N, gain: float = 1000.0, seed: int = 0) -> np.ndarray:
    """``(n, 12)`` int16 ADC samples of an ECG-like signal of ~1.5 mV on every lead."""
    rng = np.random.default_rng(seed)
    t = np.arange(n) / FS
    phases = rng.uniform(0, 2 * np.pi, 12)
    mv = 0.75 * np.sin(2 * np.pi * 1.2 * t[:, None] + phases) + 0.02 * rng.standard_normal((n, 12))
    return np.round(mv * gain).astype(np.int16)


def header_text(record: str, file: str, n_samples: Any = N, fs: Any = FS, fmt: str = "16",
                gain: str = "1000(0)/mV", n_sig: Any = 12, checksums: list[int] | None = None) -> str:
    lines = [f"{record} {n_sig} {fs} {n_samples}"]
    for i, lead in enumerate(LEADS):
        checksum = checksums[i] if checksums else 0
        lines.append(f"{file} {fmt} {gain} 16 0 0 {checksum} 0 {lead}")
    return "\n".join(lines) + "\n"


def checksums_of(digital: np.ndarray) -> list[int]:
    return [int(c) & 0xFFFF for c in digital.astype(np.int64).sum(axis=0)]


def run_bounded(call: Callable[[], Any], limit: int = MEMORY_BOUND) -> Any:
    """``call()``, failing when it allocates more than ``limit`` bytes at its peak (tracemalloc)."""
    tracemalloc.start()
    try:
        result = call()
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < limit, f"peak allocation {peak / 2**20:.1f} MiB"
    return result


def assert_suite_error(exc: SimECGError, path: Path) -> None:
    """The suite's error: one line that names the file."""
    text = str(exc)
    assert "\n" not in text, text
    assert str(path) in text or path.name in text, text


def assert_outcome(check: Any, signal: np.ndarray | None, fs: float, header: Path) -> None:
    """What ``read_and_check`` promises: a usable record, or a rejection with one-line reasons."""
    assert check.file == str(header)
    assert check.status in ("ok", "repaired", "rejected")
    assert check.reasons or check.status == "ok"
    assert all("\n" not in r and r for r in check.reasons)
    if check.status == "rejected":
        assert signal is None
        return
    assert signal is not None and signal.ndim == 2 and signal.shape[1] == 12 and signal.dtype == np.float32
    assert np.isfinite(signal).all()
    assert np.isfinite(fs) and fs > 0


# A name for odd paths: unicode, spaces, dots, very long (but a valid file name: < 255 bytes).
NAMES = st.one_of(
    st.sampled_from(["rec", "r é c", "记录", "a" * 200, "-dash", "with\ttab", "ünï cødé"]),
    st.text(st.characters(blacklist_categories=("Cs", "Cc"), blacklist_characters="/\\"), min_size=1,
            max_size=40).filter(lambda s: s.strip() and len(s.encode()) < 200 and s not in (".", "..")),
)
SIZES = st.one_of(st.just(N), st.sampled_from([0, -1, 1, N - 1, N + 1, 2 * N, 10**7, 10**12, 2**63, "1e12",
                                               "nan", "x", ""]), st.integers(-10, 10**13))
RATES = st.one_of(st.just(FS), st.sampled_from([0, -500, "nan", "inf", "-inf", 1e12, 1e-9, "1e400", "500/1000",
                                                0.001, 10**30, "x"]), st.floats(allow_nan=True))
GAINS = st.one_of(st.just("1000(0)/mV"), st.sampled_from([
    "0/mV", "nan/mV", "inf/mV", "1e999/mV", "-1000(0)/mV", "1e-300/mV", "1000(" + "9" * 5000 + ")/mV",
    "1000(99999999999999999999)/mV", "1000/mv", "1000/uV", "1000()", "(0)/mV", "e/mV", ".", "1000(0)/",
]), st.text(max_size=12).filter(lambda s: s.strip() and not any(c.isspace() for c in s)))
FORMATS = st.sampled_from(["16", "16", "212", "8", "80", "24", "32", "61", "160", "310", "311", "999", "x", "16+24",
                           "16x2", "508"])
SIGNAL_FILES = st.sampled_from(["{name}.dat", "{name}.dat", "../outside.dat", "/etc/hostname", "missing.dat",
                                "sub/{name}.dat", "a" * 300 + ".dat", "/dev/zero", "."])


# ---- headers ---------------------------------------------------------------------------------------

@FAST
@given(text=st.text(max_size=400))
def test_any_header_text_parses_or_is_refused_with_a_one_line_data_error(text):
    path = Path("/data/odd dir/ré c.hea")
    try:
        header = parse_header(text, path)
    except DataError as exc:
        assert_suite_error(exc, path)
        return
    assert header.n_sig >= 1 and header.n_samples >= 1 and len(header.signals) == header.n_sig
    assert np.isfinite(header.fs) and header.fs > 0
    assert all(np.isfinite(s.gain) and s.gain != 0 for s in header.signals)


@FAST
@given(record=st.text(max_size=20), n_sig=st.one_of(st.integers(-3, 40), st.text(max_size=5)), fs=RATES,
       n_samples=SIZES, fmt=FORMATS, gain=GAINS,
       extra=st.lists(st.text(st.characters(blacklist_categories=("Cs",)), max_size=30), max_size=3))
def test_header_fields_out_of_range_are_refused_naming_the_file(record, n_sig, fs, n_samples, fmt, gain, extra):
    text = header_text(record or "r", "r.dat", n_samples, fs, fmt, gain, n_sig) + "\n".join(extra)
    path = Path("/data/r.hea")
    try:
        header = parse_header(text, path)
    except DataError as exc:
        assert_suite_error(exc, path)
        return
    assert 0 < header.fs < float("inf") and header.n_samples >= 1
    for sig in header.signals:
        assert np.isfinite(sig.gain) and sig.gain != 0 and abs(sig.baseline) < 2**32


def test_header_that_is_a_fifo_or_huge_is_refused_without_reading_it(tmp_path):
    fifo = tmp_path / "A0001.hea"
    os.mkfifo(fifo)
    with pytest.raises(DataError, match="not a regular file"):
        read_header(fifo)  # opening a FIFO for reading would block forever
    huge = tmp_path / "A0002.hea"
    with huge.open("wb") as fh:
        fh.truncate(64 << 20)  # sparse: 64 MiB of zeros that cost no disk
    with pytest.raises(DataError, match="A0002.hea.*too large"):
        run_bounded(lambda: read_header(huge), limit=4 << 20)


# ---- WFDB records (.hea + .dat) ------------------------------------------------------------------

@FAST
@given(name=NAMES, n_samples=SIZES, fs=RATES, gain=GAINS, fmt=FORMATS, signal_file=SIGNAL_FILES,
       cut=st.integers(-300, 300), junk=st.booleans(), seed=st.integers(0, 3))
def test_wfdb_record_reads_correctly_or_is_rejected(name, n_samples, fs, gain, fmt, signal_file, cut, junk, seed):
    digital = ecg_digital(seed=seed)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "odd folder ü"
        folder.mkdir()
        data = digital.astype("<i2").tobytes()
        if junk:
            data = np.random.default_rng(seed).bytes(len(data))
        data = data[:cut] if cut < 0 else data + bytes(cut)  # truncated, or oversized with trailing zeros
        (folder / f"{name}.dat").write_bytes(data)
        (folder / "outside.dat").write_bytes(data)
        file = signal_file.format(name=name)
        hea = folder / f"{name}.hea"
        hea.write_text(header_text(name, file, n_samples, fs, fmt, gain, checksums=checksums_of(digital)))
        check, signal, rate = run_bounded(lambda: read_and_check(hea, ("II",)))
        assert_outcome(check, signal, rate, hea)
        if signal is not None and fmt == "16":  # what a fmt-16 record holds is known exactly: compare
            declared = int(n_samples)
            expected = np.frombuffer(data[: declared * 24], "<i2").reshape(declared, 12)
            gain_value = float(gain.split("(")[0].split("/")[0])
            np.testing.assert_allclose(signal, expected.astype(np.float32) / gain_value, rtol=1e-6)
            assert rate == float(str(fs).split("/")[0])
        well_formed = (n_samples, fs, gain, fmt, signal_file, cut, junk) == (N, FS, "1000(0)/mV", "16", "{name}.dat",
                                                                          0, False)
        if well_formed:
            assert check.status == "ok", check.reasons


@pytest.mark.parametrize("name", ["rec", "记录", "a" * 200, "ünïcødé", "-dash", "r.e.c"])
def test_well_formed_record_with_an_odd_name_reads_exactly_and_truncation_is_named(tmp_path, name):
    digital = ecg_digital()
    folder = tmp_path / "odd folder ü"
    folder.mkdir()
    (folder / f"{name}.dat").write_bytes(digital.astype("<i2").tobytes())
    hea = folder / f"{name}.hea"
    hea.write_text(header_text(name, f"{name}.dat", checksums=checksums_of(digital)))
    check, signal, fs = read_and_check(hea, LEADS)
    assert check.status == "ok" and fs == FS, check.reasons
    np.testing.assert_array_equal(signal, digital.astype(np.float32) / 1000)
    (folder / f"{name}.dat").write_bytes(digital.astype("<i2").tobytes()[:-2])
    check, signal, _ = read_and_check(hea, LEADS)
    assert signal is None and check.reasons == [f"signal file {name}.dat truncated: 23998 bytes, header needs 24000"]


@pytest.mark.parametrize("fmt", ["16", "212", "8", "80", "24", "32", "310"])
def test_absurd_declared_length_is_refused_before_allocating(tmp_path, fmt):
    (tmp_path / "r.dat").write_bytes(bytes(240))
    hea = tmp_path / "r.hea"
    for n_samples in (10**7, 10**12):  # ~1e8 samples would be gigabytes once decoded
        hea.write_text(header_text("r", "r.dat", n_samples, fmt=fmt))
        check, signal, _ = run_bounded(lambda: read_and_check(hea, ("II",)), limit=4 << 20)
        assert signal is None and check.status == "rejected"
        reason = "; ".join(check.reasons)
        assert "MemoryError" not in reason and ("r.dat" in reason or "24 h" in reason), reason


def test_signal_file_outside_the_record_folder_is_refused(tmp_path):
    folder = tmp_path / "data"
    folder.mkdir()
    digital = ecg_digital()
    (tmp_path / "secret.dat").write_bytes(digital.astype("<i2").tobytes())
    hea = folder / "r.hea"
    hea.write_text(header_text("r", "../secret.dat"))
    check, signal, _ = read_and_check(hea, ("II",))
    assert signal is None and "beside its header" in "; ".join(check.reasons)


# ---- Challenge .mat (v4 'val') and CPSC2018 original .mat (v5 struct) ---------------------------------

def mat_v4(name: str, array: np.ndarray) -> bytes:
    """A MATLAB v4 file holding one int16 matrix (the Challenge's format)."""
    rows, cols = array.shape
    head = struct.pack("<5i", 30, rows, cols, 0, len(name) + 1) + name.encode() + b"\0"
    return head + np.asarray(array, "<i2").tobytes(order="F")


def mat_v5_bomb(decoded: int) -> bytes:
    """A MATLAB v5 file whose one compressed element inflates to ``decoded`` bytes (a zip bomb)."""
    head = b"MATLAB 5.0 MAT-file, hostile".ljust(116, b" ") + bytes(8) + struct.pack("<H", 0x0100) + b"IM"
    body = zlib.compressobj(9)
    chunk = bytes(1 << 20)
    inner = struct.pack("<II", 14, decoded - 8)
    payload = body.compress(inner)
    for _ in range(decoded // len(chunk)):
        payload += body.compress(chunk)
    payload += body.flush()
    return head + struct.pack("<II", 15, len(payload)) + payload


@FAST
@given(cut=st.integers(-2000, 2000), rows=st.sampled_from([12, 11, 0, 1, 10**6]),
       cols=st.sampled_from([N, N - 1, 0, 10**9, 2**31 - 1]), junk=st.sampled_from(["none", "random", "text", "v5"]),
       n_samples=st.sampled_from([N, N + 5, 10**9]), seed=st.integers(0, 3))
def test_challenge_mat_reads_correctly_or_is_rejected(cut, rows, cols, junk, n_samples, seed):
    digital = ecg_digital(seed=seed)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        data = mat_v4("val", digital.T)
        if (rows, cols) != (12, N):  # the matrix header declares another shape than the data it holds
            data = struct.pack("<5i", 30, rows, cols, 0, 4) + data[20:]
        data = {"none": data, "random": np.random.default_rng(seed).bytes(len(data)),
                "text": b"not a mat file\n" * 10, "v5": mat_v5_bomb(1 << 20)}[junk]
        data = data[:cut] if cut < 0 else data + bytes(cut)
        (folder / "E00001.mat").write_bytes(data)
        hea = folder / "E00001.hea"
        hea.write_text(header_text("E00001.mat", "E00001.mat", n_samples, fmt="16+24",
                                   checksums=checksums_of(digital)))
        check, signal, fs = run_bounded(lambda: read_and_check(hea, ("II",)))
        assert_outcome(check, signal, fs, hea)
        if signal is not None:
            np.testing.assert_allclose(signal, digital.astype(np.float32) / 1000.0, rtol=1e-6)
        if (cut, rows, cols, junk, n_samples) == (0, 12, N, "none", N):
            assert check.status == "repaired" and signal is not None, check.reasons


def test_mat_zip_bomb_is_refused_before_inflating(tmp_path, monkeypatch):
    """A 50-KB .mat inflating to 64 MiB: refused after reading at most the limit, keeping memory small."""
    (tmp_path / "E00001.mat").write_bytes(mat_v5_bomb(64 << 20))
    hea = tmp_path / "E00001.hea"
    hea.write_text(header_text("E00001", "E00001.mat"))
    check, signal, _ = run_bounded(lambda: read_and_check(hea, ("II",)), limit=8 << 20)
    assert signal is None and "E00001.mat" in check.reasons[0] and "inflates" in check.reasons[0]
    # the CPSC2018 original format (no header) has its own limit: a record of at most hours, not 64 MiB here
    monkeypatch.setattr(challenge, "MAX_ORIGINAL_BYTES", 16 << 20)
    original = tmp_path / "A1980.mat"
    original.write_bytes(mat_v5_bomb(64 << 20))
    check, signal, _ = run_bounded(lambda: challenge._read_original(original, ("II",)), limit=8 << 20)
    assert signal is None and "inflates" in check.reasons[0]
    # a header declaring a long record does not lift the bound on what compressed data may inflate to
    monkeypatch.setattr(matfile, "MAX_INFLATED_BYTES", 16 << 20)
    hea.write_text(header_text("E00001", "E00001.mat", n_samples=30_000_000))  # 17 h at 500 Hz: 5.8 GB as doubles
    check, signal, _ = run_bounded(lambda: read_and_check(hea, ("II",)), limit=8 << 20)
    assert signal is None and "compressed data inflates to more than 16777216 bytes" in check.reasons[0]


@FAST
@given(data=st.binary(max_size=600), prefix=st.sampled_from([b"", b"MATLAB 5.0 MAT-file".ljust(126) + b"IM"]))
def test_cpsc_original_mat_of_any_bytes_is_read_or_rejected(data, prefix):
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "A1980.mat"
        path.write_bytes(prefix + data)
        check, signal, fs = run_bounded(lambda: challenge._read_original(path, ("II",)))
        assert_outcome(check, signal, fs, path)


def test_cpsc_original_with_odd_data_is_rejected_not_raised(tmp_path):
    import scipy.io

    for i, data in enumerate([np.zeros((12, 0)), np.array([["a", "b"]]), np.zeros((3, 4, 5)),
                              np.full((12, 100), np.nan)]):
        path = tmp_path / f"A{i:04d}.mat"
        scipy.io.savemat(path, {"ECG": {"data": data, "sex": "M", "age": 50}})
        check, signal, _ = challenge._read_original(path, ("II",))
        assert signal is None and check.status == "rejected" and check.reasons, (data.shape, check.reasons)


# ---- folders: `data check` and the readers' indexes --------------------------------------------------

CSV_VALUES = st.one_of(st.sampled_from(["", "nan", "x", "-1", "1.5", "300", "1e400", "{'NORM': 100.0}", "{", "[]",
                                        "../../etc/passwd", "/abs/path", "records500/00000/00001_hr", "ü"]),
                       st.integers(-5, 10**20).map(str), st.text(max_size=8))


@settings(FAST, max_examples=60)
@given(values=st.fixed_dictionaries({c: CSV_VALUES for c in ("ecg_id", "patient_id", "age", "sex", "scp_codes",
                                                              "strat_fold", "filename_hr")}),
       statements=st.sampled_from(["NORM,x\n", "", "\0\0", "a,b\n1\n1,2,3,4\n"]))
def test_ptbxl_database_with_any_values_gives_a_report_or_a_data_error(values, statements):
    import csv

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "ptbxl"
        (folder / "records500/00000").mkdir(parents=True)
        digital = ecg_digital()
        (folder / "records500/00000/00001_hr.dat").write_bytes(digital.astype("<i2").tobytes())
        (folder / "records500/00000/00001_hr.hea").write_text(
            header_text("00001_hr", "00001_hr.dat", checksums=checksums_of(digital)))
        good = {"ecg_id": "1", "patient_id": "7", "age": "50", "sex": "1", "scp_codes": "{'NORM': 100.0}",
                "strat_fold": "3", "filename_hr": "records500/00000/00001_hr", "filename_lr": ""}
        with (folder / "ptbxl_database.csv").open("w", newline="") as fh:
            writer = csv.DictWriter(fh, fieldnames=list(good))
            writer.writeheader()
            writer.writerow(good)
            writer.writerow({**good, **values, "filename_lr": ""})
        (folder / "scp_statements.csv").write_text(statements)
        try:
            report = run_bounded(lambda: check_folder(folder, progress=False))
        except SimECGError as exc:
            assert_suite_error(exc, folder / "scp_statements.csv" if "scp_statements" in str(exc)
                               else folder / "ptbxl_database.csv")
            return
        assert len(report.records) == (1 if {**good, **values} == good else 2)  # an exact copy is merged
        first = report.records[0]
        assert first.status == "ok", first.reasons  # the good row stays good whatever its neighbour holds


@settings(FAST, max_examples=40)
@given(rows=st.lists(st.lists(CSV_VALUES, min_size=0, max_size=5), max_size=4))
def test_reference_csv_with_any_values_never_breaks_the_index(rows):
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "cpsc2018"
        folder.mkdir()
        (folder / "REFERENCE.csv").write_text(
            "Recording,First_label,Second_label,Third_label\n" + "".join(",".join(r) + "\n" for r in rows))
        (folder / "A0001.mat").write_bytes(b"not a mat")
        report = check_folder(folder, progress=False)
        assert [r.status for r in report.records] == ["rejected"]


def test_fifos_in_a_data_folder_do_not_hang_data_check(tmp_path):
    folder = tmp_path / "g12ec"
    folder.mkdir()
    os.mkfifo(folder / "E00001.hea")
    os.mkfifo(folder / "E00002.mat")
    digital = ecg_digital()
    (folder / "E00003.mat").write_bytes(mat_v4("val", digital.T))
    (folder / "E00003.hea").write_text(header_text("E00003", "E00003.mat", checksums=checksums_of(digital))
                                       + "#Dx: 426783006\n")
    os.mkfifo(folder / "E00004.mat")
    (folder / "E00004.hea").write_text(header_text("E00004", "E00004.mat") + "#Dx: 426783006\n")
    report = check_folder(folder, progress=False)
    status = {Path(r.file).name: r.status for r in report.records}
    expected = {"E00001.hea": "rejected", "E00002.mat": "rejected", "E00003.hea": "ok", "E00004.hea": "rejected"}
    assert status == expected, status
    # loading for a run reads (and hashes) the same files: it must not block either
    from benchmark.registries import DATASETS

    cache = DATASETS.get("g12ec").lead_cache(folder, "II", tmp_path / "cache")
    assert {Path(s["file"]).name: s["status"] for s in cache.status} == expected
