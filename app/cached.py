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
from dataclasses import replace
from pathlib import Path
from types import ModuleType

import streamlit as st

from core.config import MetricsConfig, NVRConfig
from core.errors import PropMeError
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
        raise Unavailable(f"This needs core/{module.replace('.', '/')}.py, which is not in this checkout yet.") from None


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
    return need("runs.results").load_results(path)


@st.cache_resource(max_entries=64)
def setting_traces(ident: str, setting: str, nvr: NVRConfig, _run) -> tuple[tuple, tuple[TraceResult, ...]]:
    """(generations, traces) of one setting, nv_recall re-scored from stored blocks under ``nvr``."""
    from app.views import metrics_config_of

    gens, traces = _run.by_setting(setting)
    if nvr != metrics_config_of(_run.manifest).nvr:  # stored nv_recall was scored with the run's own nvr
        traces = need("tracing.nvrecall").rescore(traces, nvr)
    return tuple(gens), tuple(traces)


@st.cache_data(max_entries=512)
def setting_metrics(ident: str, setting: str, cfg: MetricsConfig, _run) -> dict[str, float]:
    """``compute_metrics`` of one setting (with generations, for the prefix continuation metrics)."""
    gens, traces = setting_traces(ident, setting, cfg.nvr, _run)
    return need("scoring.metrics").compute_metrics(traces, cfg, gens)


def only_relevant(cfg: MetricsConfig, metrics: tuple[str, ...] = ()) -> MetricsConfig:
    """``cfg`` with thresholds that ``metrics`` do not read reset to defaults, so moving the R_N or
    nv threshold does not invalidate cached intervals, curves and distributions that ignore them."""
    default = MetricsConfig()
    return replace(cfg, span_threshold=cfg.span_threshold if "r_n" in metrics else default.span_threshold,
                   nv_threshold=cfg.nv_threshold if "gen_nv_above" in metrics else default.nv_threshold)


def setting_intervals(ident: str, setting: str, cfg: MetricsConfig, metrics: tuple[str, ...], _run) -> dict:
    """``bootstrap_intervals`` of one setting for ``metrics`` (cached under the thresholds they read)."""
    return _setting_intervals(ident, setting, only_relevant(cfg, metrics), tuple(metrics), _run)


@st.cache_data(max_entries=256, show_spinner="Bootstrapping intervals ...")
def _setting_intervals(ident: str, setting: str, cfg: MetricsConfig, metrics: tuple[str, ...], _run) -> dict:
    """``bootstrap_intervals`` of one setting for ``metrics``."""
    gens, traces = setting_traces(ident, setting, cfg.nvr, _run)
    return need("scoring.bootstrap").bootstrap_intervals(traces, cfg, gens, metrics=metrics)


def pm_intervals(ident: str, settings: tuple[str, ...], metric: str, cfg: MetricsConfig, _run) -> dict:
    """PM interval of ``metric`` per natural setting (against prefix), {} when the run has no prefix."""
    return _pm_intervals(ident, settings, metric, only_relevant(cfg, (metric,)), _run)


@st.cache_data(max_entries=256, show_spinner="Bootstrapping PM ...")
def _pm_intervals(ident: str, settings: tuple[str, ...], metric: str, cfg: MetricsConfig, _run) -> dict:
    if "prefix" not in _run.settings():
        return {}
    _, cap = setting_traces(ident, "prefix", cfg.nvr, _run)
    prop = need("scoring.propensity")
    return {s: prop.pm_interval(setting_traces(ident, s, cfg.nvr, _run)[1], cap, metric, cfg)
            for s in settings if s != "prefix"}


def span_curves(ident: str, settings: tuple[str, ...], max_n: int, cfg: MetricsConfig, _run) -> dict:
    """``span_share_curve`` per setting for n = 1..max_n (after the loop filter)."""
    return _span_curves(ident, settings, max_n, only_relevant(cfg), _run)


@st.cache_data(max_entries=256)
def _span_curves(ident: str, settings: tuple[str, ...], max_n: int, cfg: MetricsConfig, _run) -> dict:
    metrics, loops = need("scoring.metrics"), need("scoring.loops")
    return {s: metrics.span_share_curve(loops.drop_degenerate(setting_traces(ident, s, cfg.nvr, _run)[1], cfg),
                                        max_n) for s in settings}


def distributions(ident: str, settings: tuple[str, ...], cfg: MetricsConfig, _run) -> dict:
    """Per setting: final span lengths and per-document nv_recall values (after the loop filter)."""
    return _distributions(ident, settings, only_relevant(cfg), _run)


@st.cache_data(max_entries=256)
def _distributions(ident: str, settings: tuple[str, ...], cfg: MetricsConfig, _run) -> dict:
    loops = need("scoring.loops")
    out = {}
    for s in settings:
        kept = loops.drop_degenerate(setting_traces(ident, s, cfg.nvr, _run)[1], cfg)
        out[s] = {"spans": [sp.length for t in kept for sp in t.spans],
                  "nv": [d.nv.recall for t in kept for d in t.docs]}
    return out


@st.cache_resource(max_entries=4, show_spinner="Opening the corpus index ...")
def open_index(dirs: tuple[str, ...]):
    """``CorpusIndex.open(dirs)`` shared by every session (read-only, memory-mapped)."""
    return need("index.corpus_index").CorpusIndex.open(list(dirs))


@st.cache_resource(max_entries=1, show_spinner="Building the demo index (first use only) ...")
def demo_index():
    return need("runs.demo").ensure_demo_index()


@st.cache_resource(max_entries=4, show_spinner="Loading tokenizer ...")
def tokenizer(name_or_path: str):
    return need("index.tokenizer").load_tokenizer(name_or_path)


@st.cache_data(max_entries=128)
def phrase_search(fingerprint: str, tokenizer_name: str, phrase: str, max_docs: int, _index, _tok) -> tuple:
    """(count, occurrences) of ``phrase`` in the index."""
    count, occs = _index.search(phrase, tokenizer=_tok, max_docs=max_docs)
    return count, list(occs)


@st.cache_data(max_entries=8, show_spinner="Building the HTML report ...")
def html_report(ident: str, cfg: MetricsConfig, metric: str, _inp) -> str:
    """``core.reports.html.build_report`` of the report input built for (run, cfg, metric)."""
    return need("reports.html").build_report(_inp)


@st.cache_data(max_entries=256, show_spinner="Bootstrapping PM between runs ...")
def cross_pm(ident: str, ref_ident: str, setting: str, metric: str, cfg: MetricsConfig, _run, _ref):
    """PM of ``metric`` of ``_run`` against the reference run ``_ref`` (reference in the prefix slot)."""
    mine = setting_traces(ident, setting, cfg.nvr, _run)[1]
    ref = setting_traces(ref_ident, setting, cfg.nvr, _ref)[1]
    return need("scoring.propensity").pm_interval(mine, ref, metric, cfg)


def clear_all() -> None:
    """Drop every cached value (the sidebar's 'Clear cache' button)."""
    st.cache_data.clear()
    st.cache_resource.clear()


def pm_values(values: dict, metric: str) -> dict[str, float]:
    """Point PM of ``metric`` per natural setting from already computed metric dicts (cheap, uncached)."""
    if "prefix" not in values:
        return {}
    pm = need("scoring.propensity").pm
    return {s: pm(v[metric], values["prefix"][metric]) for s, v in values.items() if s != "prefix"}


def pm_curves(curves: dict) -> dict:
    """PM of R_n against n per natural setting, from :func:`span_curves` output (uncached, cheap)."""
    pm = need("scoring.propensity").pm
    cap = curves["prefix"]
    return {s: [(i + 1, pm(v, c)) for i, (v, c) in enumerate(zip(shares, cap)) if v + c > 0]  # 0/0: undefined
            for s, shares in curves.items() if s != "prefix"}


def retrace(run, tcfg, nvr, progress):
    """Re-trace every completion of ``run`` with ``tcfg`` (not cached: the page keeps it in session state).

    Needs the run's index and tokenizer (:func:`run_index`); returns a RunResults with the new traces.
    """
    import dataclasses

    index, tok = run_index(run)
    traces = need("tracing.trace").trace_many(index, tok, [(g.key, g.completion) for g in run.generations], tcfg, nvr,
                                      progress=progress)
    return dataclasses.replace(run, traces=tuple(traces))


def run_index(run):
    """(index, tokenizer) of a run: its manifest's index folders, or the demo index for the demo run.

    The demo run uses its recorded index folder when that opens with the recorded fingerprint (a
    millisecond memory-map); only otherwise is the demo index checked against the shipped corpus and
    built (:func:`core.runs.demo.ensure_demo_index` re-reads and fingerprints the corpus: seconds).
    Raises Unavailable with the reason when the index is not on this machine.
    """
    from app.views import index_dirs

    dirs = tuple(index_dirs(run.manifest))
    index_meta = run.manifest.get("index") if isinstance(run.manifest.get("index"), dict) else {}
    try:
        demo = need("runs.demo")
    except Unavailable:
        demo = None
    is_demo = bool(demo and run.path and Path(run.path).resolve() == Path(demo.demo_results_dir()).resolve())
    if dirs and all(Path(d).is_dir() for d in dirs):
        try:
            index = open_index(dirs)
        except PropMeError:
            if not is_demo:
                raise
            index = None  # a half-built demo index: rebuild it below
        tok_name = (str(demo.demo_model_dir()) if is_demo
                    else index_meta.get("tokenizer") or (index.tokenizer_name if index else None))
        if index is not None and tok_name and (not is_demo or index.fingerprint == index_meta.get("fingerprint")):
            return index, tokenizer(str(tok_name))
    if is_demo:
        return demo_index(), tokenizer(str(demo.demo_model_dir()))
    where = ", ".join(dirs) or "(none recorded)"
    raise Unavailable(f"This run's corpus index is not on this machine (index folders: {where}). "
                      "Copy or build it there (python -m core index build ...) to search the corpus or re-trace.")


def planted_extraction(run_path: str) -> dict | None:
    """The planted-record extraction results beside a run folder, or None when there are none.
    A file that is not a JSON object raises PropMeError naming it."""
    from app.views import PLANTED_FILE

    path = Path(run_path).parent / PLANTED_FILE
    return _planted_extraction(str(path), path.stat().st_mtime_ns) if path.is_file() else None


@st.cache_data(max_entries=8)
def _planted_extraction(path: str, stamp: int) -> dict:
    import json

    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as e:
        raise PropMeError(f"{path} is not readable JSON ({e}); rerun python -m demo.planted_extraction") from e
    if not isinstance(data, dict):
        raise PropMeError(f"{path} is not a JSON object; rerun python -m demo.planted_extraction")
    return data


def demo_info() -> dict:
    """Paths of the shipped demo (model folder, prompt sets) or {} when core/runs/demo.py is absent."""
    try:
        demo = need("runs.demo")
    except Unavailable:
        return {}
    return {"model": str(demo.demo_model_dir()),
            "prompts": {k: str(v) for k, v in demo.demo_prompt_paths().items()}}


def run_experiment(cfg, progress):
    """``core.runs.experiment.run_experiment`` (uncached: it has its own result cache on disk)."""
    return need("runs.experiment").run_experiment(cfg, progress=progress)


def doc_text_key(index, doc_ix: int) -> str:
    """A key of a document's content (hash of its tokens): identical copies share it."""
    import hashlib

    import numpy as np

    return hashlib.sha1(np.asarray(index.doc_tokens(doc_ix), dtype=np.int64).tobytes()).hexdigest()


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
    return tuple(need("reports.leaks").leaked_documents(_run.traces, _run.settings(), keys.get if keys else None))


@st.cache_data(max_entries=128)
def phrase_search_all(fingerprint: str, tokenizer_name: str, phrase: str, max_docs: int, _index, _tok):
    """``core.index.phrase.search_phrase``: every spelling of ``phrase`` a text can hold, counted."""
    return need("index.phrase").search_phrase(_index, _tok, phrase, max_docs)
