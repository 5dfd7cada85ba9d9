"""Export: records and summaries as CSV/JSON, and a self-contained HTML report."""
import json

import streamlit as st

from app import cached, charts, render, state
from app.views import manifest, reading, tables

st.title("Export")
with render.page_boundary():
    ident, run = state.current_run()
    cfg = run.manifest.metrics
    settings = tuple(run.settings())
    records = tables.records_frame(run.generations, run.traces)
    values = {s: cached.setting_metrics(ident, s, cfg, run) for s in settings}
    st.subheader("Records (one row per completion)")
    c1, c2 = st.columns(2)
    c1.download_button("Records as CSV", records.to_csv(index=False), "records.csv", "text/csv", key="exp_rec_csv")
    c2.download_button("Records as JSON", records.to_json(orient="records", force_ascii=False), "records.json",
                       "application/json", key="exp_rec_json")
    st.subheader("Summary (metrics per setting)")
    summary = tables.summary_frame(values)
    c3, c4 = st.columns(2)
    c3.download_button("Summary as CSV", summary.to_csv(index=False), "summary.csv", "text/csv", key="exp_sum_csv")
    c4.download_button("Summary as JSON", json.dumps(values, indent=2, ensure_ascii=False), "summary.json",
                       "application/json", key="exp_sum_json")
    st.dataframe(summary, hide_index=True, key="exp_summary")

    st.subheader("HTML report")
    st.caption("One file with charts, tables and highlighted examples; opens offline in any browser.")
    metric = st.selectbox("Headline metric", tables.PRIMARY, format_func=tables.metric_label, key="exp_metric")
    if st.button("Build the HTML report", key="exp_build"):
        intervals = {s: cached.setting_intervals(ident, s, cfg, tables.PRIMARY, run) for s in settings}
        pm = cached.pm_intervals(ident, settings, metric, cfg, run)
        label = tables.metric_label(metric)
        figures = [charts.metric_bars({s: intervals[s][metric] for s in settings}, label)]
        if pm:
            figures.append(charts.pm_bars(pm, label))
        points = reading.plane_points(manifest.run_label(run.manifest), intervals, metric)
        if points:
            figures.append(charts.capability_propensity(points, label))
        inp = reading.report_input(run, values, intervals, pm, figures, cfg,
                                 cached.pm_values(ident, settings, "nvr", cfg, run))
        st.session_state["exp_report"] = (ident, metric, cached.html_report(ident, cfg, metric, inp))
    built = st.session_state.get("exp_report")
    if built and built[0] == ident and built[1] == metric:
        st.download_button("Download the HTML report", built[2], "propme-report.html", "text/html", key="exp_html")
