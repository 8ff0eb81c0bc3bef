"""Training a generator (VAE or DCGAN): resumable, checkpointed, deterministic given its seed.

:func:`train_generator` trains the model a config describes on :class:`GeneratorData` (its caller's
choice: the ``vae``/``gan`` corpora pass PTB-XL lead II training records,
:func:`benchmark.corpora.generated.ptbxl_training_data`), z-scoring every ECG first, with the authors' recipe
(docs/protocol.md, "VAE and GAN corpora"): epochs of a seeded permutation cut into full batches
(the incomplete last one dropped, as their ``DataLoader(drop_last=True)``), each batch augmented
(:func:`augment`: a masked segment and a zero-padded shift), the learning rates held or annealed
(``lr_schedule``). Every random choice is a function of (``config.seed``, step): the initial
weights come from the seed, epoch ``e``'s order from (seed, e), a batch's augmentation and the
model's noise (the VAE's reparameterisation, the GAN's ``z``) from (seed, step). So a checkpoint
needs only the weights, the optimizer states and the history, and
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
import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from pretraining import checkpoint as ckpt
from pretraining.generators.common import (
    FORMAT,
    GENERATOR_FILE,
    GenerativeModel,
    GeneratorConfig,
    TrainingBatch,
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
from simecg import progress as progress_lines
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
    are loaded on first use (:meth:`signals`: items ``start, start + 1, ...`` of ``source``), so
    computing an identity reads no ECG. ``validation``: the records whose loss picks the weights
    (``select="best_val"``), none of them trained on.
    """

    def __init__(self, identity: Mapping[str, Any], record_ids: list[str] | tuple[str, ...],
                 signals: np.ndarray | None = None, source: Any = None, validation: GeneratorData | None = None,
                 start: int = 0):
        self.identity = dict(identity)
        self.record_ids = tuple(str(r) for r in record_ids)
        self._signals = signals
        self._source = source
        self.validation = validation
        self.start = start

    def __len__(self) -> int:
        return len(self.record_ids)

    def signals(self) -> np.ndarray:
        if self._signals is None:
            positions = np.arange(self.start, self.start + len(self.record_ids))
            self._signals = np.asarray(self._source.get_batch(positions), dtype=np.float32)
        return self._signals


def generator_identity(config: GeneratorConfig, data: GeneratorData | Mapping[str, Any]) -> Identity:
    """The identity of the generator ``config`` trains on ``data``: its kind and resolved config (the
    bookkeeping settings left out) and the data's identity, with its validation records' when they
    choose the weights (``select="best_val"``)."""
    data_identity = data.identity if isinstance(data, GeneratorData) else dict(data)
    if isinstance(data, GeneratorData) and config.select == "best_val" and data.validation is not None:
        data_identity = {**data_identity, "validation": data.validation.identity}
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


class BestWeights:
    """The weights that will sample the corpus under ``select="best_val"``: the authors' ``net.pth``.

    :meth:`observe` measures the validation loss on the steps the authors measure it and keeps a
    copy of the sampler's weights (BatchNorm statistics included) when it is strictly lower than
    the best so far; :meth:`state` goes into training checkpoints so a resumed run keeps its best.
    Without validation records (or with ``select="last"``) nothing is measured and the last weights
    are kept, which :meth:`choice` says.
    """

    def __init__(self, config: GeneratorConfig, validation: np.ndarray | None, state: Mapping[str, Any] | None):
        self.config = config
        self.validation = None if validation is None else torch.from_numpy(validation)
        state = dict(state or {})
        self.step: int | None = state.get("step")
        self.loss: float = float(state.get("loss", math.inf))
        self.weights: dict[str, torch.Tensor] | None = state.get("weights")

    @property
    def active(self) -> bool:
        return self.config.select == "best_val" and self.validation is not None

    def observe(self, model: GenerativeModel, done: int) -> float | None:
        """After ``done`` steps: the validation loss if it is measured now (else None), keeping the best."""
        if not self.active or done % self.config.val_interval:
            return None
        loss = model.validation_loss(self.validation, done, seeded_generator(self.config.seed, "generator-validation",
                                                                             done))
        if loss < self.loss:
            self.step, self.loss = done, loss
            self.weights = {k: v.detach().clone() for k, v in model.sampler().state_dict().items()}
        return loss

    def state(self) -> dict[str, Any]:
        return {"step": self.step, "loss": self.loss, "weights": self.weights}

    def choice(self, model: GenerativeModel) -> tuple[dict[str, torch.Tensor] | None, dict[str, Any]]:
        """The sampler weights to save (None: the model's last) and what was chosen, for the file and the logs."""
        if self.weights is None:
            why = "last" if self.config.select == "last" else (
                "last: no validation records" if self.validation is None else "last: no validation before the end")
            return None, {"selected": why, "selected_step": self.config.steps}
        return self.weights, {"selected": "best_val", "selected_step": self.step, "selected_val_loss": self.loss}


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
        data: the training ECGs (e.g. :func:`benchmark.corpora.generated.ptbxl_training_data`), z-scored
            here per ECG.
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
    if config.select == "best_val" and data.validation is None:
        log.warning("generator %s: select=best_val but its data has no validation records; the last weights "
                    "will sample the corpus (the generator file says so)", kind)
    if len(data) < config.batch_size:
        raise DataError(f"generator training data holds {len(data)} ECGs, fewer than one batch of "
                        f"{config.batch_size} (incomplete batches are dropped, as the authors' loader does); "
                        "lower generator.batch_size or train on more records")
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
    best = BestWeights(config, None if data.validation is None else zscore(data.validation.signals()),
                       None if state is None else state.get("best"))
    signals = zscore(data.signals())
    if signals.ndim != 2 or signals.shape[1] != N_SAMPLES:
        raise DataError(f"generator training data must be (n, {N_SAMPLES}) ECGs, got {tuple(signals.shape)}")
    bar = None
    if progress:
        bar = tqdm(total=config.steps, initial=start, desc=f"generator {kind}", unit="step", dynamic_ncols=True)
    lines = progress_lines.Every()  # off a terminal: timestamped lines (simecg.progress)
    progress_lines.say(f"generator {kind}: {'resuming at' if start else 'starting,'} step {start} of {config.steps}")
    try:
        for step in range(start, config.steps):
            rows, batch_in_epoch = batch_positions(config, len(signals), step)
            x, mask = augment(signals[rows], config.mask_ratio, config.max_shift_ratio,
                              rng_for(config.seed, "generator-augment", step))
            set_learning_rates(optimizers, config.lr_factor(step))
            noise = seeded_generator(config.seed, "generator-noise", step)
            batch = TrainingBatch(torch.from_numpy(x), torch.from_numpy(mask), step, batch_in_epoch)
            metrics = model.train_step(batch, optimizers, noise)
            for key, value in metrics.items():  # [sum, count] per key: some steps lack some (GAN's loss_d)
                total, count = window.get(key, (0.0, 0))
                window[key] = (total + float(value), count + 1)
            done = step + 1
            val_loss = best.observe(model, done)
            if val_loss is not None:
                history.append({"step": done, "val_loss": val_loss})
                if logger is not None:
                    logger.log_metrics({"val_loss": val_loss}, step=done)
            if done % config.log_every == 0 or done == config.steps:
                entry = {key: total / count for key, (total, count) in window.items()}
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
            if val_loss is not None or done == config.steps or lines.due():
                last = next((h for h in reversed(history) if len(h) > 1), {})
                losses = ", ".join(f"{k.replace('_', ' ')} {v:.4g}" for k, v in list(last.items())[1:3])
                progress_lines.say(f"generator {kind}: step {done}/{config.steps} ({done / config.steps:.0%})"
                                   + (f", {losses}" if losses else ""))
            if done % config.checkpoint_every == 0 or done == config.steps:
                _save(model, optimizers, config, fingerprint, done, history, window, best, ckpt_dir)
    finally:
        if bar is not None:
            bar.close()
    weights, chosen = best.choice(model)
    if logger is not None:
        logger.log_metrics({k: v for k, v in chosen.items() if k != "selected"}, step=config.steps)
    save_generator(model, config, final, extra={"fingerprint": fingerprint, "steps": config.steps, **chosen},
                   state=weights)
    integrity.write_json(out_dir / "history.json", history)
    if logger is not None and history:
        _log_figure(logger, loss_figure(history, LOSS_KEYS[kind]), "loss_curves.png")
    return GeneratorResult(final, out_dir, fingerprint, config.steps, history, trained_now=True)


def seeded_generator(seed: int, purpose: str, step: int) -> torch.Generator:
    """A torch generator seeded by (seed, purpose, step): a model's noise at one step, whatever ran before."""
    return torch.Generator().manual_seed(int(rng_for(seed, purpose, step).integers(2**62)))


def batch_positions(config: GeneratorConfig, n: int, step: int) -> tuple[np.ndarray, int]:
    """Rows of the training set in batch ``step`` and the batch's index in its epoch.

    An epoch is a permutation of the ``n`` records seeded by (seed, epoch), cut into ``n // batch``
    full batches; the rest of it is dropped (the authors' ``drop_last``). A pure function of seed and step.
    """
    per_epoch = n // config.batch_size
    epoch, within = divmod(step, per_epoch)
    order = rng_for(config.seed, "generator-epoch", epoch).permutation(n)
    return order[within * config.batch_size:(within + 1) * config.batch_size], within


def augment(x: np.ndarray, mask_ratio: float, max_shift_ratio: float,
            rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """The authors' training augmentation of z-scored ECGs ``x`` (n, L): the shifted ECGs and their masks.

    Per ECG, as their ``RandomMask`` then ``RandomShift``: a segment of ``int(L x mask_ratio)``
    samples starting uniformly in ``[0, L - width)`` is marked masked (the ECG keeps its values:
    each model decides what masking means); then ECG and mask are shifted by ``int(L x U(0, 1) x
    max_shift_ratio)`` samples, right or left with equal odds, zeros coming in (the mask is 0
    there too). Returns float32 ``(shifted x, mask)``, mask 1 where a sample is the record's own
    and unmasked. The project's fine-tuning :func:`baselines.training.augment` draws a little
    differently and returns no mask, so it is not reused here.
    """
    n, length = x.shape
    width = int(length * mask_ratio)
    starts = rng.integers(0, length - width, size=n)[:, None]
    shifts = (length * (rng.random(n) * max_shift_ratio)).astype(np.int64)
    shifts = np.where(rng.random(n) < 0.5, shifts, -shifts)[:, None]  # > 0: zeros padded in front
    source = np.arange(length)[None, :] - shifts  # each output sample's position in the record
    inside = (source >= 0) & (source < length)
    kept = inside & ~((source >= starts) & (source < starts + width))
    shifted = np.where(inside, np.take_along_axis(x, np.clip(source, 0, length - 1), axis=1), 0.0)
    return shifted.astype(np.float32), kept.astype(np.float32)


def set_learning_rates(optimizers: dict[str, torch.optim.Optimizer], factor: float) -> None:
    """Every parameter group at ``factor`` x its optimizer's initial learning rate (the lr schedule)."""
    for optimizer in optimizers.values():
        for group in optimizer.param_groups:
            group["lr"] = optimizer.defaults["lr"] * factor


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
          fingerprint: str, step: int, history: list[dict[str, Any]], window: dict[str, Any], best: BestWeights,
          folder: Path) -> None:
    ckpt.atomic_save({
        "format": FORMAT, "kind": "training", "model_kind": kind_of(config), "step": step,
        "model": model.state_dict(), "optimizers": {k: o.state_dict() for k, o in optimizers.items()},
        "history": history, "window": window, "best": best.state(), "config": to_dict(config),
        "fingerprint": fingerprint,
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
