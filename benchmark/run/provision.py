"""Provisioning: the one procedure that gets anything built once and shared by many cells.

An encoder (:mod:`benchmark.run.encoders`) and a trained generator (:mod:`benchmark.run.generators`)
are each one file in a cache folder named by their identity, and both are got the same way, from
the first place that has them:

1. the cache folder, if its file is intact (matches its size+hash sidecar, :mod:`simecg.integrity`)
   and is the thing of this identity. Nothing is written, so a read-only cache serves it;
2. a FINISHED run of the same fingerprint in the MLflow store (any SimECG-Bench experiment; another
   machine may have built it): its sealed artifact is downloaded and checked
   (:meth:`Tracker.fetch_sealed`);
3. building it now, in a run that ends FINISHED, FAILED or KILLED, resuming from the folder's last
   checkpoint if a killed run left one.

Steps 2 and 3 happen under a lock file beside the folder, so concurrent processes on one machine
wait for the one that builds (none builds it twice), after checking that the folder is writable
(one line if not). A damaged file gets a one-line warning and takes the path of a missing one;
it stays until a good copy replaces it atomically. Under torchrun (``distributed``) every rank runs
the procedure without a lock: each sees the same FINISHED run and fetches it (an atomic,
idempotent rename), or none does and all build.

What differs between an encoder and a generator (how to check a download, how to build, the
encoder's repair of a kill between its file and its run) is a :class:`Buildable`'s; both are
handed out as a :class:`Provisioned`.
"""

from __future__ import annotations

import contextlib
import logging
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from benchmark.tracking.tracker import Tracker
from simecg import integrity, paths
from simecg.errors import CacheError
from simecg.identity import Identity

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Provisioned:
    """A built file (an encoder, a generator), its identity, and the FINISHED MLflow run that built it
    (None: no store, or the store has none)."""

    path: Path
    identity: Identity
    run_id: str | None
    trained_now: bool = False  # built by this call (not found in the cache or fetched)

    @property
    def folder(self) -> Path:
        return self.path.parent


class Buildable(Protocol):
    """A thing built once per identity into its cache folder, as :func:`provision` needs it.

    ``kind`` names it in messages and is the artifact folder of its run (``encoder``,
    ``generator``); ``verb`` says how it is built (``pretraining``, ``training``).
    """

    kind: str
    verb: str
    identity: Identity
    folder: Path
    file: str  # its file in ``folder`` (and the name of the sealed artifact)

    def is_complete(self) -> bool:
        """Whether the folder holds this identity's file, intact. Reads only."""

    def check(self, fetched: Path) -> None:
        """Raise if a downloaded file is not this identity's (it is then built here)."""

    def lock(self) -> AbstractContextManager[Any]:
        """The lock that makes concurrent processes wait for the one that builds."""

    def repair(self, tracker: Tracker) -> Provisioned | None:
        """The result once the run of a complete folder the store has no FINISHED run of is logged
        (None: this kind is served without one)."""

    def build(self) -> Provisioned:
        """Build it now (logging its run when there is a store) and return the result."""


def provision(item: Buildable, tracker: Tracker | None, *, distributed: bool = False) -> Provisioned:
    """``item`` from the cache, from MLflow, or built now (see the module doc)."""
    if item.is_complete():  # nothing to write: a read-only cache serves it
        run_id = _finished(tracker, item)
        if run_id is None and tracker is not None and not distributed:
            repaired = item.repair(tracker)
            if repaired is not None:
                return repaired
        return found(item, run_id)
    paths.require_writable(item.folder)  # before any work: one line if the cache cannot take it
    with contextlib.nullcontext() if distributed else item.lock():
        run_id = _finished(tracker, item)
        if item.is_complete():  # another process made it while this one waited
            return found(item, run_id)
        if not distributed:
            _warn_damaged(item, "fetching it again" if run_id is not None else f"{item.verb} it again")
            for where in (item.folder, item.folder / "checkpoints"):
                integrity.sweep(where)  # temporaries of killed processes
        if run_id is not None and _fetch(tracker, run_id, item):
            return found(item, run_id)
        return item.build()


def found(item: Buildable, run_id: str | None) -> Provisioned:
    """``item``'s complete file, with the FINISHED run that built it (None: none)."""
    return Provisioned(item.folder / item.file, item.identity, run_id)


def _finished(tracker: Tracker | None, item: Buildable) -> str | None:
    """The id of a FINISHED run of ``item``'s fingerprint in any experiment of the store (None: none)."""
    run = tracker.finished_run(item.identity.fingerprint, everywhere=True) if tracker is not None else None
    return run.info.run_id if run is not None else None


def _warn_damaged(item: Buildable, then: str) -> None:
    """One warning naming a file that fails its size+hash check, what is wrong with it and what happens next."""
    path = item.folder / item.file
    if path.is_file() and (problem := integrity.check_file(path)) is not None:
        log.warning("%s %s is damaged (%s); %s", item.kind, path, problem, then)


def _fetch(tracker: Tracker, run_id: str, item: Buildable) -> bool:
    """Put the sealed artifact of a finished run back into the folder; False if that fails (then it is built).

    A cache that cannot take the file (:class:`CacheError`) is no reason to build it: that error stands.
    """
    try:
        tracker.fetch_sealed(run_id, item.kind, item.folder / item.file, item.check)
    except CacheError:
        raise
    except Exception as exc:  # noqa: BLE001 - any failed download: it is built here instead
        log.warning("could not fetch %s %s from MLflow run %s (%s); %s it here",
                    item.kind, item.identity.fingerprint, run_id, exc, item.verb)
        return False
    return item.is_complete()
