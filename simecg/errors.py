"""One exception family, so the CLI can turn any expected failure into one clear line.

Messages name the file or key, what was expected, what was found and what to do.
"""

from __future__ import annotations


class SimECGError(Exception):
    """Base of every error SimECG-Bench raises on purpose."""


class ConfigError(SimECGError, ValueError):
    """A configuration value, override or suite file is invalid."""


class UnknownNameError(ConfigError, KeyError):
    """A registry lookup used a name nobody registered."""

    def __str__(self) -> str:  # KeyError would repr() the message; show it plainly.
        return str(self.args[0]) if self.args else ""


class DataError(SimECGError):
    """A data file is missing, unreadable or implausible."""


class DataMissingError(DataError, FileNotFoundError):
    """Expected data is absent; the message says how to get it."""


class CheckpointError(SimECGError):
    """A checkpoint cannot be loaded into the requested model."""


class TrackingError(SimECGError):
    """The MLflow store cannot be used."""


class StoreLost(TrackingError):
    """The MLflow store stopped taking writes in the middle of a suite (its server died, it became
    read-only): the suite stops with this one line, and a rerun resumes where it stopped."""


class CacheError(SimECGError):
    """A cache folder cannot be used: not a folder, not writable, or its disk is full.

    Raised before work starts where possible (:func:`simecg.paths.cache_dir`,
    :func:`simecg.paths.require_writable`), otherwise at the write that failed
    (:func:`simecg.paths.writing`); the message names the path and the cause.
    """


class DivergedError(SimECGError, RuntimeError):
    """Training diverged: a non-finite loss, or one far past any a model that learns reaches.

    A :class:`RuntimeError` too, so a tuning trial that diverges is a failed trial of the study
    (never its best), while a cell that diverges ends FAILED with this message.
    """


class Superseded(SimECGError):
    """This worker lost a claim while it worked (it was silent past its lease, e.g. paused, and
    another worker took the work over): its run ends KILLED, and the other worker's result counts.

    ``holder`` is the worker that has the claim now ("nobody" when none does).
    """

    def __init__(self, message: str, holder: str = ""):
        super().__init__(message)
        self.holder = holder


class Terminated(KeyboardInterrupt):
    """The process got SIGTERM (a scheduler pre-empting it, ``kill``): handled like Ctrl-C.

    A :class:`KeyboardInterrupt`, so every run open at that moment ends KILLED, not FAILED, and a
    rerun of the same command resumes.
    """


def first_line(exc: BaseException) -> str:
    """The first line of an exception's message, for a one-line error (its type's name when empty).

    A database error wrapped by SQLAlchemy gives its driver's own message (``exc.orig``): the
    wrapper's text goes on with the SQL statement and a documentation link.
    """
    text = str(getattr(exc, "orig", None) or exc).strip()
    return (text.splitlines() or [type(exc).__name__])[0]
