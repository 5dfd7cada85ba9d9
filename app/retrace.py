"""Which corpus index a loaded run uses, and re-tracing its completions with new trace parameters.

The index and tokenizer are opened through the caches in app/cached.py; the demo index is made
sure of by core (``core.runs.demo.ensure_demo_index`` -> ``core.index.ensure.ensure_index``). Paths a
manifest names are confined to the data root like typed ones (:mod:`core.paths`).
"""
from __future__ import annotations

import dataclasses
from pathlib import Path

from app import cached
from core.errors import IndexNotBuilt, PropMeError
from core.paths import confine, data_root, model_source
from core.runs.demo import demo_model_dir, demo_results_dir
from core.tracing.trace import trace_many


def run_index(run):
    """(index, tokenizer) of a run: its manifest's index folders, or the demo index for the demo run.

    The demo run uses its recorded index folder when that opens with the recorded fingerprint (a
    millisecond memory-map); only otherwise is the demo index checked against the shipped corpus and
    built (seconds). Raises IndexNotBuilt naming the folders when the index is not on this machine.
    """
    index_meta = run.manifest.index
    dirs = index_meta.dirs if index_meta else ()
    is_demo = bool(run.path and Path(run.path).resolve() == demo_results_dir().resolve())
    root = None if is_demo else data_root()  # a manifest may name any path: confine it like a typed one
    dirs = tuple(str(confine(d, root, what="index folder named in the run's manifest")) for d in dirs)
    if dirs and all(Path(d).is_dir() for d in dirs):
        try:
            index = cached.open_index(dirs)
        except PropMeError:
            if not is_demo:
                raise
            index = None  # a half-built demo index: rebuild it below
        tok_name = (str(demo_model_dir()) if is_demo
                    else (index_meta.tokenizer if index_meta else None) or (index.tokenizer_name if index else None))
        if index is not None and tok_name and (not is_demo or index.fingerprint == index_meta.fingerprint):
            return index, cached.tokenizer(model_source(str(tok_name), root,
                                                        what="tokenizer named in the run's manifest"))
    if is_demo:
        return cached.demo_index(), cached.tokenizer(str(demo_model_dir()))
    where = ", ".join(dirs) or "(none recorded)"
    raise IndexNotBuilt(f"This run's corpus index is not on this machine (index folders: {where}). "
                        "Copy or build it there (python -m core index build ...) to search the corpus or re-trace.")


def retrace(run, tcfg, progress):
    """Re-trace every completion of ``run`` with ``tcfg`` (not cached: the page keeps it in session state).

    Returns a RunResults with the new traces and no stored scores (they belong to the old traces).
    """
    index, tok = run_index(run)
    traces = trace_many(index, tok, [(g.key, g.completion) for g in run.generations], tcfg, progress=progress)
    return dataclasses.replace(run, traces=tuple(traces), summary={}, pm={})


def index_if_here(run):
    """The run's corpus index, or None when it is not on this machine (pages that work without it)."""
    try:
        return run_index(run)[0]
    except IndexNotBuilt:
        return None
