"""Progress in a log: timestamped lines where a terminal would show a progress bar.

On a terminal, long loops (pretraining, generator training, the cells of a run) show tqdm bars. A
bar written to a log file is one unreadable line of carriage returns, so the same loops also say
how far they are through the logger ``simecg.progress``, at most every :data:`EVERY_S` seconds and
at each milestone (a validation, a finished trial, a finished cell). Nothing shows those messages
unless a command asks: ``simecg-bench run`` calls :func:`lines_to` when its output is not a
terminal, and each message then is one line on stderr, ``2026-05-04 14:03:12 pretrain sim: step
1200/2000 (60%) ...``. Library callers get nothing (they are INFO messages of a logger without
handlers), and a terminal keeps its bars alone.
"""

from __future__ import annotations

import logging
import time
from typing import TextIO

LOGGER = logging.getLogger("simecg.progress")
EVERY_S = 30.0  # at most one line per loop this often, milestones aside
TIME_FORMAT = "%Y-%m-%d %H:%M:%S"


def lines_to(stream: TextIO) -> logging.Handler:
    """Show progress messages as timestamped lines on ``stream`` (returns the handler, to remove it)."""
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(asctime)s %(message)s", datefmt=TIME_FORMAT))
    LOGGER.addHandler(handler)
    LOGGER.setLevel(logging.INFO)
    LOGGER.propagate = False  # not also through the root logger's "INFO name:" format
    return handler


def stop_lines(handler: logging.Handler) -> None:
    LOGGER.removeHandler(handler)
    if not LOGGER.handlers:
        LOGGER.setLevel(logging.NOTSET)
        LOGGER.propagate = True


def shown() -> bool:
    """Whether progress lines go anywhere (a caller may skip building a message otherwise)."""
    return LOGGER.isEnabledFor(logging.INFO) and bool(LOGGER.handlers)


def say(message: str) -> None:
    """One progress line now (a milestone)."""
    LOGGER.info(message)


class Every:
    """A loop's progress lines, at most one per ``seconds`` (milestones through :func:`say` aside)."""

    def __init__(self, seconds: float = EVERY_S):
        self.seconds = seconds
        self.last = time.monotonic()

    def due(self) -> bool:
        """Whether a line is due now (and, if so, the clock restarts)."""
        now = time.monotonic()
        if now - self.last < self.seconds or not shown():
            return False
        self.last = now
        return True
