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
"""

from __future__ import annotations

import os
import signal

_SPEC = os.environ.get("SIMECG_FAILPOINT", "")
_NAME, _, _REST = _SPEC.partition(":")
_AT, _, _ACTION = _REST.partition(":") if _REST[:1].isdigit() else ("", "", _REST)
_TARGET = int(_AT) if _AT.isdigit() else 1
_SIGNAL = signal.SIGSTOP if _ACTION == "stop" else signal.SIGKILL
_hits = 0


def failpoint(name: str) -> None:
    """Die (SIGKILL) or freeze (SIGSTOP) here when ``SIMECG_FAILPOINT`` names this place and its
    count is reached; a frozen process goes on from here once it gets SIGCONT."""
    global _hits
    if name != _NAME:
        return
    _hits += 1
    if _hits == _TARGET or (_hits > _TARGET and _SIGNAL == signal.SIGKILL):
        os.kill(os.getpid(), _SIGNAL)
