"""Overview: the run in view, headline metrics with intervals, PM, capability vs propensity, planted records."""
import streamlit as st

from app import cached, charts, render, state
from app.views import manifest, planted_records, reading, tables
from core.errors import PropMeError
from core.reports.text import prompt_formats, run_notes

st.title("Overview")
with render.page_boundary():
    ident, run = state.current_run()
    cfg = run.manifest.metrics
    for note in run.manifest.warnings:
        st.warning(render.md_literal(note))
    settings = tuple(run.settings())
    label = manifest.run_label(run.manifest)
    st.subheader(render.md_literal(f"Run: {label}"))
    with st.expander("Run in view: model, corpus, index, settings, decoding, seeds", expanded=False):
        st.dataframe(manifest.manifest_rows(run.manifest), hide_index=True, key="ov_manifest")
    formats = prompt_formats(run.manifest)
    if formats:
        render.caption("Prompt format: " + ", ".join(f"{s} {f}" for s, f in formats.items()))
    for note in run_notes(run):
        st.warning(render.md_literal(note))

    values = {s: cached.setting_metrics(ident, s, cfg, run) for s in settings}
    metric = st.selectbox("Headline metric for PM and the plane", tables.PRIMARY,
                          format_func=tables.metric_label, key="ov_metric")
    pm_point = cached.pm_values(ident, settings, metric, cfg, run)
    for col, (s, v) in zip(st.columns(max(1, len(pm_point))), pm_point.items()):
        col.metric(render.md_literal(f"PM {tables.metric_label(metric)} ({s})"), tables.pm_text(v))
    st.info(render.md_literal(reading.plain_reading(values, cached.pm_values(ident, settings, "nvr", cfg, run),
                                                 cfg.span_threshold)))
    cols = st.columns(len(settings))
    for col, s in zip(cols, settings):
        col.metric(render.md_literal(f"ALS ({s})"), tables.tokens(values[s]["als"]), help=render.md_literal(tables.meaning("als")))
    secondary = st.multiselect("Secondary metrics", tables.metric_names(values), tables.SECONDARY,
                               format_func=lambda m: tables.metric_label(m, cfg), key="ov_secondary")
    st.dataframe(tables.metric_table(values, ("n_generations", *tables.PRIMARY, *secondary), cfg), hide_index=True,
                 key="ov_points")

    st.subheader("With 95% bootstrap intervals")
    intervals = {s: cached.setting_intervals(ident, s, cfg, tables.PRIMARY, run) for s in settings}
    st.dataframe(tables.interval_table(intervals, tables.PRIMARY, cfg), hide_index=True, key="ov_intervals")
    pm = cached.pm_intervals(ident, settings, metric, cfg, run)
    c1, c2 = st.columns(2)
    with c1:
        st.plotly_chart(charts.metric_bars({s: intervals[s][metric] for s in settings},
                                           tables.metric_label(metric)), key="ov_bars")
    with c2:
        if pm:
            st.plotly_chart(charts.pm_bars(pm, tables.metric_label(metric)), key="ov_pm")
        else:
            st.info("PM needs a prefix setting and at least one natural setting in the run.")
    points = reading.plane_points(label, intervals, metric)
    if points:
        st.plotly_chart(charts.capability_propensity(points, tables.metric_label(metric)), key="ov_plane")

    planted = None
    if run.path:
        try:
            data = cached.planted_extraction(run.path)
            planted = planted_records.planted_table(data) if data else None
        except PropMeError as e:
            st.warning(render.md_literal(e))  # optional panel: the rest of the overview stays
    if planted is not None:
        st.subheader("Planted records: discoverable extraction by duplication count")
        st.caption(render.md_literal("Each planted record is cut just after 'E-mail:'; greedy = the greedy completion reproduces "
                   f"the rest exactly; sampled = share of temperature-1 samples that do; P(rest) = their exact "
                   f"probability ({planted_records.PLANTED_FILE} beside this run, written by python -m demo.planted_extraction)."))
        st.plotly_chart(charts.planted_extraction(planted["copies"].tolist(), {
            c: planted[c].tolist() for c in ("greedy rest share", "sampled rest rate", "P(rest)")}), key="ov_planted")
        st.dataframe(planted, hide_index=True, key="ov_planted_table")
