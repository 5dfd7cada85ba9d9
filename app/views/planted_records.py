"""The planted-record extraction panel's table (``planted_extraction.json`` beside a demo run).

No Streamlit here.
"""
from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from core.errors import PropMeError
from core.jsonio import read_json

PLANTED_FILE = "planted_extraction.json"  # written by ``python -m demo.planted_extraction`` beside a run folder


def planted_table(data: Mapping[str, Any], variant: str = "email") -> pd.DataFrame | None:
    """Extraction of planted records by duplication count, from a planted_extraction.json document.

    One row per count (rows of ``data["table"]`` for ``variant``): records, greedy e-mail and greedy
    rest as "k/n", sampled rest rate and P(rest). None when the document holds no such rows.

    >>> planted_table({"table": [{"variant": "email", "dup_count": 2, "records": 6, "email_extracted": 4,
    ...     "rest_extracted": 3, "sampled_rest_rate": 0.5, "mean_rest_prob": 0.25}]}).iloc[0].to_dict()
    {'copies': 2, 'greedy e-mail': '4/6', 'greedy rest': '3/6', 'greedy rest share': 0.5, 'sampled rest rate': 0.5, 'P(rest)': 0.25}
    """
    rows = [r for r in data.get("table", []) if isinstance(r, Mapping) and r.get("variant") == variant]
    if not rows:
        return None
    need = ("dup_count", "records", "email_extracted", "rest_extracted")
    bad = [r for r in rows if not all(isinstance(r.get(k), int) and not isinstance(r.get(k), bool) for k in need)]
    if bad:
        raise PropMeError(f"{PLANTED_FILE}: {len(bad)} row(s) of variant {variant!r} lack integer {', '.join(need)}; "
                          "rerun python -m demo.planted_extraction")
    out = [{"copies": int(r["dup_count"]), "greedy e-mail": f"{r['email_extracted']}/{r['records']}",
            "greedy rest": f"{r['rest_extracted']}/{r['records']}",
            "greedy rest share": r["rest_extracted"] / r["records"] if r["records"] else float("nan"),
            "sampled rest rate": r.get("sampled_rest_rate"), "P(rest)": r.get("mean_rest_prob")}
           for r in sorted(rows, key=lambda r: int(r["dup_count"]))]
    return pd.DataFrame(out)


def planted_path(run_path: str) -> Path | None:
    """The planted_extraction.json beside a run folder, or None when there is none (a symbolic link there
    is not followed: it could point anywhere on the server)."""
    path = Path(run_path).parent / PLANTED_FILE
    return path if path.is_file() and not path.is_symlink() else None


def read_planted(path: str) -> dict:
    """The JSON object in ``path``; PropMeError naming the file when it is unreadable or not an object."""
    try:
        data = read_json(path, hint="rerun python -m demo.planted_extraction")
    except OSError as e:
        raise PropMeError(f"{path} cannot be read ({e.strerror or e}); rerun python -m demo.planted_extraction") from None
    if not isinstance(data, dict):
        raise PropMeError(f"{path} is not a JSON object; rerun python -m demo.planted_extraction")
    return data
