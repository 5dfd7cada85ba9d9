"""Every Streamlit cache of the app, each a thin wrapper around a core function.

Rules (STYLE.md 4.3): wrappers read only their arguments; heavy objects are passed with a leading
underscore AND an identity argument beside them (``run_id`` = path + manifest stamp,
``index.fingerprint``). Loaded runs and re-scored traces are immutable tuples of frozen dataclasses,
so they live in ``st.cache_resource`` (shared, never copied); small per-query values (metric dicts,
intervals) in ``st.cache_data`` (a copy per caller). Which thresholds a value depends on (its cache
key) is core's answer (:func:`core.scoring.registry.only_relevant`); the pages read these through one
view of the run under the session's thresholds (:mod:`app.session`).
"""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import streamlit as st

from app.views import explore as explore_view
from app.views.planted_records import planted_path, read_planted
from core.config import MetricsConfig
from core.index.corpus_index import CorpusIndex
from core.index.phrase import search_phrase
from core.index.tokenizer import load_tokenizer
from core.records import TraceResult
from core.reports.html import build_report
from core.reports.leaks import doc_text_key
from core.reports.leaks import leaked_documents as rank_leaked
from core.runs import form_checks
from core.runs.catalog import list_runs_in
from core.runs.compare import comparability, prompt_sets
from core.runs.demo import ensure_demo_index
from core.runs.results import load_results
from core.scoring import loops, registry, summary
from core.scoring.bootstrap import bootstrap_intervals
from core.scoring.metrics import score_traces, scored_traces, span_share_curve
from core.scoring.propensity import pm_interval, run_pm

# A MetricsConfig is hashed by its repr (every field, nested configs included): Streamlit's generic
# hashing of the nested frozen dataclass costs milliseconds per cached call, and a page makes dozens.
_CFG = {MetricsConfig: repr}


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
    """``core.runs.results.load_results(path)``; ``ident`` (see :func:`run_id`) invalidates on rewrite."""
    return load_results(path)


@st.cache_resource(max_entries=64)
def setting_traces(ident: str, setting: str, _run) -> tuple[tuple, tuple[TraceResult, ...]]:
    """(generations, traces) of one setting, as stored (scoring applies the NV block thresholds)."""
    gens, traces = _run.by_setting(setting)
    return tuple(gens), tuple(traces)


def setting_metrics(ident: str, setting: str, cfg: MetricsConfig, _run) -> dict[str, float | None]:
    """Metrics of one setting: summary.json's under the run's own thresholds, else ``compute_metrics``,
    cached apart by the thresholds each metric reads: moving N of R_N recomputes only the metrics that read N.
    A new dict per call (the callers' copy)."""
    stored = summary.stored_metrics(_run, setting, cfg)
    if stored is not None:
        return stored
    out: dict[str, float | None] = {}
    for group in registry.metric_groups(cfg):
        out.update(_metric_group(ident, setting, registry.only_relevant(cfg, group), group, _run))
    return {spec.name: out[spec.name] for spec in registry.metrics_for(cfg) if spec.name in out}


@st.cache_resource(max_entries=2048, hash_funcs=_CFG, show_spinner=False)
def _metric_group(ident: str, setting: str, cfg: MetricsConfig, names: tuple[str, ...], _run) -> dict:
    """A resource (no copy per lookup: a drag makes dozens); never handed out, :func:`setting_metrics` copies it."""
    gens, traces = setting_traces(ident, setting, _run)
    return registry.compute_metrics(traces, cfg, gens, setting=setting, names=names)


@st.cache_resource(max_entries=16)
def example_rows(ident: str, _run) -> tuple:
    """Explore's rows (``app.views.explore.example_rows``) of a run: one per traced generation."""
    return tuple(explore_view.example_rows(_run.generations, _run.traces))


def setting_intervals(ident: str, setting: str, cfg: MetricsConfig, metrics: tuple[str, ...], _run) -> dict:
    """``bootstrap_intervals`` of one setting for ``metrics`` (cached under the thresholds they read)."""
    return _setting_intervals(ident, setting, registry.only_relevant(cfg, metrics), tuple(metrics), _run)


@st.cache_data(max_entries=256, show_spinner="Bootstrapping intervals ...", hash_funcs=_CFG)
def _setting_intervals(ident: str, setting: str, cfg: MetricsConfig, metrics: tuple[str, ...], _run) -> dict:
    """``bootstrap_intervals`` of one setting for ``metrics`` (summary.json's under the run's own thresholds)."""
    stored = summary.stored_intervals(_run, setting, cfg, metrics)
    if stored is not None:
        return stored
    gens, traces = setting_traces(ident, setting, _run)
    return bootstrap_intervals(traces, cfg, gens, metrics=metrics)


def pm_intervals(ident: str, settings: tuple[str, ...], metric: str, cfg: MetricsConfig, _run) -> dict:
    """PM (``PMResult``, with interval and the 0/0 ``undefined`` flag) of ``metric`` per compared setting
    against the capability setting; {} when the run has none. pm.json's under the run's own thresholds."""
    stored = summary.stored_pm(_run, cfg, metric)
    if stored is not None:
        return {s: r for s, r in stored.items() if s in settings}
    return _pm(ident, settings, metric, registry.only_relevant(cfg, (metric,)), True, _run)


def pm_values(ident: str, settings: tuple[str, ...], metric: str, cfg: MetricsConfig, _run) -> dict:
    """Point PM (``PMResult``, no interval) of ``metric`` per compared setting: cheap, for tiles and sentences."""
    stored = summary.stored_pm(_run, cfg, metric)
    if stored is not None:
        return {s: r for s, r in stored.items() if s in settings}
    return _pm(ident, settings, metric, registry.only_relevant(cfg, (metric,)), False, _run)


@st.cache_data(max_entries=256, show_spinner="Bootstrapping PM ...", hash_funcs=_CFG)
def _pm(ident: str, settings: tuple[str, ...], metric: str, cfg: MetricsConfig, intervals: bool, _run) -> dict:
    traces = {s: setting_traces(ident, s, _run)[1] for s in settings}
    values = {s: setting_metrics(ident, s, cfg, _run) for s in settings}
    out = run_pm(traces, cfg, (metric,), values_by_setting=values, intervals=intervals)
    return {s: row[metric] for s, row in out.items() if metric in row}


def span_curves(ident: str, settings: tuple[str, ...], max_n: int, cfg: MetricsConfig, _run) -> dict:
    """``span_share_curve`` per setting for n = 1..max_n (after the loop filter)."""
    return _span_curves(ident, settings, max_n, registry.only_relevant(cfg), _run)


@st.cache_data(max_entries=256, hash_funcs=_CFG)
def _span_curves(ident: str, settings: tuple[str, ...], max_n: int, cfg: MetricsConfig, _run) -> dict:
    return {s: span_share_curve(loops.drop_degenerate(setting_traces(ident, s, _run)[1], cfg), max_n)
            for s in settings}


def distributions(ident: str, settings: tuple[str, ...], cfg: MetricsConfig, _run) -> dict:
    """Per setting: final span lengths and per-document nv_recall values (after the loop filter)."""
    return _distributions(ident, settings, registry.only_relevant(cfg, ("max_span", "max_nv_recall")), _run)


@st.cache_data(max_entries=256, hash_funcs=_CFG)
def _distributions(ident: str, settings: tuple[str, ...], cfg: MetricsConfig, _run) -> dict:
    out = {}
    for s in settings:
        kept = loops.drop_degenerate(score_traces(setting_traces(ident, s, _run)[1], cfg), cfg)
        out[s] = {"spans": [sp.length for t in kept for sp in t.spans],
                  "nv": [d.nv.recall for t in kept for d in t.docs]}
    return out


@st.cache_resource(max_entries=256, hash_funcs=_CFG)
def figure(name: str, key: tuple, _build: Callable[[], Any]) -> Any:
    """A chart built once per (``name``, ``key``): ``key`` holds everything the figure is drawn from (the
    identity of the cached values it plots and the chart's own arguments); ``_build`` runs on a miss only.
    ``st.plotly_chart`` copies the figure it is given, so one figure object serves every session."""
    return _build()


def rescored_traces(ident: str, cfg: MetricsConfig, _run) -> tuple[TraceResult, ...]:
    """Every trace of the run with ``cfg.nv_blocks`` applied (``score_traces``): nv_recall as scored."""
    return _rescored_traces(ident, registry.only_relevant(cfg, ("max_nv_recall",)).nv_blocks, _run)


@st.cache_resource(max_entries=16)
def _rescored_traces(ident: str, nv_blocks, _run) -> tuple[TraceResult, ...]:
    return tuple(score_traces(_run.traces, MetricsConfig(nv_blocks=nv_blocks)))


def kept_traces(ident: str, cfg: MetricsConfig, _run) -> tuple[TraceResult, ...]:
    """The traces the metrics score (``core.scoring.metrics.scored_traces`` of :func:`rescored_traces`:
    degenerate loops and prompt-echo spans out as ``cfg`` says)."""
    return _kept_traces(ident, registry.only_relevant(cfg, ("max_nv_recall",)), _run)


@st.cache_resource(max_entries=16, hash_funcs=_CFG)
def _kept_traces(ident: str, cfg: MetricsConfig, _run) -> tuple[TraceResult, ...]:
    return tuple(scored_traces(rescored_traces(ident, cfg, _run), cfg))


@st.cache_resource(max_entries=4, show_spinner="Opening the corpus index ...")
def open_index(dirs: tuple[str, ...]):
    """``CorpusIndex.open(dirs)`` shared by every session (read-only, memory-mapped)."""
    return CorpusIndex.open(list(dirs))


@st.cache_resource(max_entries=1, show_spinner="Building the demo index (first use only) ...")
def demo_index():
    return ensure_demo_index()


@st.cache_resource(max_entries=4, show_spinner="Loading tokenizer ...")
def tokenizer(name_or_path: str):
    return load_tokenizer(name_or_path)


@st.cache_data(max_entries=8, show_spinner="Building the HTML report ...", hash_funcs=_CFG)
def html_report(ident: str, cfg: MetricsConfig, metric: str, _inp) -> str:
    """``core.reports.html.build_report`` of the report input built for (run, cfg, metric)."""
    return build_report(_inp)


@st.cache_data(max_entries=256, show_spinner="Bootstrapping PM between runs ...", hash_funcs=_CFG)
def cross_pm(ident: str, ref_ident: str, setting: str, metric: str, cfg: MetricsConfig, _run, _ref):
    """PM of ``metric`` of ``_run`` against the reference run ``_ref`` (reference in the prefix slot)."""
    mine = setting_traces(ident, setting, _run)[1]
    ref = setting_traces(ref_ident, setting, _ref)[1]
    return pm_interval(mine, ref, metric, cfg)


def clear_all() -> None:
    """Drop every cached value (the sidebar's 'Clear cache' button)."""
    st.cache_data.clear()
    st.cache_resource.clear()


def planted_extraction(run_path: str) -> dict | None:
    """The planted-record extraction results beside a run folder, or None when there are none.
    A file that is not a JSON object raises PropMeError naming it."""
    path = planted_path(run_path)
    return _planted_extraction(str(path), path.stat().st_mtime_ns) if path else None


@st.cache_data(max_entries=8)
def _planted_extraction(path: str, stamp: int) -> dict:
    """``read_planted(path)``; ``stamp`` (the file's mtime) invalidates on rewrite."""
    return read_planted(path)


@st.cache_resource(max_entries=8, show_spinner="Finding identical documents ...")
def doc_keys(ident: str, fingerprint: str | None, _run, _index) -> dict:
    """{doc_ix: content key} of every retrieved document and every prefix prompt's source document
    ({} without an index: every document then stands alone)."""
    if _index is None:
        return {}
    ixs = {d.doc_ix for t in _run.traces for d in t.docs}
    ixs |= {g.prompt.source_doc_ix for g in _run.generations if g.prompt.source_doc_ix is not None}
    return {ix: doc_text_key(_index, ix) for ix in sorted(ixs) if 0 <= ix < _index.num_docs}


@st.cache_resource(max_entries=8, show_spinner="Ranking leaked documents ...")
def leaked_documents(ident: str, fingerprint: str | None, _run, _index) -> tuple:
    """``core.reports.leaks.leaked_documents`` of a run, identical copies together when the index is here."""
    keys = doc_keys(ident, fingerprint, _run, _index)
    return tuple(rank_leaked(_run.traces, _run.settings(), keys.get if keys else None))


@st.cache_data(max_entries=128)
def phrase_search_all(fingerprint: str, tokenizer_name: str, phrase: str, max_docs: int, _index, _tok):
    """``core.index.phrase.search_phrase``: every spelling of ``phrase`` a text can hold, counted."""
    return search_phrase(_index, _tok, phrase, max_docs)


@st.cache_data(max_entries=16, ttl=10, show_spinner="Listing results folders ...")
def run_catalog(root: str, data_root: str | None):
    """``core.runs.catalog.list_runs_in`` of the folders in ``root`` (one per line) confined to ``data_root``;
    kept 10 s (new runs appear on their own)."""
    return list_runs_in(root.splitlines(), Path(data_root) if data_root else None)


@st.cache_data(max_entries=256)
def run_comparability(ident: str, ref_ident: str, labels: tuple[str, str], _run, _ref):
    """``core.runs.compare.comparability`` of a run against the reference run, with the prompts each used."""
    return comparability(_run.manifest, _ref.manifest, labels=labels,
                         prompts=(prompt_sets(_run.generations), prompt_sets(_ref.generations)))


@st.cache_data(max_entries=16, show_spinner=False)
def index_doc_lengths(index_dirs: tuple[str, ...], stamp: tuple):
    """``core.runs.form_checks.index_doc_lengths`` of an index; ``stamp`` (its folders' mtimes) invalidates on rebuild."""
    return form_checks.index_doc_lengths(index_dirs)
