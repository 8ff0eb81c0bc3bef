"""Typed configs: ``--set a.b=value`` overrides, flattening for MLflow, and a stable hash.

Configs are frozen dataclasses whose defaults are the paper's. The hash of a resolved config
(sorted JSON) is part of every cell's fingerprint, so two runs share a fingerprint exactly
when they would compute the same thing.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import types
import typing
from collections.abc import Iterable, Mapping
from typing import Any, TypeVar

from simecg.errors import ConfigError

C = TypeVar("C")


def parse_set_args(items: Iterable[str]) -> dict[str, str]:
    """Turn ``["a.b=1", "c=x"]`` into ``{"a.b": "1", "c": "x"}``, rejecting malformed items."""
    out: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--set expects key=value, got {item!r}")
        out[key.strip()] = value.strip()
    return out


def apply_overrides(config: C, overrides: Mapping[str, Any]) -> C:
    """Return a copy of a (nested) dataclass with dotted-key overrides applied and type-checked.

    String values are converted to the field's declared type, so CLI text and TOML values
    both work. Unknown keys raise :class:`ConfigError` listing the valid ones.
    """
    for dotted, value in overrides.items():
        config = _set_path(config, dotted.split("."), value, dotted)
    return config


def _set_path(obj: Any, path: list[str], value: Any, dotted: str) -> Any:
    if isinstance(obj, Mapping):  # free-form option tables (e.g. corpus options): keep text typed by TOML/CLI
        head, rest = path[0], path[1:]
        new = _set_path(obj.get(head, {}), rest, value, dotted) if rest else _parse_scalar(value)
        return {**obj, head: new}
    if not dataclasses.is_dataclass(obj):
        raise ConfigError(f"cannot set {dotted!r}: {type(obj).__name__} has no fields")
    fields = {f.name: f for f in dataclasses.fields(obj)}
    head = path[0]
    if head not in fields:
        raise ConfigError(
            f"unknown config key {dotted!r} ({head!r} not in {type(obj).__name__}; "
            f"valid: {', '.join(sorted(fields))})"
        )
    current = getattr(obj, head)
    if len(path) > 1:
        new = _set_path(current, path[1:], value, dotted)
    else:
        hints = typing.get_type_hints(type(obj))
        new = coerce(value, hints.get(head, type(current)), dotted)
    return dataclasses.replace(obj, **{head: new})


def _parse_scalar(value: Any) -> Any:
    """Best-effort typing of free-form CLI text: JSON literals (numbers, bools, lists) or the text."""
    if not isinstance(value, str):
        return value
    try:
        return json.loads(value)
    except json.JSONDecodeError:
        return value


def coerce(value: Any, annotation: Any, key: str = "value") -> Any:
    """Convert ``value`` (often CLI text) to ``annotation``; raise ConfigError when impossible."""
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin in (typing.Union, types.UnionType):
        is_none = value is None or (isinstance(value, str) and value.lower() in ("none", "null"))
        if is_none and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return coerce(value, arg, key)
            except ConfigError as exc:
                errors.append(str(exc))
        raise ConfigError(f"{key}: cannot use {value!r} ({'; '.join(errors)})")
    if origin in (tuple, list):
        if isinstance(value, str):
            text = value.strip()
            if text.startswith("["):
                try:
                    value = json.loads(text)
                except json.JSONDecodeError as exc:
                    raise ConfigError(f"{key}: {value!r} is not a JSON list ({exc})") from None
            else:
                value = [v for v in (p.strip() for p in text.split(",")) if v]
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{key}: expected a list, got {value!r}")
        item_type = args[0] if args else Any
        items = [coerce(v, item_type, key) for v in value]
        return tuple(items) if origin is tuple else items
    if annotation is bool:
        if isinstance(value, bool):
            return value
        text = str(value).strip().lower()
        if text in ("1", "true", "yes", "on"):
            return True
        if text in ("0", "false", "no", "off"):
            return False
        raise ConfigError(f"{key}: expected true/false, got {value!r}")
    if annotation is int:
        if isinstance(value, bool):
            raise ConfigError(f"{key}: expected an integer, got {value!r}")
        try:
            as_float = float(value)
        except (TypeError, ValueError):
            raise ConfigError(f"{key}: expected an integer, got {value!r}") from None
        if not as_float.is_integer():
            raise ConfigError(f"{key}: expected an integer, got {value!r}")
        return int(as_float)
    if annotation is float:
        try:
            return float(value)
        except (TypeError, ValueError):
            raise ConfigError(f"{key}: expected a number, got {value!r}") from None
    if annotation is str:
        return str(value)
    if dataclasses.is_dataclass(annotation) and isinstance(value, Mapping):
        return from_dict(annotation, value, key)
    return value


def from_dict(cls: type[C], data: Mapping[str, Any], where: str = "config") -> C:
    """Build dataclass ``cls`` from a (nested) mapping such as a parsed TOML table."""
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    unknown = sorted(set(data) - names)
    if unknown:
        raise ConfigError(
            f"{where}: unknown key(s) {', '.join(unknown)} for {cls.__name__}; valid: {', '.join(sorted(names))}"
        )
    kwargs = {k: coerce(v, hints[k], f"{where}.{k}") for k, v in data.items()}
    return cls(**kwargs)


def to_dict(config: Any) -> dict[str, Any]:
    """Plain nested dict of a dataclass config (tuples become lists, JSON-ready)."""
    return json.loads(json.dumps(dataclasses.asdict(config), default=_json_default))


def flatten(data: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"a": {"b": 1}}`` -> ``{"a.b": 1}``; MLflow params are flat."""
    out: dict[str, Any] = {}
    for key, value in data.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            out.update(flatten(value, f"{name}."))
        else:
            out[name] = value
    return out


def stable_hash(data: Any, length: int = 16) -> str:
    """Hex digest of the sorted-key JSON of ``data`` (dataclasses allowed)."""
    if dataclasses.is_dataclass(data) and not isinstance(data, type):
        data = dataclasses.asdict(data)
    text = json.dumps(data, sort_keys=True, separators=(",", ":"), default=_json_default)
    return hashlib.sha256(text.encode()).hexdigest()[:length]


def _json_default(obj: Any) -> Any:
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return dataclasses.asdict(obj)
    if isinstance(obj, (set, frozenset)):
        return sorted(obj)
    if hasattr(obj, "tolist"):
        return obj.tolist()
    return str(obj)
