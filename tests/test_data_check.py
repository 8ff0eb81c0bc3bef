"""Data checks on copies of real files, corrupted on purpose: each corruption gives its stated reason."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from benchmark.cli import main
from benchmark.data.datacheck import check_folder

pytestmark = pytest.mark.realdata


def _copy_g12ec(shared_data: Path, tmp_path: Path, names=("E00001", "E00002", "E00271")) -> Path:
    folder = tmp_path / "g12ec"
    folder.mkdir()
    for name in names:
        for ext in (".hea", ".mat"):
            shutil.copy(shared_data / "g12ec" / f"{name}{ext}", folder / f"{name}{ext}")
    return folder


def _copy_ptbxl(shared_data: Path, tmp_path: Path, n: int = 3) -> Path:
    folder = tmp_path / "ptbxl"
    (folder / "records500" / "00000").mkdir(parents=True)
    lines = (shared_data / "ptbxl" / "ptbxl_database.csv").read_text().splitlines(keepends=True)
    (folder / "ptbxl_database.csv").write_text("".join(lines[: n + 1]))
    shutil.copy(shared_data / "ptbxl" / "scp_statements.csv", folder / "scp_statements.csv")
    for i in range(1, n + 1):
        for ext in (".hea", ".dat"):
            name = f"records500/00000/{i:05d}_hr{ext}"
            shutil.copy(shared_data / "ptbxl" / name, folder / name)
    return folder


def _reasons(report) -> dict[str, str]:
    return {Path(r.file).stem: (r.status, "; ".join(r.reasons)) for r in report.records}


def test_real_folders_are_usable_and_quirks_are_reported(shared_data):
    g12ec = check_folder(shared_data / "g12ec", progress=False)
    assert g12ec.counts == {"ok": 7, "repaired": 40, "rejected": 2} and g12ec.usable
    reasons = _reasons(g12ec)
    assert reasons["E00271"][0] == "repaired" and ".mat" in reasons["E00271"][1]
    assert reasons["E00793"][0] == "rejected" and "4880/mV" in reasons["E00793"][1]
    extra = _reasons(check_folder(shared_data / "extra", progress=False))
    assert extra["HR00599"][0] == "rejected" and "200/mV" in extra["HR00599"][1]
    assert extra["HR00001"] == ("repaired", "units written 'mv' instead of 'mV'; read as mV")


def test_truncated_and_bit_flipped_signal_files_are_rejected(shared_data, tmp_path):
    folder = _copy_ptbxl(shared_data, tmp_path)
    dat = folder / "records500/00000/00001_hr.dat"
    dat.write_bytes(dat.read_bytes()[:50000])
    dat2 = folder / "records500/00000/00002_hr.dat"
    raw = bytearray(dat2.read_bytes())
    raw[12345] ^= 0x10
    dat2.write_bytes(bytes(raw))
    reasons = _reasons(check_folder(folder, progress=False))
    assert reasons["00001_hr"][0] == "rejected" and "truncated" in reasons["00001_hr"][1]
    assert reasons["00002_hr"][0] == "rejected" and "checksum mismatch" in reasons["00002_hr"][1]
    assert reasons["00003_hr"] == ("ok", "")


def test_truncated_mat_file_is_rejected(shared_data, tmp_path):
    folder = _copy_g12ec(shared_data, tmp_path)
    mat = folder / "E00001.mat"
    mat.write_bytes(mat.read_bytes()[:40000])
    reasons = _reasons(check_folder(folder, progress=False))
    assert reasons["E00001"][0] == "rejected" and "truncated" in reasons["E00001"][1]


def test_edited_headers_give_clear_reasons(shared_data, tmp_path):
    folder = _copy_g12ec(shared_data, tmp_path, ("E00001", "E00002", "E00271", "E00004", "E00005"))
    # unknown diagnosis code
    hea = folder / "E00001.hea"
    hea.write_text(hea.read_text().replace("#Dx: 426783006", "#Dx: 426783006,NOTACODE"))
    # a missing lead: drop the V6 line
    hea = folder / "E00002.hea"
    lines = hea.read_text().splitlines()
    hea.write_text("\n".join([lines[0].replace(" 12 ", " 11 ", 1)] + [x for x in lines[1:] if not x.endswith(" V6")]))
    # unreadable header
    (folder / "E00271.hea").write_bytes(b"\xff\xfe garbage \x00")
    # wrong gain (a 200/mV header like the extra/ quirk)
    hea = folder / "E00004.hea"
    hea.write_text(hea.read_text().replace("1000/mV", "200/mV"))
    report = check_folder(folder, progress=False)
    reasons = _reasons(report)
    assert "unknown diagnosis code(s) NOTACODE" in reasons["E00001"][1]
    assert "missing leads: V6" in reasons["E00002"][1]
    assert "unreadable header" in reasons["E00271"][1]
    assert "ADC gain 200/mV" in reasons["E00004"][1] and "5x too large" in reasons["E00004"][1]
    assert reasons["E00005"] == ("ok", "")
    assert report.summary() == "1 ok, 0 repaired, 4 rejected" and report.usable


def test_nan_and_flat_leads_are_rejected(shared_data, tmp_path):
    folder = _copy_ptbxl(shared_data, tmp_path)
    for i, value in ((1, -32768), (2, 7)):
        dat = folder / f"records500/00000/{i:05d}_hr.dat"
        hea = folder / f"records500/00000/{i:05d}_hr.hea"
        samples = np.fromfile(dat, dtype="<i2").reshape(-1, 12)
        samples[:, 1] = value  # lead II: all "no data" (WFDB NaN) or a constant
        samples.tofile(dat)
        lines = hea.read_text().splitlines()
        fields = lines[2].split()
        fields[6] = str(int(samples[:, 1].astype(np.int64).sum()) & 0xFFFF)  # keep the checksum consistent
        lines[2] = " ".join(fields)
        hea.write_text("\n".join(lines) + "\n")
    reasons = _reasons(check_folder(folder, progress=False))
    assert "lead II has 5000 NaN samples" in reasons["00001_hr"][1]
    assert "flat lead II" in reasons["00002_hr"][1]


def test_cli_prints_problem_lines_and_summary_and_fails_when_records_are_rejected(shared_data, capsys):
    assert main(["data", "check", str(shared_data / "g12ec")]) == 1
    out = capsys.readouterr().out.strip().splitlines()
    assert out[-4] == "7 ok, 40 repaired, 2 rejected"
    assert out[-3].startswith("1 group(s) of records with identical signals (2 records)")
    assert out[-2] == "  identical signals: E07509.hea, E07510.hea"
    assert out[-1].startswith("not clean: 2 of 49 records rejected")
    assert any(line.startswith("E00015.hea: rejected:") for line in out)
    assert len(out) == 46


@pytest.mark.slow
def test_check_groups_records_with_identical_signals(shared_data, tmp_path):
    report = check_folder(shared_data / "ptbxl", progress=False)
    assert report.duplicates == [["records500/00000/00137_hr.hea", "records500/00000/00138_hr.hea"],
                                 ["records500/00000/00143_hr.hea", "records500/00000/00144_hr.hea"]]
    folder = _copy_ptbxl(shared_data, tmp_path)  # three distinct records
    assert check_folder(folder, progress=False).duplicates == []


def test_cli_usable_accepts_a_folder_with_some_rejected_records(shared_data, capsys):
    assert main(["data", "check", str(shared_data / "g12ec"), "--usable"]) == 0
    assert capsys.readouterr().out.strip().splitlines()[-1].startswith("usable: 47 of 49 records can be used")
    assert main(["data", "check", str(shared_data / "g12ec"), "--usable", "--format", "csv"]) == 0
    captured = capsys.readouterr()
    assert captured.out.startswith("file,status,reason") and captured.err.startswith("usable: 47 of 49")


def test_cli_exits_0_on_a_clean_folder_and_1_when_nothing_is_usable(shared_data, tmp_path, capsys):
    folder = _copy_ptbxl(shared_data, tmp_path)
    assert main(["data", "check", str(folder)]) == 0
    assert capsys.readouterr().out.strip().splitlines()[-1] == "clean: all 3 records can be used"
    for i in (1, 2, 3):
        dat = folder / f"records500/00000/{i:05d}_hr.dat"
        dat.write_bytes(dat.read_bytes()[:1000])
    assert main(["data", "check", str(folder), "--usable"]) == 1
    assert capsys.readouterr().out.strip().splitlines()[-1] == "not usable: all 3 records are rejected"


def test_cli_help_documents_the_exit_codes(capsys):
    with pytest.raises(SystemExit):
        main(["data", "check", "--help"])
    text = capsys.readouterr().out
    assert "exit codes:" in text and "--usable" in text and "  1  not clean" in text


def test_cli_fails_on_a_folder_without_records(tmp_path, capsys):
    assert main(["data", "check", str(tmp_path)]) == 2
    assert "no ECG records found" in capsys.readouterr().err


def test_loading_applies_the_same_checks_and_lists_the_quarantine(shared_data, tmp_path):
    folder = _copy_ptbxl(shared_data, tmp_path, n=30)
    dat = folder / "records500/00000/00001_hr.dat"  # record 1 is NORM: a negative of every task
    dat.write_bytes(dat.read_bytes()[:1000])
    from benchmark.data.tasks import load_task

    data = load_task("ptbxl/LVH", tmp_path, cache_dir=tmp_path / "cache")
    assert "1" not in set(data.records["record_id"])
    assert len(data.quarantine) == 1 and "truncated" in data.quarantine[0]["reason"]
    assert data.quarantine[0]["file"].endswith("00001_hr.hea")


def test_implausible_amplitude_is_rejected_whatever_lead_is_asked(shared_data):
    from benchmark.data.header import read_header
    from benchmark.data.signals import RecordRejected, check_physical, check_record

    check, signal = check_record(read_header(shared_data / "ptbxl/records500/00000/00001_hr.hea"))
    assert check.status == "ok"
    check_physical(signal, ("II",))  # the real record passes
    for factor in (20.0, 0.02):  # a wrong unit (uV as mV) or a gain 50x off, on every lead
        with pytest.raises(RecordRejected, match="implausible amplitude"):
            check_physical(signal * factor, ("II",))


def test_duplicated_ecg_ids_are_an_error_naming_them_or_merged_when_identical(shared_data, tmp_path, capsys):
    """Two rows of one ecg_id would be two records of the split, one in training and one in test."""
    from benchmark.data.ptbxl import PTBXL
    from simecg.errors import DataError

    folder = _copy_ptbxl(shared_data, tmp_path)
    csv = folder / "ptbxl_database.csv"
    header, *rows = csv.read_text().splitlines(keepends=True)
    csv.write_text(header + "".join(rows) + rows[0] + rows[2])  # exact copies: one record each
    assert len(PTBXL().build_index(folder)) == 3
    changed = rows[2].rsplit(",", 1)[0] + ",changed\n"
    csv.write_text(header + "".join(rows) + rows[0] + changed)  # ecg_id 3 twice, with different contents
    with pytest.raises(DataError) as error:
        PTBXL().build_index(folder)
    assert str(csv) in str(error.value) and "ecg_id 3" in str(error.value) and "\n" not in str(error.value)
    assert main(["data", "check", str(folder)]) != 0  # `data check` names them too
    err = capsys.readouterr().err
    assert "ecg_id 3" in err and len(err.strip().splitlines()) == 1


def test_a_database_csv_with_a_header_and_no_rows_is_one_line_naming_it(shared_data, tmp_path, capsys):
    from benchmark.data.ptbxl import PTBXL
    from simecg.errors import DataError

    folder = _copy_ptbxl(shared_data, tmp_path)
    csv = folder / "ptbxl_database.csv"
    csv.write_text(csv.read_text().splitlines(keepends=True)[0])
    with pytest.raises(DataError, match="no records") as error:
        PTBXL().build_index(folder)
    assert str(csv) in str(error.value)
    assert main(["data", "check", str(folder)]) != 0
    err = capsys.readouterr().err
    assert str(csv) in err and len(err.strip().splitlines()) == 1
