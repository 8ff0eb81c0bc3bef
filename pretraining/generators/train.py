"""Training a generator (VAE or DCGAN): resumable, checkpointed, deterministic given its seed.

:func:`train_generator` trains the model a config describes on :class:`GeneratorData` (PTB-XL lead II
training records, :func:`ptbxl_training_data`), z-scoring every ECG first. Every random choice is a
function of (``config.seed``, step): the initial weights come from the seed, batch ``k`` takes
positions ``[k * batch, (k + 1) * batch)`` of a sequence of seeded per-epoch permutations, and the
model's noise (the VAE's reparameterisation, the GAN's ``z``) comes from a torch generator seeded
by (seed, step). So a checkpoint needs only the weights, the optimizer states and the history, and
calling it again on the same folder continues exactly where the last checkpoint left off (as
:func:`pretraining.loop.pretrain` does). Checkpoints are written atomically
(:func:`pretraining.checkpoint.atomic_save`).

A folder holds one generator: ``identity.json`` (its identity, :func:`generator_identity`),
``checkpoints/step-XXXXXXXX.pt``, ``history.json`` and, once finished, ``generator.pt`` (the sampler's
weights and config, what the ``vae``/``gan`` corpora load). Trained generators are cached under
``<cache>/generators/<fingerprint>/`` (:func:`generator_dir`).
"""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from pretraining import checkpoint as ckpt
from pretraining.generators.common import (
    FORMAT,
    GENERATOR_FILE,
    GenerativeModel,
    GeneratorConfig,
    build_model,
    is_complete,
    kind_of,
    loss_figure,
    read_file,
    sample_latents,
    samples_figure,
    save_generator,
)
from simecg import integrity, paths
from simecg.config import to_dict
from simecg.errors import ConfigError, DataError
from simecg.identity import IDENTITY_VERSION, Identity
from simecg.identity import generator_identity as _generator_identity
from simecg.locks import folder_lock
from simecg.seeding import rng_for
from simecg.signal import N_SAMPLES, zscore

log = logging.getLogger(__name__)

IDENTITY_FILE = "identity.json"
LOSS_KEYS = {"vae": ("loss", "recon_mse", "kl"), "gan": ("loss_d", "loss_g", "d_real", "d_fake")}


class GeneratorData:
    """A generator's training ECGs (raw, (n, 5000)), their record ids and the data's identity.

    ``identity`` is JSON-ready and names what the ECGs are (for PTB-XL: the ``ptbxl`` corpus identity,
    i.e. the records used in order, the lead, the data version and the selection options); the signals
    are loaded on first use (:meth:`signals`), so computing an identity reads no ECG.
    """

    def __init__(self, identity: Mapping[str, Any], record_ids: list[str] | tuple[str, ...],
                 signals: np.ndarray | None = None, source: Any = None):
        self.identity = dict(identity)
        self.record_ids = tuple(str(r) for r in record_ids)
        self._signals = signals
        self._source = source

    def __len__(self) -> int:
        return len(self.record_ids)

    def signals(self) -> np.ndarray:
        if self._signals is None:
            # a corpus's training ECGs come first (its own validation set, if any, after them)
            self._signals = np.asarray(self._source.get_batch(np.arange(len(self.record_ids))), dtype=np.float32)
        return self._signals


# Which PTB-XL records a generator trains on: "ptbxl", the ``ptbxl`` corpus's training records (no
# test record of the suite's split); "authors", the authors' random 64% (their generators' data
# code reads the split of seed 1: src/dgms/codes/data/dataloader.py), test records included.
RECORDS = ("ptbxl", "authors")
# What the suite decides of the ``ptbxl`` corpus a generator's records come from (options of both).
SPLIT_FIELDS = ("split", "test_seed", "duplicates", "overlap", "lengths")
AUTHORS_GENERATOR_SPLIT_SEED = 1


def ptbxl_training_data(max_records: int = 0, seed: int = 0, data_dir: str | Path | None = None,
                        cache_dir: str | Path | None = None, records: str = "ptbxl",
                        split: Mapping[str, Any] | None = None) -> GeneratorData:
    """PTB-XL lead II training records for a generator, chosen as the matching pretraining corpus chooses them.

    ``records="ptbxl"``: the training part of the ``ptbxl`` corpus for the suite's split settings
    ``split`` (``split``, ``test_seed``, ``duplicates``, ``overlap``, ``lengths``: options of that
    corpus; no record of any PTB-XL task's test split nor a duplicate of one; the corpus's validation
    records are left out too). ``records="authors"``: the training part of ``ptbxl-authors`` cut with
    seed 1 as the authors' generators had it (another random 64% of PTB-XL, test records included).
    Records come in an order seeded by ``seed``; ``max_records`` > 0 keeps the first that many. The
    data identity is that corpus's identity (records hashed in order, lead, data version, selection),
    never a location (docs/protocol.md, "VAE and GAN corpora").
    """
    from simecg.registries import CORPORA

    if records == "ptbxl":
        name, chosen = "ptbxl", dict(split or {})
    elif records == "authors":
        name, chosen = "ptbxl-authors", {"val_seed": AUTHORS_GENERATOR_SPLIT_SEED}
    else:
        raise ConfigError(f"generator training records={records!r}: expected one of {', '.join(RECORDS)}")
    entry = CORPORA.get(name)
    options = entry.Options(data_dir=None if data_dir is None else str(data_dir),
                            cache_dir=None if cache_dir is None else str(cache_dir), **chosen)
    corpus = entry(size=max_records or None, seed=seed, options=options)
    if records == "ptbxl" and corpus.sees_test_records:
        raise DataError("generator training data (records = ptbxl) must exclude every PTB-XL test split")
    return GeneratorData(corpus.identity(), corpus.record_ids[:corpus.train_size], source=corpus)


def generator_identity(config: GeneratorConfig, data: GeneratorData | Mapping[str, Any]) -> Identity:
    """The identity of the generator ``config`` trains on ``data``: its kind and resolved config (the
    bookkeeping settings left out) and the data's identity."""
    data_identity = data.identity if isinstance(data, GeneratorData) else dict(data)
    return _generator_identity({"model": kind_of(config), **to_dict(config)}, data_identity)


def generator_dir(identity: Identity, root: str | Path | None = None) -> Path:
    """``<cache>/generators/<fingerprint>``: the one folder of a trained generator."""
    return Path(root if root is not None else paths.cache_dir()) / "generators" / identity.fingerprint


def generator_lock(folder: Path) -> contextlib.AbstractContextManager[None]:
    """One process at a time trains (or fetches) a generator folder; the others wait, then find it done.

    Reentrant within a process, so the benchmark's provisioning and the corpus's :meth:`prepare`
    can both hold it.
    """
    return folder_lock(folder, f"train generator {Path(folder).name}")


@dataclass
class GeneratorResult:
    """What :func:`train_generator` produced (``trained_now``: false when the folder was already finished)."""

    path: Path
    out_dir: Path
    fingerprint: str
    steps: int
    history: list[dict[str, Any]]
    trained_now: bool


def write_identity(out_dir: Path, identity: Identity, config: GeneratorConfig) -> None:
    """Record a generator folder's identity (``identity.json``, atomically)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    payload = {"identity_version": IDENTITY_VERSION, "fingerprint": identity.fingerprint,
               "payload": identity.payload, "model": kind_of(config), "config": to_dict(config)}
    integrity.write_json(out_dir / IDENTITY_FILE, payload)


def check_out_dir(out_dir: Path, identity: Identity) -> None:
    """Refuse a folder that holds another generator (its ``identity.json`` has another fingerprint)."""
    path = out_dir / IDENTITY_FILE
    if not path.is_file():
        return
    try:
        stored = json.loads(path.read_text())
        fingerprint, payload = stored["fingerprint"], stored["payload"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ConfigError(f"{path} is unreadable ({exc}); delete {out_dir} to train again") from None
    if fingerprint != identity.fingerprint:
        diffs = identity.differences(payload) or [f"identity version {stored.get('identity_version')}"]
        raise ConfigError(f"{out_dir} holds another generator ({'; '.join(diffs[:4])}); use another folder, "
                          "or delete this one to start over")


def train_generator(config: GeneratorConfig, out_dir: Path, logger: Any = None, progress: bool = True, *,
                    data: GeneratorData, identity: Identity | None = None) -> GeneratorResult:
    """Train (or resume, or just return) the generator ``config`` describes in ``out_dir``.

    Args:
        config: a :class:`~pretraining.generators.vae.VAEConfig` or
            :class:`~pretraining.generators.gan.DCGANConfig` (e.g. from ``resolve_config``).
        out_dir: the generator's folder (checkpoints, ``generator.pt``, ``identity.json``, ``history.json``).
        logger: optional, with mlflow's fluent ``log_metrics(dict, step=)`` and ``log_figure(figure,
            artifact_file)``: losses every ``log_every`` steps, sample grids every ``sample_every``
            (``samples/step_XXXXXXXX.png``) and the loss curves at the end (``loss_curves.png``).
        progress: show a progress bar.
        data: the training ECGs (:func:`ptbxl_training_data`), z-scored here per ECG.
        identity: the generator's identity if the caller has it (computed from ``config`` and ``data``).
    """
    out_dir = Path(out_dir)
    identity = identity if identity is not None else generator_identity(config, data)
    check_out_dir(out_dir, identity)
    fingerprint = identity.fingerprint
    kind = kind_of(config)
    final = out_dir / GENERATOR_FILE
    if is_complete(out_dir, fingerprint):
        history = _read_history(out_dir)
        return GeneratorResult(final, out_dir, fingerprint, config.steps, history, trained_now=False)
    ckpt_dir = out_dir / "checkpoints"
    latest = ckpt.latest_checkpoint(ckpt_dir)
    state = read_file(latest) if latest is not None else None
    if state is not None and (state.get("fingerprint") != fingerprint or state["step"] > config.steps):
        raise ConfigError(f"{latest} belongs to another generator (or more steps); delete {out_dir} to start over")
    if len(data) == 0:
        raise DataError("generator training data holds no ECG")
    write_identity(out_dir, identity, config)

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(config.seed)
        model = build_model(config)
    model.train()
    optimizers = model.make_optimizers()
    start, history, window = 0, [], {}
    if state is not None:
        model.load_state_dict(state["model"])
        for name, optimizer in optimizers.items():
            optimizer.load_state_dict(state["optimizers"][name])
        start, history, window = int(state["step"]), list(state["history"]), dict(state["window"])
        log.info("resuming generator %s from step %d", out_dir, start)
    signals = torch.from_numpy(zscore(data.signals()))
    if signals.ndim != 2 or signals.shape[1] != N_SAMPLES:
        raise DataError(f"generator training data must be (n, {N_SAMPLES}) ECGs, got {tuple(signals.shape)}")
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=config.steps, initial=start, desc=f"generator {kind}", unit="step", dynamic_ncols=True)
    try:
        for step in range(start, config.steps):
            x = signals[torch.from_numpy(batch_positions(config, len(signals), step))]
            noise = torch.Generator().manual_seed(int(rng_for(config.seed, "generator-noise", step).integers(2**62)))
            metrics = model.train_step(x, step, optimizers, noise)
            for key, value in metrics.items():
                window[key] = window.get(key, 0.0) + float(value)
            window["count"] = window.get("count", 0) + 1
            done = step + 1
            if done % config.log_every == 0 or done == config.steps:
                count = window.pop("count")
                entry = {key: value / count for key, value in window.items()}
                window = {}
                history.append({"step": done, **entry})
                if logger is not None:
                    logger.log_metrics(entry, step=done)
                if bar is not None:
                    bar.set_postfix({k: f"{v:.4g}" for k, v in list(entry.items())[:2]})
            if logger is not None and (done % config.sample_every == 0 or done == config.steps):
                _log_figure(logger, samples_figure(_samples(model, config), f"{kind} samples, step {done}"),
                            f"samples/step_{done:08d}.png")
            if bar is not None:
                bar.update(1)
            if done % config.checkpoint_every == 0 or done == config.steps:
                _save(model, optimizers, config, fingerprint, done, history, window, ckpt_dir)
    finally:
        if bar is not None:
            bar.close()
    save_generator(model, config, final, extra={"fingerprint": fingerprint, "steps": config.steps})
    integrity.write_json(out_dir / "history.json", history)
    if logger is not None and history:
        _log_figure(logger, loss_figure(history, LOSS_KEYS[kind]), "loss_curves.png")
    return GeneratorResult(final, out_dir, fingerprint, config.steps, history, trained_now=True)


def batch_positions(config: GeneratorConfig, n: int, step: int) -> np.ndarray:
    """Rows of the training set in batch ``step``: positions ``[step * b, (step + 1) * b)`` of the
    concatenated seeded per-epoch permutations of ``n`` records (a pure function of seed and step)."""
    positions = np.arange(step * config.batch_size, (step + 1) * config.batch_size, dtype=np.int64)
    epochs, within = positions // n, positions % n
    out = np.empty_like(positions)
    for epoch in np.unique(epochs):
        mask = epochs == epoch
        out[mask] = rng_for(config.seed, "generator-epoch", int(epoch)).permutation(n)[within[mask]]
    return out


@torch.no_grad()
def _samples(model: GenerativeModel, config: GeneratorConfig, n: int = 6) -> np.ndarray:
    sampler = model.sampler()
    was_training = sampler.training
    sampler.eval()
    z = torch.from_numpy(sample_latents(config.seed, np.arange(n), config.latent_dim, "generator-preview"))
    out = sampler(z).numpy()
    sampler.train(was_training)
    return out


def _save(model: GenerativeModel, optimizers: dict[str, torch.optim.Optimizer], config: GeneratorConfig,
          fingerprint: str, step: int, history: list[dict[str, Any]], window: dict[str, Any], folder: Path) -> None:
    ckpt.atomic_save({
        "format": FORMAT, "kind": "training", "model_kind": kind_of(config), "step": step,
        "model": model.state_dict(), "optimizers": {k: o.state_dict() for k, o in optimizers.items()},
        "history": history, "window": window, "config": to_dict(config), "fingerprint": fingerprint,
    }, ckpt.step_path(folder, step))
    ckpt.prune_checkpoints(folder, config.keep_checkpoints)


def _read_history(out_dir: Path) -> list[dict[str, Any]]:
    try:
        return list(json.loads((out_dir / "history.json").read_text()))
    except (OSError, ValueError):
        return []


def _log_figure(logger: Any, figure: Any, artifact_file: str) -> None:
    try:
        logger.log_figure(figure, artifact_file)
    finally:
        import matplotlib.pyplot as plt

        plt.close(figure)
