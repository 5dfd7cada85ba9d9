"""Reading a run's manifest for the pages: its label, index folders, scoring config and a flat table.

No Streamlit here.
"""
from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import pandas as pd

from core.config import MetricsConfig, from_dict
from core.errors import ConfigError


def manifest_rows(manifest: Mapping[str, Any]) -> pd.DataFrame:
    """The manifest flattened to (field, value) rows for display as a table."""
    rows = []

    def walk(prefix: str, value: Any) -> None:
        if isinstance(value, Mapping):
            for k, v in value.items():
                walk(f"{prefix}.{k}" if prefix else str(k), v)
        else:
            rows.append({"field": prefix, "value": value if isinstance(value, str) else json.dumps(value)})

    walk("", manifest)
    return pd.DataFrame(rows)


def index_dirs(manifest: Mapping[str, Any]) -> list[str]:
    """Index folders a run used, from its manifest (``index.dirs`` or ``index_dirs``)."""
    index = manifest.get("index")
    dirs = index.get("dirs") if isinstance(index, Mapping) else None
    dirs = dirs or manifest.get("index_dirs") or []
    return [dirs] if isinstance(dirs, str) else list(dirs)


def metrics_config_of(manifest: Mapping[str, Any]) -> MetricsConfig:
    """The MetricsConfig the run was scored with (defaults when the manifest has none)."""
    data = manifest.get("metrics")
    if not isinstance(data, Mapping):
        return MetricsConfig()
    for drop in ((), ("nvr",)):  # a malformed nvr table falls back to the default thresholds
        try:
            return from_dict(MetricsConfig, {k: v for k, v in data.items() if k not in drop})
        except (ConfigError, TypeError):
            continue
    return MetricsConfig()


def run_label(manifest: Mapping[str, Any], fallback: str = "run") -> str:
    """A short name for a run: its run name, else the model identity."""
    model = manifest.get("model")
    ident = model.get("identity") or model.get("name_or_path") if isinstance(model, Mapping) else None
    return str(manifest.get("run_name") or manifest.get("name") or ident or fallback)
