"""The study's model: the MAE encoder pretrained on a corpus, fine-tuned with a small head.

Registered as ``mae`` (``pyproject.toml``) and named ``mae:<corpus>`` in suites and results
(``mae:sim``, ``mae:ptbxl``): the part after the colon sets :attr:`PretrainedMAEConfig.corpus`.
Like any model of role ``pretrained`` it declares its pretraining method
(:data:`pretraining.mae.METHOD`); the encoder that method makes on the corpus comes from an
:class:`~baselines.base.EncoderSource` (the runner's provisions it once per corpus: from the
cache, from MLflow, or by pretraining), and its fingerprint is part of every cell's identity
(:meth:`baselines.base.Baseline.identity`), so cells of another encoder never count as finished.

:data:`PAPER_MODEL` is the paper's headline model, SimECG-N pretraining (``mae:sim``): the
defaults that name it (the scratch Transformer borrows its tuning study, ``tuning.shared_studies``;
a grid's default model) and the protocol's fidelity table take it from here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from baselines.base import NeuralBaseline, encoder_tuning_space
from baselines.names import ModelName
from pretraining.checkpoint import load_encoder
from pretraining.config import model_config
from pretraining.mae import METHOD, ECGEncoder, EncoderClassifier, check_head, preset
from simecg.errors import ConfigError

PAPER_MODEL = ModelName("mae", "sim")  # the entry point's name, on the paper's main source (SimECG-N)


@dataclass(frozen=True)
class PretrainedMAEConfig:
    """Which encoder and the classification head on it (docs/protocol.md, fine-tuning).

    The head defaults are the authors': Linear(128, 32), ReLU, Dropout 0.25, Linear(32, 1) on the
    CLS token (:func:`pretraining.mae.classifier_head`). Tuning leaves the head as it is, as the
    authors' did in effect (:func:`baselines.base.encoder_tuning_space`); ``tune_head_width = true``
    also searches ``head_width`` 2^4..2^10.
    """

    corpus: str = "sim"  # the pretraining corpus of the encoder
    head_width: int = 32  # width of the MLP head's hidden layer on the CLS token (0 = a linear head)
    pooling: str = "cls"  # "cls" (paper) or "mean" over patch tokens
    mode: str = "full"  # "full" fine-tuning (paper) or "probe" (frozen encoder)
    dropout: float = 0.25  # the head's dropout
    activation: str = "relu"  # the head's activation: "relu" (paper) or "gelu"
    tune_head_width: bool = False  # also search head_width 2^4..2^10 (the authors' search of it had no effect)

    def __post_init__(self) -> None:
        if not self.corpus:
            raise ConfigError("mae: the corpus of the encoder is empty (name the model mae:<corpus>)")
        check_head("mae", self.pooling, self.activation)
        if self.mode not in ("full", "probe"):
            raise ConfigError(f"mae: mode must be 'full' or 'probe', got {self.mode!r}")
        if self.head_width < 0:
            raise ConfigError(f"mae: head_width must be >= 0, got {self.head_width}")


class PretrainedMAE(NeuralBaseline):
    """The MAE encoder pretrained on a corpus (mae:<corpus>), fine-tuned with an MLP head."""

    Config = PretrainedMAEConfig
    role = "pretrained"
    variant_field = "corpus"
    pretraining_method = METHOD
    check_overrides = {"head_width": 16}
    tuned_as = {"mode": "full"}  # a frozen-encoder probe takes the values tuned with full fine-tuning

    @classmethod
    def tuning_space(cls, trial: Any, config: Any = None) -> dict[str, Any]:
        return encoder_tuning_space(trial, config)

    @staticmethod
    def build(config: PretrainedMAEConfig) -> Any:
        """The architecture with random weights (the ``paper`` encoder preset), for listings and speed
        benchmarks; a cell's model loads the pretrained encoder instead (:meth:`build_module`)."""
        return _classifier(ECGEncoder(preset("paper")), config)

    @classmethod
    def build_shaped(cls, config: PretrainedMAEConfig, pretrain: Any = None) -> Any:
        """With random weights, shaped as the encoder ``pretrain`` (a ``PretrainConfig``) trains: what a
        cell of that source fine-tunes, for speed benchmarks."""
        if pretrain is None:
            return cls.build(config)
        return _classifier(ECGEncoder(model_config(pretrain)), config)

    def build_module(self) -> Any:
        return _classifier(load_encoder(self.encoder_path()), self.config)


def _classifier(encoder: Any, config: PretrainedMAEConfig) -> Any:
    """``encoder`` under the head ``config`` describes (frozen for ``mode = "probe"``)."""
    return EncoderClassifier(encoder, head_width=config.head_width, pooling=config.pooling,
                             freeze_encoder=config.mode == "probe", dropout=config.dropout,
                             activation=config.activation)


def pretrained_model(method: str) -> type[PretrainedMAE]:
    """The model fine-tuning the encoders the registered pretraining ``method`` makes: ``<method>:<source>``.

    Register it under the method's name in ``simecg_bench.baselines`` (``my-method =
    "my_package:MyMethodModel"`` with ``MyMethodModel = pretrained_model("my-method")``; ours below are
    the same written out as subclasses setting ``pretraining_method``), so ``my-method:sim`` names it
    pretrained on ``sim``: its :attr:`~baselines.base.Baseline.pretraining_method`
    makes its encoder need (method, source). Every method's encoder is the same
    :class:`~pretraining.mae.ECGEncoder`, fine-tuned with the same head (docs/protocol.md, "Pretraining methods").
    """
    name = "".join(part.capitalize() for part in method.replace("_", "-").split("-"))
    return type(f"Pretrained{name}", (PretrainedMAE,), {
        "pretraining_method": method, "__module__": __name__,
        "__doc__": f"The encoder pretrained by {method} on a source ({method}:<source>), fine-tuned with an MLP head.",
    })


# Ours are written out as classes, not made by pretrained_model(), so `simecg-bench list baselines` reads
# their docstrings from this file without importing torch (simecg.registry.Registry.summary).
class PretrainedSimCLR(PretrainedMAE):
    """The encoder pretrained by SimCLR on a source (simclr:<source>), fine-tuned with an MLP head."""

    pretraining_method = "simclr"


class PretrainedBYOL(PretrainedMAE):
    """The encoder pretrained by BYOL on a source (byol:<source>), fine-tuned with an MLP head."""

    pretraining_method = "byol"


class PretrainedDINO(PretrainedMAE):
    """The encoder pretrained by DINO on a source (dino:<source>), fine-tuned with an MLP head."""

    pretraining_method = "dino"


class PretrainedIBOT(PretrainedMAE):
    """The encoder pretrained by iBOT on a source (ibot:<source>), fine-tuned with an MLP head."""

    pretraining_method = "ibot"
