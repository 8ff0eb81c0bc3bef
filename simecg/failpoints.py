"""Failpoints: named places where a test can make this process die (or freeze), to prove a kill
or a pause loses nothing and doubles nothing.

``SIMECG_FAILPOINT=<name>[:<k>][:stop]`` makes the ``k``-th (default first) call of
``failpoint(name)`` in this process send itself SIGKILL: no handler, no ``finally``, no flush,
exactly as the scheduler of a pre-empted machine or the kernel's OOM killer would end it. With
``:stop`` it sends itself SIGSTOP instead, as a suspended VM or a job scheduler's suspend would
freeze it (heartbeat thread included); the test resumes it with SIGCONT. Unset (always, outside
the kill-and-resume and worker tests) a failpoint costs one comparison. Names in use:
``pretrain.step``, ``pretrain.logged``, ``tuning.trial``, ``cell.train``, ``cell.log``,
``between.cells``.

A freeze never lands inside a database write of this process's background threads (the worker
and trial heartbeats take :func:`writing`): on SQLite, a process frozen mid-write would hold the
file's write lock and block every other worker, which is SQLite's nature, not the pause these
tests are about (a worker that stops answering while holding a claim).
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
from collections.abc import Iterator

_SPEC = os.environ.get("SIMECG_FAILPOINT", "")
_NAME, _, _REST = _SPEC.partition(":")
_AT, _, _ACTION = _REST.partition(":") if _REST[:1].isdigit() else ("", "", _REST)
_TARGET = int(_AT) if _AT.isdigit() else 1
_SIGNAL = signal.SIGSTOP if _ACTION == "stop" else signal.SIGKILL
_hits = 0
_WRITES = threading.Lock()  # held by a background thread while it writes to a database


@contextlib.contextmanager
def writing() -> Iterator[None]:
    """Wrap a background thread's database write: a ``:stop`` failpoint waits for it to end."""
    with _WRITES:
        yield


def failpoint(name: str) -> None:
    """Die (SIGKILL) or freeze (SIGSTOP) here when ``SIMECG_FAILPOINT`` names this place and its
    count is reached; a frozen process goes on from here once it gets SIGCONT."""
    global _hits
    if name != _NAME:
        return
    _hits += 1
    if _hits == _TARGET and _SIGNAL == signal.SIGSTOP:
        with _WRITES:  # frozen between writes, never inside one
            os.kill(os.getpid(), _SIGNAL)
    elif _hits >= _TARGET and _SIGNAL == signal.SIGKILL:
        os.kill(os.getpid(), _SIGNAL)
