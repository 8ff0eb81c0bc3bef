"""Read a record's samples and decide whether they can be trusted: the per-record data checks.

Every check here answers one question a silently wrong benchmark would never ask: is the file
complete (truncation), are its bytes the ones the header describes (WFDB checksums catch bit
flips), are all 12 leads present, finite and not flat, and are the amplitudes those of an ECG
in mV (a wrong ADC gain such as 4880/mV or 200/mV gives ranges no heart produces)?
``check_record`` is shared by ``simecg-bench data check`` and by dataset loading, so a record
rejected by one is excluded by the other.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from benchmark.data.header import Header, canonical_lead, read_header
from benchmark.data.matfile import load_mat
from simecg.errors import DataError
from simecg.signal import LEADS

log = logging.getLogger(__name__)

# Plausible ECG amplitude, as the median over leads of the 1st-99th percentile range (mV).
# Real records span ~0.3-5 mV; a 4880/mV gain shrinks them ~5x, a 200/mV gain inflates them 5x.
AMPLITUDE_RANGE_MV = (0.15, 6.0)
NOMINAL_GAIN = 1000.0  # the ADC gain of every PhysioNet/CinC 2020 and PTB-XL 500-Hz record
WFDB_NAN_16 = -32768  # format-16 sample value that WFDB defines as "no data"
# Bytes per sample of the WFDB formats read (16 here, the others by wfdb), to check a header's
# declared length against the file's size. The FLAC formats (508-524) are compressed: not read.
BYTES_PER_SAMPLE = {"16": 2.0, "8": 1.0, "24": 3.0, "32": 4.0, "61": 2.0, "80": 1.0, "160": 2.0, "212": 1.5,
                    "310": 4 / 3, "311": 4 / 3}


class RecordRejected(DataError):
    """A record failed a data check; the message is the reason shown to the user."""


@dataclass
class RecordCheck:
    """Outcome of checking one record: ``ok``, ``repaired`` or ``rejected`` with reasons."""

    file: str
    status: str = "ok"
    reasons: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, str]:
        return {"file": self.file, "status": self.status, "reason": "; ".join(self.reasons)}


def read_digital(header: Header) -> np.ndarray:
    """Raw ADC samples ``(n_samples, n_sig)`` int; raise :class:`RecordRejected` when unreadable.

    The length the header declares is checked against the signal file's size before anything
    is allocated, so a damaged or hostile header cannot make the reader allocate gigabytes.
    """
    files = {sig.file for sig in header.signals}
    if len(files) != 1:
        raise RecordRejected(f"signals spread over several files {sorted(files)}; expected one signal file")
    (name,) = files
    if Path(name).name != name or name in (".", ".."):
        raise RecordRejected(f"signal file {name[:80]!r} is not a file name beside its header; folders are not read")
    path = header.path.parent / name
    try:
        found = path.is_file()
    except OSError as exc:  # e.g. a name longer than the file system allows
        raise RecordRejected(f"signal file {name[:80]} unusable ({exc.strerror})") from None
    if not found:
        raise RecordRejected(f"signal file {name} is {'not a regular file' if path.exists() else 'missing'}")
    formats = {(sig.fmt, sig.byte_offset) for sig in header.signals}
    if len(formats) != 1:
        raise RecordRejected(f"signal file {name} mixes formats {sorted(formats)}; expected one format per file")
    if name.lower().endswith(".mat"):
        return _read_mat(path, header)
    fmt, offset = formats.pop()
    width = BYTES_PER_SAMPLE.get(fmt)
    if width is None:
        raise RecordRejected(f"signal format {fmt} of {name} is not read here (formats: {', '.join(BYTES_PER_SAMPLE)})")
    expected = offset + math.ceil(header.n_samples * header.n_sig * width)
    size = path.stat().st_size
    if size < expected:
        raise RecordRejected(f"signal file {name} truncated: {size} bytes, header needs {expected}")
    if fmt == "16":
        data = np.fromfile(path, dtype="<i2", count=header.n_samples * header.n_sig, offset=offset)
        return data.reshape(header.n_samples, header.n_sig)
    digital = _read_with_wfdb(header)
    if digital.shape != (header.n_samples, header.n_sig):
        raise RecordRejected(f"wfdb read {digital.shape} samples from {name}, header says "
                             f"{(header.n_samples, header.n_sig)}")
    return digital


def _read_mat(path: Path, header: Header) -> np.ndarray:
    limit = header.n_sig * header.n_samples * 8 + (1 << 16)  # doubles at most, plus the file's headers
    try:
        val = load_mat(path, ("val",), limit)["val"]
    except DataError as exc:
        raise RecordRejected(f"signal file {exc}") from None
    if not isinstance(val, np.ndarray) or val.dtype.kind not in "iuf":
        raise RecordRejected(f"signal file {path.name}: 'val' is not a numeric matrix")
    expected = (header.n_sig, header.n_samples)
    if val.shape != expected:
        found = "x".join(str(n) for n in val.shape)
        raise RecordRejected(f"signal file {path.name} holds {found} samples, header says "
                             f"{expected[0]}x{expected[1]} (truncated or mismatched)")
    if val.dtype.kind == "f":
        if not np.isfinite(val).all() or not np.array_equal(val, np.round(val)) or np.abs(val).max() >= 2**31:
            raise RecordRejected(f"signal file {path.name}: 'val' holds non-integer ADC samples")
        val = val.astype(np.int64)
    return np.asarray(val).T


def _read_with_wfdb(header: Header) -> np.ndarray:
    import wfdb

    try:
        record = wfdb.rdrecord(str(header.path.with_suffix("")), physical=False)
    except Exception as exc:  # wfdb raises bare ValueErrors etc.
        first = str(exc).splitlines()[0][:160] if str(exc) else ""
        raise RecordRejected(f"wfdb cannot read the record ({exc.__class__.__name__}: {first})") from None
    return np.asarray(record.d_signal)


def check_record(
    header: Header, leads: tuple[str, ...] = LEADS, nominal_gain: float | None = NOMINAL_GAIN
) -> tuple[RecordCheck, np.ndarray | None]:
    """Read and check a record; return the check and the ``(n_samples, 12)`` mV array in LEADS order.

    The array is None when the record is rejected. Only ``leads`` must be usable (finite, not
    flat); the other leads are filled with NaN if absent, so a loader asking for lead II is not
    blocked by a broken V6, while ``data check`` (all 12 leads) reports it. ``nominal_gain`` is
    the ADC gain every record of the dataset is released with: a header with another gain
    (the 4880/mV and 200/mV of early Challenge headers) is rejected, because the amplitudes of
    such records stay plausible-looking yet are off by the gain ratio, and the true gain is not
    certain enough to repair silently. None skips that check (folders of mixed origin).
    """
    check = RecordCheck(file=str(header.path))
    for repair in dict.fromkeys(header.repairs):  # de-duplicated, order kept
        check.status = "repaired"
        check.reasons.append(repair)
        log.info("%s: repaired: %s", header.path, repair)
    try:
        signal = _checked_signal(header, leads, nominal_gain)
    except RecordRejected as exc:
        check.status = "rejected"
        check.reasons.append(str(exc))
        return check, None
    return check, signal


def _checked_signal(header: Header, leads: tuple[str, ...], nominal_gain: float | None) -> np.ndarray:
    positions = header.lead_index()
    missing = [lead for lead in leads if lead not in positions]
    if missing:
        raise RecordRejected(f"missing leads: {', '.join(missing)}")
    for sig in header.signals:
        if canonical_lead(sig.name) and sig.units != "mV":
            raise RecordRejected(f"lead {sig.name} in units {sig.units!r}; expected mV")
    digital = read_digital(header)
    problems = []
    for sig, column in zip(header.signals, digital.T, strict=True):
        if sig.checksum is not None and sig.fmt == "16":
            actual = _wfdb_checksum(column)
            if actual != sig.checksum & 0xFFFF:
                expected = sig.checksum & 0xFFFF
                problems.append(
                    f"checksum mismatch on lead {sig.name} (header {expected}, data {actual}): signal file corrupted"
                )
    if problems:
        raise RecordRejected("; ".join(problems[:3]) + (f" (+{len(problems) - 3} more)" if len(problems) > 3 else ""))
    out = np.full((digital.shape[0], len(LEADS)), np.nan, dtype=np.float32)
    for lead, pos in positions.items():
        sig = header.signals[pos]
        column = digital[:, pos].astype(np.float32)
        if sig.fmt == "16":
            column[digital[:, pos] == WFDB_NAN_16] = np.nan
        out[:, LEADS.index(lead)] = (column - sig.baseline) / sig.gain
    _check_finite(out, leads)
    _check_gain(header, out, leads, nominal_gain)
    _check_amplitude(out, _live_leads(out))
    return out


def check_physical(signal: np.ndarray, leads: tuple[str, ...] = LEADS) -> None:
    """Checks for a signal already in mV ``(n_samples, 12)`` (formats without a header, e.g. CPSC original)."""
    _check_finite(signal, leads)
    _check_amplitude(signal, _live_leads(signal))


def _check_finite(signal: np.ndarray, leads: tuple[str, ...]) -> None:
    problems, flat = [], []
    for lead in leads:
        column = signal[:, LEADS.index(lead)]
        n_nan = int(np.count_nonzero(~np.isfinite(column)))
        if n_nan:
            problems.append(f"lead {lead} has {n_nan} NaN samples")
        elif np.ptp(column) == 0:
            flat.append(lead)
    if flat:
        problems.append(f"flat lead{'s' if len(flat) > 1 else ''} {', '.join(flat)} (constant value, no signal)")
    if problems:
        raise RecordRejected("; ".join(problems))


def _live_leads(signal: np.ndarray) -> tuple[str, ...]:
    """Leads with finite, non-constant samples: the amplitude check looks at all of them.

    Judging amplitude on every usable lead (not only the one being loaded) keeps the verdict the
    same for a record whatever lead a run asks for, and the median over leads is robust to one
    lead with a large QRS (V2 in hypertrophy) or a small one.
    """
    live = []
    for i, lead in enumerate(LEADS):
        column = signal[:, i]
        if np.isfinite(column).all() and np.ptp(column) > 0:
            live.append(lead)
    return tuple(live)


def amplitude_mv(signal: np.ndarray, leads: tuple[str, ...] = LEADS) -> float:
    """Median over ``leads`` of each lead's 1st-99th percentile range, in mV (robust to spikes)."""
    columns = signal[:, [LEADS.index(lead) for lead in leads]]
    if np.isfinite(columns).all():
        lo, hi = np.percentile(columns, [1, 99], axis=0)
    else:
        lo, hi = np.nanpercentile(columns, [1, 99], axis=0)
    return float(np.median(hi - lo))


def _check_amplitude(signal: np.ndarray, leads: tuple[str, ...]) -> None:
    if not leads:
        return
    amplitude = amplitude_mv(signal, leads)
    low, high = AMPLITUDE_RANGE_MV
    if not low <= amplitude <= high:
        raise RecordRejected(
            f"implausible amplitude {amplitude:.3g} mV (median 1-99% range over leads; expected {low:g}-{high:g} mV "
            "for an ECG in mV): check the header's ADC gain and units"
        )


def _check_gain(header: Header, signal: np.ndarray, leads: tuple[str, ...], nominal_gain: float | None) -> None:
    if nominal_gain is None:
        return
    gains = sorted({header.signals[pos].gain for lead, pos in header.lead_index().items() if lead in leads})
    if gains == [nominal_gain]:
        return
    ratio = gains[0] / nominal_gain
    off = f"{ratio:.2g}x too small" if ratio > 1 else f"{1 / ratio:.2g}x too large"
    as_read = amplitude_mv(signal, leads)
    raise RecordRejected(
        f"ADC gain {'/'.join(f'{g:g}' for g in gains)}/mV differs from the {nominal_gain:g}/mV this dataset is "
        f"released with: amplitudes would be {off} ({as_read:.2g} mV as read, {as_read * ratio:.2g} mV at "
        f"{nominal_gain:g}/mV); fix the header or download the corrected release"
    )


def _wfdb_checksum(column: np.ndarray) -> int:
    """WFDB signal checksum: the sum of the samples modulo 2**16 (headers write it signed or not)."""
    return int(np.asarray(column, dtype=np.int64).sum()) & 0xFFFF


def read_and_check(
    header_path: Path, leads: tuple[str, ...], nominal_gain: float | None = NOMINAL_GAIN
) -> tuple[RecordCheck, np.ndarray | None, float]:
    """Read a WFDB header and its signal and check them: ``(check, mV array or None, fs)``.

    An unreadable header is a rejected record (fs 0), never an exception: readers list it.
    """
    try:
        header = read_header(header_path)
    except DataError as exc:
        return RecordCheck(str(header_path), "rejected", [str(exc)]), None, 0.0
    check, signal = check_record(header, leads, nominal_gain)
    return check, signal, header.fs
