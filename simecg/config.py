"""Typed configs: ``--set a.b=value`` overrides, flattening for MLflow, checked values, and a stable hash.

Configs are frozen dataclasses whose defaults are the paper's. The hash of a resolved config
(sorted JSON) is part of every cell's fingerprint, so two runs share a fingerprint exactly
when they would compute the same thing.

The values a setting may take are declared once per field, as :class:`Limits` in a table beside
its dataclass, and checked by :func:`check_limits` in the dataclass's ``__post_init__``: a suite
file, a ``--set`` override and Python code are all checked the same way, when the config is
built, so a bad value fails in one line naming its key before anything runs (not cell by cell,
hours later).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import numbers
import types
import typing
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
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
            number = float(value)
        except (TypeError, ValueError):
            raise ConfigError(f"{key}: expected a number, got {value!r}") from None
        if math.isnan(number):  # no setting means anything by NaN; inf is left to the field's Limits
            raise ConfigError(f"{key}: expected a number, got {value!r}")
        return number
    if annotation is str:
        return str(value)
    if dataclasses.is_dataclass(annotation) and isinstance(value, Mapping):
        return from_dict(annotation, value, key)
    if dataclasses.is_dataclass(annotation) and not isinstance(value, annotation):
        raise ConfigError(f"{key}: expected a table of settings, got {value!r}")
    if origin in (dict, Mapping) and not isinstance(value, Mapping):
        raise ConfigError(f"{key}: expected a table (key = value pairs), got {value!r}")
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


SEED_BOUND = 2**32  # seeds feed numpy's and Optuna's generators, which take 0 <= seed < 2**32


@dataclass(frozen=True)
class Limits:
    """The values one config setting may take, declared once per field and checked by :func:`check_limits`.

    Numeric bounds (``gt``, ``ge``, ``lt``, ``le``) or a set of ``choices``; for a sequence
    (``grid.seeds``, ``pretrain.betas``) they apply to each item, and ``non_empty`` refuses an
    empty one. A number must be finite unless ``allow_inf``.
    """

    gt: float | None = None
    ge: float | None = None
    lt: float | None = None
    le: float | None = None
    choices: tuple[Any, ...] | None = None
    non_empty: bool = False
    allow_inf: bool = False

    @property
    def numeric(self) -> bool:
        return any(bound is not None for bound in (self.gt, self.ge, self.lt, self.le))

    def describe(self) -> str:
        """The allowed values in words: ``> 0``, ``>= 0 and < 1``, ``one of constant, cosine``."""
        if self.choices is not None:
            return "one of " + ", ".join(str(c) for c in self.choices)
        parts = [f"{op} {_show(bound)}" for op, bound in
                 ((">", self.gt), (">=", self.ge), ("<", self.lt), ("<=", self.le)) if bound is not None]
        return " and ".join(parts) or "a finite number"

    def problem(self, value: Any) -> str | None:
        """What is wrong with one value (``must be > 0``), or None when it is allowed."""
        if self.choices is not None:
            return None if value in self.choices else f"must be {self.describe()}"
        is_number = isinstance(value, numbers.Real) and not isinstance(value, bool)
        if not is_number:
            return "must be a number" if self.numeric else None
        if math.isnan(value) or (math.isinf(value) and not self.allow_inf):
            return "must be a finite number"
        if ((self.gt is not None and not value > self.gt) or (self.ge is not None and not value >= self.ge)
                or (self.lt is not None and not value < self.lt) or (self.le is not None and not value <= self.le)):
            return f"must be {self.describe()}"
        return None


POSITIVE = Limits(gt=0)
AT_LEAST_ONE = Limits(ge=1)
NON_NEGATIVE = Limits(ge=0)
FRACTION = Limits(ge=0, lt=1)  # a share that must leave something: [0, 1)
SEED = Limits(ge=0, lt=SEED_BOUND)


def check_limits(config: Any, prefix: str, limits: Mapping[str, Limits]) -> None:
    """Check every field of dataclass ``config`` against ``limits`` (field name -> :class:`Limits`).

    Fields without an entry are still checked to be finite when they hold numbers; ``None`` means
    "unset" and passes. Raises :class:`ConfigError` naming ``<prefix>.<field>``, the allowed values
    and the value found, e.g. ``finetune.lr must be > 0, got -1``.
    """
    check_values({f.name: getattr(config, f.name) for f in dataclasses.fields(config)}, prefix, limits)


def check_values(values: Mapping[str, Any], prefix: str, limits: Mapping[str, Limits]) -> None:
    """:func:`check_limits` on a mapping of setting name -> value (e.g. before building a dataclass)."""
    unknown = sorted(set(limits) - set(values))
    if unknown:  # a typo in a limits table would silently check nothing
        raise TypeError(f"limits name no setting of {prefix or 'the config'}: {', '.join(unknown)}")
    for name, value in values.items():
        check_value(f"{prefix}.{name}" if prefix else name, value, limits.get(name, Limits()))


def check_value(key: str, value: Any, limits: Limits) -> None:
    """Check one setting (each item of a list or tuple); raise :class:`ConfigError` naming ``key``."""
    if value is None or isinstance(value, Mapping):
        return
    if isinstance(value, (list, tuple)):
        if limits.non_empty and not value:
            raise ConfigError(f"{key} must not be empty")
        for item in value:
            if (problem := limits.problem(item)) is not None:
                raise ConfigError(f"{key} values {problem}, got {_show(item)}")
        return
    if (problem := limits.problem(value)) is not None:
        raise ConfigError(f"{key} {problem}, got {_show(value)}")


def _show(value: Any) -> str:
    """A value as the user would type it: ``-1`` for -1.0, quotes around text."""
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e16:
        return str(int(value))
    if isinstance(value, str):
        return repr(value)
    return str(value)


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


def read_toml(path: Path | str, what: str) -> dict[str, Any]:
    """The TOML file ``path`` (``what`` it is, for messages: "suite file") as a dict.

    A UTF-8 byte-order mark, which some editors write, is skipped (tomllib alone calls it an
    "Invalid statement"); any other problem is one :class:`ConfigError` line naming the file.
    """
    import tomllib

    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the {what} ({exc.strerror or exc})") from None
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: the {what} is not UTF-8 text (byte {exc.start}); save it as UTF-8") from None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML ({exc})") from None
