"""Pretraining by any registered method on any registered corpus: resumable, deterministic, ``torchrun``-ready.

:func:`pretrain` streams the corpus on the fly (:mod:`pretraining.stream`), trains the module of
the method ``config.method`` names (:mod:`pretraining.methods`: the masked autoencoder, SimCLR,
...) with the paper's optimizer settings, validates on a fixed held-out set with the method's
own loss, and writes atomic checkpoints (:mod:`pretraining.checkpoint`). Every random choice
(the method's masks and views too) comes from ``config.seed`` and the step number, so calling it again on the same
``out_dir`` continues exactly where the last checkpoint left off, and ``n`` processes with the
same global batch train the same model as one.

The encoder it hands out (``encoder.pt``) is, as in the paper, the checkpoint of the lowest
validation loss among the validations every :func:`~pretraining.config.validation_interval`
steps (the authors' ``net.pth``; docs/protocol.md, "MAE pretraining"), or the last one with
``pretrain.select = "last"``. The best validation so far travels in every training checkpoint,
so a resumed run hands out the same encoder as an uninterrupted one.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import nn

from pretraining import checkpoint as ckpt
from pretraining import ddp
from pretraining.config import (
    PretrainConfig,
    build_corpus,
    build_method,
    encoder_identity,
    lr_at,
    model_config,
    validation_interval,
)
from pretraining.corpora.base import validation_holdout
from pretraining.figures import loss_curve_figure
from pretraining.mae import METHOD, MAEConfig
from pretraining.stream import PretrainStream, make_loader
from simecg import integrity
from simecg import progress as progress_lines
from simecg.config import to_dict
from simecg.errors import CheckpointError, ConfigError, DivergedError, SimECGError
from simecg.failpoints import failpoint
from simecg.identity import IDENTITY_VERSION, SELECTING, Identity, without_ignored
from simecg.seeding import rng_for
from simecg.signal import zscore

if TYPE_CHECKING:
    from pretraining.corpora.base import Corpus

log = logging.getLogger(__name__)

IDENTITY_FILE = "identity.json"

# EncoderChoice.chosen_by: why the encoder holds the weights of its step.
BEST_VAL = "best_val"  # the lowest validation loss (select = "best_val", the paper's)
LAST = "last"  # the final weights, as asked (select = "last")
LAST_UNVALIDATED = "last (no validation)"  # best_val asked, but no validation loss to choose by


@dataclass(frozen=True)
class BestValidation:
    """The lowest validation loss so far, its step, and the encoder weights then.

    ``encoder`` is held by the process that writes checkpoints (rank 0), and only when the
    run hands out the best-validation encoder (``select = "best_val"``); None otherwise.
    """

    step: int
    val_loss: float
    encoder: dict[str, torch.Tensor] | None = None

    def to_state(self) -> dict[str, Any]:
        return {"step": self.step, "val_loss": self.val_loss, "encoder": self.encoder}

    @classmethod
    def from_state(cls, state: dict[str, Any] | None) -> BestValidation | None:
        return None if state is None else cls(int(state["step"]), float(state["val_loss"]), state.get("encoder"))


@dataclass(frozen=True)
class EncoderChoice:
    """Which training step's weights the encoder file holds, its validation loss (NaN: none) and why."""

    step: int
    val_loss: float
    chosen_by: str


@dataclass
class PretrainResult:
    """What :func:`pretrain` produced.

    ``checkpoint`` is the encoder file for :func:`pretraining.checkpoint.load_encoder`, holding
    the weights of step ``choice.step``; ``val_loss`` is the validation loss after the last
    step; ``history`` has one dict per logged step (``step``, ``train_loss``, ``lr``,
    ``samples_per_s``, ``data_wait_share``, and ``val_loss`` on validation steps).
    ``already_complete``: nothing was trained, the folder held the finished run (its history came
    from the last checkpoint, and no logger saw it step by step).
    """

    checkpoint: Path
    val_loss: float
    steps: int
    history: list[dict[str, Any]]
    out_dir: Path
    training_checkpoint: Path
    model_config: MAEConfig
    fingerprint: str
    choice: EncoderChoice
    already_complete: bool = False


def pretrain(
    config: PretrainConfig,
    out_dir: Path,
    logger: Any = None,
    progress: bool = True,
    *,
    corpus: Corpus | None = None,
    identity: Identity | None = None,
    name: str = "",
) -> PretrainResult:
    """Pretrain (or resume, or just return) the MAE described by ``config`` in ``out_dir``.

    Args:
        config: what to train.
        out_dir: the run folder (checkpoints, ``encoder.pt``, ``config.json``, ``history.json``).
        logger: optional, with mlflow's fluent ``log_metrics(dict, step=)`` and
            ``log_figure(figure, artifact_file)``; used on rank 0 only.
        progress: show a progress bar (rank 0).
        corpus: an already built corpus (notebooks, tests); by default the config's is built
            from the registry.
        identity: the encoder's identity, if the caller already has it (it is computed otherwise).
            ``out_dir`` keeps it in ``identity.json``; a folder holding another encoder is refused.
        name: what the progress bar and the progress lines call this run (a suite's source, e.g.
            ``sim`` or ``sim-2k``; default: the config's corpus). Off a terminal the loop says how
            far it is in timestamped lines (:mod:`simecg.progress`).

    Under ``torchrun`` every process calls this; ``config.batch_size`` is the global batch.
    """
    ctx = ddp.setup(config.device)
    threads = torch.get_num_threads()
    if config.threads > 0:
        torch.set_num_threads(config.threads)
    try:
        if identity is None and corpus is None:
            identity = stored_identity(Path(out_dir), config)  # a finished folder needs no corpus
        if identity is None:
            corpus = corpus if corpus is not None else build_corpus(config)
            identity = encoder_identity(config, corpus)
        return _Run(config, Path(out_dir), logger, progress, corpus, ctx, identity, name or config.corpus).run()
    except RuntimeError as exc:  # under DDP mostly a collective whose peer died (gloo: "Connection reset by peer")
        if not ctx.distributed:
            raise
        first = str(exc).strip().splitlines()[0][:300] if str(exc).strip() else type(exc).__name__
        raise SimECGError(
            f"pretraining failed in process {ctx.rank} of {ctx.world_size}: {first}; when another process died "
            f"(see torchrun's summary), rerun the same command to resume from the last checkpoint in {out_dir}"
        ) from exc
    finally:
        torch.set_num_threads(threads)
        ddp.teardown(ctx)


# An encoder whose masked-patch loss ends here learned little: on z-scored signals, predicting zero
# for every masked patch scores MSE 1.0, and a loss that ends above 90% of where it began barely fell.
CHANCE_MSE = 1.0
STALLED_FRACTION = 0.9


def stalled_warning(first_loss: float, encoder_loss: float, method: str = METHOD) -> str | None:
    """Why an encoder's loss says it learned little (None: it learned): for the MAE, its validation loss
    within 10% of :data:`CHANCE_MSE`; for any method, above :data:`STALLED_FRACTION` of the first
    training loss logged. Shown at the end of pretraining, in the leaderboard's header and in the
    report (docs/protocol.md). Another ``method``'s loss has another scale (a contrastive loss starts
    near log of the batch), so only the fall counts for it."""
    if not math.isfinite(encoder_loss):
        return None
    if method == METHOD and encoder_loss >= STALLED_FRACTION * CHANCE_MSE:
        return (f"validation loss {encoder_loss:.3f}, within {1 - STALLED_FRACTION:.0%} of the {CHANCE_MSE:.1f} that "
                "predicting zero scores on z-scored signals: it learned little (more steps, or another lr?)")
    if math.isfinite(first_loss) and first_loss > 0 and encoder_loss / first_loss > STALLED_FRACTION:
        fell = "it did not fall" if encoder_loss >= first_loss else "it barely fell"
        return (f"validation loss {encoder_loss:.3f} is {encoder_loss / first_loss:.2f} of its first training loss "
                f"{first_loss:.3f}: {fell}")
    return None


def write_identity(out_dir: Path, identity: Identity, config: PretrainConfig) -> None:
    """``out_dir/identity.json``: which encoder the folder holds (atomically written)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    payload = {"identity_version": IDENTITY_VERSION, "fingerprint": identity.fingerprint,
               "payload": identity.payload, "config": to_dict(config)}
    integrity.write_json(out_dir / IDENTITY_FILE, payload)


def resume_from_prefix(out_dir: Path, identity: Identity, config: PretrainConfig, roots: list[Path]) -> int:
    """Start ``out_dir`` from the longest run of the same trajectory with fewer steps; return its step.

    With a constant learning rate the encoder after ``k`` steps of a long run is the encoder
    trained for ``k`` steps, so a run for more steps can continue a shorter one instead of
    starting over (the ``progress`` suite's seven checkpoints cost one run). Only folders under
    ``roots`` whose identity differs in ``pretrain.steps`` alone qualify; their last checkpoint is
    copied, never moved. A run that hands out its last weights (``select = "last"``) may also
    continue a best-validation run (differences in ``select`` and the validation cadence): it
    never reads the best validation the checkpoint carries. A best-validation run continues only
    its own kind, whose carried best was chosen on the same validation steps. Returns 0 when
    there is none (or ``out_dir`` already has checkpoints).
    """
    if config.schedule != "constant" or ckpt.latest_checkpoint(out_dir / "checkpoints") is not None:
        return 0
    continues = ("pretrain.steps:",)
    if config.select == LAST:
        continues += tuple(f"pretrain.{key}:" for key in ("select", *sorted(SELECTING)))
    best: tuple[int, Path] | None = None
    for root in roots:
        for file in sorted(root.glob(f"*/{IDENTITY_FILE}")):
            try:
                stored = json.loads(file.read_text())
                if stored["identity_version"] != IDENTITY_VERSION or file.parent == out_dir:
                    continue
                diffs = identity.differences(stored["payload"])
            except (OSError, ValueError, KeyError, TypeError):
                continue
            if not diffs or not all(d.startswith(continues) for d in diffs):
                continue
            for step, path in ckpt.list_checkpoints(file.parent / "checkpoints"):
                if step <= config.steps and (best is None or step > best[0]):
                    best = (step, path)
    if best is None:
        return 0
    if ckpt.damage(best[1]) is not None:
        log.warning("not continuing the run in %s: its checkpoint %s is damaged", best[1].parent.parent, best[1])
        return 0
    write_identity(out_dir, identity, config)
    ckpt.copy_checkpoint(best[1], ckpt.step_path(out_dir / "checkpoints", best[0]))  # with its checksum
    log.info("encoder %s continues the run in %s from step %d", identity.fingerprint, best[1].parent.parent, best[0])
    return best[0]


def stored_identity(out_dir: Path, config: PretrainConfig) -> Identity | None:
    """The identity a run folder recorded, if it was made with the same settings as ``config``.

    Lets a caller without the corpus (or its data) resume or return a finished run; the runner
    and ``simecg-bench pretrain`` always pass the identity computed from the corpus itself.
    """
    try:
        stored = json.loads((out_dir / IDENTITY_FILE).read_text())
        same = without_ignored("pretrain", stored["config"]) == without_ignored("pretrain", config)
        if stored["identity_version"] == IDENTITY_VERSION and same:
            return Identity("encoder", stored["payload"])
    except (OSError, ValueError, KeyError, TypeError):
        pass
    return None


class _Run:
    """One call of :func:`pretrain`; holds the state the loop's helpers share."""

    def __init__(self, config: PretrainConfig, out_dir: Path, logger: Any, progress: bool,
                 corpus: Corpus | None, ctx: ddp.DistContext, identity: Identity, name: str = ""):
        self.config = config
        self.name = f"pretrain {name or config.corpus}"
        self.out_dir = out_dir
        self.ckpt_dir = out_dir / "checkpoints"
        self.encoder_path = out_dir / "encoder.pt"
        self.logger = logger if ctx.is_main else None
        self.progress = progress and ctx.is_main
        self.corpus = corpus
        self.ctx = ctx
        self.encoder_config = model_config(config)
        self.method = build_method(config)
        self.identity = identity
        self.fingerprint = identity.fingerprint
        self._val: tuple[torch.Tensor, torch.Tensor] | None = None

    # ---- identity of the run folder -------------------------------------------------------
    def check_out_dir(self) -> None:
        """Refuse a folder that holds another encoder (resuming a constant schedule for more steps is fine)."""
        path = self.out_dir / IDENTITY_FILE
        if not path.is_file():
            if (self.out_dir / "checkpoints").is_dir() and any((self.out_dir / "checkpoints").iterdir()):
                raise ConfigError(
                    f"{self.out_dir} holds checkpoints but no {IDENTITY_FILE} (written by an older version); "
                    "delete the folder to pretrain again"
                )
            return
        try:
            stored = json.loads(path.read_text())
            version, fingerprint, payload = stored["identity_version"], stored["fingerprint"], stored["payload"]
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise ConfigError(f"{path} is unreadable ({exc}); delete {self.out_dir} to pretrain again") from None
        if fingerprint == self.fingerprint:
            return
        if version != IDENTITY_VERSION:
            raise ConfigError(
                f"{self.out_dir} was written by another version of the suite (identity version {version}, "
                f"this one {IDENTITY_VERSION}); delete it to pretrain again, or use another --out folder"
            )
        diffs = [d for d in self.identity.differences(payload) if not self._extends(d)]
        if diffs:
            raise ConfigError(
                f"{self.out_dir} holds a pretraining run with different settings ({'; '.join(diffs)}); "
                "use another --out folder, or delete this one to start over"
            )

    def _extends(self, difference: str) -> bool:
        """A difference in ``steps`` alone continues a constant-schedule run (same trajectory)."""
        return difference.startswith("pretrain.steps:") and self.config.schedule == "constant"

    def write_identity(self) -> None:
        """Record the run's identity (after every process has compared it with the old one)."""
        ddp.barrier(self.ctx)
        if self.ctx.is_main:
            write_identity(self.out_dir, self.identity, self.config)

    # ---- main ---------------------------------------------------------------------------
    def run(self) -> PretrainResult:
        config, ctx = self.config, self.ctx
        self.check_out_dir()
        latest = self._resume_point()
        state = ckpt.read(latest) if latest is not None else None
        if state is not None and state["step"] > config.steps:
            raise ConfigError(
                f"{self.out_dir} already holds a run trained for {state['step']} steps, more than the "
                f"requested {config.steps}; use another --out folder"
            )
        if state is not None and state["step"] == config.steps:
            best = BestValidation.from_state(state.get("best"))
            choice = self._choice(state["step"], state["val_loss"], best)
            if ctx.is_main and ckpt.damage(self.encoder_path) is not None:  # absent, damaged or unsealed
                self._write_encoder(choice, best, lambda: self._last_weights(state))
            ddp.barrier(ctx)
            log.info("pretraining in %s is already complete (%d steps)", self.out_dir, config.steps)
            return dataclasses.replace(self._result(latest, state["history"], state["val_loss"], choice),
                                       already_complete=True)

        corpus = self.corpus if self.corpus is not None else build_corpus(config)
        self.train_size, self.val_count = validation_holdout(corpus, config.val_size, config.corpus)
        self.corpus = corpus
        self.write_identity()

        torch.manual_seed(config.seed)
        model = self.method.build().to(ctx.device)
        optimizer = self._optimizer(model)
        start, history, window, val_loss = 0, [], {"loss_sum": 0.0, "count": 0}, float("nan")
        best: BestValidation | None = None
        every = validation_interval(config)
        if state is not None:
            model.load_state_dict(state["model"])
            optimizer.load_state_dict(state["optimizer"])
            start, history, window = state["step"], list(state["history"]), dict(state["window"])
            val_loss = state["val_loss"]
            best = BestValidation.from_state(state.get("best"))
            torch.set_rng_state(state["rng"]["torch"])
            if torch.cuda.is_available() and state["rng"].get("cuda"):
                torch.cuda.set_rng_state_all(state["rng"]["cuda"])
            log.info("resuming %s from step %d", self.out_dir, start)
        trained = model
        if ctx.distributed:
            device_ids = [ctx.device] if ctx.device.type == "cuda" else None
            trained = nn.parallel.DistributedDataParallel(model, device_ids=device_ids)

        stream = PretrainStream(
            corpus, batch_size=config.batch_size, seed=config.seed, num_patches=self.method.draw_width(),
            start_step=start, stop_step=config.steps, train_size=self.train_size,
            rank=ctx.rank, world_size=ctx.world_size, draw=self.method.draw,
        )
        loader = make_loader(stream, config.num_workers, config.prefetch_factor)
        last_path = latest
        bar = None
        if self.progress:
            from tqdm.auto import tqdm

            bar = tqdm(total=config.steps, initial=start, desc=self.name, unit="step", dynamic_ncols=True)
        lines = progress_lines.Every() if ctx.is_main else None
        started_at, started_step = time.monotonic(), start
        if lines is not None:
            progress_lines.say(f"{self.name}: {'resuming at' if start else 'starting,'} step {start} of {config.steps}")
        autocast = torch.autocast(device_type=ctx.device.type, dtype=torch.bfloat16,
                                  enabled=config.amp and ctx.device.type == "cuda")
        wait_s = busy_s = 0.0
        window_steps = 0
        pending = torch.zeros((), dtype=torch.float64, device=ctx.device)
        batches = iter(loader)
        try:
            for step in range(start, config.steps):
                failpoint("pretrain.step")
                t0 = time.perf_counter()
                signals, noise = next(batches)
                t1 = time.perf_counter()
                signals = signals.to(ctx.device, non_blocking=True)
                noise = noise.to(ctx.device, non_blocking=True)
                lr = lr_at(config, step)
                for group in optimizer.param_groups:
                    group["lr"] = lr
                trained.train()
                with autocast:
                    loss = self.method.loss(trained, signals, noise)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                if config.grad_clip > 0:
                    nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
                optimizer.step()
                self.method.after_step(model)
                pending += loss.detach().double()  # no host sync per step (GPU)
                window["count"] += 1
                t2 = time.perf_counter()
                wait_s += t1 - t0
                busy_s += t2 - t1
                window_steps += 1
                done = step + 1
                entry: dict[str, Any] = {}
                log_now = done % config.log_every == 0 or done == config.steps
                if log_now or done % config.checkpoint_every == 0:
                    window["loss_sum"] += float(pending)
                    pending.zero_()
                if log_now:
                    train_loss = ddp.all_reduce_mean(window["loss_sum"] / max(1, window["count"]), ctx)
                    if not math.isfinite(train_loss):  # every rank sees the same mean: all stop together
                        raise DivergedError(f"pretraining diverged by step {done} (training loss {train_loss}) "
                                            f"with pretrain.lr {lr:g}; lower pretrain.lr or set pretrain.grad_clip")
                    elapsed = wait_s + busy_s
                    entry.update(
                        train_loss=train_loss, lr=lr,
                        samples_per_s=window_steps * config.batch_size / max(elapsed, 1e-9),
                        data_wait_share=wait_s / max(elapsed, 1e-9),
                        step_time_s=elapsed / max(1, window_steps),
                    )
                    window = {"loss_sum": 0.0, "count": 0}
                    wait_s = busy_s = 0.0
                    window_steps = 0
                if done % every == 0 or done == config.steps:
                    val_loss = self.validate(model, autocast, done)
                    entry["val_loss"] = val_loss
                    if done % every == 0:  # the authors compare these only (not an unscheduled last one)
                        best = self._keep_best(best, model, done, val_loss)
                    self._log_method_figures(model, done)
                if entry:
                    history.append({"step": done, **entry})
                    if self.logger is not None:
                        self.logger.log_metrics(entry, step=done)
                    if bar is not None:
                        bar.set_postfix({k: f"{v:.4g}" for k, v in entry.items() if k in ("train_loss", "val_loss")})
                if bar is not None:
                    bar.update(1)
                if lines is not None and ("val_loss" in entry or done == config.steps or lines.due()):
                    progress_lines.say(self._line(done, history, time.monotonic() - started_at, done - started_step))
                if done % config.checkpoint_every == 0 or done == config.steps:
                    if window["count"] and ctx.distributed:  # see _save: the window is saved as the global mean
                        window["loss_sum"] = ddp.all_reduce_mean(window["loss_sum"], ctx)
                    last_path = self._save(model, optimizer, done, history, window, val_loss, best)
        finally:
            if bar is not None:
                bar.close()
            del batches
        choice = self._choice(config.steps, val_loss, best)
        if ctx.is_main:
            self._write_encoder(choice, best, lambda: ckpt.encoder_weights(model.encoder))
            integrity.write_json(self.out_dir / "history.json", history)
            if self.logger is not None and history:
                self._log_figure(loss_curve_figure(history, self.method.loss_label), "loss_curve.png")
        ddp.barrier(ctx)
        assert last_path is not None
        return self._result(last_path, history, val_loss, choice)

    # ---- pieces ---------------------------------------------------------------------------
    def _line(self, done: int, history: list[dict[str, Any]], seconds: float, steps_run: int) -> str:
        """A progress line: step, share done, the last losses logged, and the time left at this pace."""
        steps = self.config.steps
        losses = ""
        for key in ("train_loss", "val_loss"):
            last = next((h[key] for h in reversed(history) if key in h), None)
            if last is not None:
                losses += f", {key.replace('_', ' ')} {last:.4g}"
        left = seconds / max(steps_run, 1) * (steps - done)
        return f"{self.name}: step {done}/{steps} ({done / steps:.0%}){losses}, {left / 60:.1f} min left"

    def _resume_point(self) -> Path | None:
        """The training checkpoint every process resumes from: rank 0's latest intact one, one file for all.

        Only rank 0 looks (and discards damaged files); the others take its step. Each process
        choosing for itself could pick different files (one being discarded or pruned, a folder
        not shared between nodes), and then train different models or wait for each other forever.
        """
        if not self.ctx.distributed:
            return ckpt.latest_checkpoint(self.ckpt_dir)
        latest = ckpt.latest_checkpoint(self.ckpt_dir) if self.ctx.is_main else None
        step = next((s for s, path in ckpt.list_checkpoints(self.ckpt_dir) if path == latest), 0)
        step = ddp.broadcast_int(step, self.ctx)
        if step == 0:
            return None
        path = ckpt.step_path(self.ckpt_dir, step)
        if not path.is_file():
            raise ConfigError(f"process {self.ctx.rank} cannot see {path}, which process 0 resumes from; the --out "
                              "folder (or $SIMECG_CACHE) must be on a filesystem every process shares")
        return path

    def _optimizer(self, model: nn.Module) -> torch.optim.Optimizer:
        c = self.config
        cls = torch.optim.AdamW if c.optimizer == "adamw" else torch.optim.Adam
        return cls(model.parameters(), lr=c.lr, betas=tuple(c.betas), weight_decay=c.weight_decay)

    def _val_data(self) -> tuple[torch.Tensor, torch.Tensor]:
        """This rank's share of the fixed validation set: z-scored signals and the method's fixed draws."""
        if self._val is None:
            c, ctx = self.config, self.ctx
            indices = np.arange(self.train_size, self.train_size + self.val_count)[ctx.rank::ctx.world_size]
            noise = self.method.draw(rng_for(c.seed, "val-mask"), self.val_count)
            chunks = [zscore(self.corpus.get_batch(indices[i:i + 256])) for i in range(0, len(indices), 256)]
            signals = np.concatenate(chunks) if chunks else np.zeros((0, self.encoder_config.signal_length), np.float32)
            own_noise = noise[ctx.rank::ctx.world_size].copy()
            self._val = (torch.from_numpy(signals).unsqueeze(1), torch.from_numpy(own_noise))
        return self._val

    def _val_noise(self, step: int) -> torch.Tensor:
        """This rank's draws (the MAE's mask noise, a method's views) for the validation after ``step``: the
        fixed draw, or a fresh one.

        A fresh draw depends on (``seed``, ``step``) only, never on the training RNG, so a
        resumed run or another number of processes validates with the same masks.
        """
        c, ctx = self.config, self.ctx
        if c.val_masks == "fixed":
            return self._val_data()[1]
        noise = self.method.draw(rng_for(c.seed, "val-mask", step), self.val_count)
        return torch.from_numpy(noise[ctx.rank::ctx.world_size].copy())

    @torch.no_grad()
    def validate(self, model: nn.Module, autocast: torch.autocast, step: int) -> float:
        """The method's mean loss over the whole validation set (fixed samples, seeded draws) after ``step`` steps
        (the MAE's: the masked-patch MSE).

        The masks are drawn anew for each validation (``val_masks = "fresh"``, as the authors'
        model did) or once for all (``"fixed"``).
        """
        if self.val_count == 0:
            return float("nan")
        signals, noise = self._val_data()[0], self._val_noise(step)
        model.eval()
        total = torch.zeros(2, dtype=torch.float64)
        chunk = min(self.config.batch_size, 256)
        for i in range(0, len(signals), chunk):
            x = signals[i:i + chunk].to(self.ctx.device)
            with autocast:
                loss = self.method.loss(model, x, noise[i:i + chunk].to(self.ctx.device))
            total += torch.tensor([float(loss) * len(x), len(x)], dtype=torch.float64)
        model.train()
        total = ddp.all_reduce_sum(total, self.ctx)
        log.debug("step %d: validation loss %.6g", step, float(total[0] / total[1]))
        return float(total[0] / total[1])

    def _save(self, model: nn.Module, optimizer: torch.optim.Optimizer, step: int,
              history: list[dict[str, Any]], window: dict[str, Any], val_loss: float,
              best: BestValidation | None) -> Path:
        """Rank 0 writes the training checkpoint every process resumes from (the others only wait).

        The unlogged loss ``window`` must hold for every process, so the loop first replaces each
        process's partial sum by the mean over processes: the next logged mean is the same, and a
        resumed job (of any size) continues it exactly. The state of rank 0 suffices otherwise:
        weights and optimizer are identical on every process, and the data of each step is a
        function of ``(seed, step)`` (:mod:`pretraining.stream`).
        """
        path = ckpt.step_path(self.ckpt_dir, step)
        if self.ctx.is_main:
            rng: dict[str, Any] = {"torch": torch.get_rng_state()}
            if torch.cuda.is_available():
                rng["cuda"] = torch.cuda.get_rng_state_all()
            ckpt.atomic_save(
                {
                    "format": ckpt.FORMAT,
                    "kind": "training",
                    "step": step,
                    "model": model.state_dict(),
                    "optimizer": optimizer.state_dict(),
                    "history": history,
                    "window": window,
                    "val_loss": val_loss,
                    "best": best.to_state() if best is not None else None,
                    "rng": rng,
                    "pretrain_config": to_dict(self.config),
                    "model_config": dataclasses.asdict(self.encoder_config),
                    "fingerprint": self.fingerprint,
                },
                path,
            )
            ckpt.prune_checkpoints(self.ckpt_dir, self.config.keep_checkpoints)
        return path

    def _keep_best(self, best: BestValidation | None, model: nn.Module, step: int,
                   val_loss: float) -> BestValidation | None:
        """The best validation after one at ``step``: strictly lower wins, as the authors' ``<``.

        Of equal losses the earlier checkpoint stays; a NaN loss (no validation set) never wins.
        Every process decides alike (``val_loss`` is reduced over all of them), and rank 0, which
        writes the checkpoints and the encoder, keeps the weights.
        """
        if not val_loss < (best.val_loss if best is not None else math.inf):
            return best
        keep = self.config.select == BEST_VAL and self.ctx.is_main
        return BestValidation(step, val_loss, ckpt.encoder_weights(model.encoder) if keep else None)

    def _choice(self, step: int, val_loss: float, best: BestValidation | None) -> EncoderChoice:
        """Which weights the encoder file gets after ``step`` steps (``val_loss``: that step's)."""
        if self.config.select == LAST:
            return EncoderChoice(step, val_loss, LAST)
        if best is not None:
            return EncoderChoice(best.step, best.val_loss, BEST_VAL)
        if self.ctx.is_main:
            log.warning(
                "encoder %s: no validation loss to choose the best checkpoint by (pretrain.val_size %d, a validation "
                "every %d steps, %d steps); the encoder is the last checkpoint", self.fingerprint,
                self.config.val_size, validation_interval(self.config), self.config.steps,
            )
        return EncoderChoice(step, val_loss, LAST_UNVALIDATED)

    def _last_weights(self, state: dict[str, Any]) -> dict[str, torch.Tensor]:
        """The encoder weights of a training checkpoint's model."""
        model = self.method.build()
        model.load_state_dict(state["model"])
        return ckpt.encoder_weights(model.encoder)

    def _write_encoder(self, choice: EncoderChoice, best: BestValidation | None,
                       last_weights: Callable[[], dict[str, torch.Tensor]]) -> None:
        """Write ``encoder.pt``: the best validation's weights or the last ones, as ``choice`` says.

        ``extra`` records the fingerprint, the steps trained, and the step, validation loss and
        reason of the choice (``val_loss`` is the encoder's own).
        """
        if choice.chosen_by == BEST_VAL:
            if best is None or best.encoder is None:
                raise CheckpointError(
                    f"the training checkpoints in {self.ckpt_dir} hold no weights of their best validation (step "
                    f"{choice.step}); delete {self.out_dir} to pretrain again"
                )
            weights = best.encoder
        else:
            weights = last_weights()
        ckpt.save_encoder_weights(weights, self.encoder_config, self.encoder_path, extra={
            "fingerprint": self.fingerprint, "steps": self.config.steps, "step": choice.step,
            "val_loss": choice.val_loss, "chosen_by": choice.chosen_by})

    def _result(self, training_checkpoint: Path, history: list[dict[str, Any]], val_loss: float,
                choice: EncoderChoice) -> PretrainResult:
        return PretrainResult(
            checkpoint=self.encoder_path, val_loss=float(val_loss), steps=self.config.steps, history=list(history),
            out_dir=self.out_dir, training_checkpoint=training_checkpoint, model_config=self.encoder_config,
            fingerprint=self.fingerprint, choice=choice,
        )

    def _log_method_figures(self, model: nn.Module, step: int) -> None:
        """The method's figures of three validation ECGs (the MAE's reconstructions), logged per validation."""
        if self.logger is None or self.val_count == 0:
            return
        signals, noise = self._val_data()
        for folder, figure in self.method.figures(model, signals[:3], noise[:3], self.ctx.device).items():
            self._log_figure(figure, f"{folder}/step_{step:08d}.png")

    def _log_figure(self, figure: Any, artifact_file: str) -> None:
        try:
            if self.logger is not None:
                self.logger.log_figure(figure, artifact_file)
        finally:
            import matplotlib.pyplot as plt

            plt.close(figure)
