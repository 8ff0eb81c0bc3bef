"""``simecg-bench bench pretrain``: pretraining speed on this machine, for the MAE and every method.

Four figures (issue 5, item 6; issue 19):

* training samples/s of the ``tiny`` and ``paper`` presets (forward, backward, Adam step);
* the share of step time the real training loop waits for data while the corpus is simulated
  on the fly by DataLoader workers (target < 5%);
* our step time over that of a plain PyTorch MAE of the same shape written below (target
  <= 1.1x), measured interleaved so both see the same machine load;
* for each registered pretraining method (``--methods``), its training samples/s and step time
  over that of the same method built around a plain-PyTorch encoder and stepped by a plain loop
  (forward, backward, Adam, the method's teacher update), same target.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from pretraining.config import PretrainConfig, build_corpus, build_method
from pretraining.loop import pretrain
from pretraining.mae import MAEConfig, MaskedAutoencoder, preset, sincos_1d
from simecg.registries import METHODS

DEFAULT_BATCH = {"tiny": 64, "paper": 32}


class _PlainBlock(nn.Module):
    """Pre-norm Transformer block with qk-norm, straight PyTorch (the reference)."""

    def __init__(self, dim: int, heads: int, mlp_ratio: float):
        super().__init__()
        self.heads = heads
        self.norm1, self.norm2 = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.qkv, self.proj = nn.Linear(dim, 3 * dim), nn.Linear(dim, dim)
        self.q_norm, self.k_norm = nn.LayerNorm(dim // heads), nn.LayerNorm(dim // heads)
        self.fc1, self.fc2 = nn.Linear(dim, int(dim * mlp_ratio)), nn.Linear(int(dim * mlp_ratio), dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, d = x.shape
        q, k, v = self.qkv(self.norm1(x)).reshape(b, n, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        attn = F.scaled_dot_product_attention(self.q_norm(q), self.k_norm(k), v)
        x = x + self.proj(attn.transpose(1, 2).reshape(b, n, d))
        return x + self.fc2(F.gelu(self.fc1(self.norm2(x))))


class PlainMAE(nn.Module):
    """The same MAE as :class:`MaskedAutoencoder` without timm or any of our code paths."""

    def __init__(self, c: MAEConfig):
        super().__init__()
        self.c = c
        self.patch = nn.Conv1d(1, c.embed_dim, c.patch_size, stride=c.patch_size)
        self.cls = nn.Parameter(torch.zeros(1, 1, c.embed_dim))
        pos = torch.cat([torch.zeros(1, c.embed_dim), sincos_1d(c.num_patches, c.embed_dim)])
        self.register_buffer("pos", pos[None])
        self.blocks = nn.ModuleList(_PlainBlock(c.embed_dim, c.num_heads, c.mlp_ratio) for _ in range(c.depth))
        self.norm = nn.LayerNorm(c.embed_dim)
        self.dec_embed = nn.Linear(c.embed_dim, c.decoder_embed_dim)
        self.mask_token = nn.Parameter(torch.zeros(1, 1, c.decoder_embed_dim))
        dec_pos = torch.cat([torch.zeros(1, c.decoder_embed_dim), sincos_1d(c.num_patches, c.decoder_embed_dim)])
        self.register_buffer("dec_pos", dec_pos[None])
        self.dec_blocks = nn.ModuleList(
            _PlainBlock(c.decoder_embed_dim, c.decoder_num_heads, c.mlp_ratio) for _ in range(c.decoder_depth)
        )
        self.dec_norm = nn.LayerNorm(c.decoder_embed_dim)
        self.pred = nn.Linear(c.decoder_embed_dim, c.patch_size)

    def forward(self, x: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        b, n = x.shape[0], self.c.num_patches
        tokens = self.patch(x).transpose(1, 2) + self.pos[:, 1:]
        keep = int(round(n * (1 - self.c.mask_ratio)))
        order = noise.argsort(dim=1)
        restore = order.argsort(dim=1)
        kept = tokens.gather(1, order[:, :keep, None].expand(-1, -1, tokens.shape[-1]))
        h = torch.cat([(self.cls + self.pos[:, :1]).expand(b, -1, -1), kept], dim=1)
        for block in self.blocks:
            h = block(h)
        y = self.dec_embed(self.norm(h))
        d = y.shape[-1]
        full = torch.cat([y[:, 1:], self.mask_token.expand(b, n - keep, -1)], dim=1)
        full = full.gather(1, restore[:, :, None].expand(-1, -1, d))
        y = torch.cat([y[:, :1], full], dim=1) + self.dec_pos
        for block in self.dec_blocks:
            y = block(y)
        pred = self.pred(self.dec_norm(y))[:, 1:]
        mask = torch.ones(b, n, device=x.device)
        mask[:, :keep] = 0
        mask = mask.gather(1, restore)
        per_patch = ((pred - x.reshape(b, n, self.c.patch_size)) ** 2).mean(-1)
        return (per_patch * mask).sum() / mask.sum()


class PlainEncoder(nn.Module):
    """The encoder of :class:`PlainMAE` with :class:`~pretraining.mae.ECGEncoder`'s interface (embed, run_blocks),
    so any method can be built around it: the reference of the methods' timings."""

    def __init__(self, c: MAEConfig):
        super().__init__()
        self.config = c
        self.patch = nn.Conv1d(1, c.embed_dim, c.patch_size, stride=c.patch_size)
        self.cls = nn.Parameter(torch.zeros(1, 1, c.embed_dim))
        pos = torch.cat([torch.zeros(1, c.embed_dim), sincos_1d(c.num_patches, c.embed_dim)])
        self.register_buffer("pos_embed", pos[None])
        self.blocks = nn.ModuleList(_PlainBlock(c.embed_dim, c.num_heads, c.mlp_ratio) for _ in range(c.depth))
        self.norm = nn.LayerNorm(c.embed_dim)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        return self.patch(x.reshape(x.shape[0], 1, -1)).transpose(1, 2) + self.pos_embed[:, 1:]

    def run_blocks(self, tokens: torch.Tensor) -> torch.Tensor:
        h = torch.cat([(self.cls + self.pos_embed[:, :1]).expand(tokens.shape[0], -1, -1), tokens], dim=1)
        for block in self.blocks:
            h = block(h)
        return self.norm(h)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.run_blocks(self.embed(x))


def compare_method(method_name: str, preset_name: str, batch: int, rounds: int, steps: int,
                   device: torch.device) -> dict[str, Any]:
    """Step times of the method as the loop runs it and of the same method around :class:`PlainEncoder`.

    Both take a step as the loop does (the method's loss, backward, Adam, ``after_step``) on the
    same signals and draws; measured alternately, ``samples_per_s`` from the median step, the
    ratio from each one's fastest step.
    """
    method = build_method(PretrainConfig(method=method_name, preset=preset_name))
    torch.manual_seed(0)
    ours = method.build().to(device)
    plain = method.build(encoder=PlainEncoder(method.encoder_config)).to(device)
    optimizers = {id(m): torch.optim.Adam([p for p in m.parameters() if p.requires_grad], 1e-4) for m in (ours, plain)}
    x = torch.randn(batch, 1, method.encoder_config.signal_length, device=device)
    draws = torch.from_numpy(method.draw(np.random.default_rng(0), batch)).to(device)

    def step(model: nn.Module) -> float:
        start = time.perf_counter()
        loss = method.loss(model, x, draws)
        optimizer = optimizers[id(model)]
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        method.after_step(model)
        if x.is_cuda:
            torch.cuda.synchronize()
        return time.perf_counter() - start

    for _ in range(2):  # warm-up
        step(ours)
        step(plain)
    times_ours: list[float] = []
    times_plain: list[float] = []
    for _ in range(rounds):
        times_ours += [step(ours) for _ in range(steps)]
        times_plain += [step(plain) for _ in range(steps)]
    step_ours = statistics.median(times_ours)
    return {
        "preset": preset_name, "batch_size": batch, "step_time_s": step_ours,
        "reference_step_time_s": statistics.median(times_plain), "samples_per_s": batch / step_ours,
        "ratio_vs_reference": min(times_ours) / min(times_plain),
        "params": sum(p.numel() for p in ours.parameters() if p.requires_grad),
        "reference_params": sum(p.numel() for p in plain.parameters() if p.requires_grad),
    }


def _train_step(model: nn.Module, optimizer: torch.optim.Optimizer, x: torch.Tensor, noise: torch.Tensor,
                ours: bool) -> float:
    start = time.perf_counter()
    loss = model(x, noise=noise)[0] if ours else model(x, noise)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    if x.is_cuda:
        torch.cuda.synchronize()
    return time.perf_counter() - start


def compare_with_reference(name: str, batch: int, rounds: int, steps: int, device: torch.device) -> dict[str, Any]:
    """Step times of our MAE and the plain one, measured alternately ``rounds`` times.

    ``samples_per_s`` comes from the median step; the ratio from each model's fastest step.
    """
    config = preset(name)
    torch.manual_seed(0)
    ours, plain = MaskedAutoencoder(config).to(device), PlainMAE(config).to(device)
    n_ours = sum(p.numel() for p in ours.parameters())
    n_plain = sum(p.numel() for p in plain.parameters())
    opt_ours, opt_plain = torch.optim.Adam(ours.parameters(), 1e-4), torch.optim.Adam(plain.parameters(), 1e-4)
    x = torch.randn(batch, 1, config.signal_length, device=device)
    noise = torch.rand(batch, config.num_patches, device=device)
    for _ in range(2):  # warm-up: allocator, kernels
        _train_step(ours, opt_ours, x, noise, True)
        _train_step(plain, opt_plain, x, noise, False)
    times_ours: list[float] = []
    times_plain: list[float] = []
    for _ in range(rounds):
        times_ours += [_train_step(ours, opt_ours, x, noise, True) for _ in range(steps)]
        times_plain += [_train_step(plain, opt_plain, x, noise, False) for _ in range(steps)]
    step_ours, step_plain = statistics.median(times_ours), statistics.median(times_plain)
    return {
        "batch_size": batch, "params": n_ours, "reference_params": n_plain,
        "step_time_s": step_ours, "reference_step_time_s": step_plain,
        "samples_per_s": batch / step_ours,
        # fastest step of each: interference from other jobs only ever adds time
        "ratio_vs_reference": min(times_ours) / min(times_plain),
    }


def measure_data_wait(corpus: str, steps: int, batch: int, workers: int) -> dict[str, Any]:
    """Run the real training loop (tiny preset) on ``corpus`` simulated on the fly; read its timings."""
    log_every = max(1, steps // 4)
    config = PretrainConfig(
        corpus=corpus, corpus_size=1_000_000, preset="tiny", steps=steps, batch_size=batch, val_size=batch,
        val_every=steps, checkpoint_every=steps, log_every=log_every, num_workers=workers,
    )
    probe = build_corpus(config)
    start = time.perf_counter()
    probe.get_batch(np.arange(10_000, 10_000 + batch))
    ms_per_ecg = (time.perf_counter() - start) * 1000 / batch
    with tempfile.TemporaryDirectory(prefix="simecg-bench-pretrain-") as tmp:
        result = pretrain(config, Path(tmp), progress=False, corpus=probe)
    windows = [h for h in result.history if "data_wait_share" in h]
    steady = windows[1:] or windows  # the first window includes starting the workers
    busy = sum(h["step_time_s"] for h in steady)
    share = sum(h["data_wait_share"] * h["step_time_s"] for h in steady) / busy
    return {
        "corpus": corpus, "batch_size": batch, "num_workers": workers, "steps": steps,
        "ms_per_ecg_simulated": ms_per_ecg, "data_wait_share": share,
        "data_wait_share_incl_startup": windows[0]["data_wait_share"],
        "loop_samples_per_s": statistics.mean(h["samples_per_s"] for h in steady),
    }


class PretrainBench:
    """MAE pretraining speed: samples/s per preset, data-wait share, step time vs a plain PyTorch MAE."""

    @staticmethod
    def add_arguments(parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--presets", default="tiny,paper", help="model presets to time (default: tiny,paper)")
        parser.add_argument("--batch-size", type=int, help="batch for every preset (default: tiny 64, paper 32)")
        parser.add_argument("--rounds", type=int, default=3, help="alternating timing rounds (default 3)")
        parser.add_argument("--steps", type=int, default=2, help="timed steps per model per round (default 2)")
        parser.add_argument("--corpus", default="sim", help="corpus simulated on the fly for the data-wait figure")
        parser.add_argument("--loop-steps", type=int, default=32, help="training-loop steps for the data-wait figure")
        parser.add_argument("--threads", type=int, help="torch CPU threads (default: torch's choice)")
        parser.add_argument("--loop-batch-size", type=int, default=64, help="batch of the data-wait run (default 64)")
        parser.add_argument("--num-workers", type=int, default=2, help="DataLoader workers for the data-wait figure")
        parser.add_argument("--methods", default=None, help="pretraining methods to time against a plain loop of the "
                            "same method, comma-separated (default: every registered one; 'none' to skip)")
        parser.add_argument("--method-preset", default="tiny", help="encoder and method preset of --methods (tiny)")

    @staticmethod
    def run(args: argparse.Namespace) -> int:
        device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
        if args.threads:
            torch.set_num_threads(args.threads)
        print(f"device: {device}  torch threads: {torch.get_num_threads()}  torch {torch.__version__}")
        speed: dict[str, dict[str, Any]] = {}
        for name in [p.strip() for p in args.presets.split(",") if p.strip()]:
            batch = args.batch_size or DEFAULT_BATCH.get(name, 32)
            row = compare_with_reference(name, batch, args.rounds, args.steps, device)
            speed[name] = row
            print(f"{name:>6}: batch {batch:4d}  {row['samples_per_s']:8.1f} samples/s  step {row['step_time_s']:.3f} s"
                  f"  plain PyTorch {row['reference_step_time_s']:.3f} s"
                  f"  ratio (fastest steps) {row['ratio_vs_reference']:.3f}"
                  f"  ({row['params']:,} params, reference {row['reference_params']:,})")
        methods = _time_methods(args, device)
        loop = measure_data_wait(args.corpus, args.loop_steps, args.loop_batch_size, args.num_workers)
        print(f"training loop on {loop['corpus']!r} simulated on the fly ({loop['num_workers']} workers, tiny preset, "
              f"batch {loop['batch_size']}): {loop['ms_per_ecg_simulated']:.2f} ms/ECG to simulate, "
              f"{loop['loop_samples_per_s']:.1f} samples/s, data wait {100 * loop['data_wait_share']:.1f}% of step "
              f"time (first window incl. worker start: {100 * loop['data_wait_share_incl_startup']:.1f}%)")
        if "tiny" in speed:  # workers simulating on the same cores slow the model down without any data wait
            loop["loop_vs_compute_only"] = loop["loop_samples_per_s"] / speed["tiny"]["samples_per_s"]
            print(f"the loop reaches {100 * loop['loop_vs_compute_only']:.0f}% of the compute-only tiny speed "
                  "(below 100%: simulation and training share the CPU; try --set pretrain.threads=1)")
        headline = "paper" if "paper" in speed else next(iter(speed), None)
        figures = {
            "samples_per_s": {name: row["samples_per_s"] for name, row in speed.items()},
            "data_wait_share": loop["data_wait_share"],
            "ratio_vs_reference": speed[headline]["ratio_vs_reference"] if headline else None,
            "ratio_vs_reference_by_preset": {name: row["ratio_vs_reference"] for name, row in speed.items()},
            "device": str(device),
            "presets": speed,
            "loop": loop,
            "methods": methods,
        }
        print(f"targets: data wait < 5% -> {'met' if loop['data_wait_share'] < 0.05 else 'NOT met'}; "
              f"ratio <= 1.1 -> {'met' if headline and figures['ratio_vs_reference'] <= 1.1 else 'NOT met'}"
              + "".join(f"; {name} ratio <= 1.1 -> {'met' if row['ratio_vs_reference'] <= 1.1 else 'NOT met'}"
                        for name, row in methods.items()))
        if args.json:
            print(json.dumps(figures))
        return 0


def _time_methods(args: argparse.Namespace, device: torch.device) -> dict[str, dict[str, Any]]:
    """:func:`compare_method` for each method ``--methods`` names (all registered ones by default)."""
    chosen = args.methods if args.methods is not None else ",".join(METHODS.names())
    names = [] if chosen.strip() == "none" else [m.strip() for m in chosen.split(",") if m.strip()]
    rows: dict[str, dict[str, Any]] = {}
    for name in names:
        batch = args.batch_size or DEFAULT_BATCH.get(args.method_preset, 32)
        row = rows[name] = compare_method(name, args.method_preset, batch, args.rounds, args.steps, device)
        print(f"method {name:>8} ({args.method_preset}): batch {batch:4d}  {row['samples_per_s']:8.1f} samples/s  "
              f"step {row['step_time_s']:.3f} s  plain loop {row['reference_step_time_s']:.3f} s  "
              f"ratio (fastest steps) {row['ratio_vs_reference']:.3f}")
    return rows
