"""Validation where a config is built: the helpers every ``__post_init__`` of :mod:`core.config` calls.

:func:`check_fields` checks every field against its annotated type (bool is not an int, an int is a
float, tuples item by item), finite numbers and strings without control characters or lone
surrogates; the others state one rule each. All raise a one-line :class:`ConfigError` naming the field.
"""
from __future__ import annotations

import functools
import math
import re
import typing
from dataclasses import fields
from typing import Any

from core.config.limits import check_upper
from core.errors import ConfigError

# C0/C1 control characters (tab and newline too: no config string needs them) and lone surrogates
_BAD_CHARS = re.compile("[\u0000-\u001f\u007f-\u009f\ud800-\udfff]")


def _type_name(tp: Any) -> str:
    args = typing.get_args(tp)
    if typing.get_origin(tp) is tuple:
        return f"a list of {_type_name(args[0])}s"
    if args:
        return " or ".join(_type_name(a) for a in args)
    return {type(None): "null", bool: "bool", int: "integer", float: "number", str: "string"}.get(
        tp, getattr(tp, "__name__", str(tp)))


def _is_a(value: Any, tp: Any) -> bool:
    """``value`` has type ``tp``: bool is not an int, an int is a float, tuples are checked item by item."""
    return _checker(tp)(value)


@functools.cache
def _checker(tp: Any):
    """A predicate for type ``tp`` (built once per type: configs are built often)."""
    args, origin = typing.get_args(tp), typing.get_origin(tp)
    if origin is tuple:
        item = _checker(args[0])
        return lambda v: isinstance(v, tuple) and all(item(x) for x in v)
    if args:  # a union
        parts = tuple(_checker(a) for a in args)
        return lambda v: any(p(v) for p in parts)
    if tp is type(None):
        return lambda v: v is None
    if tp is bool:
        return lambda v: isinstance(v, bool)
    if tp is int:
        return lambda v: isinstance(v, int) and not isinstance(v, bool)
    if tp is float:
        return lambda v: isinstance(v, (int, float)) and not isinstance(v, bool)
    return lambda v: isinstance(v, tp)


@functools.cache
def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def check_fields(obj: Any) -> None:
    """Every field of dataclass ``obj`` holds a value of its annotated type; numbers are finite and
    strings hold no control characters or lone surrogates. Raises a one-line ConfigError naming it."""
    cls = type(obj)
    hints = _hints(cls)
    for f in fields(obj):
        value, tp = getattr(obj, f.name), hints[f.name]
        where = f"{cls.__name__}.{f.name}"
        if not _is_a(value, tp):
            raise ConfigError(f"{where} = {short(value)}: expected {_type_name(tp)}")
        for v in value if isinstance(value, tuple) else (value,):
            if isinstance(v, float) and not math.isfinite(v):
                raise ConfigError(f"{where} = {v}: expected a finite number")
            if isinstance(v, str) and _BAD_CHARS.search(v):
                raise ConfigError(f"{where} = {short(v)}: contains a control character or invalid unicode")
    check_upper(obj)  # every number has an upper bound, with its reason (core/config/limits.py)


def short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def require(ok: bool, message: str) -> None:
    if not ok:
        raise ConfigError(message)


def at_least(obj: Any, minimum: int, *names: str) -> None:
    for name in names:
        value = getattr(obj, name)
        require(value >= minimum, f"{type(obj).__name__}.{name} must be at least {minimum}, got {value}")


def one_of(obj: Any, name: str, allowed: tuple[str, ...]) -> None:
    value = getattr(obj, name)
    require(value in allowed, f"{type(obj).__name__}.{name} must be one of {allowed}, got {value!r}")


def non_empty(obj: Any, *names: str) -> None:
    for name in names:
        value = getattr(obj, name)
        require(value is None or value.strip() != "", f"{type(obj).__name__}.{name} must not be empty")
