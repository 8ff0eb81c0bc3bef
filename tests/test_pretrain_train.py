"""pretrain(): exact resumption, immediate return when done, logging, settings checks, and the
encoder it hands out: the best-validation checkpoint (the paper's) or the last one."""

from __future__ import annotations

import dataclasses
import json
import logging
import math

import numpy as np
import pytest
import torch

from pretraining import checkpoint as ckpt
from pretraining.config import (
    PretrainConfig,
    encoder_dir,
    encoder_identity,
    lr_at,
    model_config,
    validation_interval,
)
from pretraining.corpora.base import CorpusBase
from pretraining.loop import BEST_VAL, LAST, LAST_UNVALIDATED, _Run, pretrain
from simecg.config import apply_overrides
from simecg.errors import ConfigError


class SineCorpus(CorpusBase):
    """ECG ``i``: a sum of two sines whose frequencies, phase and amplitude depend on ``i``."""

    name = "test-sines"

    def __init__(self, size: int = 64):
        self.size = size

    def __len__(self) -> int:
        return self.size

    def get_batch(self, indices: np.ndarray) -> np.ndarray:
        i = np.asarray(indices, dtype=np.float64)[:, None]
        t = np.arange(5000)[None, :] / 500.0
        x = np.sin(2 * np.pi * (1 + (i % 5) * 0.2) * t + i) + 0.3 * np.sin(2 * np.pi * (7 + i % 3) * t)
        return ((1 + i % 4) * x).astype(np.float32)

    def identity(self) -> dict:
        return {"name": self.name, "size": self.size}


SMALL_MODEL = {"embed_dim": 32, "depth": 1, "num_heads": 2, "decoder_embed_dim": 16, "decoder_num_heads": 2}
CONFIG = PretrainConfig(
    corpus="test-sines", corpus_size=64, preset="tiny", model=SMALL_MODEL, steps=8, batch_size=4, lr=1e-3,
    val_size=4, val_every=4, checkpoint_every=4, log_every=2, num_workers=0,
)


pytestmark = pytest.mark.usefixtures("one_thread")


class RecordingLogger:
    def __init__(self, fail_at: int | None = None):
        self.metrics: list[tuple[int, dict]] = []
        self.figures: list[str] = []
        self.fail_at = fail_at

    def log_metrics(self, metrics: dict, step: int) -> None:
        if step == self.fail_at:
            raise KeyboardInterrupt("simulated crash")
        self.metrics.append((step, dict(metrics)))

    def log_figure(self, figure, artifact_file: str) -> None:
        assert figure.axes, "a figure with content"
        self.figures.append(artifact_file)


def _weights(path) -> dict[str, torch.Tensor]:
    return torch.load(path, weights_only=True)["model"]


def test_interrupted_and_resumed_training_equals_uninterrupted(tmp_path):
    straight = pretrain(CONFIG, tmp_path / "straight", progress=False, corpus=SineCorpus())
    with pytest.raises(KeyboardInterrupt):
        pretrain(CONFIG, tmp_path / "resumed", logger=RecordingLogger(fail_at=6), progress=False, corpus=SineCorpus())
    assert ckpt.latest_checkpoint(tmp_path / "resumed" / "checkpoints").name == "step-00000004.pt"
    resumed = pretrain(CONFIG, tmp_path / "resumed", progress=False, corpus=SineCorpus())
    assert resumed.steps == straight.steps == 8
    a, b = _weights(straight.training_checkpoint), _weights(resumed.training_checkpoint)
    for name in a:
        torch.testing.assert_close(a[name], b[name], atol=1e-6, rtol=1e-5, msg=name)
    assert [h["step"] for h in resumed.history] == [h["step"] for h in straight.history] == [2, 4, 6, 8]
    for h_a, h_b in zip(straight.history, resumed.history, strict=True):
        assert h_a["train_loss"] == pytest.approx(h_b["train_loss"], rel=1e-5)
    assert resumed.val_loss == pytest.approx(straight.val_loss, rel=1e-5)


def test_finished_run_returns_immediately_without_building_the_corpus(tmp_path):
    first = pretrain(CONFIG, tmp_path / "run", progress=False, corpus=SineCorpus())
    (tmp_path / "run" / "encoder.pt").unlink()  # also rebuilt from the last checkpoint
    # "test-sines" is not registered: building the corpus would raise UnknownNameError
    again = pretrain(CONFIG, tmp_path / "run", progress=False)
    assert again.val_loss == first.val_loss and again.history == first.history
    encoder = ckpt.load_encoder(again.checkpoint, expected=model_config(CONFIG))
    assert encoder.config.embed_dim == 32


def test_more_steps_continue_a_constant_schedule_run(tmp_path):
    pretrain(CONFIG, tmp_path / "run", progress=False, corpus=SineCorpus())
    longer = pretrain(dataclasses.replace(CONFIG, steps=10), tmp_path / "run", progress=False, corpus=SineCorpus())
    assert [h["step"] for h in longer.history] == [2, 4, 6, 8, 10]


def test_different_settings_in_the_same_folder_are_refused(tmp_path):
    pretrain(CONFIG, tmp_path / "run", progress=False, corpus=SineCorpus())
    with pytest.raises(ConfigError, match=r"lr: 0.001 -> 0.002"):
        pretrain(dataclasses.replace(CONFIG, lr=2e-3), tmp_path / "run", progress=False, corpus=SineCorpus())
    with pytest.raises(ConfigError, match="trained for 8 steps"):
        pretrain(dataclasses.replace(CONFIG, steps=4), tmp_path / "run", progress=False, corpus=SineCorpus())


@pytest.mark.slow
def test_logger_gets_loss_curves_throughput_and_reconstruction_pictures(tmp_path):
    logger = RecordingLogger()
    result = pretrain(CONFIG, tmp_path / "run", logger=logger, progress=False, corpus=SineCorpus())
    steps = [s for s, _ in logger.metrics]
    assert steps == [2, 4, 6, 8]
    logged = logger.metrics[-1][1]
    assert {"train_loss", "val_loss", "samples_per_s", "data_wait_share", "lr"} <= set(logged)
    assert logged["samples_per_s"] > 0 and 0 <= logged["data_wait_share"] <= 1
    assert logger.figures == ["reconstructions/step_00000004.png", "reconstructions/step_00000008.png",
                              "loss_curve.png"]
    assert json.loads((tmp_path / "run" / "history.json").read_text()) == result.history
    assert len(ckpt.list_checkpoints(tmp_path / "run" / "checkpoints")) <= CONFIG.keep_checkpoints


def test_validation_set_must_leave_training_data(tmp_path):
    with pytest.raises(ConfigError, match="val_size"):
        pretrain(dataclasses.replace(CONFIG, val_size=40), tmp_path / "run", progress=False, corpus=SineCorpus())


def test_config_overrides_and_validation():
    config = apply_overrides(PretrainConfig(), {"steps": "100", "model.depth": "3", "corpus_options.path": "/x",
                                                "schedule": "cosine", "betas": "0.9,0.95"})
    assert config.steps == 100 and config.betas == (0.9, 0.95) and config.corpus_options == {"path": "/x"}
    assert model_config(config).depth == 3
    assert PretrainConfig().batch_size == 512 and PretrainConfig().lr == 1e-4 and PretrainConfig().val_size == 5000
    with pytest.raises(ConfigError, match="schedule"):
        PretrainConfig(schedule="linear")
    with pytest.raises(ConfigError, match="pretrain.model.width"):
        model_config(PretrainConfig(model={"width": 3}))
    with pytest.raises(ConfigError, match="unknown model preset"):
        PretrainConfig(preset="huge")
    corpus = SineCorpus()
    assert encoder_identity(config, corpus) != encoder_identity(PretrainConfig(), corpus)
    assert encoder_identity(dataclasses.replace(config, num_workers=7), corpus) == encoder_identity(config, corpus)
    assert encoder_dir(encoder_identity(config, corpus)).parent.name == "encoders"


def test_the_validation_cadence_counts_samples_as_the_authors_did():
    """More than 1e6 samples since the last validation: every 1,954 steps at batch 512, 3,907 at 256."""
    assert validation_interval(PretrainConfig()) == 1954
    assert validation_interval(PretrainConfig(batch_size=256)) == 3907
    assert validation_interval(PretrainConfig(batch_size=1000)) == 1001  # 1e6 samples are not yet "more than"
    assert validation_interval(PretrainConfig(val_every=100)) == 100  # a cadence pinned in steps wins
    assert PretrainConfig().select == BEST_VAL
    with pytest.raises(ConfigError, match="pretrain.select must be one of best_val, last"):
        PretrainConfig(select="first")
    with pytest.raises(ConfigError, match="pretrain.val_every_samples must be > 0"):
        PretrainConfig(val_every_samples=0)


# Validation losses by step: the lowest at step 4, tied at step 8 (the earlier stays, as the authors' `<`).
RISING = {2: 3.0, 4: 1.0, 6: 2.0, 8: 1.0}
EVERY_STEP = dataclasses.replace(CONFIG, val_every=2, checkpoint_every=2, keep_checkpoints=10)


@pytest.fixture
def scripted_validation(monkeypatch):
    """Validation (still computed) reports the losses of RISING: it rises after step 4."""
    original = _Run.validate

    def validate(self, model, autocast, step):
        original(self, model, autocast, step)
        return RISING[step]

    monkeypatch.setattr(_Run, "validate", validate)


def _assert_same_weights(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert a.keys() == b.keys()
    for name in a:
        torch.testing.assert_close(a[name], b[name], atol=1e-6, rtol=1e-5, msg=name)


def _encoder_of_step(folder, step: int) -> dict[str, torch.Tensor]:
    return ckpt.load_encoder(ckpt.step_path(folder / "checkpoints", step)).state_dict()


def test_a_rising_validation_loss_hands_out_the_best_checkpoint(tmp_path, scripted_validation):
    result = pretrain(EVERY_STEP, tmp_path / "run", progress=False, corpus=SineCorpus())
    assert (result.choice.step, result.choice.val_loss, result.choice.chosen_by) == (4, 1.0, BEST_VAL)
    encoder = ckpt.load_encoder(result.checkpoint).state_dict()
    _assert_same_weights(encoder, _encoder_of_step(tmp_path / "run", 4))
    last = _encoder_of_step(tmp_path / "run", 8)
    assert any(not torch.equal(encoder[name], last[name]) for name in encoder), "training moved past step 4"
    extra = ckpt.read(result.checkpoint)["extra"]
    assert (extra["step"], extra["val_loss"], extra["chosen_by"], extra["steps"]) == (4, 1.0, BEST_VAL, 8)
    assert result.val_loss == 1.0  # the last validation's, logged as before

    # rebuilt from the last training checkpoint, which carries the best validation's weights
    (tmp_path / "run" / "encoder.pt").unlink()
    again = pretrain(EVERY_STEP, tmp_path / "run", progress=False)
    assert again.choice == result.choice
    _assert_same_weights(ckpt.load_encoder(again.checkpoint).state_dict(), encoder)


def test_select_last_hands_out_the_final_weights(tmp_path, scripted_validation):
    config = dataclasses.replace(EVERY_STEP, select="last")
    result = pretrain(config, tmp_path / "run", progress=False, corpus=SineCorpus())
    assert (result.choice.step, result.choice.chosen_by) == (8, LAST)
    _assert_same_weights(ckpt.load_encoder(result.checkpoint).state_dict(), _encoder_of_step(tmp_path / "run", 8))


def test_a_resumed_run_hands_out_the_best_checkpoint_of_the_uninterrupted_one(tmp_path, scripted_validation):
    """Killed at step 6 (after the step-4 checkpoint): the best so far (step 4) is only in that checkpoint."""
    straight = pretrain(EVERY_STEP, tmp_path / "straight", progress=False, corpus=SineCorpus())
    with pytest.raises(KeyboardInterrupt):
        pretrain(EVERY_STEP, tmp_path / "resumed", logger=RecordingLogger(fail_at=6), progress=False,
                 corpus=SineCorpus())
    assert ckpt.latest_checkpoint(tmp_path / "resumed" / "checkpoints").name == "step-00000004.pt"
    resumed = pretrain(EVERY_STEP, tmp_path / "resumed", progress=False, corpus=SineCorpus())
    assert resumed.choice == straight.choice
    _assert_same_weights(ckpt.load_encoder(resumed.checkpoint).state_dict(),
                         ckpt.load_encoder(straight.checkpoint).state_dict())


def test_validation_masks_change_the_validation_losses_and_never_the_training(tmp_path):
    """Fresh masks (the authors') at every validation, or one draw for all: the same weights either way."""
    fresh = pretrain(CONFIG, tmp_path / "fresh", progress=False, corpus=SineCorpus())
    fixed = pretrain(dataclasses.replace(CONFIG, val_masks="fixed"), tmp_path / "fixed", progress=False,
                     corpus=SineCorpus())
    _assert_same_weights(_weights(fresh.training_checkpoint), _weights(fixed.training_checkpoint))
    losses = {name: [h["val_loss"] for h in run.history if "val_loss" in h] for name, run in
              (("fresh", fresh), ("fixed", fixed))}
    assert len(losses["fresh"]) == 2 and all(a != b for a, b in zip(losses["fresh"], losses["fixed"], strict=True))


def test_no_validation_to_choose_by_hands_out_the_last_checkpoint_and_says_so(tmp_path, caplog):
    config = dataclasses.replace(CONFIG, val_every=0, val_every_samples=1000)  # every 251 steps: never in 8
    with caplog.at_level(logging.WARNING, logger="pretraining.loop"):
        result = pretrain(config, tmp_path / "run", progress=False, corpus=SineCorpus())
    assert (result.choice.step, result.choice.chosen_by) == (8, LAST_UNVALIDATED)
    assert math.isfinite(result.choice.val_loss)  # the last step is still validated and logged
    assert any("no validation loss to choose the best checkpoint by" in r.getMessage() for r in caplog.records)


def test_learning_rate_schedules():
    constant = PretrainConfig(lr=1e-3, steps=100, warmup_steps=10)
    assert lr_at(constant, 0) == pytest.approx(1e-4) and lr_at(constant, 9) == pytest.approx(1e-3)
    assert lr_at(constant, 99) == pytest.approx(1e-3)
    cosine = dataclasses.replace(constant, schedule="cosine", min_lr_ratio=0.1)
    assert lr_at(cosine, 10) == pytest.approx(1e-3)
    assert lr_at(cosine, 55) == pytest.approx(1e-3 * (0.1 + 0.9 * 0.5))
    assert lr_at(cosine, 100) == pytest.approx(1e-4)


def test_a_pretraining_whose_loss_turns_nan_stops_saying_so(tmp_path):
    """lr=1e6 sends the MAE's loss to NaN within a few steps: an error naming the step and pretrain.lr,
    never an encoder.pt of NaN weights that every cell would then fine-tune."""
    from simecg.errors import DivergedError

    config = dataclasses.replace(CONFIG, lr=1e6, warmup_steps=0) if hasattr(CONFIG, "warmup_steps") else \
        dataclasses.replace(CONFIG, lr=1e6)
    with pytest.raises(DivergedError, match=r"pretraining diverged by step \d+ .*pretrain\.lr"):
        pretrain(config, tmp_path / "run", progress=False, corpus=SineCorpus())
    assert not (tmp_path / "run" / "encoder.pt").exists()


THREADS_ATOL = 1e-3  # after 8 steps (measured: 8e-5); float noise that Adam's normalised steps carry on


@pytest.mark.slow
def test_thread_counts_give_equivalent_not_identical_encoders(tmp_path):
    """pretrain.threads is left out of the fingerprint (simecg.identity.IGNORED): 1 and 2 threads
    reduce sums in different orders, so weights differ by float noise (the issue measured 1.6e-5;
    8e-5 after these 8 steps), never by more than THREADS_ATOL, and the losses agree."""
    before = torch.get_num_threads()
    try:
        runs = {n: pretrain(dataclasses.replace(CONFIG, threads=n), tmp_path / f"threads-{n}", progress=False,
                            corpus=SineCorpus()) for n in (1, 2)}
    finally:
        torch.set_num_threads(before)
    one, two = (_weights(runs[n].training_checkpoint) for n in (1, 2))
    worst = max(float((one[k] - two[k]).abs().max()) for k in one if one[k].is_floating_point())
    assert worst <= THREADS_ATOL, worst
    assert runs[1].val_loss == pytest.approx(runs[2].val_loss, rel=1e-4)
