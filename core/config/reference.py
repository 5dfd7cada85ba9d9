"""The experiment file's reference: a complete, commented TOML generated from the config dataclasses.

``python -m core config --example`` prints it. Every key of every table appears with its default and
the comment written beside the field in :mod:`core.config` (allowed values, meaning), so the reference
cannot drift from the code: a new field shows up here by itself. Fields without a default (the
required ones) get a placeholder; fields whose default is unset (None) are shown commented out.
"""
from __future__ import annotations

import ast
import inspect
import json
import typing
from dataclasses import MISSING, fields, is_dataclass
from typing import Any

from core import config

HEADER = """\
# PropMe experiment file: every key, its default and its allowed values.
# Generated from core/config/schema.py by `python -m core config --example`; run with `python -m core run FILE`.
# Relative paths (index folders, prompt files, output and cache folders, a local model) are read
# from this file's folder. Keys left out take the default shown here.
"""

# Values for the required fields (no default) of the example, so that the printed file loads as is.
PLACEHOLDERS = {
    ("ExperimentConfig", "name"): "my-run",
    ("ExperimentConfig", "index_dirs"): ("index",),
    ("ModelConfig", "name_or_path"): "path/to/model-folder-or-file.gguf-or-hub-id",
    ("SettingConfig", "name"): "prefix",
}


def field_comments(cls: type) -> dict[str, str]:
    """The ``# ...`` comment written after each field of dataclass ``cls`` in its source."""
    src = inspect.getsource(cls)
    lines = src.splitlines()
    out: dict[str, str] = {}
    for node in ast.parse(src).body[0].body:
        if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            line = lines[node.end_lineno - 1]
            if "  # " in line:
                out[node.target.id] = line.split("  # ", 1)[1].strip()
    return out


def toml_value(v: Any) -> str:
    """A TOML literal of a config value (str, bool, int, float, tuple of those, nested AdaptiveParam)."""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    if isinstance(v, str):
        return json.dumps(v, ensure_ascii=False)
    if isinstance(v, (tuple, list)):
        return "[" + ", ".join(toml_value(x) for x in v) + "]"
    if is_dataclass(v):
        return "{ " + ", ".join(f"{f.name} = {toml_value(getattr(v, f.name))}" for f in fields(v)) + " }"
    raise TypeError(f"no TOML literal for {v!r}")


def _type_name(tp: Any) -> str:
    args = [a for a in typing.get_args(tp) if a is not type(None)]
    if typing.get_origin(tp) is tuple:
        return f"list of {_type_name(args[0])}" if args else "list"
    if args and typing.get_origin(tp) is not tuple:
        return " or ".join(_type_name(a) for a in args)
    return getattr(tp, "__name__", str(tp))


def _default(cls: type, f) -> Any:
    if f.default is not MISSING:
        return f.default
    if f.default_factory is not MISSING:
        return f.default_factory()
    return PLACEHOLDERS.get((cls.__name__, f.name), MISSING)


def _table(cls: type, header: str | None, skip: tuple[str, ...] = ()) -> list[str]:
    hints = typing.get_type_hints(cls)
    comments = field_comments(cls)
    out = [f"\n{header}"] if header else []
    doc = (cls.__doc__ or "").strip().splitlines()
    if header and doc:
        out.insert(1, f"# {doc[0]}")
    nested = []
    for f in fields(cls):
        if f.name in skip:
            continue
        value = _default(cls, f)
        if is_dataclass(hints[f.name]) and hints[f.name] is not config.AdaptiveParam:
            nested.append((f.name, hints[f.name]))
            continue
        required = f.default is MISSING and f.default_factory is MISSING
        note = "; ".join(x for x in (comments.get(f.name, ""), f"type: {_type_name(hints[f.name])}",
                                     "REQUIRED" if required else "") if x)
        if value is None:
            out.append(f"# {f.name} = ...  # default: unset. {note}")
        else:
            out.append(f"{f.name} = {toml_value(value)}  # {note}")
    for name, sub in nested:
        out += _table(sub, f"{header[:-1]}.{name}]" if header else f"[{name}]")
    return out


def example_toml() -> str:
    """A complete experiment file: the top-level keys, then one table per config, then one setting."""
    top = config.ExperimentConfig
    hints = typing.get_type_hints(top)
    sections = {f.name: hints[f.name] for f in fields(top) if is_dataclass(hints[f.name])}
    lines = HEADER.splitlines() + _table(top, None, skip=("settings", *sections))
    for name, cls in sections.items():
        lines += _table(cls, f"[{name}]")
    lines += ["", "# One [[settings]] table per setting (prompting regime); names must be unique.",
              "# The capability setting is `prefix`; natural settings read a JSONL prompt set (prompts_path)."]
    lines += _table(config.SettingConfig, "[[settings]]")
    return "\n".join(lines) + "\n"
