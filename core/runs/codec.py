"""JSON encoding of the record dataclasses (Generation, TraceResult, ...) that round-trips exactly.

Used by the results folder (``spans_json``) and the persistent cache. Decoding is driven by the
dataclass type hints, so fields other areas add later (with defaults) are carried automatically,
and data written before such a field existed decodes with the field's default.
"""
from __future__ import annotations

import dataclasses
import json
import types
import typing
from collections.abc import Callable
from functools import cache
from itertools import islice
from typing import Any, Union


def to_jsonable(obj: Any) -> Any:
    """Dataclasses to dicts (by field), tuples to lists; everything else as is.

    >>> from core.records import GenKey
    >>> to_jsonable(GenKey("prefix", "p1", 2))
    {'setting': 'prefix', 'prompt_id': 'p1', 'sample_index': 2}
    """
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: to_jsonable(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, (list, tuple)):
        return [to_jsonable(v) for v in obj]
    if isinstance(obj, dict):
        return {k: to_jsonable(v) for k, v in obj.items()}
    return obj


@cache
def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def from_jsonable(tp: Any, data: Any) -> Any:
    """Rebuild a value of type ``tp`` from :func:`to_jsonable` output.

    >>> from core.records import GenKey
    >>> from_jsonable(GenKey, {"setting": "generic", "prompt_id": "g1", "sample_index": 0})
    GenKey(setting='generic', prompt_id='g1', sample_index=0)
    """
    if data is None:
        return None
    try:
        decode = _decoder(tp)
    except TypeError:  # an unhashable type expression: decode without the per-type cache
        decode = _build_decoder(tp)
    return decode(data)


def _identity(data: Any) -> Any:
    return data


@cache
def _decoder(tp: Any) -> Callable[[Any], Any]:
    """The decoder of ``tp`` (non-None data), built once per type: the type hints are read once, not per value."""
    return _build_decoder(tp)


def _build_decoder(tp: Any) -> Callable[[Any], Any]:
    """Decoders of the parts are built here too (a dataclass's fields on its first value: recursive types)."""
    origin = typing.get_origin(tp)
    if origin in (Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        return _part(args[0]) if len(args) == 1 else _identity
    if origin is tuple:
        args = typing.get_args(tp)
        if len(args) == 2 and args[1] is Ellipsis:
            item = _part(args[0])
            return tuple if item is _identity else lambda data: tuple(map(item, data))
        parts = [_part(a) for a in args]
        if all(p is _identity for p in parts):
            return lambda data: tuple(islice(data, len(parts)))
        return lambda data: tuple(p(v) for p, v in zip(parts, data))
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):
        fields: list[tuple[str, Callable[[Any], Any]]] = []  # (name, decoder) of the init fields, on first use

        def decode(data: Any) -> Any:
            if not fields:
                hints = _hints(tp)
                fields.extend((f.name, _part(hints[f.name])) for f in dataclasses.fields(tp) if f.init)
            return tp(**{name: part(data[name]) for name, part in fields if name in data})
        return decode
    if tp is float:
        return _float
    return _identity


def _part(tp: Any) -> Callable[[Any], Any]:
    """The decoder of a part: None stays None (as in :func:`from_jsonable`)."""
    try:
        decode = _decoder(tp)
    except TypeError:
        decode = _build_decoder(tp)
    if decode is _identity or decode is _float:  # both keep None as None
        return decode
    return lambda data: None if data is None else decode(data)


def _float(data: Any) -> Any:
    return float(data) if isinstance(data, int) and not isinstance(data, bool) else data


def dumps(obj: Any) -> str:
    """Compact, deterministic JSON (sorted keys, unicode kept)."""
    return json.dumps(to_jsonable(obj), ensure_ascii=False, sort_keys=True, separators=(",", ":"))

