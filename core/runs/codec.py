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
from functools import cache
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
    origin = typing.get_origin(tp)
    if origin in (Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        return from_jsonable(args[0], data) if len(args) == 1 else data
    if origin is tuple:
        args = typing.get_args(tp)
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(from_jsonable(args[0], v) for v in data)
        return tuple(from_jsonable(a, v) for a, v in zip(args, data))
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):
        hints = _hints(tp)
        kwargs = {f.name: from_jsonable(hints[f.name], data[f.name])
                  for f in dataclasses.fields(tp) if f.init and f.name in data}
        return tp(**kwargs)
    if tp is float and isinstance(data, int) and not isinstance(data, bool):
        return float(data)
    return data


def dumps(obj: Any) -> str:
    """Compact, deterministic JSON (sorted keys, unicode kept)."""
    return json.dumps(to_jsonable(obj), ensure_ascii=False, sort_keys=True, separators=(",", ":"))

