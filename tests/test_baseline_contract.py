"""Every registered model keeps the model contract (``check_baseline``), plugins included.

The test is parametrized over ``BASELINES.names()`` at collection time, so a plugin installed
beside the suite is checked like our own models.
"""

from __future__ import annotations

import pytest
import torch

from baselines import check_baseline
from baselines.base import Baseline, EncoderNeed, NeuralBaseline
from baselines.checks import BaselineContractError
from pretraining.mae import METHOD
from simecg.registries import BASELINES


@pytest.mark.parametrize("name", BASELINES.names())
def test_every_registered_model_keeps_the_contract(name: str, random_encoders, one_thread: None) -> None:
    summary = check_baseline(name, encoders=random_encoders)
    assert summary["name"] == name and summary["val_loss"] > 0
    if BASELINES.get(name).kind == "neural":
        assert summary["evaluations"] == 2  # on_eval is called at every evaluation (Optuna pruning hooks here)


def test_the_mae_identity_carries_its_encoder(random_encoders, one_thread: None) -> None:
    encoders = random_encoders
    identity = check_baseline("mae", encoders=encoders, variant="ptbxl")["identity"]
    assert identity["encoder"] == encoders.identity(EncoderNeed(METHOD, "ptbxl")).fingerprint
    assert identity["config"]["corpus"] == "ptbxl"


def test_a_broken_model_is_reported_with_the_promise_it_breaks(one_thread: None) -> None:
    class Forgetful(NeuralBaseline):
        """fit() returns None instead of the model."""

        @staticmethod
        def build(config):
            return torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(5000, 1), torch.nn.Flatten(0))

        def fit(self, *args, **kwargs):
            super().fit(*args, **kwargs)

    with pytest.raises(BaselineContractError, match="fit\\(\\) returns the model itself"):
        check_baseline(Forgetful)

    class NotAModel:
        pass

    with pytest.raises(BaselineContractError, match="subclass of baselines.base.Baseline"):
        check_baseline(NotAModel)  # type: ignore[arg-type]


def test_the_registry_refuses_an_entry_that_breaks_the_contract() -> None:
    from simecg.errors import ConfigError
    from simecg.registry import Registry

    registry: Registry[object] = Registry("baseline", contract="baselines.base:Baseline", contract_doc="a Baseline")
    registry.add("good", type("Good", (Baseline,), {}))
    registry.add("bad", int)
    assert registry.get("good").__name__ == "Good"
    with pytest.raises(ConfigError, match="'bad' .* does not satisfy the baseline contract: a Baseline"):
        registry.get("bad")
