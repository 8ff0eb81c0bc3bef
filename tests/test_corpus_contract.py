"""Every corpus capability is declared: the Corpus protocol's members, defaults in CorpusBase, and the
TrainedCorpus sub-protocol of corpora sampled from a model trained first. No code asks a corpus what
it has (``hasattr``/``getattr``): it uses what the protocol declares."""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from pretraining.corpora.base import Corpus, CorpusBase, TrainedCorpus, validation_holdout
from simecg.registries import CORPORA

ROOT = Path(__file__).resolve().parents[1]
MEMBERS = sorted({*Corpus.__annotations__, *(n for n, v in vars(Corpus).items() if callable(v) and n[0] != "_")})


def test_the_protocol_declares_every_capability_the_code_uses() -> None:
    assert set(MEMBERS) == {"name", "Options", "unit", "validation_size", "sees_test_records", "get_batch",
                            "identity", "content_identity", "describe"}


@pytest.mark.parametrize("name", CORPORA.names())
def test_every_registered_corpus_has_every_member_of_the_protocol(name: str) -> None:
    cls = CORPORA.get(name)
    missing = [m for m in MEMBERS if not hasattr(cls, m)]
    assert not missing, f"corpus {name} lacks {missing}: subclass pretraining.corpora.base.CorpusBase"
    assert cls.name == name and cls.unit in ("mV", "z-scored")


def test_exactly_the_corpora_sampled_from_a_trained_generator_are_trained_corpora() -> None:
    trained = {name for name in CORPORA.names() if issubclass(CORPORA.get(name), TrainedCorpus)}
    assert trained == {"vae", "gan"}
    assert {CORPORA.get(name).unit for name in trained} == {"z-scored"}


class Minimal(CorpusBase):
    """A corpus that writes only what CorpusBase cannot know."""

    name = "minimal"

    @dataclass(frozen=True)
    class Options:
        pass

    def __len__(self) -> int:
        return 10

    def get_batch(self, indices: np.ndarray) -> np.ndarray:
        return np.zeros((len(indices), 5000), dtype=np.float32)

    def identity(self) -> dict:
        return {"name": self.name, "size": len(self)}


def test_corpus_base_gives_the_defaults_of_the_optional_capabilities() -> None:
    corpus = Minimal()
    assert isinstance(corpus, Corpus) and not isinstance(corpus, TrainedCorpus)
    assert (corpus.unit, corpus.validation_size, corpus.sees_test_records) == ("mV", None, False)
    assert corpus.content_identity() == corpus.identity()
    assert corpus.describe(np.arange(3)) == [{}, {}, {}]
    assert validation_holdout(corpus, 2) == (8, 2)  # no own validation set: the last val_size ECGs


def test_no_code_asks_a_corpus_what_it_has() -> None:
    found = []
    for package in ("pretraining", "baselines", "benchmark"):
        for path in (ROOT / package).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text())):
                if (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
                        and node.func.id in ("hasattr", "getattr") and node.args
                        and isinstance(node.args[0], ast.Name) and "corpus" in node.args[0].id):
                    found.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert not found, "declare the capability in pretraining.corpora.base instead: " + ", ".join(found)
