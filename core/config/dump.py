"""An ``ExperimentConfig`` written back as an experiment TOML that ``load_experiment`` reads to the same config.

A results folder written from the app holds it as ``config.toml``, as one written by ``python -m core run``
holds the file it ran: every results folder can be re-run with ``python -m core run FOLDER/config.toml``.
Unset (None) values are left out (they are the defaults); paths are written as they are (the app's are
absolute, so the file runs from anywhere).
"""
from __future__ import annotations

import typing
from dataclasses import fields, is_dataclass
from typing import Any

from core.config.reference import toml_value
from core.config.schema import AdaptiveParam, ExperimentConfig

HEADER = "# Written by PropMe Explorer for this run: `python -m core run config.toml` runs it again.\n"


def _table(obj: Any, header: str) -> list[str]:
    lines, nested = [header], []
    hints = typing.get_type_hints(type(obj))
    for f in fields(obj):
        value = getattr(obj, f.name)
        if is_dataclass(hints[f.name]) and hints[f.name] is not AdaptiveParam:
            nested.append((f.name, value))
        elif value is not None:
            lines.append(f"{f.name} = {toml_value(value)}")
    for name, sub in nested:
        lines += [""] + _table(sub, f"{header[:-1]}.{name}]")
    return lines


def experiment_toml(cfg: ExperimentConfig) -> str:
    """The TOML text of ``cfg``.

    >>> from core.config import ModelConfig, SettingConfig
    >>> text = experiment_toml(ExperimentConfig("r", ModelConfig("/m"), ("/ix",), (SettingConfig("prefix"),)))
    >>> text.splitlines()[1:4]
    ['name = "r"', 'index_dirs = ["/ix"]', 'output_dir = "results"']
    """
    hints = typing.get_type_hints(ExperimentConfig)
    sections = [f.name for f in fields(ExperimentConfig) if is_dataclass(hints[f.name])]
    lines = [HEADER.rstrip("\n")]
    for f in fields(ExperimentConfig):
        value = getattr(cfg, f.name)
        if f.name not in sections and f.name != "settings" and value is not None:
            lines.append(f"{f.name} = {toml_value(value)}")
    for name in sections:
        lines += [""] + _table(getattr(cfg, name), f"[{name}]")
    for s in cfg.settings:
        lines += [""] + _table(s, "[[settings]]")
    return "\n".join(lines) + "\n"
