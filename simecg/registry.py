"""A small generic name -> object registry, filled by entry points (lazily) and decorators.

Modelled on timm's ``register_model`` and Python's entry points: a package, ours or a plugin,
declares its entries in its ``pyproject.toml`` under the registry's entry-point group; nothing
is imported until a name is looked up. An entry point's value is either

- ``"module:attr"``: a lazy entry, the object ``attr`` of ``module``, imported on first
  :meth:`Registry.get` of that name, or
- ``"module"``: a module imported on the first lookup, whose ``@REGISTRY.register(...)``
  decorators (or ``REGISTRY.add`` calls) add one or more entries (e.g. a table of tasks).

Built-in entries use the same mechanism as plugins (see ``[project.entry-points]`` in our
``pyproject.toml``). Each registry states the contract its entries satisfy (a base class or
protocol, named lazily as ``"module:attr"``); an entry that breaks it is refused on lookup
with a message naming the plugin, and unknown names fail with the known ones and a hint.
"""

from __future__ import annotations

import ast
import difflib
import importlib
import importlib.machinery
import importlib.util
import inspect
import logging
from collections.abc import Callable, Iterator
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any, Generic, TypeVar

from simecg.errors import ConfigError, UnknownNameError

T = TypeVar("T")
log = logging.getLogger(__name__)


def load_reference(reference: str) -> Any:
    """The object named by ``"package.module:attr"`` (or the module, without ``:attr``)."""
    module_name, _, attr = reference.partition(":")
    try:
        obj: Any = importlib.import_module(module_name)
        for part in filter(None, attr.split(".")):
            obj = getattr(obj, part)
    except (ImportError, AttributeError) as exc:
        raise ConfigError(f"cannot load {reference!r}: {exc}") from exc
    return obj


class _Lazy:
    """A registered ``"module:attr"`` reference, resolved on first lookup."""

    __slots__ = ("reference",)

    def __init__(self, reference: str):
        self.reference = reference

    def __repr__(self) -> str:
        return f"<lazy {self.reference}>"


class Registry(Generic[T]):
    """Map names to objects of one kind (corpora, baselines, tasks, suites, ...).

    Args:
        kind: what the entries are, used in messages ("baseline").
        group: the Python entry-point group scanned on first lookup, e.g. ``simecg_bench.baselines``.
        contract: the base class or protocol every entry satisfies, as ``"module:attr"``
            (resolved lazily, so a core registry names no heavy module at import). A class entry
            must subclass it (or, for a protocol, have its members); an instance must be one.
        contract_doc: the contract in words, for ``list`` output and error messages.
    """

    def __init__(self, kind: str, group: str | None = None, contract: str | None = None, contract_doc: str = ""):
        self.kind = kind
        self.group = group
        self.contract = contract
        self.contract_doc = contract_doc
        self._entries: dict[str, Any] = {}
        self._metadata: dict[str, dict[str, Any]] = {}
        self._checked: set[str] = set()
        self._loaded = False
        self._loading = False

    # ----- registration
    def register(self, name: str, **metadata: Any) -> Callable[[T], T]:
        """Decorator: ``@REGISTRY.register("name", key=value)`` registers the decorated object."""

        def decorator(obj: T) -> T:
            self.add(name, obj, **metadata)
            return obj

        return decorator

    def add(self, name: str, obj: T, **metadata: Any) -> None:
        """Register ``obj`` under ``name``; registering a different object twice is an error."""
        self._put(name, obj, metadata)

    def add_lazy(self, name: str, reference: str, **metadata: Any) -> None:
        """Register the object ``reference`` (``"module:attr"``) under ``name``, imported on first lookup."""
        if ":" not in reference:
            raise ConfigError(f"{self.kind} {name!r}: a lazy entry must look like 'module:attr', got {reference!r}")
        self._put(name, _Lazy(reference), metadata)

    def _put(self, name: str, obj: Any, metadata: dict[str, Any]) -> None:
        if not name or name != name.strip():
            raise ConfigError(f"invalid {self.kind} name {name!r}")
        existing = self._entries.get(name)
        if existing is not None and existing is not obj and _qualname(existing) != _qualname(obj):
            raise ConfigError(
                f"{self.kind} {name!r} is already registered by {_qualname(existing)}; "
                f"{_qualname(obj)} cannot take the same name"
            )
        if isinstance(existing, _Lazy) and not isinstance(obj, _Lazy):  # the module it names registers itself
            metadata = {**self._metadata.get(name, {}), **metadata}
        self._entries[name] = obj
        self._metadata[name] = dict(metadata)
        self._checked.discard(name)

    # ----- lookup
    def get(self, name: str) -> T:
        """Return the entry called ``name`` or raise :class:`UnknownNameError` listing the known ones."""
        self._ensure_loaded()
        try:
            obj = self._entries[name]
        except KeyError:
            known = sorted(self._entries)
            hint = difflib.get_close_matches(name, known, n=1)
            did_you_mean = f" Did you mean {hint[0]!r}?" if hint else ""
            raise UnknownNameError(
                f"unknown {self.kind} {name!r}.{did_you_mean} Known: {', '.join(known) or '(none)'}"
            ) from None
        if isinstance(obj, _Lazy):
            obj = load_reference(obj.reference)
            self._entries[name] = obj
        if name not in self._checked:
            self._check(name, obj, self._metadata[name].get("plugin") or _qualname(obj))
            self._checked.add(name)
        return obj

    def metadata(self, name: str) -> dict[str, Any]:
        self.get(name)
        return dict(self._metadata[name])

    def summary(self, name: str) -> str:
        """One line saying what entry ``name`` is: the first line of its docstring (its class's, for an
        instance). An entry not imported yet is read from its module's source without importing it, so
        ``simecg-bench list`` loads no torch to describe a corpus; an entry whose source cannot be read
        that way is imported."""
        self._ensure_loaded()
        obj = self._entries.get(name)
        if isinstance(obj, _Lazy):
            found = source_docstring(obj.reference)
            if found is not None:
                return _first_line(found)
        obj = self.get(name)
        return _first_line(obj.__doc__ or "")

    def names(self) -> list[str]:
        """Every registered name (lazy entries are not imported)."""
        self._ensure_loaded()
        return sorted(self._entries)

    def items(self) -> Iterator[tuple[str, T]]:
        """Every entry, loaded."""
        return iter([(name, self.get(name)) for name in self.names()])

    def __contains__(self, name: object) -> bool:
        self._ensure_loaded()
        return name in self._entries

    def __len__(self) -> int:
        self._ensure_loaded()
        return len(self._entries)

    # ----- contract
    def check(self, name: str, obj: Any, where: str | None = None) -> None:
        """Raise :class:`ConfigError` unless ``obj`` satisfies the registry's contract."""
        self._check(name, obj, where or _qualname(obj))

    def _check(self, name: str, obj: Any, where: str) -> None:
        if self.contract is None:
            return
        base = load_reference(self.contract)
        if _satisfies(obj, base):
            return
        what = self.contract_doc or self.contract
        raise ConfigError(f"{self.kind} {name!r} ({where}) does not satisfy the {self.kind} contract: {what}")

    def _ensure_loaded(self) -> None:
        if self._loaded or self._loading:
            return
        self._loading = True
        try:
            if self.group:
                self._load_entry_points()
            self._loaded = True
        finally:
            self._loading = False

    def _load_entry_points(self) -> None:
        for ep in entry_points(group=self.group):
            if ":" in ep.value:
                if ep.name not in self._entries:
                    self.add_lazy(ep.name, ep.value, plugin=ep.value)
                continue
            try:
                importlib.import_module(ep.value)  # its decorators register its entries
            except Exception as exc:  # a broken plugin must not break the suite
                log.warning("could not load %s plugin %r (%s): %s", self.kind, ep.name, ep.value, exc)

    def __repr__(self) -> str:
        return f"Registry({self.kind!r}, {len(self._entries)} entries)"


def _satisfies(obj: Any, base: Any) -> bool:
    """``obj`` is ``base``'s subclass or instance, has every member of a protocol ``base``, or
    passes ``base`` when it is a predicate function."""
    if not inspect.isclass(base):
        return bool(base(obj))
    if getattr(base, "_is_protocol", False):
        methods = {n for n, v in vars(base).items() if not n.startswith("_") and callable(v)}
        # a class registers a factory of instances: its data members are set per instance
        data = set() if inspect.isclass(obj) else set(getattr(base, "__annotations__", {}))
        return all(hasattr(obj, m) for m in methods | data)
    if inspect.isclass(obj):
        return issubclass(obj, base)
    return isinstance(obj, base)


def _qualname(obj: object) -> str:
    if isinstance(obj, _Lazy):
        return obj.reference.replace(":", ".")
    module = getattr(obj, "__module__", "?")
    name = getattr(obj, "__qualname__", type(obj).__qualname__)
    return f"{module}.{name}"


def source_docstring(reference: str) -> str | None:
    """The docstring of ``"module:attr"`` read from the module's source file, importing nothing: the
    class or function ``attr`` defined there, or the class of an instance made there
    (``DATASET = Reader(...)``); ``""`` when it has none. None when the source or the definition
    cannot be found that way (the caller imports the entry instead)."""
    module_name, _, attr = reference.partition(":")
    path = _module_source(module_name)
    if path is None or not attr or "." in attr:
        return None
    try:
        tree = ast.parse(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, SyntaxError):
        return None
    definitions = {node.name: node for node in tree.body
                   if isinstance(node, (ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))}
    if attr in definitions:
        return ast.get_docstring(definitions[attr], clean=False) or ""
    for node in tree.body:
        if (isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == attr for t in node.targets)
                and isinstance(node.value, ast.Call) and isinstance(node.value.func, ast.Name)
                and isinstance(definitions.get(node.value.func.id), ast.ClassDef)):
            return ast.get_docstring(definitions[node.value.func.id], clean=False) or ""
    return None


def _module_source(module_name: str) -> Path | None:
    """The ``.py`` file of ``module_name``, found without importing it or its parent packages."""
    parts = module_name.split(".")
    try:
        spec = importlib.util.find_spec(parts[0])  # a top-level name: found, not imported
        for i in range(1, len(parts)):
            if spec is None or not spec.submodule_search_locations:
                return None
            spec = importlib.machinery.PathFinder.find_spec(".".join(parts[: i + 1]),
                                                             list(spec.submodule_search_locations))
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.origin or not spec.origin.endswith(".py"):
        return None
    return Path(spec.origin)


def _first_line(doc: str) -> str:
    lines = doc.strip().splitlines()
    return lines[0] if lines else ""
