"""Size+hash manifests for cache files, checked before a cached file is used; and temporaries.

A cache whose bytes changed after it was written (a disk error, a stray ``dd``, a copy cut short)
must never be used: a data cache overwritten with noise of the same size trains every model at
chance level without an error. So every cache file is described by an entry ``{"size", "sha256"}``
written with it, in one of three places:

* a folder manifest ``integrity.json`` for caches published as a whole folder (the data caches),
  written into the temporary folder before it is renamed into place;
* a sidecar ``<file>.integrity.json`` for files replaced one by one (``encoder.pt``,
  ``generator.pt``, training checkpoints), written before the file is renamed over its name;
* the entries of an existing manifest (a corpus store's shards, in its ``manifest.json``).

:func:`check` costs a ``stat`` on every call (the size must match) and one SHA-256 of the
content per process and file version (device, inode, size and mtime): a file is hashed in
full the first time a process uses it, later checks are free until the file changes. A file
without an entry (written by an older version) counts as damaged: callers rebuild or refetch it.

Temporaries (:func:`temp_path`) are named ``<name>.<kind><pid>-<host>``, so :func:`sweep` can
remove those a killed process left behind: the owner's pid is dead on this host and PID namespace
(or, for a temporary of another host or namespace, it is older than :data:`FOREIGN_STALE_S`).
"""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import json
import logging
import os
import re
import shutil
import socket
import threading
import time
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

from simecg import paths

log = logging.getLogger(__name__)

VERSION = 1
FOLDER_MANIFEST = "integrity.json"
SIDECAR_SUFFIX = ".integrity.json"
FOREIGN_STALE_S = 24 * 3600  # a temporary of another host is left alone for this long
_BLOCK = 4 << 20


def pid_namespace() -> str:
    """This process's PID namespace (``pid:[4026531836]``, from ``/proc/self/ns/pid``), "" when unknown.

    Two containers with host networking share a host name but not their pids: a pid is only
    evidence of life (or death) inside the namespace that issued it. ``SIMECG_PID_NAMESPACE``
    overrides it (tests that simulate another container).
    """
    if override := os.environ.get("SIMECG_PID_NAMESPACE"):
        return override
    try:
        return os.readlink("/proc/self/ns/pid")
    except OSError:
        return ""


# Temporaries name their writer by pid and this token: the host name and the PID namespace, so a
# temporary of a live process in another container on the same host is never taken for a dead one's.
HOST = hashlib.sha256(f"{socket.gethostname()}\0{pid_namespace()}".encode()).hexdigest()[:8]
# A temporary, or the journal/WAL files SQLite keeps beside a temporary database being built.
_TEMP = re.compile(r"\.(tmp|fetch|damaged|incoming)(\d+)(?:-([0-9a-f]{8}))?(?:\.\d+)?(?:-journal|-wal|-shm)?$")
_counter = itertools.count()
_verified: dict[tuple[int, int, int, int], str] = {}  # (dev, inode, size, mtime_ns) -> sha256 seen ok
_lock = threading.Lock()


# ---- hashing and checking ---------------------------------------------------------------------

def digest(path: Path | str) -> str:
    """Hex SHA-256 of a file's content (read in 4-MiB blocks into one buffer)."""
    sha = hashlib.sha256()
    buffer = bytearray(_BLOCK)
    view = memoryview(buffer)
    with open(path, "rb", buffering=0) as fh:
        while n := fh.readinto(buffer):
            sha.update(view[:n])
    return sha.hexdigest()


def _key(stat: os.stat_result) -> tuple[int, int, int, int]:
    return (stat.st_dev, stat.st_ino, stat.st_size, stat.st_mtime_ns)


def describe(path: Path | str) -> dict[str, Any]:
    """The entry ``{"size", "sha256"}`` of a file just written (remembered as verified in this process)."""
    before = os.stat(path)
    sha = digest(path)
    if _key(os.stat(path)) == _key(before):  # unchanged while hashed
        with _lock:
            _verified[_key(before)] = sha
    return {"size": before.st_size, "sha256": sha}


def check(path: Path | str, entry: Any) -> str | None:
    """What is wrong with ``path`` against its ``entry`` (None: it is the file that was written).

    The size is compared on every call, the content hash once per process and file version.
    """
    if not isinstance(entry, Mapping) or not isinstance(entry.get("size"), int) \
            or not isinstance(entry.get("sha256"), str):
        return "no checksum recorded (written by an older version)"
    try:
        stat = os.stat(path)
    except FileNotFoundError:
        return "missing"
    except OSError as exc:
        return f"unreadable ({exc.strerror or exc})"
    if stat.st_size != entry["size"]:
        short = " (truncated)" if stat.st_size < entry["size"] else ""
        return f"{stat.st_size} bytes, expected {entry['size']}{short}"
    key = _key(stat)
    with _lock:
        if _verified.get(key) == entry["sha256"]:
            return None
    try:
        sha = digest(path)
    except OSError as exc:
        return f"unreadable ({exc.strerror or exc})"
    if sha != entry["sha256"]:
        return f"content differs from its checksum (sha256 {sha[:12]}…, expected {entry['sha256'][:12]}…)"
    with _lock:
        _verified[key] = sha
    return None


def forget() -> None:
    """Drop what this process has verified, so the next checks hash again (tests, measurements)."""
    with _lock:
        _verified.clear()


# ---- folder manifests -------------------------------------------------------------------------

def seal_folder(folder: Path, names: Iterable[str]) -> None:
    """Write ``folder/integrity.json`` describing the files ``names`` of ``folder`` (atomically)."""
    folder = Path(folder)
    files = {name: describe(folder / name) for name in names}
    write_json(folder / FOLDER_MANIFEST, {"version": VERSION, "files": files})


def check_folder(folder: Path) -> str | None:
    """What is wrong with a sealed folder (None: every file listed in its manifest is intact)."""
    path = Path(folder) / FOLDER_MANIFEST
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        return f"no {FOLDER_MANIFEST} (written by an older version)"
    except (OSError, ValueError) as exc:
        return f"{FOLDER_MANIFEST} unreadable ({exc.__class__.__name__})"
    files = data.get("files") if isinstance(data, dict) else None
    if not isinstance(files, dict) or not files:
        return f"{FOLDER_MANIFEST} lists no file"
    for name, entry in files.items():
        problem = check(Path(folder) / name, entry)
        if problem:
            return f"{name}: {problem}"
    return None


# ---- sidecars of single files -----------------------------------------------------------------

def sidecar(path: Path | str) -> Path:
    """``<file>.integrity.json``: the manifest of one file."""
    path = Path(path)
    return path.with_name(path.name + SIDECAR_SUFFIX)


def seal_file(path: Path | str, content: Path | str | None = None) -> None:
    """Write ``path``'s sidecar, describing ``content`` (a temporary about to be renamed to ``path``) or ``path``."""
    path = Path(path)
    entry = describe(content if content is not None else path)
    write_json(sidecar(path), {"version": VERSION, "files": {path.name: entry}})


def sealed_entry(path: Path | str) -> dict[str, Any] | None:
    """The ``{"size", "sha256"}`` entry ``path``'s sidecar records (None: no readable sidecar)."""
    path = Path(path)
    try:
        data = json.loads(sidecar(path).read_text())
    except (OSError, ValueError):
        return None
    files = data.get("files") if isinstance(data, dict) else None
    entry = files.get(path.name) if isinstance(files, dict) else None
    return entry if isinstance(entry, dict) else None


def check_file(path: Path | str) -> str | None:
    """What is wrong with ``path`` against its sidecar (None: intact; a missing sidecar is a problem)."""
    path = Path(path)
    if not path.is_file():
        return "missing"
    try:
        data = json.loads(sidecar(path).read_text())
    except FileNotFoundError:
        return f"no {sidecar(path).name} (written by an older version)"
    except (OSError, ValueError) as exc:
        return f"{sidecar(path).name} unreadable ({exc.__class__.__name__})"
    files = data.get("files") if isinstance(data, dict) else None
    return check(path, files.get(path.name) if isinstance(files, dict) else None)


def discard(path: Path | str) -> None:
    """Remove a damaged file and its sidecar (quietly: a read-only cache keeps them, unused)."""
    for file in (Path(path), sidecar(path)):
        with contextlib.suppress(OSError):
            file.unlink(missing_ok=True)


def discard_folder(folder: Path | str) -> None:
    """Remove a damaged cache folder: renamed aside first, so no reader finds it half deleted."""
    folder = Path(folder)
    aside = temp_path(folder, "damaged")
    try:
        folder.rename(aside)
    except FileNotFoundError:
        return  # another process moved it first
    shutil.rmtree(aside, ignore_errors=True)


# ---- writing ----------------------------------------------------------------------------------

class CacheFile:
    """A binary file written into a cache, whose open, writes and close turn an ``OSError`` about the
    location (disk full, read-only, no permission) into one :class:`~simecg.errors.CacheError` line
    naming it (:func:`simecg.paths.writing`); a write that fails mid-way leaves the file to its
    caller's cleanup (they write into temporaries)."""

    def __init__(self, path: Path | str):
        self.path = Path(path)
        with paths.writing(self.path):
            self._fh = open(self.path, "wb")  # noqa: SIM115 - closed by close() / __exit__

    def write(self, data: Any) -> None:
        """Write bytes (or anything with the buffer protocol, e.g. a C-contiguous array)."""
        with paths.writing(self.path):
            self._fh.write(data)

    def close(self) -> None:
        with paths.writing(self.path):
            self._fh.close()

    def __enter__(self) -> CacheFile:
        return self

    def __exit__(self, *exc: Any) -> None:
        if exc[0] is None:
            self.close()
        else:  # the first error is the one to report
            with contextlib.suppress(OSError):
                self._fh.close()


# ---- atomic small files and temporaries ---------------------------------------------------------

def write_json(path: Path | str, data: Any) -> None:
    """Write JSON to ``path`` atomically (a temporary beside it, renamed; removed if the write fails).

    A full disk or a read-only folder raises :class:`~simecg.errors.CacheError` naming ``path``.
    """
    with staged(path) as tmp:
        tmp.write_text(json.dumps(data, indent=1, sort_keys=True))


@contextlib.contextmanager
def staged(final: Path | str, seal: bool = False) -> Iterator[Path]:
    """Write the cache file ``final`` atomically: the block writes the temporary it is given.

    When the block ends, the temporary is sealed (``seal``: a size+hash sidecar describing it,
    written first, so a kill before the rename leaves a mismatch that is never used) and renamed
    to ``final``. If the block or the rename fails, the temporary is removed (a SIGKILL leaves it
    to :func:`sweep`): a reader never sees a partial file. A full disk or a read-only folder
    raises :class:`~simecg.errors.CacheError` naming ``final``.
    """
    final = Path(final)
    tmp = temp_path(final, hidden=True)
    try:
        with paths.writing(final):
            yield tmp
            if seal:
                seal_file(final, content=tmp)
            os.replace(tmp, final)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)
        raise


def temp_path(final: Path | str, kind: str = "tmp", hidden: bool = False) -> Path:
    """A temporary name beside ``final``: ``[.]<name>.<kind><pid>-<host>.<n>``, unique in this process."""
    final = Path(final)
    dot = "." if hidden else ""
    return final.with_name(f"{dot}{final.name}.{kind}{os.getpid()}-{HOST}.{next(_counter)}")


def is_stale(path: Path) -> bool:
    """Whether ``path`` is a temporary whose writer is gone (see module docstring)."""
    match = _TEMP.search(path.name)
    if match is None:
        return False
    pid, host = int(match.group(2)), match.group(3)
    if host is None or host == HOST:
        return not _alive(pid)
    try:
        return time.time() - path.lstat().st_mtime > FOREIGN_STALE_S
    except OSError:
        return False


def sweep(parent: Path | str) -> list[Path]:
    """Remove the stale temporaries directly in ``parent`` (files or folders); returns what went.

    Quiet about what it cannot remove (a read-only cache): leftovers cost space, never correctness.
    """
    parent = Path(parent)
    removed: list[Path] = []
    try:
        entries = list(parent.iterdir())
    except OSError:
        return removed
    for entry in entries:
        if not is_stale(entry):
            continue
        try:
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry)
            else:
                entry.unlink()
        except FileNotFoundError:
            continue
        except OSError:
            continue
        removed.append(entry)
    if removed:
        log.info("removed %d temporar%s left by killed processes in %s", len(removed),
                 "y" if len(removed) == 1 else "ies", parent)
    return removed


def _alive(pid: int) -> bool:
    """Whether a process ``pid`` runs on this host (this process's own temporaries count as gone:
    a build cleans its own before starting, and the pid may be a reused one of a killed process)."""
    return pid != os.getpid() and pid_alive(pid)


def pid_alive(pid: int) -> bool:
    """Whether a process of this machine with ``pid`` exists and is not a zombie (used for
    temporaries here and for the workers' leases of the coordination database)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # PermissionError: another user's live process
        return True
    with contextlib.suppress(OSError), open(f"/proc/{pid}/stat") as stat:
        return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    return True
