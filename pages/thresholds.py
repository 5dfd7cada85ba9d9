"""Thresholds and curves: tune the scoring thresholds once for the session (every page and export uses
them), re-score cached traces live; re-trace only for trace-time parameters."""
from dataclasses import replace

import streamlit as st

from app import cached, charts, render, retrace, runner, state, story, widgets
from app.views import manifest, reading, tables
from core.config import CAPABILITY
from core.reports import na
from core.reports.story import floor_settings

st.title("Thresholds and curves")
with render.page_boundary():
    ident, run = state.current_run()
    base = state.metrics_config(ident, run)  # this session's thresholds (the run's until tuned)
    retraced = state.retraced()
    with st.sidebar:
        st.header("Scoring thresholds (live)")
        st.caption("Used by every page and every export of this run in this session.")
        cfg = widgets.metrics_controls(base, max((t.longest_span for t in run.traces), default=0))
        with st.expander("Near-verbatim recall block thresholds"):
            cfg = replace(cfg, nv_blocks=widgets.nv_blocks_controls(base.nv_blocks))
        state.set_metrics_config(ident, run, cfg)
        st.button("Reset to the run's values", key="thr_reset", on_click=state.reset_thresholds, args=(ident,),
                  disabled=not state.thresholds_tuned(ident))
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

    # everything below depends on the thresholds (cfg) only through the cached core calls
    settings = tuple(run.settings())
    floors = floor_settings(run.manifest, settings)
    values = {s: cached.setting_metrics(ident, s, cfg, run) for s in settings}
    n = cfg.span_threshold
    cols = st.columns(len(settings))
    for col, s in zip(cols, settings):
        col.metric(render.md_literal(f"R_{n} ({s})"), na.fmt(values[s]["r_n"], "r_n", s))
    pm_point = {s: r for s, r in cached.pm_values(ident, settings, "r_n", cfg, run).items() if s not in floors}
    if pm_point:
        for col, (s, r) in zip(st.columns(len(pm_point)), pm_point.items()):
            col.metric(render.md_literal(f"PM of R_{n} ({s})"), na.PM_NA if r.undefined else f"{r.value:.3f}")
    st.dataframe(story.na_table(values, tables.PRIMARY + ("r_n", "gen_nv_above", "max_nv_recall",
                                "degenerate_share", "n_generations"), cfg), hide_index=True, key="thr_table")

    max_n = max(10, max((t.longest_span for t in run.traces), default=0) + 5)
    curves = cached.span_curves(ident, settings, max_n, cfg, run)
    c1, c2 = st.columns(2)
    c1.plotly_chart(charts.span_share_curves(curves, n, floors), key="thr_curves")
    if CAPABILITY in curves:
        pm_curves = {s: pts for s, pts in reading.pm_curves(curves).items() if s not in floors}
        c2.plotly_chart(charts.pm_vs_threshold(pm_curves, story.remaining_counts(curves, values, pm_curves)),
                        key="thr_pm_curve")
    dist = cached.distributions(ident, settings, cfg, run)
    c3, c4 = st.columns(2)
    c3.plotly_chart(charts.distribution({s: d["spans"] for s, d in dist.items()}, "Final span lengths",
                                        "span length (tokens)", log_y=True), key="thr_span_dist")
    c4.plotly_chart(charts.distribution({s: d["nv"] for s, d in dist.items()}, "nv_recall of retrieved documents",
                                        "nv_recall"), key="thr_nv_dist")

    if st.checkbox("Capability-propensity plane with bootstrap intervals", True, key="thr_plane"):
        metric = st.selectbox("Plane metric", tables.PRIMARY + ("r_n",), format_func=lambda m: tables.metric_label(m, cfg),
                              key="thr_plane_metric")
        intervals = {s: cached.setting_intervals(ident, s, cfg, (metric,), run) for s in settings}
        floor = next((intervals[f][metric] for f in floors), None)
        points = reading.plane_points(manifest.run_label(run.manifest), intervals, metric, floors)
        if points:
            st.plotly_chart(charts.capability_propensity(points, tables.metric_label(metric, cfg), floor=floor),
                            key="thr_plane_chart")
        else:
            st.info("The plane needs a prefix setting and a natural setting in the run.")
