"""Which folders the UI may open: the default results folder and the optional data root.

On a shared server, ``PROPME_DATA_ROOT`` confines every path the app reads or writes (results
folders, corpora, uploads, model folders and hub ids that name a local folder, indexes and
tokenizers named in a manifest, outputs) to one tree; the checks themselves live in
:mod:`core.paths` (the one path policy), this module only adds the app's own folders.
Pure functions (no Streamlit), tested in tests/test_app_pages.py and tests/test_paths.py.
"""
from __future__ import annotations

import os
from pathlib import Path

from core import paths as _core
from core.paths import DATA_ROOT_ENV, data_root, model_source  # noqa: F401 (the app's entry points)

RESULTS_ENV = "PROPME_RESULTS_DIR"  # results folder shown when the app opens (default: the demo run)
BUILD = Path(__file__).resolve().parents[1] / "build"  # gitignored: the app's own files without a data root
WORK_SUBDIR = ".propme-app"  # with a data root: the app's own files (uploads, indexes) live here, inside it


def confine(path, root: Path | None, **kw) -> Path:
    """:func:`core.paths.confine` for what a user types into the app: with a data root, a relative path is
    read inside the root (``escape/res`` is ``ROOT/escape/res``), never against the server's working folder."""
    return _core.confine(path, root, anchor=True, **kw)


def work_dir(root: Path | None, *sub: str) -> Path:
    """Where the app keeps uploads and the indexes it builds (``sub``: a folder inside it): inside the data
    root when one is set, every folder of it real (a symbolic link is refused, :func:`core.paths.app_folder`)
    and made if missing. Without a data root: the repository's ``build/`` folder."""
    if root is None:
        return BUILD.joinpath(*sub)
    return _core.app_folder(root, WORK_SUBDIR, *sub)


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
