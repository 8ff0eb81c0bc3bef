"""Model names: a registry entry and, after a colon, its variant; parsed once, never split again.

Suites, cells, runs and results name a model by text: ``resnet18-1d`` is a registry entry alone,
``mae:sim`` the entry ``mae`` with the variant ``sim`` (for a pretrained model, the pretraining
source of its encoder: docs/protocol.md, "Pretraining sources"). :class:`ModelName` holds both
parts, read as attributes, so no module splits a name on ``":"`` again.

A ModelName *is* its text (a ``str`` subclass): it is stored, tagged, hashed and compared as
that text, so a cell's fingerprint holds the same string whether its model name was parsed or
typed (the fingerprints of existing cells stay what they were), a name read back from MLflow
equals the one a suite made, and ``str`` code (sorting, f-strings, JSON) needs no change.
"""

from __future__ import annotations

from typing import Any

from simecg.errors import ConfigError

SEPARATOR = ":"  # between a model's registry entry and its variant


class ModelName(str):
    """``entry`` or ``entry:variant``: a model's name, with its two parts parsed once.

    Build one from its parts, ``ModelName("mae", "sim")``, or from text, ``ModelName.parse("mae:sim")``;
    ``str(name)`` and the name itself are the text ``"mae:sim"``.
    """

    _entry: str
    _variant: str

    def __new__(cls, entry: str, variant: str = "") -> ModelName:
        entry, variant = str(entry).strip(), str(variant).strip()
        if not entry or SEPARATOR in entry:
            raise ConfigError(f"model name {entry!r}{SEPARATOR + variant if variant else ''}: expected a registry "
                              f"name, optionally followed by '{SEPARATOR}<variant>' (e.g. resnet18-1d, mae:sim)")
        self = super().__new__(cls, f"{entry}{SEPARATOR}{variant}" if variant else entry)
        self._entry, self._variant = entry, variant
        return self

    @classmethod
    def parse(cls, text: str) -> ModelName:
        """``"mae:sim"`` -> ``ModelName("mae", "sim")``; a ModelName is returned as it is.

        A colon with nothing after it (``"mae:"``) is refused: it would silently name the entry alone.
        """
        if isinstance(text, ModelName):
            return text
        entry, sep, variant = str(text).partition(SEPARATOR)
        if sep and not variant.strip():
            raise ConfigError(f"model name {text!r}: nothing after '{SEPARATOR}' (name a variant, e.g. "
                              f"{entry.strip() or 'mae'}{SEPARATOR}sim, or leave the colon out)")
        return cls(entry, variant)

    @property
    def entry(self) -> str:
        """The registry name (``mae`` of ``mae:sim``)."""
        return self._entry

    @property
    def variant(self) -> str:
        """What follows the colon (``sim`` of ``mae:sim``); ``""`` for a name without one."""
        return self._variant

    def with_variant(self, variant: str) -> ModelName:
        """The same entry with ``variant`` (``mae`` -> ``mae:ptbxl``)."""
        return ModelName(self._entry, variant)

    def __getnewargs__(self) -> tuple[Any, ...]:  # pickle and copy rebuild it from its parts
        return self._entry, self._variant

    def __repr__(self) -> str:
        return f"ModelName({self._entry!r}, {self._variant!r})" if self._variant else f"ModelName({self._entry!r})"
