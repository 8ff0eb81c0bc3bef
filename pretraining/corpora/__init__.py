"""Pretraining corpora, registered in ``simecg.registries.CORPORA``.

Importing this package registers the built-in corpora (``sim``, ``ptbxl``, ``folder``, ...).
"""

from pretraining.corpora.base import Corpus

__all__ = ["Corpus"]

# Built-in corpora register themselves on import; keep this list in sync with the folder.
from pretraining.corpora import (
    folder,  # noqa: E402,F401
    sim,  # noqa: E402,F401
)
