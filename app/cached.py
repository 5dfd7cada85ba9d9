"""Every Streamlit cache of the app, each a thin wrapper around a core function.

Rules (STYLE.md 4.3): wrappers read only their arguments; heavy objects are passed with a leading
underscore AND an identity argument beside them (``run_id`` = path + manifest stamp,
``index.fingerprint``). Loaded runs and re-scored traces are immutable tuples of frozen dataclasses,
so they live in ``st.cache_resource`` (shared, never copied); small per-query values (metric dicts,
intervals) in ``st.cache_data`` (a copy per caller).

A core module that has not landed yet raises :class:`Unavailable`; pages show it with ``st.info``.
"""
from __future__ import annotations

import importlib
import os
from pathlib import Path
from types import ModuleType
from typing import Any, Sequence

import streamlit as st

from core.config import MetricsConfig, NVRConfig
from core.records import TraceResult


class Unavailable(Exception):
    """A feature's core module is not installed in this checkout (shown with st.info, not an error)."""


def need(module: str) -> ModuleType:
    """Import ``core.<module>`` or raise Unavailable naming what is missing."""
    try:
        return importlib.import_module(f"core.{module}")
    except ModuleNotFoundError as e:
        if e.name != f"core.{module}":
            raise
        raise Unavailable(f"This needs core/{module}.py, which is not in this checkout yet.") from None


def run_id(path: str) -> str:
    """Identity of a results folder on disk: resolved path + manifest mtime and size."""
    manifest = Path(path) / "manifest.json"
    try:
        st_ = manifest.stat()
    except OSError:
        return f"{Path(path).resolve()}@missing"
    return f"{Path(path).resolve()}@{st_.st_mtime_ns}-{st_.st_size}"


@st.cache_resource(max_entries=16, show_spinner="Loading results folder ...")
def load_run(path: str, ident: str):
    """``core.results.load_results(path)``; ``ident`` (see :func:`run_id`) invalidates on rewrite."""
    return need("results").load_results(path)


@st.cache_resource(max_entries=64)
def setting_traces(ident: str, setting: str, nvr: NVRConfig, _run) -> tuple[tuple, tuple[TraceResult, ...]]:
    """(generations, traces) of one setting, nv_recall re-scored from stored blocks under ``nvr``."""
    gens, traces = _run.by_setting(setting)
    if nvr != NVRConfig():
        traces = need("nvrecall").rescore(traces, nvr)
    return tuple(gens), tuple(traces)


@st.cache_data(max_entries=512)
def setting_metrics(ident: str, setting: str, cfg: MetricsConfig, _run) -> dict[str, float]:
    """``compute_metrics`` of one setting (with generations, for the prefix continuation metrics)."""
    gens, traces = setting_traces(ident, setting, cfg.nvr, _run)
    return need("metrics").compute_metrics(traces, cfg, gens)


@st.cache_data(max_entries=256, show_spinner="Bootstrapping intervals ...")
def setting_intervals(ident: str, setting: str, cfg: MetricsConfig, metrics: tuple[str, ...], _run) -> dict:
    """``bootstrap_intervals`` of one setting for ``metrics``."""
    gens, traces = setting_traces(ident, setting, cfg.nvr, _run)
    return need("bootstrap").bootstrap_intervals(traces, cfg, gens, metrics=metrics)


@st.cache_data(max_entries=256, show_spinner="Bootstrapping PM ...")
def pm_intervals(ident: str, settings: tuple[str, ...], metric: str, cfg: MetricsConfig, _run) -> dict:
    """PM interval of ``metric`` per natural setting (against prefix), {} when the run has no prefix."""
    if "prefix" not in _run.settings():
        return {}
    _, cap = setting_traces(ident, "prefix", cfg.nvr, _run)
    prop = need("propensity")
    return {s: prop.pm_interval(setting_traces(ident, s, cfg.nvr, _run)[1], cap, metric, cfg)
            for s in settings if s != "prefix"}


@st.cache_data(max_entries=256)
def span_curves(ident: str, settings: tuple[str, ...], max_n: int, cfg: MetricsConfig, _run) -> dict:
    """``span_share_curve`` per setting for n = 1..max_n (after the loop filter)."""
    metrics, loops = need("metrics"), need("loops")
    return {s: metrics.span_share_curve(loops.drop_degenerate(setting_traces(ident, s, cfg.nvr, _run)[1], cfg),
                                        max_n) for s in settings}


@st.cache_data(max_entries=256)
def distributions(ident: str, settings: tuple[str, ...], cfg: MetricsConfig, _run) -> dict:
    """Per setting: final span lengths and per-document nv_recall values (after the loop filter)."""
    loops = need("loops")
    out = {}
    for s in settings:
        kept = loops.drop_degenerate(setting_traces(ident, s, cfg.nvr, _run)[1], cfg)
        out[s] = {"spans": [sp.length for t in kept for sp in t.spans],
                  "nv": [d.nv.recall for t in kept for d in t.docs]}
    return out


@st.cache_resource(max_entries=4, show_spinner="Opening the corpus index ...")
def open_index(dirs: tuple[str, ...]):
    """``CorpusIndex.open(dirs)`` shared by every session (read-only, memory-mapped)."""
    return need("index").CorpusIndex.open(list(dirs))


@st.cache_resource(max_entries=1, show_spinner="Building the demo index (first use only) ...")
def demo_index():
    return need("demo").ensure_demo_index()


@st.cache_resource(max_entries=4, show_spinner="Loading tokenizer ...")
def tokenizer(name_or_path: str):
    return need("tokenizer").load_tokenizer(name_or_path)


@st.cache_data(max_entries=128)
def phrase_search(fingerprint: str, tokenizer_name: str, phrase: str, max_docs: int, _index, _tok) -> tuple:
    """(count, occurrences) of ``phrase`` in the index."""
    count, occs = _index.search(phrase, tokenizer=_tok, max_docs=max_docs)
    return count, list(occs)


@st.cache_data(max_entries=8, show_spinner="Building the HTML report ...")
def html_report(ident: str, cfg: MetricsConfig, _run, _figures: Sequence[Any], _summary: Any) -> str:
    return need("html_report").build_report(_run, _figures, _summary, cfg)


def clear_all() -> None:
    """Drop every cached value (the sidebar's 'Clear cache' button)."""
    st.cache_data.clear()
    st.cache_resource.clear()


def env_flag(name: str) -> bool:
    return os.environ.get(name, "").strip() not in ("", "0", "false", "no")


def pm_values(values: dict, metric: str) -> dict[str, float]:
    """Point PM of ``metric`` per natural setting from already computed metric dicts (cheap, uncached)."""
    if "prefix" not in values:
        return {}
    pm = need("propensity").pm
    return {s: pm(v[metric], values["prefix"][metric]) for s, v in values.items() if s != "prefix"}
