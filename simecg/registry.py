"""A small generic name -> object registry, filled by decorators and entry points.

Modelled on timm's ``register_model``: a factory or class registers itself next to its code,
and lookups of unknown names fail with the known names and a close-match hint. Other packages
add entries without editing this repository through a Python entry-point group, loaded lazily
on the first lookup.
"""

from __future__ import annotations

import difflib
import importlib
import logging
from collections.abc import Callable, Iterator
from importlib.metadata import entry_points
from types import ModuleType
from typing import Any, Generic, TypeVar

from simecg.errors import ConfigError, UnknownNameError

T = TypeVar("T")
log = logging.getLogger(__name__)


class Registry(Generic[T]):
    """Map names to objects of one kind (corpora, baselines, tasks, suites, ...).

    Args:
        kind: what the entries are, used in messages ("baseline").
        group: Python entry-point group scanned on first lookup, e.g. ``simecg_bench.baselines``.
            An entry point may name a module (importing it runs its ``@register`` decorators) or
            an object, which is registered under the entry point's name.
        builtins: modules of this project imported on first lookup so their decorators run.
    """

    def __init__(self, kind: str, group: str | None = None, builtins: tuple[str, ...] = ()):
        self.kind = kind
        self.group = group
        self.builtins = builtins
        self._entries: dict[str, T] = {}
        self._metadata: dict[str, dict[str, Any]] = {}
        self._loaded = False
        self._loading = False

    def register(self, name: str, **metadata: Any) -> Callable[[T], T]:
        """Decorator: ``@REGISTRY.register("name", key=value)`` registers the decorated object."""

        def decorator(obj: T) -> T:
            self.add(name, obj, **metadata)
            return obj

        return decorator

    def add(self, name: str, obj: T, **metadata: Any) -> None:
        """Register ``obj`` under ``name``; registering a different object twice is an error."""
        if not name or name != name.strip():
            raise ConfigError(f"invalid {self.kind} name {name!r}")
        existing = self._entries.get(name)
        if existing is not None and existing is not obj and _qualname(existing) != _qualname(obj):
            raise ConfigError(
                f"{self.kind} {name!r} is already registered by {_qualname(existing)}; "
                f"{_qualname(obj)} cannot take the same name"
            )
        self._entries[name] = obj
        self._metadata[name] = dict(metadata)

    def get(self, name: str) -> T:
        """Return the entry called ``name`` or raise :class:`UnknownNameError` listing the known ones."""
        self._ensure_loaded()
        try:
            return self._entries[name]
        except KeyError:
            known = sorted(self._entries)
            hint = difflib.get_close_matches(name, known, n=1)
            did_you_mean = f" Did you mean {hint[0]!r}?" if hint else ""
            raise UnknownNameError(
                f"unknown {self.kind} {name!r}.{did_you_mean} Known: {', '.join(known) or '(none)'}"
            ) from None

    def metadata(self, name: str) -> dict[str, Any]:
        self.get(name)
        return dict(self._metadata[name])

    def names(self) -> list[str]:
        self._ensure_loaded()
        return sorted(self._entries)

    def items(self) -> Iterator[tuple[str, T]]:
        self._ensure_loaded()
        return iter(sorted(self._entries.items()))

    def __contains__(self, name: object) -> bool:
        self._ensure_loaded()
        return name in self._entries

    def __len__(self) -> int:
        self._ensure_loaded()
        return len(self._entries)

    def _ensure_loaded(self) -> None:
        if self._loaded or self._loading:
            return
        self._loading = True
        try:
            for module in self.builtins:
                importlib.import_module(module)
            if self.group:
                self._load_entry_points()
            self._loaded = True
        finally:
            self._loading = False

    def _load_entry_points(self) -> None:
        for ep in entry_points(group=self.group):
            try:
                obj = ep.load()
            except Exception as exc:  # a broken plugin must not break the suite
                log.warning("could not load %s plugin %r (%s): %s", self.kind, ep.name, ep.value, exc)
                continue
            if not isinstance(obj, ModuleType) and ep.name not in self._entries:
                self.add(ep.name, obj, plugin=ep.value)

    def __repr__(self) -> str:
        return f"Registry({self.kind!r}, {len(self._entries)} entries)"


def _qualname(obj: object) -> str:
    module = getattr(obj, "__module__", "?")
    name = getattr(obj, "__qualname__", type(obj).__qualname__)
    return f"{module}.{name}"
