"""WFDB header parsing with the real-world quirks of the PhysioNet/CinC releases repaired on purpose.

We parse the (tiny, line-based) header ourselves rather than through ``wfdb.rdheader`` because
the released files break wfdb in ways whose intent is certain, and we want each repair logged
and counted instead of hidden: the record line of old Georgia headers names the record
``E00123.mat`` (wfdb raises ``HeaderSyntaxError``), and some headers write units as ``mv``.
Anything whose intent is not certain is reported as a problem for the data checks to reject.

Format reference: WFDB header specification (https://physionet.org/physiotools/wag/header-5.htm).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from simecg.errors import DataError
from simecg.signal import LEADS

# "<gain>(<baseline>)/<units>" with every part but the gain optional.
_GAIN = re.compile(r"^(?P<gain>[-+0-9.eE]+)(?:\((?P<baseline>-?\d+)\))?(?:/(?P<units>\S+))?$")
_LEAD_BY_KEY = {lead.lower(): lead for lead in LEADS}


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
    """Parse a WFDB header file; raise :class:`DataError` when it cannot be read at all."""
    try:
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
        raise DataError(f"{path}: unreadable header record line {body[0]!r}; expected 'NAME NSIG FS NSAMP ...'")
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
            f"{path}: unreadable header record line {body[0]!r}; expected integer signal count, "
            "sampling frequency and sample count"
        ) from None
    if n_sig < 1 or fs <= 0 or n_samples < 1:
        raise DataError(f"{path}: header record line {body[0]!r} has a non-positive count or frequency")
    signals: list[SignalSpec] = []
    for number, line in enumerate(body[1 : 1 + n_sig], start=2):
        signals.append(_parse_signal(line, number, path, repairs))
    if len(signals) < n_sig:
        raise DataError(f"{path}: header announces {n_sig} signals but has {len(signals)} signal lines")
    return Header(path, name, n_sig, fs, n_samples, signals, comments, repairs, problems)


def _parse_signal(line: str, number: int, path: Path, repairs: list[str]) -> SignalSpec:
    parts = line.split()
    if len(parts) < 2:
        raise DataError(f"{path}: unreadable signal line {number}: {line!r}")
    file, fmt = parts[0], parts[1].split("x")[0].split(":")[0].split("+")[0]
    gain, baseline, units = 200.0, None, "mV"  # WFDB defaults
    if len(parts) > 2:
        match = _GAIN.match(parts[2])
        if not match:
            raise DataError(f"{path}: unreadable gain {parts[2]!r} on signal line {number}; expected e.g. '1000/mV'")
        try:
            gain = float(match["gain"])
        except ValueError:
            raise DataError(f"{path}: unreadable gain {parts[2]!r} on signal line {number}") from None
        if match["baseline"] is not None:
            baseline = int(match["baseline"])
        if match["units"]:
            units = match["units"]
    if gain == 0:
        gain = 200.0  # WFDB: a zero gain means "uncalibrated, use the default"
    if units != "mV" and units.lower() == "mv":
        repairs.append(f"units written {units!r} instead of 'mV'; read as mV")
        units = "mV"
    try:
        adc_zero = int(parts[4]) if len(parts) > 4 else 0
        init_value = int(parts[5]) if len(parts) > 5 else None
        checksum = int(parts[6]) if len(parts) > 6 else None
    except ValueError:
        raise DataError(f"{path}: unreadable numbers on signal line {number}: {line!r}") from None
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
    )
