"""One process at a time per cache folder: the others wait, then find the work done.

Encoders and generators are trained into cache folders named by their identity. Shards or users
started together on one machine would train the same one twice; a lock file beside the folder
(``<folder>.lock``) serialises them, and the waiting process then finds the folder complete.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from pathlib import Path

from filelock import FileLock, Timeout

log = logging.getLogger(__name__)


@contextlib.contextmanager
def folder_lock(folder: Path, what: str) -> Iterator[None]:
    """Hold ``<folder>.lock`` while provisioning ``folder``; ``what`` names the work in the waiting message.

    Reentrant within a process (one lock object per path), so nested provisioning steps may both hold it.
    """
    folder = Path(folder)
    folder.parent.mkdir(parents=True, exist_ok=True)
    lock = FileLock(folder.parent / f"{folder.name}.lock", is_singleton=True)
    try:
        lock.acquire(timeout=0)
    except Timeout:
        log.warning("waiting for another process to %s", what)
        lock.acquire()
    try:
        yield
    finally:
        lock.release()
