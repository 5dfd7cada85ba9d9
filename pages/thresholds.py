"""Thresholds and curves: tune the scoring thresholds once for the session (every page and export uses
them), re-score cached traces live; re-trace only for trace-time parameters.

The thresholds and everything they change are one ``st.fragment``: moving a slider reruns it only
(not the app's sidebar, the page title or the re-trace panel), and its charts come from
``cached.figure`` (each built once per value of what it draws). Below the tiles, one view at a time in
lazy tabs (Numbers, Span-share curves, PM vs N, Distributions, Plane): only the open tab's body runs, so a
new browser tab receives no chart until one is asked for.
"""
from dataclasses import replace

import streamlit as st

from app import cached, charts, render, retrace, runner, state, story, widgets
from app.views import manifest, reading, tables
from core.config import CAPABILITY
from core.reports import na
from core.reports.story import floor_settings
from core.scoring import registry


@st.fragment
def _live(ident: str, run, run_ident: str, top_span: int) -> None:
    """The sidebar thresholds and the numbers, table, curves and plane they change."""
    with render.page_boundary():
        base = state.metrics_config(run_ident, run)  # this session's thresholds (the run's until tuned)
        with st.sidebar:
            st.header("Scoring thresholds (live)")
            st.caption("Used by every page and every export of this run in this session.")
            cfg = widgets.metrics_controls(base, top_span)
            with st.expander("Near-verbatim recall block thresholds"):
                cfg = replace(cfg, nv_blocks=widgets.nv_blocks_controls(base.nv_blocks))
            state.set_metrics_config(run_ident, run, cfg)
            st.button("Reset to the run's values", key="thr_reset", on_click=state.reset_thresholds,
                      args=(run_ident, widgets.metrics_widget_values(state.run_metrics_config(run), top_span)),
                      disabled=not state.thresholds_tuned(run_ident))
        _numbers(ident, run, cfg)


def _numbers(ident: str, run, cfg) -> None:
    settings = tuple(run.settings())
    floors = floor_settings(run.manifest, settings)
    values = {s: cached.setting_metrics(ident, s, cfg, run) for s in settings}
    cols = st.columns(len(settings))
    for col, s in zip(cols, settings):
        col.metric(render.md_literal(f"{registry.label('r_n', cfg)} ({s})"), na.fmt(values[s]["r_n"], "r_n", s))
    pm_point = {s: r for s, r in cached.pm_values(ident, settings, "r_n", cfg, run).items() if s not in floors}
    if pm_point:
        for col, (s, r) in zip(st.columns(len(pm_point)), pm_point.items()):
            col.metric(render.md_literal(f"{registry.pm_label('r_n', cfg)} ({s})"),
                       na.PM_NA if r.undefined else f"{r.value:.3f}")
    # one view at a time: only the open tab's body runs (no chart reaches a new tab until asked for); the
    # choice is this fragment's widget, so moving a slider keeps it (state.keep_open: page switches too)
    state.keep_open("thr_view", "Numbers")
    numbers, curves_tab, pm_tab, dist_tab, plane_tab = st.tabs(
        ["Numbers", "Span-share curves", "PM vs N", "Distributions", "Plane"], key="thr_view", on_change="rerun")
    state.remember_open("thr_view")
    if numbers.open:
        with numbers:
            st.dataframe(story.na_table(values, tables.PRIMARY + ("r_n", "gen_nv_above", "max_nv_recall",
                                        "degenerate_share", "n_generations"), cfg), hide_index=True, key="thr_table")
    if curves_tab.open or pm_tab.open:
        _curves(ident, run, cfg, values, floors, curves_tab if curves_tab.open else pm_tab, pm_tab.open)
    if dist_tab.open:
        with dist_tab:
            _distributions(ident, run, cfg, settings)
    if plane_tab.open:
        with plane_tab:
            _plane(ident, run, cfg, settings, floors)


def _curves(ident: str, run, cfg, values: dict, floors: tuple, tab, pm_view: bool) -> None:
    """The span-share curves (their tab) or PM against the threshold N (its tab), from one curves call."""
    settings, n = tuple(run.settings()), cfg.span_threshold
    max_n = max(10, max((t.longest_span for t in run.traces), default=0) + 5)
    curves = cached.span_curves(ident, settings, max_n, cfg, run)
    curve_key = (ident, settings, max_n, registry.only_relevant(cfg), floors)  # what the curves are drawn from
    with tab:
        if not pm_view:
            st.plotly_chart(cached.figure("thr_curves", (*curve_key, n),
                                          lambda: charts.span_share_curves(curves, n, floors)), key="thr_curves")
        elif CAPABILITY in curves:
            def pm_chart():
                pm_curves = {s: pts for s, pts in reading.pm_curves(curves).items() if s not in floors}
                return charts.pm_vs_threshold(pm_curves, story.remaining_counts(curves, values, pm_curves))
            # remaining_counts reads n_generations, which depends on the loop filter only (in registry.only_relevant(cfg))
            st.plotly_chart(cached.figure("thr_pm_curve", curve_key, pm_chart), key="thr_pm_curve")
        else:
            st.info("PM against the span threshold N needs a prefix setting in the run.")


def _distributions(ident: str, run, cfg, settings: tuple) -> None:
    dist = cached.distributions(ident, settings, cfg, run)
    dist_key = (ident, settings, registry.only_relevant(cfg, ("max_span", "max_nv_recall")))
    c3, c4 = st.columns(2)
    c3.plotly_chart(cached.figure("thr_span_dist", dist_key, lambda: charts.distribution(
        {s: d["spans"] for s, d in dist.items()}, "Final span lengths", "span length (tokens)", log_y=True)),
        key="thr_span_dist")
    c4.plotly_chart(cached.figure("thr_nv_dist", dist_key, lambda: charts.distribution(
        {s: d["nv"] for s, d in dist.items()}, "nv_recall of retrieved documents", "nv_recall")), key="thr_nv_dist")


def _plane(ident: str, run, cfg, settings: tuple, floors: tuple) -> None:
    """The capability-propensity plane with bootstrap intervals of the picked metric."""
    metric = st.selectbox("Plane metric", tables.PRIMARY + ("r_n",), format_func=lambda m: registry.label(m, cfg),
                          key="thr_plane_metric")
    intervals = {s: cached.setting_intervals(ident, s, cfg, (metric,), run) for s in settings}
    floor = next((intervals[f][metric] for f in floors), None)
    label = manifest.run_label(run.manifest)
    points = reading.plane_points(label, intervals, metric, floors)
    if points:
        plane_key = (ident, settings, metric, registry.only_relevant(cfg, (metric,)), label, floors,
                     registry.label(metric, cfg))
        st.plotly_chart(cached.figure("thr_plane", plane_key, lambda: charts.capability_propensity(
            points, registry.label(metric, cfg), floor=floor)), key="thr_plane_chart")
    else:
        st.info("The plane needs a prefix setting and a natural setting in the run.")


st.title("Thresholds and curves")
with render.page_boundary():
    ident, run = state.current_run()
    run_ident, top_span = ident, max((t.longest_span for t in run.traces), default=0)
    retraced = state.retraced()
    with st.expander("Trace-time parameters (re-trace with the corpus index)"):
        tcfg = widgets.trace_controls(run.manifest.trace, key="thr_trace")
        if st.button("Re-trace with these parameters", key="thr_retrace"):
            bar = st.progress(0.0, text="tracing ...")
            retraced[(ident, tcfg)] = retrace.retrace(run, tcfg, lambda e: bar.progress(
                e.fraction, text=render.md_literal(runner.describe(e))))
            bar.empty()
    if (ident, tcfg) in retraced:
        run = retraced[(ident, tcfg)]
        ident = f"{ident}|retrace:{hash(tcfg)}"
        st.success("Showing the re-traced completions (this session only).")
    _live(ident, run, run_ident, top_span)
