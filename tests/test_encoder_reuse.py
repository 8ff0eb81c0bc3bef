"""``pretrain`` and ``run`` share one encoder cache and identity: an encoder is trained once.

The scenario of the identity issue, end to end through the CLI: an encoder pretrained by
``simecg-bench pretrain`` is used by ``run`` (no second pretraining run); other worker counts
rerun nothing; a changed corpus (a simulator parameter, a file of a folder corpus) pretrains a
new encoder and reruns only the cells of the pretrained model.
"""

from __future__ import annotations

import json
from pathlib import Path

import mlflow
import numpy as np
import pytest

from benchmark.cli import main

PRETRAIN = [
    "--set", "pretrain.steps=8", "--set", "pretrain.corpus_size=128", "--set", "pretrain.val_size=16",
    "--set", "pretrain.batch_size=16", "--set", "pretrain.val_every=4", "--set", "pretrain.checkpoint_every=4",
    "--set", "pretrain.num_workers=0",
]
CELLS = ["--set", "grid.models=mae,resnet18-1d", "--set", "grid.seeds=1", "--set", "grid.tasks=demo/af",
         "--set", "finetune.max_epochs=1", "--set", "finetune.eval_every=1"]


def _runs(uri: str, query: str) -> list:
    client = mlflow.tracking.MlflowClient(uri)
    experiments = [e.experiment_id for e in client.search_experiments()]
    return client.search_runs(experiments, filter_string=query, max_results=1000)


def _pretrain(uri: str, capsys: pytest.CaptureFixture, *extra: str) -> dict:
    args = ["pretrain", "--suite", "demo", "--corpus", "sim", "--tracking-uri", uri, "--no-progress", "--json",
            *PRETRAIN, *extra]
    assert main(args) == 0
    return json.loads(capsys.readouterr().out.strip().splitlines()[-1])


def _run(uri: str, capsys: pytest.CaptureFixture, *extra: str) -> str:
    args = ["run", "--suite", "demo", "--corpus", "sim", "--tracking-uri", uri, "--no-progress", *PRETRAIN, *CELLS,
            *extra]
    assert main(args) == 0
    return capsys.readouterr().out


def _the_logged_model_is_the_encoder_without_pickle(uri: str, made: dict) -> None:
    """The MLflow model of a pretraining run is a torch.export program (no pickle) computing what the
    cached encoder computes, for any batch size; its signature says what goes in."""
    import torch

    from pretraining.checkpoint import load_encoder

    client = mlflow.tracking.MlflowClient(uri)
    model = client.search_logged_models(filter_string=f"source_run_id = '{made['run_id']}'",
                                        experiment_ids=[client.get_run(made["run_id"]).info.experiment_id])[0]
    folder = Path(mlflow.artifacts.download_artifacts(model.artifact_location, tracking_uri=uri))
    stored = sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())
    assert "data/model.pt2" in stored
    assert not [p for p in stored if p.endswith((".pth", ".pkl", "pickle_module_info.txt"))]
    signature = mlflow.models.Model.load(folder).signature
    assert signature.inputs.inputs[0].shape == (-1, 1, 5000)  # any batch of 10-s, 500-Hz single leads
    program = torch.export.load(folder / "data" / "model.pt2").module()
    encoder = load_encoder(Path(made["checkpoint"]))
    x = torch.randn(3, 1, 5000, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(program(x), encoder(x), atol=1e-5, rtol=1e-5)


@pytest.mark.slow
def test_pretrain_then_run_trains_one_encoder_and_workers_rerun_nothing(tracking_uri: str, capsys, one_thread) -> None:
    made = _pretrain(tracking_uri, capsys)
    assert made["trained_now"] is True
    _the_logged_model_is_the_encoder_without_pickle(tracking_uri, made)
    assert _pretrain(tracking_uri, capsys, "--set", "pretrain.num_workers=2")["trained_now"] is False

    assert "2 ran, 0 already finished" in _run(tracking_uri, capsys)
    pretrains = _runs(tracking_uri, "tags.kind = 'pretrain'")
    assert [r.info.run_id for r in pretrains] == [made["run_id"]]  # the pretrain command's run, and no other
    mae_cell = _runs(tracking_uri, "tags.kind = 'cell' and tags.model = 'mae:sim'")[0]
    assert mae_cell.data.tags["encoder"] == made["fingerprint"]
    invocation = _runs(tracking_uri, "tags.kind = 'invocation'")[0]
    assert invocation.data.params["encoder.mae.sim.run_id"] == made["run_id"]

    # settings that cannot change the numbers change nothing: no new cell, no new pretraining
    assert "0 ran, 2 already finished" in _run(tracking_uri, capsys, "--set", "pretrain.num_workers=2",
                                               "--set", "pretrain.threads=1")
    assert len(_runs(tracking_uri, "tags.kind = 'pretrain'")) == 1

    # a changed corpus: one new pretraining, the pretrained model's cell only
    changed = _run(tracking_uri, capsys, "--set", "pretrain.corpus_options.gaussian.augment_rate=1")
    assert "1 ran, 1 already finished" in changed
    pretrains = _runs(tracking_uri, "tags.kind = 'pretrain' and attributes.status = 'FINISHED'")
    assert len(pretrains) == 2 and len({r.data.tags["fingerprint"] for r in pretrains}) == 2


@pytest.mark.slow
def test_a_changed_file_of_a_folder_corpus_pretrains_again(tmp_path: Path, tracking_uri: str, capsys,
                                                           one_thread) -> None:
    folder = tmp_path / "ecgs"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for name in ("a", "b"):
        np.save(folder / f"{name}.npy", rng.standard_normal((40, 5000)).astype(np.float32))
    corpus = ["--corpus", "folder", "--set", f"pretrain.corpus_options.path={folder}"]
    args = ["run", "--suite", "demo", "--tracking-uri", tracking_uri, "--no-progress", *PRETRAIN, *CELLS,
            "--set", "grid.models=mae", "--set", "pretrain.corpus_size=80", *corpus]
    assert main(args) == 0 and "1 ran" in capsys.readouterr().out
    assert main(args) == 0 and "0 ran, 1 already finished" in capsys.readouterr().out

    values = np.load(folder / "b.npy")
    values[3, 100] += 1.0  # same file, same size, one sample changed
    np.save(folder / "b.npy", values)
    assert main(args) == 0 and "1 ran, 0 already finished" in capsys.readouterr().out
    pretrains = _runs(tracking_uri, "tags.kind = 'pretrain' and attributes.status = 'FINISHED'")
    assert len({r.data.tags["fingerprint"] for r in pretrains}) == 2


def test_a_longer_constant_schedule_run_continues_the_shorter_one(tmp_path: Path, one_thread) -> None:
    import dataclasses

    import torch

    from benchmark.run.encoders import provision_encoder
    from pretraining import checkpoint as ckpt
    from pretraining.config import PretrainConfig
    from pretraining.loop import pretrain

    base = PretrainConfig(corpus="sim", preset="tiny", corpus_size=128, val_size=16, batch_size=16, steps=8,
                          val_every=4, checkpoint_every=4, num_workers=0)
    short = provision_encoder(base, progress=False)
    longer = provision_encoder(dataclasses.replace(base, steps=12), progress=False)
    assert longer.identity.fingerprint != short.identity.fingerprint
    assert [s for s, _ in ckpt.list_checkpoints(longer.path.parent / "checkpoints")] == [8, 12]  # began at 8
    straight = pretrain(dataclasses.replace(base, steps=12), tmp_path / "straight", progress=False)
    a, b = ckpt.read(longer.path)["encoder"], ckpt.read(straight.checkpoint)["encoder"]
    for name in a:
        torch.testing.assert_close(a[name], b[name], atol=1e-6, rtol=1e-5, msg=name)
    # which runs qualify: only the same trajectory (a constant schedule), fewer steps, the longest of them
    from pretraining.config import encoder_dir, encoder_identity
    from pretraining.loop import resume_from_prefix

    roots = [longer.path.parent.parent]
    for steps, schedule, expected in ((16, "constant", 12), (10, "constant", 8), (16, "cosine", 0)):
        config = dataclasses.replace(base, steps=steps, schedule=schedule)
        identity = encoder_identity(config)
        assert resume_from_prefix(tmp_path / f"{steps}{schedule}", identity, config, roots) == expected
        assert encoder_dir(identity).parent == roots[0]
    # a run that hands out its last weights may continue a best-validation run (it never reads the best
    # validation its checkpoint carries), whatever its validation cadence; not the other way round
    last = dataclasses.replace(base, steps=16, select="last", val_every=2)
    assert resume_from_prefix(tmp_path / "last", encoder_identity(last), last, roots) == 12
    provision_encoder(dataclasses.replace(base, seed=5, select="last"), progress=False)
    best_val = dataclasses.replace(base, seed=5, steps=16)
    assert resume_from_prefix(tmp_path / "best_val", encoder_identity(best_val), best_val, roots) == 0


@pytest.mark.slow
def test_the_pretraining_run_logs_the_best_validation_checkpoint_as_its_encoder(
        tracking_uri: str, capsys, one_thread, monkeypatch: pytest.MonkeyPatch) -> None:
    """Validation loss rises after step 4: encoder.pt, the logged encoder and the MLflow model are step 4's
    weights, and the run says so (params encoder.step, encoder.chosen_by; metric encoder_val_loss)."""
    import torch

    from pretraining import checkpoint as ckpt
    from pretraining.loop import _Run

    original = _Run.validate

    def rising(self, model, autocast, step):
        original(self, model, autocast, step)
        return {4: 1.0, 8: 2.0}[step]

    monkeypatch.setattr(_Run, "validate", rising)
    made = _pretrain(tracking_uri, capsys, "--set", "pretrain.seed=12")  # an encoder no other test made
    assert (made["step"], made["chosen_by"], made["val_loss"]) == (4, "best_val", 1.0)
    run = mlflow.tracking.MlflowClient(tracking_uri).get_run(made["run_id"])
    assert (run.data.params["encoder.step"], run.data.params["encoder.chosen_by"]) == ("4", "best_val")
    assert run.data.params["val_every_steps"] == "4" and run.data.params["select"] == "best_val"
    assert (run.data.metrics["encoder_val_loss"], run.data.metrics["final_val_loss"]) == (1.0, 2.0)

    encoder = Path(made["checkpoint"])
    at_4 = ckpt.load_encoder(ckpt.step_path(encoder.parent / "checkpoints", 4)).state_dict()
    at_8 = ckpt.load_encoder(ckpt.step_path(encoder.parent / "checkpoints", 8)).state_dict()
    handed_out = ckpt.load_encoder(encoder).state_dict()
    for name in at_4:
        torch.testing.assert_close(handed_out[name], at_4[name], atol=0, rtol=0, msg=name)
    assert any(not torch.equal(at_4[name], at_8[name]) for name in at_4)
    logged = mlflow.artifacts.download_artifacts(run_id=made["run_id"], artifact_path="encoder/encoder.pt",
                                                 tracking_uri=tracking_uri)
    assert Path(logged).read_bytes() == encoder.read_bytes()
    _the_logged_model_is_the_encoder_without_pickle(tracking_uri, made)


@pytest.mark.slow
def test_an_encoder_mlflow_cannot_export_still_finishes_its_pretraining(
        tracking_uri: str, capsys, one_thread, monkeypatch: pytest.MonkeyPatch, caplog) -> None:
    """The MLflow model is a convenience: a failed export warns and the run, with its encoder.pt, finishes."""
    from benchmark.tracking.tracker import Tracker

    def fail(*args, **kwargs):
        raise RuntimeError("export failed\nsecond line")

    monkeypatch.setattr(Tracker, "log_model", fail)
    made = _pretrain(tracking_uri, capsys, "--set", "pretrain.seed=11")  # an encoder no other test made
    assert made["trained_now"] and made["run_id"]
    run = mlflow.tracking.MlflowClient(tracking_uri).get_run(made["run_id"])
    assert run.info.status == "FINISHED"
    assert any("could not log encoder" in r.getMessage() and "export failed" in r.getMessage()
               and "second line" not in r.getMessage() for r in caplog.records)
