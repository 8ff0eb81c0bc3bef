"""Generator provisioning: the one way ``simecg-bench run``, ``pretrain`` and ``generators train`` get the
trained VAE / DCGAN behind the ``vae`` and ``gan`` corpora.

:func:`provision_generator` makes a corpus's generator available in its cache folder
(``<cache>/generators/<fingerprint>/``), from the first place that has it, as
:func:`benchmark.encoders.provision_encoder` does for encoders:

1. the cache;
2. a FINISHED ``generator`` run of the same fingerprint in the MLflow store (any SimECG-Bench
   experiment): its artifact ``generator/generator.pt`` is downloaded into the cache;
3. training it now (``corpus.prepare``), in a run that ends FINISHED, FAILED or KILLED, resuming from the
   folder's last checkpoint if a killed run left one; the run holds the losses, sample grids, the
   generator file and its identity.

A lock file beside the folder makes concurrent processes wait for the one that trains.
"""

from __future__ import annotations

import logging
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmark.tags import RunTags
from benchmark.tracking import Tracker
from simecg.errors import ConfigError, SimECGError
from simecg.identity import Identity

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ProvisionedGenerator:
    """A trained generator's folder, its identity, and the FINISHED MLflow run that trained it (if any)."""

    folder: Path
    identity: Identity
    run_id: str | None
    trained_now: bool = False

    @property
    def path(self) -> Path:
        from pretraining.generators.common import GENERATOR_FILE

        return self.folder / GENERATOR_FILE


def provision_generator(corpus: Any, tracker: Tracker | None = None, parent: str | None = None,
                        progress: bool = True) -> ProvisionedGenerator:
    """Make ``corpus``'s trained generator available (cache, MLflow, or trained now; see module doc).

    Args:
        corpus: a corpus with a generator (``prepare``, ``generator_identity``, ``generator_dir``),
            e.g. ``vae`` or ``gan``.
        tracker: the MLflow store to search and to log a new generator run to (None: no MLflow).
        parent: the run a new generator run is nested under (a ``run`` invocation).
    """
    from pretraining.generators.common import is_complete
    from pretraining.generators.train import generator_lock

    if not hasattr(corpus, "prepare") or not hasattr(corpus, "generator_identity"):
        raise ConfigError(f"corpus {getattr(corpus, 'name', corpus)!r} is not sampled from a generator")
    identity = corpus.generator_identity()
    folder = Path(corpus.generator_dir)
    fingerprint = identity.fingerprint
    with generator_lock(folder):
        run = tracker.finished_run(fingerprint, everywhere=True) if tracker is not None else None
        run_id = run.info.run_id if run is not None else None
        if is_complete(folder, fingerprint):
            return ProvisionedGenerator(folder, identity, run_id)
        if run is not None and _fetch(tracker, run_id, corpus, folder, identity):
            return ProvisionedGenerator(folder, identity, run_id)
        if tracker is None:
            corpus.prepare(progress=progress)
            return ProvisionedGenerator(folder, identity, None, trained_now=True)
        tracker.kill_stale(fingerprint)
        opened: list[str] = []

        def open_run(name: str, fp: str, params: dict[str, Any]) -> AbstractContextManager[Any]:
            tags = RunTags(kind="generator", fingerprint=fp, corpus=name, preset=corpus.options.preset)
            context = tracker.run(f"generator {name}", tags, params, parent=parent)
            return _Recorded(context, opened)

        try:
            corpus.prepare(open_run=open_run, progress=progress)
        except (SimECGError, KeyboardInterrupt):
            raise
        except Exception as exc:
            raise SimECGError(f"training the generator of corpus {corpus.name!r} failed: "
                              f"{type(exc).__name__}: {exc}") from exc
        return ProvisionedGenerator(folder, identity, opened[-1] if opened else None, trained_now=True)


class _Recorded(AbstractContextManager):
    """Wraps :meth:`Tracker.run` to remember the id of the run it opened."""

    def __init__(self, context: AbstractContextManager[Any], opened: list[str]):
        self.context = context
        self.opened = opened

    def __enter__(self) -> Any:
        run = self.context.__enter__()
        self.opened.append(run.run_id)
        return run

    def __exit__(self, *exc: Any) -> Any:
        return self.context.__exit__(*exc)


def _fetch(tracker: Tracker, run_id: str, corpus: Any, folder: Path, identity: Identity) -> bool:
    """Download the generator artifact of a finished run into ``folder``; False if that fails."""
    from pretraining.generators.common import GENERATOR_FILE, is_complete
    from pretraining.generators.train import write_identity

    try:
        folder.mkdir(parents=True, exist_ok=True)
        tracker.fetch_artifact(run_id, f"generator/{GENERATOR_FILE}", folder / GENERATOR_FILE,
                               accept=lambda fetched: is_complete(fetched.parent, identity.fingerprint))
        write_identity(folder, identity, corpus.config)
    except Exception as exc:  # then it is trained here
        log.warning("could not fetch generator %s from MLflow run %s (%s); training it here",
                    identity.fingerprint, run_id, exc)
        return False
    return is_complete(folder, identity.fingerprint)
