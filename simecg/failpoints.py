"""Failpoints: named places where a test can make this process die, to prove a kill loses nothing.

``SIMECG_FAILPOINT=<name>[:<k>]`` makes the ``k``-th (default first) call of ``failpoint(name)``
in this process send itself SIGKILL: no handler, no ``finally``, no flush, exactly as the
scheduler of a pre-empted machine or the kernel's OOM killer would end it. Unset (always, outside
the kill-and-resume tests) a failpoint costs one comparison. Names in use: ``pretrain.step``,
``tuning.trial``, ``cell.train``, ``cell.log``, ``between.cells``.
"""

from __future__ import annotations

import os
import signal

_SPEC = os.environ.get("SIMECG_FAILPOINT", "")
_NAME, _, _AT = _SPEC.partition(":")
_TARGET = int(_AT) if _AT.isdigit() else 1
_hits = 0


def failpoint(name: str) -> None:
    """Die here (SIGKILL) when ``SIMECG_FAILPOINT`` names this place and its count is reached."""
    global _hits
    if name != _NAME:
        return
    _hits += 1
    if _hits >= _TARGET:
        os.kill(os.getpid(), signal.SIGKILL)
