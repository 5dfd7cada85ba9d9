"""Reading a run's manifest for the pages: its label, index folders, scoring config and a flat table.

No Streamlit here.
"""
from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import pandas as pd

from core.runs.manifest import Manifest, to_json


def manifest_rows(manifest: Manifest) -> pd.DataFrame:
    """The manifest flattened to (field, value) rows for display as a table."""
    rows = []

    def walk(prefix: str, value: Any) -> None:
        if isinstance(value, Mapping):
            for k, v in value.items():
                walk(f"{prefix}.{k}" if prefix else str(k), v)
        else:
            rows.append({"field": prefix, "value": value if isinstance(value, str) else json.dumps(value)})

    walk("", to_json(manifest))
    return pd.DataFrame(rows)






def run_label(manifest: Manifest, fallback: str = "run") -> str:
    """A short name for a run: its run name, else the model identity."""
    label = manifest.label
    return label if label != "run" else fallback
