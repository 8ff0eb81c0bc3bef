"""Where caches, data and the MLflow store live; every location is overridable.

Nothing is ever written beside the input data (``../shared`` is read-only in CI).

A cache that cannot be used is one line naming the path and the cause (:class:`CacheError`),
never a traceback: :func:`cache_dir` refuses a root that is a file or cannot be created,
:func:`require_writable` checks a folder before long work that will write into it, and
:func:`writing` turns the ``OSError`` of a failed cache write (disk full, read-only file
system, no permission) into that line. Reading a complete cache needs none of them, so a
read-only cache still serves what it holds.
"""

from __future__ import annotations

import contextlib
import errno
import os
from collections.abc import Iterator
from pathlib import Path

from simecg.errors import CacheError

# errno values that mean "this location cannot take the write", whatever the code was doing.
_CAUSES = {
    errno.ENOSPC: "disk full",
    errno.EDQUOT: "disk quota exceeded",
    errno.EROFS: "read-only file system",
    errno.EACCES: "permission denied",
    errno.EPERM: "operation not permitted",
    errno.ENOTDIR: "a parent is a file, not a folder",
    errno.EEXIST: "a file is in the way",
}
_FULL = (errno.ENOSPC, errno.EDQUOT)


def cache_root() -> Path:
    """The configured cache root (``$SIMECG_CACHE`` or ``~/.cache/simecg-bench``), without touching it."""
    root = os.environ.get("SIMECG_CACHE")
    if root:
        return Path(root).expanduser()
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "simecg-bench"


def cache_dir() -> Path:
    """Root for generated corpora, preprocessed arrays, encoders: ``$SIMECG_CACHE`` or ~/.cache.

    Created if absent; a root that is a file, lies under a file, or cannot be created raises
    :class:`CacheError` (one line). An existing read-only root is returned: what it holds can
    still be read.
    """
    path = cache_root()
    source = "SIMECG_CACHE" if os.environ.get("SIMECG_CACHE") else "the default cache folder"
    if path.is_dir():
        return path
    try:
        # mkdir first, then look: a worker starting beside us may create the folder at any moment
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        if path.is_dir():
            return path
        if path.exists():
            raise CacheError(f"cache folder {path} ({source}) is a file, not a folder; "
                             "point SIMECG_CACHE at a folder") from None
        raise CacheError(f"cannot create the cache folder {path} ({source}): {_cause(path, exc)}; "
                         "point SIMECG_CACHE at a writable folder") from None
    return path


def data_dir(explicit: str | os.PathLike[str] | None = None) -> Path:
    """Downstream data root: the explicit argument, ``$SIMECG_DATA``, or ``<cache>/data``."""
    if explicit:
        return Path(explicit).expanduser()
    env = os.environ.get("SIMECG_DATA")
    if env:
        return Path(env).expanduser()
    return cache_dir() / "data"


def default_tracking_uri() -> str:
    """``$MLFLOW_TRACKING_URI`` or a SQLite store under ``./mlruns``."""
    uri = os.environ.get("MLFLOW_TRACKING_URI")
    if uri:
        return uri
    return f"sqlite:///{Path('mlruns').resolve() / 'mlflow.db'}"


# ---- cache writes -----------------------------------------------------------------------------

def cache_write_error(path: Path | str, exc: OSError) -> CacheError | None:
    """The one-line :class:`CacheError` for an ``OSError`` of a write to ``path``, or None if the
    error is not about the location (a bug, a vanished file: those keep their own exception).

    A full disk reads ``disk full writing <path>``; the path named is the file the system
    reports (``exc.filename``) when it names one, else ``path``.
    """
    if exc.errno not in _CAUSES:
        return None
    where = Path(exc.filename) if isinstance(exc.filename, str | os.PathLike) else Path(path)
    in_cache = _in_cache(where)
    if exc.errno in _FULL:
        return CacheError(f"{_CAUSES[exc.errno]} writing {where}; free space on that disk"
                          + (" or point SIMECG_CACHE at another one" if in_cache else ""))
    return CacheError(f"cannot write {where}: {_cause(where, exc)}"
                      + ("; point SIMECG_CACHE at a writable folder" if in_cache else ""))


@contextlib.contextmanager
def writing(path: Path | str) -> Iterator[None]:
    """Run a cache write; an ``OSError`` about the location (full, read-only, no permission)
    becomes a one-line :class:`CacheError` naming ``path`` (or the file the system names)."""
    try:
        yield
    except OSError as exc:
        error = cache_write_error(path, exc)
        if error is None:
            raise
        raise error from None


def require_writable(folder: Path | str) -> Path:
    """Create ``folder`` (and parents) and prove a file can be made in it, before work that writes there.

    Raises :class:`CacheError` naming the folder and the cause; returns the folder.
    """
    folder = Path(folder)
    with writing(folder):
        folder.mkdir(parents=True, exist_ok=True)
        probe = folder / f".write-probe{os.getpid()}"
        try:
            with open(probe, "wb") as fh:
                fh.write(b"1")
        finally:
            with contextlib.suppress(OSError):
                probe.unlink()
    return folder


def _cause(path: Path, exc: OSError) -> str:
    """What is wrong with ``path``, in words (the file in the way, when a parent is a file)."""
    if exc.errno in (errno.ENOTDIR, errno.EEXIST):
        for parent in (path, *path.parents):
            if parent.exists() and not parent.is_dir():
                return f"{parent} is a file, not a folder"
    return _CAUSES.get(exc.errno or -1, exc.strerror or type(exc).__name__)


def _in_cache(path: Path) -> bool:
    """Whether ``path`` is in the cache (then SIMECG_CACHE is the way out; a ``--out`` folder is the user's)."""
    try:
        Path(path).resolve().relative_to(cache_root().resolve())
    except (ValueError, OSError):
        return False
    return True
