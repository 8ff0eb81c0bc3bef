"""Encoder provisioning: the one way ``simecg-bench pretrain`` and ``simecg-bench run`` get an encoder.

:func:`provision_encoder` returns the encoder a pretraining config describes, by the procedure
every shared build follows (:func:`benchmark.run.provision.provision`), from the first place that has it:

1. the encoder cache, ``<cache>/encoders/<fingerprint>/`` (:func:`pretraining.config.encoder_dir`),
   one folder per encoder identity, written by either command;
2. a FINISHED pretraining run of the same fingerprint in the MLflow store (any SimECG-Bench
   experiment; another machine may have trained it): its artifact is downloaded into the cache;
3. pretraining it now, in a run that ends FINISHED, FAILED or KILLED (:meth:`Tracker.run`),
   resuming from the folder's last checkpoint if a killed run left one.

The encoder is the one pretraining hands out: the best-validation checkpoint (the paper's,
``pretrain.select = "best_val"``) or the last one (``"last"``, the ``progress`` suite's fixed
steps); its pretraining run logs which step it is and that step's validation loss
(docs/protocol.md, "MAE pretraining"), and the encoder it logs (``encoder.pt`` and the MLflow
model) is that checkpoint.

A cached ``encoder.pt`` is used only if it matches its size+hash sidecar (:mod:`simecg.integrity`);
a damaged or unsealed one gets a one-line warning and takes the same path as a missing one
(MLflow, then pretraining, which resumes from the last intact checkpoint) until a good copy
replaces it atomically. An intact encoder
is returned without writing anything, so a read-only cache serves it; anything else first checks
that the folder is writable (:func:`simecg.paths.require_writable`: one line if not).

A lock file beside the folder makes concurrent processes on one machine wait for the one that
trains (none trains it twice). :class:`SuiteEncoders` is the runner's
:class:`~baselines.base.EncoderSource`: identities for fingerprints, encoders on demand, for the
:class:`~baselines.base.EncoderNeed` (a pretraining method on a source) each pretrained model declares.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from baselines.base import EncoderNeed
from benchmark.run.generators import provision_generator
from benchmark.run.provision import Provisioned, found, provision
from benchmark.suites.config import SuiteConfig
from benchmark.tracking.tags import RunTags
from benchmark.tracking.tracker import Tracker
from pretraining.checkpoint import load_encoder, read
from pretraining.config import (
    PretrainConfig,
    build_corpus,
    encoder_dir,
    encoder_identity,
    validation_interval,
)
from pretraining.corpora.base import TrainedCorpus
from pretraining.loop import pretrain, resume_from_prefix, stalled_warning
from simecg import integrity
from simecg.config import flatten, to_dict
from simecg.errors import CheckpointError, ConfigError, SimECGError, first_line
from simecg.failpoints import failpoint
from simecg.identity import Identity
from simecg.locks import folder_lock

log = logging.getLogger(__name__)

ENCODER_FILE = "encoder.pt"


def provision_encoder(
    config: PretrainConfig,
    *,
    tracker: Tracker | None = None,
    parent: str | None = None,
    progress: bool = True,
    out_dir: Path | None = None,
    suite: str = "",
    corpus: Any = None,
    name: str = "",
) -> Provisioned:
    """The encoder ``config`` describes: from the cache, from MLflow, or pretrained now (see module doc).

    Args:
        tracker: the MLflow store to search and to log a new pretraining run to (None: no MLflow).
        parent: the run a new pretraining run is nested under (a ``run`` invocation).
        out_dir: a folder of the user's instead of the cache (``pretrain --out``).
        suite: the suite name recorded on a new pretraining run.
        corpus: the config's corpus, when the caller has already built it.
        name: the source's name in the suite (its run, progress bar and lines; default: the corpus).
    """
    corpus = corpus if corpus is not None else build_corpus(config)
    identity = encoder_identity(config, corpus)
    folder = Path(out_dir) if out_dir is not None else encoder_dir(identity)
    job = _EncoderJob(config, corpus, identity, folder, tracker, parent, progress, suite, name or config.corpus)
    return provision(job, tracker, distributed=int(os.environ.get("WORLD_SIZE", "1")) > 1)


@dataclass(frozen=True)
class _EncoderJob:
    """An encoder as :func:`benchmark.run.provision.provision` gets it (a ``Buildable``)."""

    config: PretrainConfig
    corpus: Any
    identity: Identity
    folder: Path
    tracker: Tracker | None
    parent: str | None
    progress: bool
    suite: str
    name: str  # the encoder's name in the suite's runs and lines, e.g. mae:sim
    kind: str = "encoder"
    verb: str = "pretraining"
    file: str = ENCODER_FILE

    def is_complete(self) -> bool:
        return encoder_is_complete(self.folder, self.identity)

    def check(self, fetched: Path) -> None:
        if not _is_encoder_of(fetched, self.identity):
            raise CheckpointError("the stored file is not this encoder")

    def lock(self) -> contextlib.AbstractContextManager[Any]:
        return folder_lock(self.folder, f"pretrain encoder {self.identity.fingerprint}")

    def repair(self, tracker: Tracker) -> Provisioned:
        return _log_from_cache(self, tracker)

    def build(self) -> Provisioned:
        if isinstance(self.corpus, TrainedCorpus):  # sampled from a trained generator (vae, gan): get it first
            provision_generator(self.corpus, tracker=self.tracker, parent=self.parent, progress=self.progress)
        return _pretrain(self)


def _log_from_cache(job: _EncoderJob, tracker: Tracker) -> Provisioned:
    """Log the pretraining run of an encoder the cache holds whole but the store has no FINISHED run of.

    A process killed after ``encoder.pt`` landed in the cache and before its run was FINISHED
    (artifact upload, model export) leaves exactly that; without this repair every later run would
    take the encoder from the cache and never log it, so other machines (other caches) would train
    it again and the store would never have its curves. The pretraining loop finds its final
    checkpoint and trains nothing (:func:`pretraining.loop.pretrain`); the run gets the history,
    the artifacts and the model as if it had trained. A cache that cannot be locked (read-only)
    is served as it is, with a warning.
    """
    fingerprint = job.identity.fingerprint
    with contextlib.ExitStack() as stack:
        try:
            stack.enter_context(job.lock())
        except OSError as exc:
            log.warning("encoder %s is in the cache but the MLflow store has no FINISHED run of it, and the cache "
                        "cannot be locked to log one (%s)", fingerprint, exc.strerror or exc)
            return found(job, None)
        run = tracker.finished_run(fingerprint, everywhere=True)
        if run is not None:  # logged by another process meanwhile
            return found(job, run.info.run_id)
        log.warning("encoder %s is in the cache but the MLflow store has no FINISHED pretraining run of it (a "
                    "process killed between the two?); logging its run from the cache", fingerprint)
        return _pretrain(job)


def encoder_is_complete(folder: Path, identity: Identity) -> bool:
    """Whether ``folder`` holds the finished encoder of ``identity``, intact (matching its size+hash
    sidecar; a damaged or unsealed file does not count). Reads only: safe for plans and dry runs."""
    path = folder / ENCODER_FILE
    if not path.is_file() or integrity.check_file(path) is not None:
        return False
    return _is_encoder_of(path, identity)


def _is_encoder_of(path: Path, identity: Identity) -> bool:
    try:
        data = read(path)
    except CheckpointError:
        return False
    return data.get("kind") == "encoder" and data.get("extra", {}).get("fingerprint") == identity.fingerprint


def _pretrain(job: _EncoderJob) -> Provisioned:
    """Pretrain (or finish, or log from the cache) the job's encoder, in a run when there is a store (rank 0 only)."""
    config, corpus, identity, folder, tracker = job.config, job.corpus, job.identity, job.folder, job.tracker
    parent, progress, suite, name = job.parent, job.progress, job.suite, job.name
    if int(os.environ.get("WORLD_SIZE", "1")) == 1:  # a longer run of the same trajectory continues a shorter one
        resume_from_prefix(folder, identity, config, [encoder_dir(identity).parent])
    if tracker is None or int(os.environ.get("RANK", "0")) != 0:
        result = pretrain(config, folder, progress=progress, corpus=corpus, identity=identity, name=name)
        _warn_stalled(name, result, config.method)
        return Provisioned(result.checkpoint, identity, None, trained_now=True)
    tracker.kill_stale(identity.fingerprint)
    tags = RunTags(kind="pretrain", fingerprint=identity.fingerprint, suite=suite, corpus=config.corpus,
                   preset=config.preset,
                   sees_test_records=bool(identity.payload["corpus"].get("sees_test_records", False)))
    try:
        with tracker.run(f"pretrain {name}", tags, params=flatten(to_dict(config)), parent=parent) as run:
            run.log_params({"corpus.ecgs": len(corpus)})  # what the corpus holds (ptbxl: capped by the data)
            _log_corpus_preview(run, corpus)
            result = pretrain(config, folder, logger=run, progress=progress, corpus=corpus, identity=identity,
                              name=name)
            failpoint("pretrain.done")  # encoder.pt is in the cache, the run not FINISHED: a kill here is repaired
            if result.already_complete:  # logged from the cache (_log_from_cache): the curves were not seen
                run.log_history(result.history, step_key="step")
            run.log_metrics({"final_val_loss": result.val_loss, "steps": result.steps})
            if why := _warn_stalled(name, result, config.method):
                run.set_tags({"warning": why})
            _log_choice(run, config, result.choice)
            run.log_sealed(result.checkpoint, "encoder")  # with its checksum: a fetch verifies the download
            run.log_artifact(folder / "identity.json", "encoder")

            encoder = load_encoder(result.checkpoint)
            example = np.zeros((2, 1, encoder.config.signal_length), dtype=np.float32)  # a batch of lead II
            try:
                run.log_model(encoder, name="encoder", input_example=example)
            except Exception as exc:  # a convenience for outside users: the encoder itself is logged above
                log.warning("could not log encoder %s as an MLflow model (%s: %s); its encoder.pt artifact "
                            "is complete", identity.fingerprint, type(exc).__name__, first_line(exc))
    except (SimECGError, KeyboardInterrupt):
        raise
    except Exception as exc:
        raise SimECGError(f"pretraining on corpus {config.corpus!r} failed: {type(exc).__name__}: {exc}") from exc
    return Provisioned(result.checkpoint, identity, run.run_id, trained_now=True)


def _warn_stalled(name: str, result: Any, method: str) -> str | None:
    """Say it when the encoder just pretrained learned little (its loss did not fall); returns why."""
    first = next((h["train_loss"] for h in result.history if "train_loss" in h), math.nan)
    why = stalled_warning(first, result.choice.val_loss, method)
    if why:
        log.warning("encoder of %s: %s", name, why)
    return why


def _log_choice(run: Any, config: PretrainConfig, choice: Any) -> None:
    """Which checkpoint the run's encoder is: its step and why (params), its validation loss (metric)."""
    run.log_params({"val_every_steps": validation_interval(config), "encoder.step": choice.step,
                    "encoder.chosen_by": choice.chosen_by})
    run.log_metrics({"encoder_val_loss": choice.val_loss})


def _log_corpus_preview(run: Any, corpus: Any) -> None:
    """A grid of sample ECGs of the corpus (with their parameters) on the pretraining run."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from pretraining.simulators.preview import preview_figure

    figure = preview_figure(corpus, n=12, seed=0)
    try:
        run.log_figure(figure, "corpus_preview.png")
    finally:
        plt.close(figure)


class SuiteEncoders:
    """The runner's :class:`~baselines.base.EncoderSource`: one encoder per (pretraining method, source) of a suite.

    A need (:class:`~baselines.base.EncoderNeed`) names a pretraining method and a source: a corpus
    name or a named ``[sources.<name>]`` table of the suite (:meth:`SuiteConfig.source_config`).
    ``identity(need)`` computes fingerprints without training (plans, ``--dry-run``);
    ``path(need)`` provisions the encoder once per process. A need's method is a registered one
    (:data:`simecg.registries.METHODS`); a model that declares another is refused with one line.
    """

    def __init__(self, suite: SuiteConfig, tracker: Tracker | None = None, parent: str | None = None,
                 progress: bool = False):
        self.suite_config = suite
        self.suite = suite.name
        self.tracker = tracker
        self.parent = parent
        self.progress = progress
        self._identities: dict[EncoderNeed, Identity] = {}
        self._corpora: dict[str, Any] = {}
        self.provisioned: dict[EncoderNeed, Provisioned] = {}

    def config(self, need: EncoderNeed) -> PretrainConfig:
        """The pretraining config of ``need``: its source's (``[pretrain]``, then ``[sources.<name>]``), by its method.

        ``pretrain.method_options`` address ``pretrain.method``; another method needed by a model of
        the grid takes its own preset's settings (docs/protocol.md, "Pretraining methods").
        """
        config = self.suite_config.source_config(need.source)
        if need.method == config.method:
            return config
        try:
            return dataclasses.replace(config, method=need.method, method_options={})
        except ConfigError as exc:
            raise ConfigError(f"suite {self.suite!r}: an encoder pretrained by {need.method!r} on {need.source!r} is "
                              f"needed (the model that needs it declares pretraining_method): {exc}") from None

    def corpus(self, need: EncoderNeed) -> Any:
        """The source's corpus, built once (a PTB-XL or generated corpus reads the data index to build)."""
        if need.source not in self._corpora:
            self._corpora[need.source] = build_corpus(self.config(need))
        return self._corpora[need.source]

    def identity(self, need: EncoderNeed) -> Identity:
        if need not in self._identities:
            self._identities[need] = encoder_identity(self.config(need), self.corpus(need))
        return self._identities[need]

    def path(self, need: EncoderNeed) -> Path:
        if need not in self.provisioned:
            self.provisioned[need] = provision_encoder(
                self.config(need), tracker=self.tracker, parent=self.parent, progress=self.progress,
                suite=self.suite, corpus=self.corpus(need), name=f"{need.method}:{need.source}",
            )
        return self.provisioned[need].path
