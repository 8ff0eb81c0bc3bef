"""Output paths checked before work starts: a mistyped ``--out`` fails in one line, not after the work.

Every command that writes a file or a folder the user names calls one of these first, before
anything slow (pretraining, sampling a corpus, reading MLflow) and before anything is written:

* a file (:func:`check_output_file`): its folder exists and is a folder the user can write in,
  the path is not a folder, and its extension is one the command can write;
* a folder (:func:`check_output_folder`): the path is not a file, and it can be created (missing
  parents are created, as ``mkdir -p`` does) or written in: its nearest existing ancestor is a
  writable folder.

Each raises :class:`~simecg.errors.ConfigError` naming the option, the path and what to do.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from simecg.errors import ConfigError


def check_output_file(path: str | os.PathLike[str], suffixes: Sequence[str], option: str = "--out") -> Path:
    """Check that ``path`` can be written as a file with one of ``suffixes`` (``.png``; case-insensitive).

    Returns the path. The folder must already exist: a missing one is more often a typo than a
    wish to create it.
    """
    path = Path(path).expanduser()
    shown = f"{option} {path}"
    if not str(path).strip() or path.name in ("", ".", ".."):
        raise ConfigError(f"{option}: give a file name, e.g. {option} out{suffixes[0]}")
    if path.is_dir():
        raise ConfigError(f"{shown} is a folder; give a file name in it, e.g. {option} {path / ('out' + suffixes[0])}")
    if path.suffix.lower() not in {s.lower() for s in suffixes}:
        found = f"extension {path.suffix!r}" if path.suffix else "no extension"
        raise ConfigError(f"{shown}: cannot write a file with {found}; give a name ending in {_either(suffixes)}")
    folder = path.parent
    if not folder.is_dir():
        if (blocker := _file_in_the_way(folder)) is not None:
            raise ConfigError(f"{shown}: {blocker} is a file, not a folder")
        raise ConfigError(f"{shown}: folder {folder} does not exist; create it first (mkdir -p {folder})")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise ConfigError(f"{shown}: cannot write in folder {folder} (permission denied); choose another {option}")
    if path.exists() and not os.access(path, os.W_OK):
        raise ConfigError(f"{shown}: the file exists and cannot be overwritten (permission denied)")
    return path


def check_output_folder(path: str | os.PathLike[str], option: str = "--out") -> Path:
    """Check that ``path`` is, or can be created as, a folder the user can write in. Returns the path."""
    path = Path(path).expanduser()
    shown = f"{option} {path}"
    if not str(path).strip():
        raise ConfigError(f"{option}: give a folder")
    if path.exists() and not path.is_dir():
        raise ConfigError(f"{shown} is a file, not a folder; give a folder (it is created if absent)")
    if (blocker := _file_in_the_way(path)) is not None:
        raise ConfigError(f"{shown}: {blocker} is a file, not a folder")
    existing = path
    while not existing.exists() and existing.parent != existing:
        existing = existing.parent
    if not os.access(existing, os.W_OK | os.X_OK):
        where = "the folder" if existing == path else f"its parent {existing}"
        raise ConfigError(f"{shown}: cannot write in {where} (permission denied); choose another {option}")
    return path


def _either(suffixes: Sequence[str]) -> str:
    return suffixes[0] if len(suffixes) == 1 else f"{', '.join(suffixes[:-1])} or {suffixes[-1]}"


def _file_in_the_way(folder: Path) -> Path | None:
    """The ancestor of ``folder`` (or itself) that exists and is a file, so no folder can be made there."""
    for candidate in reversed((folder, *folder.parents)):
        if candidate.exists() and not candidate.is_dir():
            return candidate
    return None
