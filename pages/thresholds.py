"""Thresholds and curves: re-score cached traces live; re-trace only for trace-time parameters."""
from dataclasses import replace

import streamlit as st

from app import cached, charts, render, retrace, runner, state, widgets
from app.views import manifest, reading, tables
from core.config import CAPABILITY

st.title("Thresholds and curves")
with render.page_boundary():
    ident, run = state.current_run()
    base = run.manifest.metrics
    retraced = state.retraced()
    with st.sidebar:
        st.header("Scoring thresholds (live)")
        cfg = widgets.metrics_controls(base, max((t.longest_span for t in run.traces), default=0))
        with st.expander("Near-verbatim recall block thresholds"):
            cfg = replace(cfg, nv_blocks=widgets.nv_blocks_controls(base.nv_blocks))
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

    settings = tuple(run.settings())
    values = {s: cached.setting_metrics(ident, s, cfg, run) for s in settings}
    n = cfg.span_threshold
    cols = st.columns(len(settings))
    for col, s in zip(cols, settings):
        col.metric(render.md_literal(f"R_{n} ({s})"), tables.fmt(values[s]["r_n"]))
    pm_point = cached.pm_values(ident, settings, "r_n", cfg, run)
    if pm_point:
        for col, (s, v) in zip(st.columns(len(pm_point)), pm_point.items()):
            col.metric(render.md_literal(f"PM of R_{n} ({s})"), tables.pm_text(v))
    st.dataframe(tables.metric_table(values, tables.PRIMARY + ("r_n", "gen_nv_above", "max_nv_recall",
                                    "degenerate_share", "n_generations"), cfg), hide_index=True, key="thr_table")

    max_n = max(10, max((t.longest_span for t in run.traces), default=0) + 5)
    curves = cached.span_curves(ident, settings, max_n, cfg, run)
    c1, c2 = st.columns(2)
    c1.plotly_chart(charts.span_share_curves(curves, n), key="thr_curves")
    if CAPABILITY in curves:
        pm_curves = reading.pm_curves(curves)
        c2.plotly_chart(charts.pm_vs_threshold(pm_curves), key="thr_pm_curve")
    dist = cached.distributions(ident, settings, cfg, run)
    c3, c4 = st.columns(2)
    c3.plotly_chart(charts.distribution({s: d["spans"] for s, d in dist.items()}, "Final span lengths",
                                        "span length (tokens)"), key="thr_span_dist")
    c4.plotly_chart(charts.distribution({s: d["nv"] for s, d in dist.items()}, "nv_recall of retrieved documents",
                                        "nv_recall"), key="thr_nv_dist")

    if st.checkbox("Capability-propensity plane with bootstrap intervals", True, key="thr_plane"):
        metric = st.selectbox("Plane metric", tables.PRIMARY + ("r_n",), format_func=lambda m: tables.metric_label(m, cfg),
                              key="thr_plane_metric")
        intervals = {s: cached.setting_intervals(ident, s, cfg, (metric,), run) for s in settings}
        points = reading.plane_points(manifest.run_label(run.manifest), intervals, metric)
        if points:
            st.plotly_chart(charts.capability_propensity(points, tables.metric_label(metric, cfg)), key="thr_plane_chart")
        else:
            st.info("The plane needs a prefix setting and a natural setting in the run.")
