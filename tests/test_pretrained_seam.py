"""The model seam: a model name parsed once, and any pretrained model (not only the MAE) run per source.

A second pretrained model, registered here and nowhere else, fine-tunes the masked autoencoder's
encoder with a linear head on the mean patch token. It must expand over a suite's sources like
``mae`` (``linear-probe-test:sim``), be planned, share the MAE's encoder on the same source (one
pretraining), run, and be compared with the strongest baseline on the leaderboard.
"""

from __future__ import annotations

import json
import pickle
from dataclasses import dataclass
from typing import Any

import mlflow
import pytest
from hypothesis import given
from hypothesis import strategies as st

from baselines.base import EncoderNeed, NeuralBaseline, expand_model, resolve_model
from baselines.names import ModelName
from benchmark.cli import main
from benchmark.run.cells import Cell, enumerate_cells
from benchmark.run.encoders import SuiteEncoders
from benchmark.run.planning import base_keys
from benchmark.suites.config import load_suite
from pretraining.config import encoder_identity
from pretraining.mae import METHOD
from simecg.errors import ConfigError
from simecg.registries import BASELINES

PROBE = "linear-probe-test"
TINY = ["--set", "pretrain.steps=12", "--set", "pretrain.corpus_size=256", "--set", "pretrain.val_size=32",
        "--set", "pretrain.batch_size=16", "--set", "pretrain.val_every=6", "--set", "pretrain.checkpoint_every=6",
        "--set", "pretrain.num_workers=0", "--set", "finetune.max_epochs=2", "--set", "finetune.eval_every=1"]


@dataclass(frozen=True)
class LinearProbeConfig:
    corpus: str = "sim"  # the pretraining source of the encoder (the name's variant)


class LinearProbe(NeuralBaseline):
    """A frozen pretrained encoder, a linear head on its mean patch token (test only)."""

    Config = LinearProbeConfig
    role = "pretrained"
    variant_field = "corpus"
    pretraining_method = METHOD  # the same encoder as the MAE's on the same source: pretrained once

    @staticmethod
    def build(config: LinearProbeConfig) -> Any:
        from pretraining.mae import ECGEncoder, preset

        return _probe(ECGEncoder(preset("tiny")))

    def build_module(self) -> Any:
        from pretraining.checkpoint import load_encoder

        return _probe(load_encoder(self.encoder_path()))


def _probe(encoder: Any) -> Any:
    import torch
    from torch import nn

    class Probe(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.encoder = encoder.requires_grad_(False)
            self.head = nn.Linear(encoder.config.embed_dim, 1)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.head(self.encoder(x)[:, 1:].mean(dim=1)).squeeze(-1)

    return Probe()


@pytest.fixture
def probe(monkeypatch: pytest.MonkeyPatch) -> str:
    """``LinearProbe`` registered for one test (the registry is restored afterwards)."""
    BASELINES.names()  # load the entry points first, so the copies below hold them
    monkeypatch.setattr(BASELINES, "_entries", dict(BASELINES._entries))
    monkeypatch.setattr(BASELINES, "_metadata", dict(BASELINES._metadata))
    BASELINES.add(PROBE, LinearProbe)
    return PROBE


# ----- names
def test_a_model_name_is_parsed_once_into_entry_and_variant() -> None:
    name = ModelName.parse("mae:ptbxl-2k")
    assert (name.entry, name.variant) == ("mae", "ptbxl-2k")
    assert name == "mae:ptbxl-2k" and str(name) == "mae:ptbxl-2k" and json.dumps(name) == '"mae:ptbxl-2k"'
    assert ModelName.parse(name) is name
    assert ModelName.parse("resnet18-1d").variant == "" and ModelName("mae", "sim") == "mae:sim"
    assert pickle.loads(pickle.dumps(name)).variant == "ptbxl-2k"
    for bad in ("mae:", ":sim", ""):
        with pytest.raises(ConfigError, match="model name"):
            ModelName.parse(bad)


_PART = st.text(st.characters(blacklist_categories=("Cs", "Zs", "Zl", "Zp", "Cc")), min_size=1, max_size=12)


@given(entry=_PART.filter(lambda t: ":" not in t), variant=st.one_of(st.just(""), _PART))
def test_a_name_built_from_parts_reads_back_the_same_parts(entry: str, variant: str) -> None:
    name = ModelName(entry, variant)
    again = ModelName.parse(str(name))
    assert (again.entry, again.variant) == (entry, variant) and again == name


def test_a_cell_label_is_built_from_fields_and_the_study_label_drops_only_the_seed() -> None:
    cell = Cell("mae:sim", "ptbxl/AFIB", "II", 0, 3, shift="sex:M->F")
    assert isinstance(cell.model, ModelName) and cell.model.variant == "sim"
    assert cell.label == f"{cell.label_without_seed} | seed 3"
    assert cell.label_without_seed == "mae:sim | ptbxl/AFIB | II | budget all | shift sex:M->F"


def test_a_pretrained_model_must_name_its_source() -> None:
    with pytest.raises(TypeError, match="variant_field"):
        type("NoSource", (NeuralBaseline,), {"role": "pretrained"})


# ----- expansion, planning, encoders
def test_any_pretrained_model_expands_over_the_suite_sources(probe: str) -> None:
    assert expand_model(probe, ("sim", "ptbxl")) == [f"{probe}:sim", f"{probe}:ptbxl"]
    assert expand_model(f"{probe}:sim", ("sim", "ptbxl")) == [f"{probe}:sim"]
    assert expand_model("resnet18-1d", ("sim", "ptbxl")) == ["resnet18-1d"]
    suite = load_suite("demo", {"grid.models": f"mae,{probe},resnet18-1d", "grid.tasks": "demo/af",
                                "grid.seeds": "1"})
    assert [c.model for c in enumerate_cells(suite)] == ["mae:sim", f"{probe}:sim", "resnet18-1d"]


def test_two_models_of_one_method_share_an_encoder_and_another_method_is_another(probe: str) -> None:
    suite = load_suite("demo", {"grid.models": f"mae,{probe}"})
    mae, other = resolve_model("mae:sim"), resolve_model(f"{probe}:sim", suite.baselines)
    assert mae.encoder_need() == other.encoder_need() == EncoderNeed(METHOD, "sim")
    assert other.source == "sim" and resolve_model("resnet18-1d").encoder_need() is None
    encoders = SuiteEncoders(suite)
    config = encoders.config(EncoderNeed(METHOD, "sim"))
    corpus = encoders.corpus(EncoderNeed(METHOD, "sim"))
    mine = encoder_identity(config, corpus)
    assert encoders.identity(EncoderNeed(METHOD, "sim")) == mine and "method" not in mine.payload  # as before
    simclr = encoders.identity(EncoderNeed("simclr", "sim"))
    assert simclr.fingerprint != mine.fingerprint and simclr.payload["method"]["name"] == "simclr"
    assert simclr.payload["corpus"] == mine.payload["corpus"]  # the same source, another method
    assert resolve_model("simclr:sim").encoder_need() == EncoderNeed("simclr", "sim")
    with pytest.raises(ConfigError, match="'contrastive' on 'sim'.*unknown method 'contrastive'"):
        encoders.identity(EncoderNeed("contrastive", "sim"))


def test_the_dry_run_plans_the_second_pretrained_model_with_one_shared_encoder(probe: str, tracking_uri: str,
                                                                                capsys) -> None:
    assert main(["run", "--suite", "demo", "--tracking-uri", tracking_uri, "--dry-run", "--list", "--set",
                 f"grid.models=mae,{probe},resnet18-1d", "--set", "grid.tasks=demo/af", "--set",
                 "grid.seeds=1"]) == 0
    out = capsys.readouterr().out
    assert f"{probe}:sim | demo/af | II | budget all | seed 1" in out
    assert "1 encoder(s) to pretrain: mae:sim" in out


def test_an_unmeasured_variant_falls_back_to_its_preset_then_its_entry_for_any_model() -> None:
    assert base_keys("linear-probe-test@preset=tiny,model.depth=2") == ["linear-probe-test@preset=tiny",
                                                                        "linear-probe-test"]
    assert base_keys("mae@preset=paper") == ["mae"]
    assert base_keys("resnet18-1d@base_width=16") == ["resnet18-1d"] and base_keys("resnet18-1d") == []


# ----- end to end
@pytest.mark.slow
def test_the_second_pretrained_model_runs_and_is_compared_with_the_strongest_baseline(probe: str,
                                                                                      tracking_uri: str,
                                                                                      capsys) -> None:
    args = ["run", "--suite", "demo", "--tracking-uri", tracking_uri, "--no-progress", "--set",
            f"grid.models=mae,{probe},resnet18-1d", "--set", "grid.tasks=demo/af", "--set", "grid.seeds=1", *TINY]
    assert main(args) == 0
    capsys.readouterr()
    client = mlflow.tracking.MlflowClient(tracking_uri)
    experiment = client.get_experiment_by_name("simecg-bench/demo").experiment_id
    runs = {r.data.tags["model"]: r for r in client.search_runs([experiment], "tags.kind = 'cell'")}
    assert set(runs) == {"mae:sim", f"{probe}:sim", "resnet18-1d"}
    assert all(r.info.status == "FINISHED" for r in runs.values())
    assert runs[f"{probe}:sim"].data.tags["corpus"] == "sim"
    assert runs[f"{probe}:sim"].data.tags["encoder"] == runs["mae:sim"].data.tags["encoder"] != ""
    assert len(client.search_runs([experiment], "tags.kind = 'pretrain'")) == 1  # one encoder for both models

    assert main(["leaderboard", "--suite", "demo", "--format", "json", "--tracking-uri", tracking_uri]) == 0
    board = json.loads(capsys.readouterr().out)
    rows = {r["model"]: r for r in board["rows"]}
    assert rows[f"{probe}:sim"]["role"] == "pretrained" and rows["resnet18-1d"]["role"] == "baseline"
    assert rows[f"{probe}:sim"]["best_baseline"] == "resnet18-1d"
    assert {s["model"] for s in board["summary"]} == {"mae:sim", f"{probe}:sim"}


# ----- the built-in methods on the seam
def test_each_built_in_method_plans_its_own_encoder_on_the_source(tracking_uri: str, capsys) -> None:
    methods = ("simclr", "byol", "dino", "ibot")
    assert main(["run", "--suite", "demo", "--tracking-uri", tracking_uri, "--dry-run", "--format", "json",
                 "--set", f"grid.models=mae,{','.join(methods)},resnet18-1d", "--set", "grid.tasks=demo/af",
                 "--set", "grid.seeds=1"]) == 0
    plan = json.loads(capsys.readouterr().out)
    planned = {f"{need['method']}:{need['source']}": need["fingerprint"] for need in plan["summary"]["pretraining"]}
    assert set(planned) == {f"{m}:sim" for m in ("mae", *methods)}
    assert len(set(planned.values())) == len(planned)  # one encoder per method on the same source


@pytest.mark.slow
def test_a_built_in_method_pretrains_and_fine_tunes_end_to_end(tracking_uri: str, capsys) -> None:
    args = ["run", "--suite", "demo", "--tracking-uri", tracking_uri, "--no-progress", "--set", "grid.models=simclr",
            "--set", "grid.tasks=demo/af", "--set", "grid.seeds=1", "--set", "pretrain.preset=tiny", *TINY]
    assert main(args) == 0
    capsys.readouterr()
    client = mlflow.tracking.MlflowClient(tracking_uri)
    experiment = client.get_experiment_by_name("simecg-bench/demo").experiment_id
    (cell,) = client.search_runs([experiment], "tags.kind = 'cell'")
    assert cell.data.tags["model"] == "simclr:sim" and cell.info.status == "FINISHED"
    (invocation,) = client.search_runs([experiment], "tags.kind = 'invocation'")
    assert invocation.data.params["encoder.simclr.sim.fingerprint"] == cell.data.tags["encoder"] != ""
    (pretraining,) = client.search_runs([experiment], "tags.kind = 'pretrain'")
    assert pretraining.info.run_name == "pretrain simclr:sim" and pretraining.data.params["method"] == "simclr"


def test_method_options_address_pretrain_method_and_another_method_keeps_its_preset() -> None:
    """``--set pretrain.method=simclr --set pretrain.method_options.temperature=0.5`` in a grid of MAE and
    SimCLR: SimCLR's encoder takes 0.5, the MAE's is the encoder it was without them."""
    overrides = {"grid.models": "mae,simclr", "pretrain.method": "simclr", "pretrain.method_options.temperature": "0.5"}
    tuned = SuiteEncoders(load_suite("demo", overrides))
    plain = SuiteEncoders(load_suite("demo", {"grid.models": "mae,simclr"}))
    assert tuned.identity(EncoderNeed(METHOD, "sim")) == plain.identity(EncoderNeed(METHOD, "sim"))
    assert tuned.identity(EncoderNeed("simclr", "sim")).payload["method"]["config"]["temperature"] == 0.5
    assert plain.identity(EncoderNeed("simclr", "sim")).payload["method"]["config"]["temperature"] == 0.1
