"""Identities: what decides whether a result already computed can be reused.

The suite skips and reuses work by fingerprint, so a fingerprint must change exactly when the
numbers it stands for can change. Four kinds of result have one, each built by one function
here and nowhere else:

- an **encoder** (:func:`encoder_identity`): every pretraining setting that changes the trained
  weights, the resolved model architecture, and the corpus's *content* identity (a simulator's
  name, parameters and version; a folder's file names and content hashes; the real records
  used; a generator's own identity);
- a **generator** (:func:`generator_identity`): the resolved config of a VAE or GAN that a
  ``vae``/``gan`` corpus samples from (model, architecture, training settings, seed) and the
  identity of its training data (records used, lead, data version);
- a **cell** (:func:`cell_identity`): the cell (model, task, lead, budget, seed, ...), the
  protocol settings (split, test seed, age bins, fine-tuning, protocol version), the data
  version, the model's identity, which for a pretrained model holds its encoder's fingerprint,
  and the fingerprint of the tuning study it takes its values from (none when it is not tuned);
- a **tuning study** (:func:`study_identity`): the cell whose split and model the trials use
  (its *study cell*, without a seed: every seed shares it), the protocol settings with the
  tuning settings, that model's identity and that data's version. Cells of several budgets,
  leads or models may share one study (``tuning.separate_studies``, ``tuning.shared_studies``,
  docs/protocol.md): the settings that choose the study (:data:`STUDY_SCOPE`) are in no payload,
  as their effect reaches each cell through the study fingerprint it holds.

Three more hashes say whether stored data is the data asked for, and are built here too:
:func:`task_data_version` (a task's labelled records, part of every cell and study payload),
:func:`corpus_content_hash` (what a corpus store holds, against the corpus requested) and
:func:`column_configuration` (what a leaderboard column's model stands for).

Settings that cannot change the numbers are left out, all of them in one declared list,
:data:`IGNORED`; the validation cadence of pretraining counts only when it chooses the encoder
(:data:`SELECTING`). This module is plain data in, plain data out (mappings and dataclasses): it
knows no model, corpus or suite class, so every package can use it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from simecg.config import _json_default, stable_hash, to_dict

# Bump when the *layout* of identities changes (what goes into which payload), so fingerprints
# of the old layout can never equal new ones.
IDENTITY_VERSION = "3"

# Settings that cannot change the numbers, per config section. They may differ between two runs
# (or a run and its resumption) that share a fingerprint.
#   pretrain: speed and bookkeeping only. Checkpoints never touch the training RNG or the
#   weights (how often to validate can choose them: see SELECTING); ``device`` and ``threads``
#   are left out because CPU and CUDA runs, and runs on different thread counts, of one config
#   are documented (README, "Reproducibility") to agree to float tolerance, not bit for bit
#   (tests/test_pretrain_train.py measures threads);
#   ``data_dir`` is where real data sits (the records used are in the corpus identity).
#   finetune: ``device``: where a cell trains and scores (CPU and GPU agree to float tolerance;
#   bf16 autocast on a GPU), so results move between machines and a resumed suite keeps its cells.
#   run: options of an invocation (``simecg-bench run``), none of which is part of a config.
IGNORED: Mapping[str, frozenset[str]] = {
    "pretrain": frozenset({
        "num_workers", "prefetch_factor", "threads", "device", "checkpoint_every",
        "keep_checkpoints", "log_every", "data_dir",
    }),
    "finetune": frozenset({"device"}),
    "run": frozenset({"progress", "tracking_uri", "optuna_storage", "shard", "data_dir", "dry_run", "format"}),
    #   generator: bookkeeping of a generator's training (checkpoints, logs, sample grids).
    "generator": frozenset({"checkpoint_every", "keep_checkpoints", "log_every", "sample_every"}),
}

# Pretraining settings that change the encoder only by choosing its checkpoint: the validation
# cadence and masks decide which validation losses are compared, so they are part of an
# encoder's identity when the encoder is the best-validation checkpoint (``select = "best_val"``,
# the paper's) and left out when it is the last one (``select = "last"``), where validation is
# bookkeeping (docs/protocol.md, "MAE pretraining").
SELECTING: frozenset[str] = frozenset({"val_every", "val_every_samples", "val_masks"})


# Tuning settings that choose which study a cell takes its values from, not what a study computes.
STUDY_SCOPE = frozenset({"separate_studies", "shared_studies"})


@dataclass(frozen=True)
class Identity:
    """A fingerprint and the payload it hashes (kept so a mismatch can say what differs)."""

    kind: str
    payload: dict[str, Any]

    @property
    def fingerprint(self) -> str:
        return stable_hash({"kind": self.kind, "identity_version": IDENTITY_VERSION, "payload": self.payload})

    def differences(self, before: Mapping[str, Any]) -> list[str]:
        """``"key.path: old -> new"`` for each value that differs from an earlier payload (for messages)."""
        return _diff(dict(before), self.payload)


def _plain(value: Any) -> dict[str, Any]:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return to_dict(value)
    return to_dict_mapping(value)


def to_dict_mapping(value: Mapping[str, Any]) -> dict[str, Any]:
    """A JSON-ready copy of a mapping (tuples become lists), as :func:`simecg.config.to_dict` does."""
    import json

    return json.loads(json.dumps(dict(value), default=_json_default))


def without_ignored(section: str, settings: Any) -> dict[str, Any]:
    """``settings`` (a dataclass or mapping) as a plain dict, less the :data:`IGNORED` keys of ``section``."""
    ignored = IGNORED.get(section, frozenset())
    return {k: v for k, v in _plain(settings).items() if k not in ignored}


def encoder_identity(pretrain: Any, model: Any, corpus: Mapping[str, Any],
                     method: Mapping[str, Any] | None = None) -> Identity:
    """The identity of an encoder's weights.

    Args:
        pretrain: the pretraining config (``PretrainConfig`` or its dict). Its ``corpus_options``
            are replaced by the corpus's own identity, which holds the resolved options that
            change its content (a store path, say, does not).
        model: the resolved architecture (``MAEConfig`` or its dict).
        corpus: ``Corpus.identity()``: name and content identity of the pretraining data.
        method: the pretraining method's name and resolved settings (``{"name", "config"}``), for
            every method but masked autoencoding: its encoders were identified before there was a
            choice of method, so their payload holds none (None) and their fingerprints, and those
            of the cells built on them, stay valid. Another method on the same source and settings is another encoder.

    The :data:`SELECTING` settings count only when ``select`` is ``"best_val"``.
    """
    settings = without_ignored("pretrain", pretrain)
    settings.pop("corpus_options", None)
    if settings.get("select") == "last":
        settings = {k: v for k, v in settings.items() if k not in SELECTING}
    payload = {"pretrain": settings, "model": _plain(model), "corpus": to_dict_mapping(corpus)}
    if method is not None:
        payload["method"] = to_dict_mapping(method)
    return Identity("encoder", payload)


def generator_identity(settings: Any, data: Mapping[str, Any]) -> Identity:
    """The identity of a trained generator (the VAE or DCGAN behind the ``vae``/``gan`` corpora).

    Args:
        settings: the generator's resolved config (a dataclass or dict: model kind, preset with
            overrides, training settings, seed); its :data:`IGNORED` ``["generator"]`` keys are dropped.
        data: the identity of its training data (records used, lead, data version; no location).
    """
    return Identity("generator", {"generator": without_ignored("generator", settings),
                                  "data": to_dict_mapping(data)})


def cell_identity(
    cell: Any, protocol: Mapping[str, Any], model: Mapping[str, Any], data_version: str, study: str = ""
) -> Identity:
    """The identity of one cell's result.

    Args:
        cell: the cell (model name, task, lead, budget, seed, positives_only, shift).
        protocol: the suite's settings that shape every cell: split, test seed, age bins,
            fine-tuning config, protocol version. Its tuning settings, if any, are left out: they
            change a cell's numbers only through the study it takes its values from.
        model: the model's identity (registry name, resolved config, and for a pretrained model
            its encoder's fingerprint).
        data_version: the task data's version (records, labels, preprocessing).
        study: the fingerprint of the tuning study whose best values the cell trains with
            (:func:`study_identity`); empty when the cell is not tuned.
    """
    protocol = to_dict_mapping(protocol)
    protocol.pop("tuning", None)
    if "finetune" in protocol:
        protocol["finetune"] = without_ignored("finetune", protocol["finetune"])
    return Identity("cell", {
        "cell": _plain(cell), "protocol": protocol, "model": to_dict_mapping(model),
        "data_version": data_version, "study": study,
    })


def study_identity(
    cell: Any, protocol: Mapping[str, Any], model: Mapping[str, Any], data_version: str
) -> Identity:
    """The identity of a tuning study: what its trials train on and how (its best values follow).

    Args:
        cell: the study cell, whose split, budget, lead and model the trials use; its seed is
            left out (the trials use the tuning seed, which is in ``protocol``).
        protocol: as for :func:`cell_identity`, with the tuning settings (trials, budgets,
            sampler, tuning seed), less the :data:`STUDY_SCOPE` settings.
        model: the identity of the study cell's model.
        data_version: the version of the study cell's task data.
    """
    protocol = to_dict_mapping(protocol)
    if "finetune" in protocol:
        protocol["finetune"] = without_ignored("finetune", protocol["finetune"])
    if "tuning" in protocol:
        protocol["tuning"] = {k: v for k, v in protocol["tuning"].items() if k not in STUDY_SCOPE}
    return Identity("study", {
        "cell": {k: v for k, v in _plain(cell).items() if k != "seed"}, "protocol": protocol,
        "model": to_dict_mapping(model), "data_version": data_version,
    })


def task_data_version(dataset_version: str, task: Mapping[str, Any], records: list[str], labels: list[int]) -> str:
    """The data version of one task: its dataset's content version (the bytes read and how they were
    preprocessed), the task's definition, and which records it holds with which labels, in order."""
    return stable_hash({"dataset": dataset_version, "task": dict(task), "records": records, "labels": labels})


def corpus_content_hash(content: Mapping[str, Any]) -> str:
    """The hash a corpus store records of the corpus it holds (the corpus's content identity, the one
    an encoder's identity holds): a store is used only for a corpus of the same hash."""
    return stable_hash(dict(content))


def column_configuration(params: Mapping[str, str], prefixes: tuple[str, ...]) -> str:
    """The short hash of a leaderboard column's configuration: a cell run's parameters under ``prefixes``
    (model, fine-tuning, tuning and split settings), so two columns of one model name differ visibly."""
    return stable_hash({k: v for k, v in params.items() if k.startswith(prefixes)}, length=12)


def _diff(old: Any, new: Any, prefix: str = "") -> list[str]:
    if isinstance(old, dict) and isinstance(new, dict):
        out: list[str] = []
        for key in sorted(set(old) | set(new)):
            out += _diff(old.get(key), new.get(key), f"{prefix}{key}.")
        return out
    return [] if old == new else [f"{prefix.rstrip('.')}: {old!r} -> {new!r}"]
