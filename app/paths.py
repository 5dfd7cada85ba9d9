"""Which folders the UI may open: the default results folder and the optional data root.

On a shared server, ``PROPME_DATA_ROOT`` confines every path a user types (results folders,
corpora, model folders, indexes) to one tree; paths outside it are refused with a clear message.
Pure functions (no Streamlit), tested in tests/test_app_pages.py.
"""
from __future__ import annotations

import os
from pathlib import Path

from core.errors import ConfigError

RESULTS_ENV = "PROPME_RESULTS_DIR"  # results folder shown when the app opens (default: the demo run)
DATA_ROOT_ENV = "PROPME_DATA_ROOT"  # optional: only paths under this folder may be opened


def data_root(environ: dict | None = None) -> Path | None:
    """The configured data root, resolved, or None when paths are not confined."""
    value = (os.environ if environ is None else environ).get(DATA_ROOT_ENV, "").strip()
    return Path(value).expanduser().resolve() if value else None


def confine(path: str, root: Path | None) -> Path:
    """``path`` resolved (symlinks and ``..`` followed); ConfigError when it lies outside ``root``.

    >>> confine("/srv/data/run1", Path("/srv/data")).as_posix()
    '/srv/data/run1'
    """
    if not path or not path.strip():
        raise ConfigError("no path given: type the folder or file to open")
    resolved = Path(path.strip()).expanduser().resolve()
    if root is not None and not resolved.is_relative_to(root):
        raise ConfigError(f"{resolved} is outside the data root {root} (set by {DATA_ROOT_ENV}): "
                          "choose a path inside it")
    return resolved


def default_results_dir(environ: dict | None = None) -> str:
    """``$PROPME_RESULTS_DIR``, else the shipped demo results folder, else '' (no core.runs.demo yet)."""
    value = (os.environ if environ is None else environ).get(RESULTS_ENV, "").strip()
    if value:
        return value
    try:
        from core.runs.demo import demo_results_dir
    except ModuleNotFoundError as e:
        if e.name != "core.runs.demo":
            raise
        return ""
    return str(demo_results_dir())
