"""MATLAB ``.mat`` files read with a bound on what they may inflate to in memory.

scipy reads a MAT v4 or uncompressed v5 file from its bytes, so what it allocates is bounded by
the file's size. A compressed v5 element (zlib, how MATLAB saves by default and how the CPSC2018
original release is stored) is different: it can inflate about a thousandfold, and scipy
inflates it whole, so a 1-MB file can claim a gigabyte. Before scipy sees a v5 file, its
top-level elements are walked here and each compressed one is inflated in small pieces that are
counted and discarded, until its size is known or exceeds the caller's limit; only then is the
file loaded. Every failure is a :class:`DataError` naming the file.
"""

from __future__ import annotations

import stat
import struct
import zlib
from pathlib import Path
from typing import Any

from simecg.errors import DataError

# Compressed data inflating past this is refused whatever a header declares: ECG records saved
# compressed are minutes long (a CPSC2018 original is < 7 MB inflated); long recordings come
# as WFDB .dat or uncompressed .mat files, which cost no more memory than their size on disk.
MAX_INFLATED_BYTES = 256 << 20
_COMPRESSED = 15  # miCOMPRESSED, the tag type of a zlib-compressed v5 element
_PIECE = 1 << 16  # bytes read, and at most bytes inflated, per step while measuring
_V4_ITEMSIZE = {0: 8, 1: 4, 2: 4, 3: 2, 4: 2, 5: 1}  # v4 precision digit -> bytes per value


def load_mat(path: Path, names: tuple[str, ...], max_bytes: int) -> dict[str, Any]:
    """The variables ``names`` of the .mat file ``path``, refusing a file that inflates past ``max_bytes``."""
    path = Path(path)
    try:
        info = path.stat()
    except OSError as exc:
        raise DataError(f"{path.name}: cannot read ({exc.strerror or exc})") from None
    if not stat.S_ISREG(info.st_mode):
        raise DataError(f"{path.name}: not a regular file; expected a MATLAB .mat file")
    size = decoded_size(path, max_bytes)
    if size > max_bytes:
        raise DataError(f"{path.name}: its data decode to more than {max_bytes} bytes, more than the record can "
                        "hold (a damaged file, or compressed data that inflates without bound)")
    import scipy.io

    try:
        data = scipy.io.loadmat(path, variable_names=list(names))
    except Exception as exc:  # scipy raises many types (ValueError, TypeError, NotImplementedError ...) on damage
        first = str(exc).splitlines()[0][:160] if str(exc) else ""
        raise DataError(f"{path.name}: unreadable or truncated .mat ({type(exc).__name__}: {first})") from None
    missing = [name for name in names if name not in data]
    if missing:
        raise DataError(f"{path.name}: no {', '.join(repr(n) for n in missing)} variable in the .mat file")
    return {name: data[name] for name in names}


def decoded_size(path: Path, limit: int) -> int:
    """Bytes the file's data elements take once inflated; counting stops once past ``limit``.

    A v4 file counts what its matrices declare (each checked against the file's size), anything
    that is not a v5 file its own size (scipy reads it as it is, or refuses it). Compressed data
    inflating past :data:`MAX_INFLATED_BYTES`, or damaged, is a :class:`DataError`.
    """
    path = Path(path)
    with path.open("rb") as fh:
        head = fh.read(128)
        if len(head) >= 4 and 0 in head[:4]:  # scipy's test for a v4 file
            return _v4_size(fh, path)
        if len(head) < 128 or head[126:128] not in (b"IM", b"MI"):
            return path.stat().st_size
        order = "<" if head[126:128] == b"IM" else ">"
        total = inflated = 0
        while total <= limit:
            tag = fh.read(8)
            if len(tag) < 8:
                break
            kind, nbytes = struct.unpack(order + "II", tag)
            if kind >> 16:  # small data element: type and size share the first word, data in the second
                total += 8
            elif kind == _COMPRESSED:
                budget = min(limit - total, MAX_INFLATED_BYTES - inflated)
                size = _inflated_size(fh, nbytes, budget, path)
                inflated += size
                total += size
                if inflated > MAX_INFLATED_BYTES:
                    raise DataError(f"{path.name}: compressed data inflates to more than {MAX_INFLATED_BYTES} bytes; "
                                    "compressed .mat files that large are not read (save the record uncompressed)")
            else:
                total += nbytes
                fh.seek(nbytes, 1)
        return total


def _v4_size(fh: Any, path: Path) -> int:
    """Bytes the matrices of a v4 file declare; a matrix declaring more than the file holds is refused.

    scipy asks the file for a matrix's declared byte count in one read, which allocates that
    many bytes up front: a 20-byte header declaring 12 x 10^9 doubles would cost 96 GB.
    """
    size = path.stat().st_size
    fh.seek(0)
    total = 0
    while True:
        head = fh.read(20)
        if len(head) < 20:
            return total
        order = "<" if 0 <= struct.unpack("<i", head[:4])[0] < 5000 else ">"
        mopt, rows, cols, imaginary, name_length = struct.unpack(order + "5i", head)
        itemsize = _V4_ITEMSIZE.get(mopt // 10 % 10)
        if itemsize is None or rows < 0 or cols < 0 or name_length < 0:
            return total  # not a matrix header scipy can read: it refuses the file itself
        declared = rows * cols * itemsize * (2 if imaginary else 1)
        fh.seek(name_length, 1)
        if fh.tell() + declared > size:
            raise DataError(f"{path.name}: a matrix declares {rows}x{cols} values ({declared} bytes) but the file "
                            f"holds {size} bytes (truncated or damaged)")
        total += declared
        fh.seek(declared, 1)


def _inflated_size(fh: Any, nbytes: int, budget: int, path: Path) -> int:
    """Inflate ``nbytes`` of zlib data from ``fh`` piece by piece; stop once past ``budget``."""
    inflater = zlib.decompressobj()
    out = 0
    remaining = nbytes
    try:
        while remaining > 0 and out <= budget:
            piece = fh.read(min(_PIECE, remaining))
            if not piece:
                break
            remaining -= len(piece)
            pending = piece
            while pending and out <= budget:
                out += len(inflater.decompress(pending, _PIECE))
                pending = inflater.unconsumed_tail
    except zlib.error as exc:
        raise DataError(f"{path.name}: damaged compressed data in the .mat file ({exc})") from None
    if remaining > 0 and out <= budget:  # the element ends past the end of the file; scipy will say so
        fh.seek(remaining, 1)
    return out
