"""Generator provisioning: the one way ``simecg-bench run``, ``pretrain`` and ``generators train`` get the
trained VAE / DCGAN behind the ``vae`` and ``gan`` corpora.

:func:`provision_generator` makes a corpus's generator available in its cache folder
(``<cache>/generators/<fingerprint>/``) by the procedure every shared build follows
(:func:`benchmark.run.provision.provision`: the cache, else a FINISHED ``generator`` run of the same
fingerprint in the MLflow store, whose sealed artifact ``generator/generator.pt`` is fetched, else
training it now under a lock). Training is ``corpus.prepare``, in a run that ends FINISHED, FAILED
or KILLED and holds the losses, sample grids, the generator file and its identity; a generator in
the cache without a FINISHED run is served as it is.
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmark.run.provision import Provisioned, provision
from benchmark.tracking.tags import RunTags
from benchmark.tracking.tracker import Tracker
from pretraining.corpora.base import GeneratorSpec, TrainedCorpus
from simecg.errors import CheckpointError, ConfigError, SimECGError
from simecg.identity import Identity


def provision_generator(corpus: TrainedCorpus, tracker: Tracker | None = None, parent: str | None = None,
                        progress: bool = True) -> Provisioned:
    """Make ``corpus``'s trained generator available (cache, MLflow, or trained now; see module doc).

    Args:
        corpus: a corpus sampled from a generator (a :class:`~pretraining.corpora.base.TrainedCorpus`),
            e.g. ``vae`` or ``gan``.
        tracker: the MLflow store to search and to log a new generator run to (None: no MLflow).
        parent: the run a new generator run is nested under (a ``run`` invocation).
    """
    if not isinstance(corpus, TrainedCorpus):
        raise ConfigError(f"corpus {corpus.name!r} is not sampled from a generator")
    model = corpus.generator()
    return provision(_GeneratorJob(corpus, model, Path(model.folder), tracker, parent, progress), tracker)


@dataclass(frozen=True)
class _GeneratorJob:
    """A trained generator as :func:`benchmark.run.provision.provision` gets it (a ``Buildable``)."""

    corpus: TrainedCorpus
    model: GeneratorSpec
    folder: Path
    tracker: Tracker | None
    parent: str | None
    progress: bool
    kind: str = "generator"
    verb: str = "training"

    @property
    def identity(self) -> Identity:
        return self.model.identity

    @property
    def file(self) -> str:
        from pretraining.generators.common import GENERATOR_FILE

        return GENERATOR_FILE

    def is_complete(self) -> bool:
        from pretraining.generators.common import is_complete

        return is_complete(self.folder, self.identity.fingerprint)

    def check(self, fetched: Path) -> None:
        """The download must load as this identity's generator; its identity file is written beside it."""
        from pretraining.generators.common import read_file
        from pretraining.generators.train import write_identity

        data = read_file(fetched)
        if data.get("kind") != "generator" or data.get("extra", {}).get("fingerprint") != self.identity.fingerprint:
            raise CheckpointError("the stored file is not this generator")
        write_identity(self.folder, self.identity, self.model.config)

    def lock(self) -> AbstractContextManager[Any]:
        from pretraining.generators.train import generator_lock

        return generator_lock(self.folder)

    def repair(self, tracker: Tracker) -> None:
        """A generator in the cache without a FINISHED run is served as it is (its run is not logged again)."""
        return None

    def build(self) -> Provisioned:
        """Train it (``corpus.prepare``), in a run named after the corpus when there is a store."""
        corpus, tracker = self.corpus, self.tracker
        if tracker is None:
            corpus.prepare(progress=self.progress)
            return Provisioned(self.folder / self.file, self.identity, None, trained_now=True)
        tracker.kill_stale(self.identity.fingerprint)
        opened: list[str] = []

        def open_run(name: str, fp: str, params: dict[str, Any]) -> AbstractContextManager[Any]:
            tags = RunTags(kind="generator", fingerprint=fp, corpus=name, preset=self.model.preset)
            context = tracker.run(f"generator {name}", tags, params, parent=self.parent)
            return _Recorded(context, opened)

        try:
            corpus.prepare(open_run=open_run, progress=self.progress)
        except (SimECGError, KeyboardInterrupt):
            raise
        except Exception as exc:
            raise SimECGError(f"training the generator of corpus {corpus.name!r} failed: "
                              f"{type(exc).__name__}: {exc}") from exc
        return Provisioned(self.folder / self.file, self.identity, opened[-1] if opened else None, trained_now=True)


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
