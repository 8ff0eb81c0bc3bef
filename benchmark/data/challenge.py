"""G12EC and CPSC2018 in the PhysioNet/CinC Challenge 2020 format, and CPSC2018's original release.

Challenge format: ``NAME.hea`` (WFDB header, ``#Age:``, ``#Sex:``, ``#Dx:`` comments) + ``NAME.mat``
(MATLAB v4, ``val`` int16 12 x N). ``#Dx`` holds SNOMED CT ids, or abbreviations in the Feb-2020
CPSC2018 headers ("AF", "I-AVB", ...), mapped to SNOMED CT with the table in ``tasks.toml``.
A task code is found as the authors find it, as text inside the record's Dx codes, with no
equivalence (``data.dx_match = "substring"``, docs/protocol.md "Tasks"); ``"equivalent"`` matches
whole codes after the CinC scoring equivalences (RBBB = CRBBB, PAC = SVPB, PVC = VPB). The
positive and the normal class are decided apart: a record may be in both (``data.overlap``).

CPSC2018 original release: ``NAME.mat`` holding a struct ``ECG`` (``sex``, ``age``, ``data`` 12 x N
in mV, 500 Hz) and ``REFERENCE.csv`` (``Recording, First_label, Second_label, Third_label``,
labels 1-9). Without REFERENCE.csv such records have no labels and are reported, not used.

Accepted layouts (records are found recursively, so all of these work)::

    g12ec/E00001.hea + .mat                        flat (../shared/data)
    g12ec/g1/E00001.hea + .mat ...                  PhysioNet challenge-2020 training/georgia/
    cpsc2018/challenge2020_dx_abbrev/A0001.hea ...  ../shared/data (both header releases)
    cpsc2018/g1/A0001.hea + .mat ...                PhysioNet challenge-2020 training/cpsc_2018/
    cpsc2018/**/A1980.mat + REFERENCE.csv           CPSC2018 original release

A record present twice (two header releases of the same signals) is read from the newest header.
G12EC and CPSC2018 have no patient identifiers: ``patient_id`` is the record id.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from benchmark.data.base import DataConfig, TaskSpec, require_text_path
from benchmark.data.common import RecordDataset, parse_age, parse_sex
from benchmark.data.header import read_header
from benchmark.data.matfile import load_mat
from benchmark.data.signals import RecordCheck, RecordRejected, check_physical, read_and_check
from benchmark.data.table import task_table
from simecg.errors import DataError
from simecg.signal import LEADS

log = logging.getLogger(__name__)


@functools.lru_cache(maxsize=1)
def code_tables() -> tuple[dict[str, str], dict[str, str], dict[str, str]]:
    """(abbreviation -> SNOMED, SNOMED -> canonical member of its equivalence group, CPSC label -> abbrev)."""
    codes = task_table().get("codes", {})
    abbreviations = {k.lower(): str(v) for k, v in codes.get("abbreviations", {}).items()}
    canonical: dict[str, str] = {}
    for group in codes.get("equivalences", []):
        for code in group:
            canonical[str(code)] = str(group[0])
    reference = {str(k): str(v) for k, v in codes.get("cpsc2018_reference", {}).items()}
    return abbreviations, canonical, reference


def snomed_codes(tokens: list[str]) -> tuple[tuple[str, ...], list[str]]:
    """Dx tokens -> SNOMED CT ids as written (abbreviations mapped), plus the tokens that are neither."""
    abbreviations, _, _ = code_tables()
    out, unknown = [], []
    for token in (t.strip() for t in tokens):
        if not token:
            continue
        code = token if token.isdigit() else abbreviations.get(token.lower())
        if code is None:
            unknown.append(token)
            continue
        out.append(code)
    return tuple(out), unknown


def normalize_codes(tokens: list[str]) -> tuple[frozenset[str], list[str]]:
    """Dx tokens -> canonical SNOMED CT ids, plus the tokens that are neither SNOMED ids nor known abbreviations."""
    _, canonical, _ = code_tables()
    codes, unknown = snomed_codes(tokens)
    return frozenset(canonical.get(code, code) for code in codes), unknown


class ChallengeDataset(RecordDataset):
    """A dataset in the PhysioNet/CinC 2020 format (see module docstring)."""

    def __init__(self, name: str, layout: str, id_prefix: str = "", fixed_length: bool = False):
        self.name = name
        self.folder = name
        self.layout = layout
        self.id_prefix = id_prefix  # record names start with it ("E" G12EC, "A" CPSC2018)
        self.fixed_length = fixed_length  # G12EC: 10-s records (see RecordDataset.fixed_length)

    def is_dataset_folder(self, path: Path) -> bool:
        """Records of this dataset directly in ``path`` or one level down, and not a PTB-XL folder.

        Shallow on purpose: a data root holding other datasets must not pass for this one.
        """
        if (path / "ptbxl_database.csv").is_file():
            return False
        folders = [path] + sorted(p for p in path.iterdir() if p.is_dir() and not p.name.startswith("."))
        for folder in folders:
            for item in folder.iterdir():
                if item.suffix in (".hea", ".mat") and item.name.startswith(self.id_prefix):
                    return True
        return False

    def build_index(self, root: Path) -> pd.DataFrame:
        return _index(str(require_text_path(root.resolve())), _folder_stamp(root)).copy()

    def classes(self, spec: TaskSpec, index: pd.DataFrame, options: DataConfig) -> tuple[np.ndarray, np.ndarray]:
        if options.dx_match == "substring":
            texts = [",".join(dx) for dx in index["dx"]]
            return _found_in(texts, spec.positive), _found_in(texts, spec.negative)
        _, canonical, _ = code_tables()
        positive = {canonical.get(c, c) for c in spec.positive}
        negative = {canonical.get(c, c) for c in spec.negative}
        return (np.array([bool(codes & positive) for codes in index["codes"]], dtype=bool),
                np.array([bool(codes & negative) for codes in index["codes"]], dtype=bool))

    def read(self, row: Mapping[str, Any], leads: tuple[str, ...]) -> tuple[RecordCheck, np.ndarray | None, float]:
        path = Path(row["files"][0])
        if path.suffix == ".mat":
            return _read_original(path, leads)
        return read_and_check(path, leads, self.nominal_gain)


def _found_in(texts: list[str], codes: tuple[str, ...]) -> np.ndarray:
    """Per Dx text (the record's codes joined by commas), whether one of ``codes`` occurs in it as text.

    The authors' rule (``str.find`` of the code in the header's Dx line): a code inside a longer
    code counts too, and no equivalent code does.
    """
    return np.array([any(code in text for code in codes) for text in texts], dtype=bool)


# A CPSC2018 original record is 6-144 s of 12 leads at 500 Hz in doubles (<7 MB); a file inflating
# past this is refused before scipy inflates it (see benchmark.data.matfile).
MAX_ORIGINAL_BYTES = 256 << 20


def _read_original(path: Path, leads: tuple[str, ...]) -> tuple[RecordCheck, np.ndarray | None, float]:
    check = RecordCheck(str(path))
    try:
        data = _load_original(path)["data"]
        try:
            signal = np.asarray(data, dtype=np.float32).T
        except (TypeError, ValueError):
            raise RecordRejected(f"ECG.data of {path.name} is not a numeric matrix") from None
        if signal.ndim != 2 or signal.shape[1] != len(LEADS):
            raise RecordRejected(f"ECG.data has shape {np.shape(data)}; expected 12 x N (missing leads)")
        if len(signal) < 2:
            raise RecordRejected(f"ECG.data of {path.name} holds {len(signal)} samples per lead; expected a recording")
        check_physical(signal, leads)
    except RecordRejected as exc:
        return RecordCheck(str(path), "rejected", [str(exc)]), None, 0.0
    return check, signal, 500.0


def _load_original(path: Path) -> dict:
    try:
        ecg = load_mat(path, ("ECG",), MAX_ORIGINAL_BYTES)["ECG"][0, 0]
        return {"sex": ecg["sex"], "age": ecg["age"], "data": ecg["data"]}
    except DataError as exc:
        raise RecordRejected(f"unreadable CPSC2018 original .mat: {exc}") from None
    except Exception as exc:  # a .mat whose ECG is not the original release's struct
        raise RecordRejected(f"{path.name}: not a CPSC2018 original .mat (no ECG struct with sex, age and data: "
                             f"{exc.__class__.__name__})") from None


def _walk(root: Path, suffix: str):
    """Files ending in ``suffix`` under ``root``, sorted; names that are not UTF-8 are skipped with a warning.

    Such names (bytes from another system's encoding) cannot be stored in the index's string
    columns, nor printed as they are; renaming the file is the fix.
    """
    for dirpath, dirnames, filenames in _os_walk(root):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith(".") and _is_text(d, dirpath))
        for name in sorted(filenames):
            if name.endswith(suffix) and _is_text(name, dirpath):
                yield Path(dirpath) / name


def _is_text(name: str, folder: str) -> bool:
    try:
        name.encode("utf-8")
        return True
    except UnicodeEncodeError:
        log.warning("%s: skipped %s: its name is not valid UTF-8 (rename it)", folder.encode("utf-8", "replace")
                    .decode(), name.encode("utf-8", "backslashreplace").decode())
        return False


def _os_walk(root: Path):
    import os

    return os.walk(root)


def _folder_stamp(root: Path) -> tuple:
    """Cheap change detector for the per-process index cache: names, sizes and mtimes of headers."""
    stamp = []
    for path in list(_walk(root, ".hea")) + list(_walk(root, ".csv")):
        st = path.stat()
        stamp.append((str(path), st.st_size, st.st_mtime_ns))
    return tuple(stamp)


@functools.lru_cache(maxsize=8)
def _index(root_text: str, stamp: tuple) -> pd.DataFrame:
    root = Path(root_text)
    rows = []
    for hea in _walk(root, ".hea"):
        rows.append(_header_row(hea))
    with_header = {Path(r["files"][0]).with_suffix("") for r in rows}
    reference = _reference_labels(root)
    for mat in _walk(root, ".mat"):
        if mat.with_suffix("") not in with_header:
            rows.append(_original_row(mat, reference))
    frame = pd.DataFrame(rows, columns=["record_id", "patient_id", "age", "sex", "strat_fold", "codes", "dx",
                                        "files", "problem", "released"])
    if frame.empty:
        return frame
    frame = frame.sort_values(["record_id", "released"], kind="stable")
    duplicated = frame.duplicated("record_id", keep="last")
    if duplicated.any():
        log.info("%s: %d records found twice (two header releases); using the newest header", root,
                 int(duplicated.sum()))
    return frame[~duplicated].reset_index(drop=True)


def _header_row(hea: Path) -> dict:
    record_id = hea.stem
    row = {"record_id": record_id, "patient_id": record_id, "age": float("nan"), "sex": None, "strat_fold": -1,
           "codes": frozenset(), "dx": (), "files": (str(hea), str(hea.with_suffix(".mat"))), "problem": "",
           "released": ""}
    try:
        header = read_header(hea)
    except DataError as exc:
        row["problem"] = str(exc)
        return row
    row["released"] = _release_date(hea)
    row["files"] = (str(hea), str(hea.parent / header.signals[0].file))
    row["age"] = parse_age(header.comments.get("age"))
    row["sex"] = parse_sex(header.comments.get("sex"))
    dx = header.comments.get("dx")
    if dx is None:
        row["problem"] = "header has no #Dx line (no diagnosis labels)"
        return row
    codes, unknown = normalize_codes(dx.split(","))
    row["codes"], row["dx"] = codes, snomed_codes(dx.split(","))[0]
    if unknown:
        row["problem"] = (f"unknown diagnosis code(s) {', '.join(unknown)} in #Dx (expected SNOMED CT ids or "
                          "the CPSC2018 abbreviations in tasks.toml)")
    elif not codes:
        row["problem"] = "empty #Dx (no diagnosis labels)"
    return row


def _release_date(hea: Path) -> str:
    """ISO date of the header's record line (e.g. '12-May-2020'), '' when absent: newer wins on duplicates."""
    try:
        first = hea.read_text(errors="replace").splitlines()[0].split()
        return datetime.strptime(first[4], "%d-%b-%Y").date().isoformat() if len(first) > 4 else ""
    except (IndexError, ValueError):
        return ""


def _reference_labels(root: Path) -> dict[str, list[str]]:
    _, _, reference = code_tables()
    out: dict[str, list[str]] = {}
    for csv in _walk(root, ".csv"):
        if csv.name.upper() != "REFERENCE.CSV" or not csv.is_file():  # a FIFO would block the reader
            continue
        try:
            table = pd.read_csv(csv)
        except Exception as exc:  # pandas parser errors
            log.warning("%s unreadable (%s); its labels are ignored", csv, exc)
            continue
        for rec in table.itertuples(index=False):
            if len(rec) and pd.notna(rec[0]):
                out[str(rec[0]).strip()] = [_reference_label(v, reference) for v in rec[1:] if pd.notna(v)]
    return out


def _reference_label(value: Any, reference: dict[str, str]) -> str:
    """A REFERENCE.csv label (1-9) as its abbreviation; anything else kept as text, reported as unknown."""
    text = str(value).strip()
    try:
        number = float(text)
        key = str(int(number)) if number.is_integer() else text
    except (ValueError, OverflowError):
        key = text
    return reference.get(key, f"label{text[:20]}")


def _original_row(mat: Path, reference: dict[str, list[str]]) -> dict:
    record_id = mat.stem
    row = {"record_id": record_id, "patient_id": record_id, "age": float("nan"), "sex": None, "strat_fold": -1,
           "codes": frozenset(), "dx": (), "files": (str(mat),), "problem": "", "released": ""}
    try:
        ecg = _load_original(mat)
    except RecordRejected as exc:
        row["problem"] = str(exc)
        return row
    row["age"] = parse_age(np.ravel(ecg["age"])[0] if np.size(ecg["age"]) else None)
    row["sex"] = parse_sex(np.ravel(ecg["sex"])[0] if np.size(ecg["sex"]) else None)
    if record_id not in reference:
        row["problem"] = "no labels: record not in a REFERENCE.csv (CPSC2018 original format)"
        return row
    codes, unknown = normalize_codes(reference[record_id])
    row["codes"], row["dx"] = codes, snomed_codes(reference[record_id])[0]
    if unknown:
        row["problem"] = f"unknown REFERENCE.csv label(s) {', '.join(unknown)} (expected 1-9)"
    return row


# registered as "g12ec" and "cpsc2018" by their entry points (pyproject.toml)
G12EC = ChallengeDataset(
    "g12ec", "g12ec/**/E*.hea + .mat in the PhysioNet/CinC 2020 format (flat, or challenge-2020's "
    "training/georgia/g1..g11 sub-folders)", id_prefix="E", fixed_length=True)
CPSC2018 = ChallengeDataset(
    "cpsc2018", "cpsc2018/**/A*.hea + .mat in the PhysioNet/CinC 2020 format (challenge-2020's "
    "training/cpsc_2018/g1..g7), or the original release's A*.mat + REFERENCE.csv", id_prefix="A")
