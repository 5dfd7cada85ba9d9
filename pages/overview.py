"""Overview: the run in view, headline metrics with intervals, PM, capability vs propensity, planted records."""
import streamlit as st

from app import cached, charts, render, state, views
from core.errors import PropMeError
from core.reports.highlight import escape_markdown
from core.reports.text import prompt_formats, run_notes

st.title("Overview")
with render.page_boundary():
    ident, run = state.current_run()
    cfg = views.metrics_config_of(run.manifest)
    settings = tuple(run.settings())
    label = views.run_label(run.manifest)
    st.subheader(f"Run: {label}")
    with st.expander("Run in view: model, corpus, index, settings, decoding, seeds", expanded=False):
        st.dataframe(views.manifest_rows(run.manifest), hide_index=True, key="ov_manifest")
    formats = prompt_formats(run.manifest)
    if formats:
        render.caption("Prompt format: " + ", ".join(f"{s} {f}" for s, f in formats.items()))
    for note in run_notes(run):
        st.warning(escape_markdown(note))

    values = {s: cached.setting_metrics(ident, s, cfg, run) for s in settings}
    metric = st.selectbox("Headline metric for PM and the plane", views.PRIMARY,
                          format_func=views.LABELS.get, key="ov_metric")
    pm_point = cached.pm_values(values, metric)
    for col, (s, v) in zip(st.columns(max(1, len(pm_point))), pm_point.items()):
        col.metric(f"PM {views.LABELS[metric]} ({s})", f"{v:.3f}")
    st.info(views.plain_reading(values, cfg.span_threshold))
    cols = st.columns(len(settings))
    for col, s in zip(cols, settings):
        col.metric(f"ALS ({s})", views.tokens(values[s]["als"]), help=views.METRICS["als"].description)
    secondary = st.multiselect("Secondary metrics", views.metric_names(values), views.SECONDARY,
                               format_func=lambda m: views.metric_label(m, cfg), key="ov_secondary")
    st.dataframe(views.metric_table(values, ("n_generations", *views.PRIMARY, *secondary), cfg), hide_index=True,
                 key="ov_points")

    st.subheader("With 95% bootstrap intervals")
    intervals = {s: cached.setting_intervals(ident, s, cfg, views.PRIMARY, run) for s in settings}
    st.dataframe(views.interval_table(intervals, views.PRIMARY), hide_index=True, key="ov_intervals")
    pm = cached.pm_intervals(ident, settings, metric, cfg, run)
    c1, c2 = st.columns(2)
    with c1:
        st.plotly_chart(charts.metric_bars({s: intervals[s][metric] for s in settings},
                                           views.LABELS[metric]), key="ov_bars")
    with c2:
        if pm:
            st.plotly_chart(charts.pm_bars(pm, views.LABELS[metric]), key="ov_pm")
        else:
            st.info("PM needs a prefix setting and at least one natural setting in the run.")
    points = views.plane_points(label, intervals, metric)
    if points:
        st.plotly_chart(charts.capability_propensity(points, views.LABELS[metric]), key="ov_plane")

    planted = None
    if run.path:
        try:
            data = cached.planted_extraction(run.path)
            planted = views.planted_table(data) if data else None
        except PropMeError as e:
            st.warning(str(e))  # optional panel: the rest of the overview stays
    if planted is not None:
        st.subheader("Planted records: discoverable extraction by duplication count")
        st.caption("Each planted record is cut just after 'E-mail:'; greedy = the greedy completion reproduces "
                   f"the rest exactly; sampled = share of temperature-1 samples that do; P(rest) = their exact "
                   f"probability ({views.PLANTED_FILE} beside this run, written by python -m demo.planted_extraction).")
        st.plotly_chart(charts.planted_extraction(planted["copies"].tolist(), {
            c: planted[c].tolist() for c in ("greedy rest share", "sampled rest rate", "P(rest)")}), key="ov_planted")
        st.dataframe(planted, hide_index=True, key="ov_planted_table")
