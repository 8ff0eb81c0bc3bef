"""Generator provisioning: the one way ``simecg-bench run``, ``pretrain`` and ``generators train`` get the
trained VAE / DCGAN behind the ``vae`` and ``gan`` corpora.

:func:`provision_generator` makes a corpus's generator available in its cache folder
(``<cache>/generators/<fingerprint>/``), from the first place that has it, as
:func:`benchmark.run.encoders.provision_encoder` does for encoders:

1. the cache;
2. a FINISHED ``generator`` run of the same fingerprint in the MLflow store (any SimECG-Bench
   experiment): its artifact ``generator/generator.pt`` is downloaded into the cache;
3. training it now (``corpus.prepare``), in a run that ends FINISHED, FAILED or KILLED, resuming from the
   folder's last checkpoint if a killed run left one; the run holds the losses, sample grids, the
   generator file and its identity.

A cached ``generator.pt`` is used only if it matches its size+hash sidecar (:mod:`simecg.integrity`);
a damaged or unsealed one gets a one-line warning and takes the path of a missing one (MLflow,
then training, which resumes from the last intact checkpoint) until a good copy replaces it.
An intact generator is returned without writing anything (a read-only cache serves it); anything
else first checks that the folder is writable.

A lock file beside the folder makes concurrent processes wait for the one that trains.
"""

from __future__ import annotations

import logging
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmark.tracking.tags import RunTags
from benchmark.tracking.tracker import Tracker
from pretraining.corpora.base import GeneratorSpec, TrainedCorpus
from simecg import integrity, paths
from simecg.errors import CacheError, CheckpointError, ConfigError, SimECGError
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


def provision_generator(corpus: TrainedCorpus, tracker: Tracker | None = None, parent: str | None = None,
                        progress: bool = True) -> ProvisionedGenerator:
    """Make ``corpus``'s trained generator available (cache, MLflow, or trained now; see module doc).

    Args:
        corpus: a corpus sampled from a generator (a :class:`~pretraining.corpora.base.TrainedCorpus`),
            e.g. ``vae`` or ``gan``.
        tracker: the MLflow store to search and to log a new generator run to (None: no MLflow).
        parent: the run a new generator run is nested under (a ``run`` invocation).
    """
    from pretraining.generators.common import GENERATOR_FILE, damage, is_complete
    from pretraining.generators.train import generator_lock

    if not isinstance(corpus, TrainedCorpus):
        raise ConfigError(f"corpus {corpus.name!r} is not sampled from a generator")
    model = corpus.generator()
    identity, folder = model.identity, Path(model.folder)
    fingerprint = identity.fingerprint
    if is_complete(folder, fingerprint):  # nothing to write: a read-only cache serves it
        run = tracker.finished_run(fingerprint, everywhere=True) if tracker is not None else None
        return ProvisionedGenerator(folder, identity, run.info.run_id if run is not None else None)
    paths.require_writable(folder)  # before any work: one line if the cache cannot take the generator
    with generator_lock(folder):
        run = tracker.finished_run(fingerprint, everywhere=True) if tracker is not None else None
        run_id = run.info.run_id if run is not None else None
        if is_complete(folder, fingerprint):  # another process made it while this one waited
            return ProvisionedGenerator(folder, identity, run_id)
        if (folder / GENERATOR_FILE).is_file() and (problem := damage(folder)) is not None:
            log.warning("generator %s is damaged (%s); %s", folder / GENERATOR_FILE, problem,
                        "fetching it again" if run is not None else "training it again")
        for where in (folder, folder / "checkpoints"):
            integrity.sweep(where)  # temporaries of killed processes
        if run is not None and _fetch(tracker, run_id, model):
            return ProvisionedGenerator(folder, identity, run_id)
        if tracker is None:
            corpus.prepare(progress=progress)
            return ProvisionedGenerator(folder, identity, None, trained_now=True)
        tracker.kill_stale(fingerprint)
        opened: list[str] = []

        def open_run(name: str, fp: str, params: dict[str, Any]) -> AbstractContextManager[Any]:
            tags = RunTags(kind="generator", fingerprint=fp, corpus=name, preset=model.preset)
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


def _fetch(tracker: Tracker, run_id: str, model: GeneratorSpec) -> bool:
    """Put the generator artifact of a finished run back into the model's folder; False if that fails.

    See :meth:`Tracker.fetch_sealed`; the download must also load as this identity's generator.
    """
    from pretraining.generators.common import GENERATOR_FILE, is_complete, read_file
    from pretraining.generators.train import write_identity

    folder, identity = Path(model.folder), model.identity

    def check(fetched: Path) -> None:
        data = read_file(fetched)
        if data.get("kind") != "generator" or data.get("extra", {}).get("fingerprint") != identity.fingerprint:
            raise CheckpointError("the stored file is not this generator")
        write_identity(folder, identity, model.config)

    try:
        tracker.fetch_sealed(run_id, "generator", folder / GENERATOR_FILE, check)
    except CacheError:
        raise
    except Exception as exc:  # then it is trained here
        log.warning("could not fetch generator %s from MLflow run %s (%s); training it here",
                    identity.fingerprint, run_id, exc)
        return False
    return is_complete(folder, identity.fingerprint)
