"""DDP: ``torchrun --nproc_per_node 2 simecg-bench pretrain`` (gloo, CPU) trains the same model as 1 process.

Tolerance: after 6 Adam steps (lr 1e-3) every weight agrees within 5e-5 absolute (5% of one
Adam step; measured 8e-6) while training moved the weights by over 2e-3, and the logged losses
agree within 1e-5 relative (measured 4e-8). Only the order of floating-point sums differs.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from benchmark.cli import main
from pretraining.checkpoint import load_encoder
from pretraining.mae import ECGEncoder


def _data(folder: Path) -> Path:
    folder.mkdir()
    t = np.arange(5000) / 500.0
    rows = [(1 + i % 4) * np.sin(2 * np.pi * (1 + 0.1 * i) * t + i) + 0.2 * np.sin(18 * np.pi * t) for i in range(40)]
    np.save(folder / "sines.npy", np.asarray(rows, dtype=np.float32))
    return folder


def _args(data: Path, out: Path) -> list[str]:
    settings = {
        "corpus_options.path": str(data), "corpus_size": 40, "val_size": 8, "batch_size": 8, "lr": 1e-3,
        "val_every": 3, "log_every": 1, "checkpoint_every": 3, "num_workers": 0,
        "model.embed_dim": 32, "model.depth": 1, "model.num_heads": 2,
        "model.decoder_embed_dim": 16, "model.decoder_num_heads": 2,
    }
    args = ["pretrain", "--corpus", "folder", "--preset", "tiny", "--steps", "6", "--out", str(out),
            "--no-mlflow", "--no-progress", "--json"]
    for key, value in settings.items():
        args += ["--set", f"pretrain.{key}={value}"]
    return args


@pytest.mark.slow
def test_two_gloo_processes_match_one_process_with_the_same_global_batch(tmp_path, capsys):
    data = _data(tmp_path / "data")
    script = Path(sys.executable).with_name("simecg-bench")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", str(script),
           *_args(data, tmp_path / "ddp")]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    ddp_result = json.loads(proc.stdout.strip().splitlines()[-1])

    assert main(_args(data, tmp_path / "single")) == 0
    single_result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])

    assert ddp_result["fingerprint"] == single_result["fingerprint"]
    assert ddp_result["val_loss"] == pytest.approx(single_result["val_loss"], rel=1e-5)
    a, b = load_encoder(Path(ddp_result["checkpoint"])), load_encoder(Path(single_result["checkpoint"]))
    for (name, wa), (_, wb) in zip(a.state_dict().items(), b.state_dict().items(), strict=True):
        torch.testing.assert_close(wa, wb, atol=5e-5, rtol=0, msg=name)
    torch.manual_seed(0)  # pretrain.seed: the encoder's initial weights
    initial = ECGEncoder(b.config)
    moved = max((w - w0).abs().max().item() for w, w0 in zip(b.state_dict().values(), initial.state_dict().values(),
                                                               strict=True))
    assert moved > 2e-3, "training moved the weights far more than the tolerance"
    history_a = json.loads((tmp_path / "ddp" / "history.json").read_text())
    history_b = json.loads((tmp_path / "single" / "history.json").read_text())
    assert [h["step"] for h in history_a] == [1, 2, 3, 4, 5, 6]
    for h_a, h_b in zip(history_a, history_b, strict=True):
        assert h_a["train_loss"] == pytest.approx(h_b["train_loss"], rel=1e-5)
    # the weights moved: equality is not trivial
    assert history_b[-1]["train_loss"] != history_b[0]["train_loss"]
