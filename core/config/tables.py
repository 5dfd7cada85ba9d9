"""Configs to and from tables: the TOML of an experiment and the JSON of a manifest.

:func:`to_dict` writes a (nested) config as a JSON-ready dict; :func:`from_dict` builds one back
(unknown keys are errors); :func:`check_table` checks the basic types of a TOML table's values by key
before its config is built, :func:`check_types` those of a built config; :func:`upgrade_metrics_table`
moves renamed ``[metrics]`` keys to their new names with a deprecation note.
"""
from __future__ import annotations

import typing
from dataclasses import fields, is_dataclass
from typing import Any

from core.errors import ConfigError

_OLD_METRICS_KEYS = {"nvr": "nv_blocks"}  # renamed MetricsConfig fields: old name -> new name


def upgrade_metrics_table(data: Any, where: str = "metrics") -> tuple[Any, list[str]]:
    """A ``[metrics]`` table (TOML or manifest) with renamed keys moved to their new names, and a
    deprecation message per renamed key. Both names at once is an error.

    >>> upgrade_metrics_table({"nvr": {}, "seed": 1})
    ({'seed': 1, 'nv_blocks': {}}, ['metrics.nvr is deprecated: rename it to metrics.nv_blocks'])
    """
    if not isinstance(data, dict):
        return data, []
    out, notes = dict(data), []
    for old, new in _OLD_METRICS_KEYS.items():
        if old in out:
            if new in out:
                raise ConfigError(f"{where} has both {old!r} (old name) and {new!r}: keep only {new!r}")
            out[new] = out.pop(old)
            notes.append(f"{where}.{old} is deprecated: rename it to {where}.{new}")
    return out, notes


def to_dict(cfg: Any) -> Any:
    """A JSON-ready dict of a (nested) config, tuples as lists."""
    if is_dataclass(cfg):
        return {f.name: to_dict(getattr(cfg, f.name)) for f in fields(cfg)}
    if isinstance(cfg, (list, tuple)):
        return [to_dict(v) for v in cfg]
    return cfg


def from_dict(cls: type, data: dict) -> Any:
    """Build config ``cls`` from a dict, recursing into nested configs; unknown keys are errors."""
    if not isinstance(data, dict):
        raise ConfigError(f"{cls.__name__}: expected a table of fields, got {type(data).__name__}")
    known = {f.name: f for f in fields(cls)}
    unknown = sorted(map(str, set(data) - set(known)))
    if unknown:
        raise ConfigError(f"{cls.__name__}: unknown field(s) {unknown}; valid fields: {sorted(known)}")
    hints = typing.get_type_hints(cls)
    kwargs = {}
    for name, value in data.items():
        tp = hints[name]
        inner = (typing.get_args(tp) or (None,))[0] if typing.get_origin(tp) is tuple else None
        if is_dataclass(tp) and isinstance(value, dict):  # a nested config given as a table
            value = from_dict(tp, value)
        elif isinstance(value, list):
            value = tuple(from_dict(inner, v) if is_dataclass(inner) and isinstance(v, dict) else v for v in value)
        kwargs[name] = value
    try:
        return cls(**kwargs)
    except TypeError as e:
        raise ConfigError(f"{cls.__name__}: {e}") from None


# -- type checks of a TOML table (core.config.file.load_experiment) --------------------------------
def _check_value(value: Any, tp: Any, where: str) -> None:
    """Raise ConfigError when ``value`` is not of the basic type (str/int/float/bool/None) ``tp`` names; a
    list for a ``tuple[T, ...]`` field is checked item by item."""
    if typing.get_origin(tp) in (tuple, list):
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{where} = {value!r}: expected a list")
        item = typing.get_args(tp)[0] if typing.get_args(tp) else Any
        for i, v in enumerate(value):
            if item is not Any and not is_dataclass(item):
                _check_value(v, item, f"{where}[{i}]")
        return
    allowed = tuple(a for a in (typing.get_args(tp) or (tp,)) if isinstance(a, type))
    if not allowed or any(a in (tuple, list, dict) or is_dataclass(a) for a in allowed):
        return
    ok = isinstance(value, allowed) and not (isinstance(value, bool) and bool not in allowed)
    if float in allowed and isinstance(value, int) and not isinstance(value, bool):
        ok = True
    if not ok:
        names = " or ".join("null" if a is type(None) else a.__name__ for a in allowed)
        raise ConfigError(f"{where} = {value!r}: expected {names}")


def check_table(cls: type, data: Any, where: str) -> None:
    """Check the basic types of a TOML table's values BEFORE ``cls`` is built, so a wrong type is
    reported by its key (``experiment.decoding.temperature = 'hot': expected float``) and not by whatever
    comparison in ``__post_init__`` it trips over. Unknown keys are left to :func:`from_dict`."""
    if not isinstance(data, dict):
        return
    hints = typing.get_type_hints(cls)
    for name, value in data.items():
        if name not in hints:
            continue
        default = getattr(cls, name, None)
        if is_dataclass(default):
            if not isinstance(value, dict):
                raise ConfigError(f"{where}.{name} = {value!r}: expected a table of fields "
                                  f"{sorted(f.name for f in fields(default))}")
            check_table(type(default), value, f"{where}.{name}")
        else:
            _check_value(value, hints[name], f"{where}.{name}")


def check_types(obj: Any, where: str) -> None:
    """Raise ConfigError when a field holds a value of the wrong basic type (str/int/float/bool)."""
    hints = typing.get_type_hints(type(obj))
    for f in fields(obj):
        value, tp = getattr(obj, f.name), hints[f.name]
        if typing.get_origin(tp) in (tuple, list, dict):
            for i, item in enumerate(value if isinstance(value, (tuple, list)) else ()):
                if is_dataclass(item):
                    check_types(item, f"{where}.{f.name}[{i}]")
            continue
        if is_dataclass(value):
            check_types(value, f"{where}.{f.name}")
            continue
        _check_value(value, tp, f"{where}.{f.name}")
