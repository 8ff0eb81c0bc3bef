"""The study's model: the MAE encoder pretrained on a corpus, fine-tuned with a small head.

Named ``mae:<corpus>`` in suites and results (``mae:sim``, ``mae:ptbxl``): the part after the
colon sets :attr:`PretrainedMAEConfig.corpus`. The encoder comes from an
:class:`~baselines.base.EncoderSource` (the runner's provisions it once per corpus: from the
cache, from MLflow, or by pretraining), and its fingerprint is part of every cell's identity, so
cells of another encoder never count as finished.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from baselines.base import EncoderSource, NeuralBaseline, encoder_tuning_space
from pretraining.checkpoint import load_encoder
from pretraining.mae import METHOD, ECGEncoder, EncoderClassifier, check_head, preset
from simecg.config import to_dict
from simecg.errors import ConfigError


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
    pretraining_method: ClassVar[str] = METHOD  # the registered method whose encoders it fine-tunes
    check_overrides = {"head_width": 16}
    tuned_as = {"mode": "full"}  # a frozen-encoder probe takes the values tuned with full fine-tuning

    @classmethod
    def tuning_space(cls, trial: Any, config: Any = None) -> dict[str, Any]:
        return encoder_tuning_space(trial, config)

    @classmethod
    def identity(cls, config: PretrainedMAEConfig, encoders: EncoderSource | None) -> dict[str, Any]:
        encoder = _source(encoders).identity(config.corpus, cls.pretraining_method)
        return {"config": to_dict(config), "encoder": encoder.fingerprint,
                # pretrained on downstream test records (ptbxl-authors): every output says so
                "sees_test_records": bool(encoder.payload.get("corpus", {}).get("sees_test_records", False))}

    @classmethod
    def prepare(cls, config: PretrainedMAEConfig, encoders: EncoderSource | None) -> None:
        _source(encoders).path(config.corpus, cls.pretraining_method)

    @staticmethod
    def build(config: PretrainedMAEConfig) -> Any:
        """The architecture with random weights (the ``paper`` encoder preset), for listings and speed
        benchmarks; a cell's model loads the pretrained encoder instead (:meth:`build_module`)."""
        return EncoderClassifier(ECGEncoder(preset("paper")), head_width=config.head_width, pooling=config.pooling,
                                 freeze_encoder=config.mode == "probe", dropout=config.dropout,
                                 activation=config.activation)

    def build_module(self) -> Any:
        encoder = load_encoder(_source(self.encoders).path(self.config.corpus, self.pretraining_method))
        return EncoderClassifier(encoder, head_width=self.config.head_width, pooling=self.config.pooling,
                                 freeze_encoder=self.config.mode == "probe", dropout=self.config.dropout,
                                 activation=self.config.activation)


def _source(encoders: EncoderSource | None) -> EncoderSource:
    if encoders is None:
        raise ConfigError("mae: a pretrained model needs an encoder source (the runner provides one)")
    return encoders


def pretrained_model(method: str) -> type[PretrainedMAE]:
    """The model fine-tuning the encoders the registered pretraining ``method`` makes: ``<method>:<corpus>``.

    Register it under the method's name in ``simecg_bench.baselines`` (ours below, a plugin's
    alike: ``my-method = "my_package:MyMethodModel"`` with ``MyMethodModel = pretrained_model("my-method")``),
    so ``my-method:sim`` names it pretrained on ``sim``. Every method's encoder is the same
    :class:`~pretraining.mae.ECGEncoder`, fine-tuned with the same head (docs/protocol.md).
    """
    name = "".join(part.capitalize() for part in method.replace("_", "-").split("-"))
    return type(f"Pretrained{name}", (PretrainedMAE,), {
        "pretraining_method": method, "__module__": __name__,
        "__doc__": f"The encoder pretrained by {method} on a corpus ({method}:<corpus>), fine-tuned with an MLP head.",
    })


PretrainedSimCLR = pretrained_model("simclr")
PretrainedBYOL = pretrained_model("byol")
PretrainedDINO = pretrained_model("dino")
PretrainedIBOT = pretrained_model("ibot")
