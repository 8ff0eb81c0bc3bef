"""WFDB header parsing with the real-world quirks of the PhysioNet/CinC releases repaired on purpose.

We parse the (tiny, line-based) header ourselves rather than through ``wfdb.rdheader`` because
the released files break wfdb in ways whose intent is certain, and we want each repair logged
and counted instead of hidden: the record line of old Georgia headers names the record
``E00123.mat`` (wfdb raises ``HeaderSyntaxError``), and some headers write units as ``mv``.
Anything whose intent is not certain is reported as a problem for the data checks to reject.

Format reference: WFDB header specification (https://physionet.org/physiotools/wag/header-5.htm).
"""

from __future__ import annotations

import math
import re
import stat
from dataclasses import dataclass, field
from pathlib import Path

from simecg.errors import DataError
from simecg.signal import LEADS

# "<gain>(<baseline>)/<units>" with every part but the gain optional.
_GAIN = re.compile(r"^(?P<gain>[-+0-9.eE]+)(?:\((?P<baseline>-?\d+)\))?(?:/(?P<units>\S+))?$")
# "<format>[x<samples per frame>][:<skew>][+<byte offset>]"
_FORMAT = re.compile(r"^(?P<fmt>[0-9]{1,3})(?:x(?P<spf>[0-9]{1,6}))?(?::[0-9]{1,9})?(?:\+(?P<offset>[0-9]{1,12}))?$")
_LEAD_BY_KEY = {lead.lower(): lead for lead in LEADS}

# Bounds that keep a hostile or damaged header from driving the readers into absurd work: real
# headers are a few hundred bytes; ECGs are sampled at tens of Hz (wearables) to tens of kHz
# (research recorders); no record read here is longer than a day; ADC values of every WFDB format
# fit in 32 bits. Anything outside is refused with a message naming the header, before any signal
# is read; the signal readers then check the declared length against the signal file's size.
MAX_HEADER_BYTES = 1 << 20
FS_RANGE_HZ = (10.0, 100_000.0)
MAX_DURATION_S = 24 * 3600
ADC_LIMIT = 1 << 32


@dataclass
class SignalSpec:
    """One signal line of a header: where its samples are and how to turn them into mV."""

    file: str
    fmt: str
    gain: float
    baseline: int
    units: str
    adc_zero: int
    init_value: int | None
    checksum: int | None
    name: str
    byte_offset: int = 0  # bytes before the first sample in the file ("16+24")


@dataclass
class Header:
    """A parsed header; ``repairs`` lists what was fixed, ``problems`` what could not be."""

    path: Path
    record_name: str
    n_sig: int
    fs: float
    n_samples: int
    signals: list[SignalSpec]
    comments: dict[str, str] = field(default_factory=dict)
    repairs: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    def lead_index(self) -> dict[str, int]:
        """Map canonical lead names ("I".."V6") to signal positions (case-insensitive: "AVR" = "aVR")."""
        out: dict[str, int] = {}
        for i, sig in enumerate(self.signals):
            lead = canonical_lead(sig.name)
            if lead is not None and lead not in out:
                out[lead] = i
        return out


def canonical_lead(name: str) -> str | None:
    """The standard spelling of a lead name, or None when it is not one of the 12 leads."""
    return _LEAD_BY_KEY.get(name.strip().lower())


def read_header(path: Path) -> Header:
    """Parse a WFDB header file; raise :class:`DataError` when it cannot be read at all.

    Only a regular file of at most :data:`MAX_HEADER_BYTES` is opened: a FIFO named ``*.hea``
    would block the reader forever, a huge one would be read whole into memory.
    """
    try:
        info = Path(path).stat()
        if not stat.S_ISREG(info.st_mode):
            raise DataError(f"{path}: not a regular file; expected a WFDB header (.hea) text file")
        if info.st_size > MAX_HEADER_BYTES:
            raise DataError(f"{path}: too large for a WFDB header ({info.st_size} bytes; headers are a few hundred, "
                            f"at most {MAX_HEADER_BYTES})")
        text = Path(path).read_text(encoding="utf-8", errors="strict")
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"{path}: unreadable header ({exc.__class__.__name__}: {exc})") from None
    return parse_header(text, Path(path))


def parse_header(text: str, path: Path) -> Header:
    """Parse header ``text``; raise :class:`DataError` naming the line when its syntax is broken."""
    lines = [line.strip() for line in text.splitlines()]
    body = [line for line in lines if line and not line.startswith("#")]
    comments: dict[str, str] = {}
    for line in lines:
        if line.startswith("#"):
            key, sep, value = line.lstrip("#").partition(":")
            if sep:
                comments[key.strip().lower()] = value.strip()
    if not body:
        raise DataError(f"{path}: unreadable header (no record line); expected 'NAME NSIG FS NSAMP ...'")
    repairs: list[str] = []
    problems: list[str] = []
    fields = body[0].split()
    if len(fields) < 4:
        raise DataError(f"{path}: unreadable header record line {body[0][:120]!r}; expected 'NAME NSIG FS NSAMP ...'")
    name = fields[0]
    if name.lower().endswith((".mat", ".dat", ".hea")):
        repairs.append(f"record line names the record {name!r} with a file extension; read as {name[:-4]!r}")
        name = name[:-4]
    try:
        n_sig = int(fields[1])
        fs = float(fields[2].split("/")[0])
        n_samples = int(fields[3])
    except ValueError:
        raise DataError(
            f"{path}: unreadable header record line {body[0][:120]!r}; expected integer signal count, "
            "sampling frequency and sample count"
        ) from None
    if n_sig < 1 or not fs > 0 or n_samples < 1:
        raise DataError(f"{path}: header record line {body[0][:120]!r} has a non-positive count or frequency")
    low, high = FS_RANGE_HZ
    if not low <= fs <= high:
        raise DataError(f"{path}: sampling frequency {fields[2]!r} Hz is not that of an ECG "
                        f"(expected {low:g} to {high:g} Hz)")
    if n_samples > MAX_DURATION_S * fs:  # compared as int vs float: no overflow for absurd counts
        raise DataError(f"{path}: header declares {fields[3][:24]} samples at {fs:g} Hz, over a day; "
                        f"records longer than {MAX_DURATION_S // 3600} h are not read")
    signals: list[SignalSpec] = []
    for number, line in enumerate(body[1 : 1 + n_sig], start=2):
        signals.append(_parse_signal(line, number, path, repairs))
    if len(signals) < n_sig:
        raise DataError(f"{path}: header announces {n_sig} signals but has {len(signals)} signal lines")
    return Header(path, name, n_sig, fs, n_samples, signals, comments, repairs, problems)


def _parse_signal(line: str, number: int, path: Path, repairs: list[str]) -> SignalSpec:
    parts = line.split()
    if len(parts) < 2:
        raise DataError(f"{path}: unreadable signal line {number}: {line[:80]!r}")
    file = parts[0]
    format_field = _FORMAT.match(parts[1])
    if not format_field:
        raise DataError(f"{path}: unreadable signal format {parts[1][:20]!r} on signal line {number}; "
                        "expected e.g. '16' or '16+24'")
    fmt = format_field["fmt"]
    if format_field["spf"] not in (None, "1"):
        raise DataError(f"{path}: signal line {number} has {format_field['spf']} samples per frame; "
                        "only one sample per frame is read")
    byte_offset = int(format_field["offset"] or 0)
    gain, baseline, units = 200.0, None, "mV"  # WFDB defaults
    if len(parts) > 2:
        match = _GAIN.match(parts[2])
        if not match:
            raise DataError(f"{path}: unreadable gain {parts[2][:24]!r} on signal line {number}; "
                            "expected e.g. '1000/mV'")
        try:
            gain = float(match["gain"])
        except ValueError:
            raise DataError(f"{path}: unreadable gain {parts[2][:24]!r} on signal line {number}") from None
        if match["baseline"] is not None:
            baseline = _adc_value(match["baseline"], "baseline", number, line, path)
        if match["units"]:
            units = match["units"]
    if not math.isfinite(gain):
        raise DataError(f"{path}: gain {parts[2][:24]!r} on signal line {number} is not a finite number")
    if gain == 0:
        gain = 200.0  # WFDB: a zero gain means "uncalibrated, use the default"
    if units != "mV" and units.lower() == "mv":
        repairs.append(f"units written {units!r} instead of 'mV'; read as mV")
        units = "mV"
    adc_zero = _adc_value(parts[4], "ADC zero", number, line, path) if len(parts) > 4 else 0
    init_value = _adc_value(parts[5], "initial value", number, line, path) if len(parts) > 5 else None
    checksum = _adc_value(parts[6], "checksum", number, line, path) if len(parts) > 6 else None
    name = " ".join(parts[8:]) if len(parts) > 8 else f"signal{number - 1}"
    return SignalSpec(
        file=file,
        fmt=fmt,
        gain=gain,
        baseline=adc_zero if baseline is None else baseline,
        units=units,
        adc_zero=adc_zero,
        init_value=init_value,
        checksum=checksum,
        name=name,
        byte_offset=byte_offset,
    )


def _adc_value(text: str, what: str, number: int, line: str, path: Path) -> int:
    """An integer field of a signal line, within the 32-bit range every WFDB format fits in."""
    try:
        value = int(text)
    except ValueError:  # also digit strings longer than Python's int conversion limit
        raise DataError(f"{path}: unreadable {what} on signal line {number}: {line[:80]!r}") from None
    if abs(value) >= ADC_LIMIT:
        raise DataError(f"{path}: {what} {text[:20]!r} on signal line {number} is outside the 32-bit ADC range")
    return value
