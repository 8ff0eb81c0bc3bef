"""MAE pretraining on any registered corpus: resumable, deterministic, ``torchrun``-ready.

:func:`pretrain` streams the corpus on the fly (:mod:`pretraining.stream`), trains the
:class:`~pretraining.mae.MaskedAutoencoder` with the paper's optimizer settings, validates on
a fixed held-out set, and writes atomic checkpoints (:mod:`pretraining.checkpoint`). Every
random choice comes from ``config.seed`` and the step number, so calling it again on the same
``out_dir`` continues exactly where the last checkpoint left off, and ``n`` processes with the
same global batch train the same model as one.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import nn

from pretraining import checkpoint as ckpt
from pretraining import ddp
from pretraining.mae import MAEConfig, MaskedAutoencoder, preset
from pretraining.stream import PretrainStream, make_loader
from simecg.config import coerce, stable_hash, to_dict
from simecg.errors import ConfigError
from simecg.paths import cache_dir
from simecg.seeding import rng_for
from simecg.signal import zscore

if TYPE_CHECKING:
    from pretraining.corpora.base import Corpus

log = logging.getLogger(__name__)

SCHEDULES = ("constant", "cosine")
OPTIMIZERS = ("adam", "adamw")


@dataclass(frozen=True)
class PretrainConfig:
    """How to pretrain; defaults are the paper's (PROTOCOL.md, "MAE pretraining").

    ``model`` overrides single :class:`MAEConfig` fields of the preset, e.g.
    ``--set pretrain.model.depth=4``. ``steps`` defaults to the paper's ~1e9 samples seen at
    batch 512. Gradient clipping is off (0) as in the paper; ``amp`` means bf16 autocast on GPU.
    ``threads`` > 0 sets torch's CPU threads for the run (0: torch's default); on a small CPU
    shared with DataLoader workers, 1 thread avoids oversubscription.
    """

    corpus: str = "sim"
    corpus_size: int = 1_000_000
    corpus_seed: int = 0
    corpus_options: dict[str, Any] = field(default_factory=dict)
    preset: str = "paper"
    model: dict[str, Any] = field(default_factory=dict)
    steps: int = 2_000_000
    batch_size: int = 512
    lr: float = 1e-4
    optimizer: str = "adam"
    betas: tuple[float, float] = (0.9, 0.999)
    weight_decay: float = 0.0
    schedule: str = "constant"
    warmup_steps: int = 0
    min_lr_ratio: float = 0.0
    grad_clip: float = 0.0
    val_size: int = 5000
    val_every: int = 1000
    checkpoint_every: int = 1000
    keep_checkpoints: int = 2
    log_every: int = 50
    num_workers: int = 2
    prefetch_factor: int = 2
    threads: int = 0
    seed: int = 0
    device: str = "auto"
    amp: bool = True

    def __post_init__(self) -> None:
        if self.schedule not in SCHEDULES:
            raise ConfigError(f"pretrain.schedule must be one of {', '.join(SCHEDULES)}, got {self.schedule!r}")
        if self.optimizer not in OPTIMIZERS:
            raise ConfigError(f"pretrain.optimizer must be one of {', '.join(OPTIMIZERS)}, got {self.optimizer!r}")
        for name in ("steps", "batch_size", "val_every", "checkpoint_every", "log_every", "corpus_size"):
            if getattr(self, name) <= 0:
                raise ConfigError(f"pretrain.{name} must be positive, got {getattr(self, name)}")
        for name in ("val_size", "warmup_steps", "num_workers", "threads"):
            if getattr(self, name) < 0:
                raise ConfigError(f"pretrain.{name} must be >= 0, got {getattr(self, name)}")
        if self.lr <= 0:
            raise ConfigError(f"pretrain.lr must be positive, got {self.lr}")
        preset(self.preset)  # raises ConfigError for unknown presets


# Settings that change speed, bookkeeping or output but not the trained weights; they may
# differ between a run and its resumption. ``steps`` joins them for the constant schedule.
NON_TRAJECTORY = frozenset(
    {"val_every", "checkpoint_every", "keep_checkpoints", "log_every", "num_workers", "prefetch_factor", "device",
     "threads"}
)


@dataclass
class PretrainResult:
    """What :func:`pretrain` produced.

    ``checkpoint`` is the encoder file for :func:`pretraining.checkpoint.load_encoder`;
    ``history`` has one dict per logged step (``step``, ``train_loss``, ``lr``,
    ``samples_per_s``, ``data_wait_share``, and ``val_loss`` on validation steps).
    """

    checkpoint: Path
    val_loss: float
    steps: int
    history: list[dict[str, Any]]
    out_dir: Path
    training_checkpoint: Path
    model_config: MAEConfig
    fingerprint: str


def model_config(config: PretrainConfig) -> MAEConfig:
    """The preset's architecture with ``config.model`` overrides applied (type-checked)."""
    base = preset(config.preset)
    fields = {f.name: f for f in dataclasses.fields(MAEConfig)}
    hints = {name: type(getattr(base, name)) for name in fields}
    changes = {}
    for key, value in config.model.items():
        if key not in fields:
            raise ConfigError(f"unknown model setting pretrain.model.{key}; valid: {', '.join(sorted(fields))}")
        changes[key] = coerce(value, hints[key], f"pretrain.model.{key}")
    return dataclasses.replace(base, **changes)


def fingerprint(config: PretrainConfig) -> str:
    """Identity of the trained weights: everything that changes them, steps included."""
    data = {k: v for k, v in to_dict(config).items() if k not in NON_TRAJECTORY}
    data["model_resolved"] = dataclasses.asdict(model_config(config))
    return stable_hash(data)


def default_out_dir(config: PretrainConfig) -> Path:
    """``<cache>/encoders/<corpus>-<preset>-<fingerprint>``: one folder per distinct encoder."""
    return cache_dir() / "encoders" / f"{config.corpus}-{config.preset}-{fingerprint(config)}"


def lr_at(config: PretrainConfig, step: int) -> float:
    """Learning rate of (0-based) ``step``: linear warmup, then constant or cosine decay."""
    if config.warmup_steps and step < config.warmup_steps:
        return config.lr * (step + 1) / config.warmup_steps
    if config.schedule == "constant":
        return config.lr
    span = max(1, config.steps - config.warmup_steps)
    progress = min(1.0, (step - config.warmup_steps) / span)
    cosine = 0.5 * (1.0 + math.cos(math.pi * progress))
    return config.lr * (config.min_lr_ratio + (1.0 - config.min_lr_ratio) * cosine)


def build_corpus(config: PretrainConfig) -> Corpus:
    """The corpus named by the config, from ``simecg.registries.CORPORA``."""
    from simecg.registries import CORPORA

    factory = CORPORA.get(config.corpus)
    try:
        return factory(size=config.corpus_size, seed=config.corpus_seed, **config.corpus_options)
    except TypeError as exc:
        raise ConfigError(
            f"corpus {config.corpus!r} rejected its options {config.corpus_options} ({exc}); "
            "check the pretrain.corpus_options.* keys"
        ) from None


def pretrain(
    config: PretrainConfig,
    out_dir: Path,
    logger: Any = None,
    progress: bool = True,
    *,
    corpus: Corpus | None = None,
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

    Under ``torchrun`` every process calls this; ``config.batch_size`` is the global batch.
    """
    ctx = ddp.setup(config.device)
    threads = torch.get_num_threads()
    if config.threads > 0:
        torch.set_num_threads(config.threads)
    try:
        return _Run(config, Path(out_dir), logger, progress, corpus, ctx).run()
    finally:
        torch.set_num_threads(threads)
        ddp.teardown(ctx)


class _Run:
    """One call of :func:`pretrain`; holds the state the loop's helpers share."""

    def __init__(self, config: PretrainConfig, out_dir: Path, logger: Any, progress: bool,
                 corpus: Corpus | None, ctx: ddp.DistContext):
        self.config = config
        self.out_dir = out_dir
        self.ckpt_dir = out_dir / "checkpoints"
        self.encoder_path = out_dir / "encoder.pt"
        self.logger = logger if ctx.is_main else None
        self.progress = progress and ctx.is_main
        self.corpus = corpus
        self.ctx = ctx
        self.mae_config = model_config(config)
        self.fingerprint = fingerprint(config)
        self._val: tuple[torch.Tensor, torch.Tensor] | None = None

    # ---- identity of the run folder -------------------------------------------------------
    def _trajectory(self, data: dict[str, Any]) -> dict[str, Any]:
        ignore = set(NON_TRAJECTORY) | ({"steps"} if data.get("schedule") == "constant" else set())
        return {k: v for k, v in data.items() if k not in ignore}

    def check_out_dir(self) -> None:
        path = self.out_dir / "config.json"
        current = to_dict(self.config)
        if path.is_file():
            try:
                previous = json.loads(path.read_text())["pretrain"]
            except (OSError, ValueError, KeyError) as exc:
                raise ConfigError(f"{path} is unreadable ({exc}); delete it or use another --out") from None
            old, new = self._trajectory(previous), self._trajectory(current)
            diffs = [f"{k}: {old.get(k)!r} -> {new.get(k)!r}" for k in sorted(set(old) | set(new))
                     if old.get(k) != new.get(k)]
            if diffs:
                raise ConfigError(
                    f"{self.out_dir} holds a pretraining run with different settings ({'; '.join(diffs)}); "
                    "use another --out folder, or delete this one to start over"
                )

    def write_config(self) -> None:
        """Record the run's settings (after every process has compared them with the old ones)."""
        ddp.barrier(self.ctx)
        path = self.out_dir / "config.json"
        current = to_dict(self.config)
        if self.ctx.is_main:
            self.out_dir.mkdir(parents=True, exist_ok=True)
            payload = {"pretrain": current, "model": dataclasses.asdict(self.mae_config),
                       "fingerprint": self.fingerprint}
            tmp = path.with_suffix(".json.tmp")
            tmp.write_text(json.dumps(payload, indent=2, sort_keys=True))
            tmp.replace(path)

    # ---- main ---------------------------------------------------------------------------
    def run(self) -> PretrainResult:
        config, ctx = self.config, self.ctx
        self.check_out_dir()
        latest = ckpt.latest_checkpoint(self.ckpt_dir)
        state = ckpt.read(latest) if latest is not None else None
        if state is not None and state["step"] > config.steps:
            raise ConfigError(
                f"{self.out_dir} already holds a run trained for {state['step']} steps, more than the "
                f"requested {config.steps}; use another --out folder"
            )
        if state is not None and state["step"] == config.steps:
            if ctx.is_main and not self.encoder_path.is_file():
                self._save_encoder_from_state(state)
            ddp.barrier(ctx)
            log.info("pretraining in %s is already complete (%d steps)", self.out_dir, config.steps)
            return self._result(latest, state["history"], state["val_loss"])

        corpus = self.corpus if self.corpus is not None else build_corpus(config)
        total = len(corpus)
        if config.val_size * 2 > total:
            raise ConfigError(
                f"pretrain.val_size {config.val_size} leaves too little of the {total}-ECG corpus "
                f"{config.corpus!r} for training; lower it (e.g. --set pretrain.val_size={max(1, total // 10)})"
            )
        self.corpus = corpus
        self.train_size = total - config.val_size
        self.write_config()

        torch.manual_seed(config.seed)
        model = MaskedAutoencoder(self.mae_config).to(ctx.device)
        optimizer = self._optimizer(model)
        start, history, window, val_loss = 0, [], {"loss_sum": 0.0, "count": 0}, float("nan")
        if state is not None:
            model.load_state_dict(state["model"])
            optimizer.load_state_dict(state["optimizer"])
            start, history, window = state["step"], list(state["history"]), dict(state["window"])
            val_loss = state["val_loss"]
            torch.set_rng_state(state["rng"]["torch"])
            if torch.cuda.is_available() and state["rng"].get("cuda"):
                torch.cuda.set_rng_state_all(state["rng"]["cuda"])
            log.info("resuming %s from step %d", self.out_dir, start)
        trained = model
        if ctx.distributed:
            device_ids = [ctx.device] if ctx.device.type == "cuda" else None
            trained = nn.parallel.DistributedDataParallel(model, device_ids=device_ids)

        stream = PretrainStream(
            corpus, batch_size=config.batch_size, seed=config.seed, num_patches=self.mae_config.num_patches,
            start_step=start, stop_step=config.steps, train_size=self.train_size,
            rank=ctx.rank, world_size=ctx.world_size,
        )
        loader = make_loader(stream, config.num_workers, config.prefetch_factor)
        last_path = latest
        bar = None
        if self.progress:
            from tqdm.auto import tqdm

            bar = tqdm(total=config.steps, initial=start, desc="pretrain", unit="step", dynamic_ncols=True)
        autocast = torch.autocast(device_type=ctx.device.type, dtype=torch.bfloat16,
                                  enabled=config.amp and ctx.device.type == "cuda")
        wait_s = busy_s = 0.0
        window_steps = 0
        pending = torch.zeros((), dtype=torch.float64, device=ctx.device)
        batches = iter(loader)
        try:
            for step in range(start, config.steps):
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
                    loss, _, _ = trained(signals, noise=noise)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                if config.grad_clip > 0:
                    nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
                optimizer.step()
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
                if done % config.val_every == 0 or done == config.steps:
                    val_loss = self.validate(model, autocast)
                    entry["val_loss"] = val_loss
                    self._log_reconstructions(model, done)
                if entry:
                    history.append({"step": done, **entry})
                    if self.logger is not None:
                        self.logger.log_metrics(entry, step=done)
                    if bar is not None:
                        bar.set_postfix({k: f"{v:.4g}" for k, v in entry.items() if k in ("train_loss", "val_loss")})
                if bar is not None:
                    bar.update(1)
                if done % config.checkpoint_every == 0 or done == config.steps:
                    last_path = self._save(model, optimizer, done, history, window, val_loss)
        finally:
            if bar is not None:
                bar.close()
            del batches
        if ctx.is_main:
            ckpt.save_encoder(model.encoder, self.encoder_path, extra={"fingerprint": self.fingerprint})
            (self.out_dir / "history.json").write_text(json.dumps(history, indent=1))
            self._log_loss_curve(history)
        ddp.barrier(ctx)
        assert last_path is not None
        return self._result(last_path, history, val_loss)

    # ---- pieces ---------------------------------------------------------------------------
    def _optimizer(self, model: nn.Module) -> torch.optim.Optimizer:
        c = self.config
        cls = torch.optim.AdamW if c.optimizer == "adamw" else torch.optim.Adam
        return cls(model.parameters(), lr=c.lr, betas=tuple(c.betas), weight_decay=c.weight_decay)

    def _val_data(self) -> tuple[torch.Tensor, torch.Tensor]:
        """This rank's share of the fixed validation set: z-scored signals and mask noise."""
        if self._val is None:
            c, ctx = self.config, self.ctx
            indices = np.arange(self.train_size, self.train_size + c.val_size)[ctx.rank::ctx.world_size]
            noise = rng_for(c.seed, "val-mask").random((c.val_size, self.mae_config.num_patches), dtype=np.float32)
            chunks = [zscore(self.corpus.get_batch(indices[i:i + 256])) for i in range(0, len(indices), 256)]
            signals = np.concatenate(chunks) if chunks else np.zeros((0, self.mae_config.signal_length), np.float32)
            own_noise = noise[ctx.rank::ctx.world_size].copy()
            self._val = (torch.from_numpy(signals).unsqueeze(1), torch.from_numpy(own_noise))
        return self._val

    @torch.no_grad()
    def validate(self, model: MaskedAutoencoder, autocast: torch.autocast) -> float:
        """Mean masked-patch MSE over the whole validation set (fixed samples, fixed masks)."""
        if self.config.val_size == 0:
            return float("nan")
        signals, noise = self._val_data()
        model.eval()
        total = torch.zeros(2, dtype=torch.float64)
        chunk = min(self.config.batch_size, 256)
        for i in range(0, len(signals), chunk):
            x = signals[i:i + chunk].to(self.ctx.device)
            with autocast:
                loss, _, _ = model(x, noise=noise[i:i + chunk].to(self.ctx.device))
            total += torch.tensor([float(loss) * len(x), len(x)], dtype=torch.float64)
        model.train()
        total = ddp.all_reduce_sum(total, self.ctx)
        return float(total[0] / total[1])

    def _save(self, model: MaskedAutoencoder, optimizer: torch.optim.Optimizer, step: int,
              history: list[dict[str, Any]], window: dict[str, Any], val_loss: float) -> Path:
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
                    "rng": rng,
                    "pretrain_config": to_dict(self.config),
                    "model_config": dataclasses.asdict(self.mae_config),
                    "fingerprint": self.fingerprint,
                },
                path,
            )
            ckpt.prune_checkpoints(self.ckpt_dir, self.config.keep_checkpoints)
        return path

    def _save_encoder_from_state(self, state: dict[str, Any]) -> None:
        model = MaskedAutoencoder(self.mae_config)
        model.load_state_dict(state["model"])
        ckpt.save_encoder(model.encoder, self.encoder_path, extra={"fingerprint": self.fingerprint})

    def _result(self, training_checkpoint: Path, history: list[dict[str, Any]], val_loss: float) -> PretrainResult:
        return PretrainResult(
            checkpoint=self.encoder_path, val_loss=float(val_loss), steps=self.config.steps, history=list(history),
            out_dir=self.out_dir, training_checkpoint=training_checkpoint, model_config=self.mae_config,
            fingerprint=self.fingerprint,
        )

    def _log_reconstructions(self, model: MaskedAutoencoder, step: int) -> None:
        if self.logger is None or self.config.val_size == 0:
            return
        signals, noise = self._val_data()
        figure = reconstruction_figure(model, signals[:3], noise[:3], self.ctx.device)
        try:
            self.logger.log_figure(figure, f"reconstructions/step_{step:08d}.png")
        finally:
            import matplotlib.pyplot as plt

            plt.close(figure)

    def _log_loss_curve(self, history: list[dict[str, Any]]) -> None:
        if self.logger is None or not history:
            return
        import matplotlib

        matplotlib.use("Agg", force=False)
        import matplotlib.pyplot as plt

        figure, ax = plt.subplots(figsize=(6, 3.5))
        for key in ("train_loss", "val_loss"):
            points = [(h["step"], h[key]) for h in history if key in h]
            if points:
                steps, values = zip(*points, strict=True)
                ax.plot(steps, values, marker="o" if key == "val_loss" else None, label=key.replace("_", " "))
        ax.set_xlabel("step")
        ax.set_ylabel("masked-patch MSE")
        ax.set_yscale("log")
        ax.legend()
        figure.tight_layout()
        try:
            self.logger.log_figure(figure, "loss_curve.png")
        finally:
            plt.close(figure)


@torch.no_grad()
def reconstruction_figure(model: MaskedAutoencoder, signals: torch.Tensor, noise: torch.Tensor,
                          device: torch.device | str = "cpu") -> Any:
    """A matplotlib figure: each ECG with its masked patches shaded and the reconstruction drawn there."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    model.eval()
    _, pred, mask = model(signals.to(device), noise=noise.to(device))
    model.train()
    patch = model.config.patch_size
    pred = pred.float().cpu().numpy().reshape(len(signals), -1)
    mask = mask.cpu().numpy()
    figure, axes = plt.subplots(len(signals), 1, figsize=(10, 2.0 * len(signals)), squeeze=False)
    t = np.arange(signals.shape[-1])
    for row, ax in enumerate(axes[:, 0]):
        x = signals[row, 0].numpy()
        ax.plot(t, x, color="0.6", lw=0.5, label="input")
        masked = np.repeat(mask[row] > 0.5, patch)
        ax.plot(t, np.where(masked, pred[row], np.nan), color="tab:red", lw=1.0, label="reconstruction (masked)",
                zorder=3)
        for i in np.flatnonzero(mask[row] > 0.5):
            ax.axvspan(i * patch, (i + 1) * patch, color="tab:blue", alpha=0.08, lw=0)
        ax.set_xlim(0, len(t))
        ax.set_yticks([])
        if row == 0:
            ax.legend(loc="upper right", fontsize=7)
    axes[-1, 0].set_xlabel("sample (500 Hz)")
    figure.tight_layout()
    return figure
