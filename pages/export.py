"""Export: completions, spans and summaries as CSV/JSON (readable columns, a data dictionary), and the
stakeholder HTML report; all under this session's thresholds (tuned on the Thresholds page)."""
import json

import streamlit as st

from app import cached, render, session, story
from app.views import manifest, tables
from core.reports import csv_safe, exports
from core.scoring import registry
from core.scoring.registry import HEADLINE

st.title("Export")
with render.page_boundary():
    view = session.view()  # the run under this session's thresholds
    ident, run, cfg, tuned, floors = view.ident, view.run, view.cfg, view.tuned, view.floors
    st.caption(render.md_literal(
        ("Thresholds tuned in this session" if tuned else "The run's own thresholds")
        + f" (span threshold N = {cfg.span_threshold}, nv threshold {cfg.nv_threshold:g}) are used and "
        "recorded in every export. Change them on the Thresholds page."))
    traces = view.traces  # nv_recall under this session's block thresholds

    def fname(what: str, ext: str) -> str:  # distinct per table, naming the run
        return exports.download_name(manifest.run_label(run.manifest), what, ext)

    st.subheader("Completions and spans")
    completions = exports.completions_frame(run.generations, traces)
    spans = exports.spans_frame(traces)
    c1, c2, c3 = st.columns(3)
    c1.download_button("Completions as CSV", csv_safe.to_csv(completions), fname("completions", "csv"), "text/csv",
                       key="exp_rec_csv")
    c1.download_button("Completions as JSON", completions.to_json(orient="records", force_ascii=False),
                       fname("completions", "json"), "application/json", key="exp_rec_json")
    c2.download_button("Spans as CSV", csv_safe.to_csv(spans), fname("spans", "csv"), "text/csv", key="exp_spans_csv")
    c2.download_button("Spans as JSON", spans.to_json(orient="records", force_ascii=False), fname("spans", "json"),
                       "application/json", key="exp_spans_json")
    c3.download_button("Data dictionary (CSV)", csv_safe.to_csv(exports.data_dictionary()),
                       fname("completions-spans-data-dictionary", "csv"), "text/csv", key="exp_dict_records")
    st.caption(render.md_literal(
        f"{len(completions):,} completions; {len(spans):,} span rows (one per verbatim span and retrieved "
        "document, with character offsets, document ids, tier and nv_recall)."))

    st.subheader("Summary and HTML report")
    st.caption("Metrics with 95% intervals and PM per natural setting (CSV, JSON), and one self-contained HTML "
               "page for stakeholders: the story first, configuration in the appendix.")
    metric = st.selectbox("Headline metric of the report's charts", tables.PRIMARY, format_func=registry.label,
                          key="exp_metric")
    if st.button("Build the summary and the HTML report", key="exp_build"):
        values, intervals = view.metrics(), view.intervals(tables.PRIMARY)
        pm = {m: view.pm(m) for m in HEADLINE}
        r_n = view.intervals(("r_n",))  # R_N's interval too, like ALS, FMR and NVR
        export_intervals = {s: {**intervals[s], **r_n[s]} for s in intervals}
        by_setting = {s: {m: pm[m][s] for m in HEADLINE if s in pm[m]} for s in pm[HEADLINE[0]]}
        label = manifest.run_label(run.manifest)
        summary = exports.summary_frame(values, export_intervals, by_setting, cfg, floors)
        document = exports.summary_document(label, values, export_intervals, by_setting, cfg,
                                            "tuned in the app" if tuned else "the run's own", floors)
        figs = story.figures(label, values, intervals, pm[metric], metric, floors)
        inp = story.report_input(run, run.path, values, intervals, pm, metric, cfg, tuned, figs,
                                 traces=view.scored)
        st.session_state["exp_report"] = (ident, cfg, metric, cached.html_report(ident, cfg, metric, inp),
                                          summary, document)
    built = st.session_state.get("exp_report")
    if built and built[0] == ident and built[1] == cfg and built[2] == metric:
        _, _, _, report, summary, document = built
        c4, c5, c6 = st.columns(3)
        c4.download_button("Download the HTML report", report, fname("report", "html"), "text/html", key="exp_html")
        c5.download_button("Summary as CSV", csv_safe.to_csv(summary), fname("summary", "csv"), "text/csv",
                           key="exp_sum_csv")
        c5.download_button("Summary as JSON", json.dumps(document, indent=2, ensure_ascii=False), fname("summary", "json"),
                           "application/json", key="exp_sum_json")
        c6.download_button("Data dictionary (CSV)", csv_safe.to_csv(exports.data_dictionary(summary, cfg)),
                           fname("summary-data-dictionary", "csv"), "text/csv", key="exp_dict")
        st.dataframe(summary.astype(str), hide_index=True, key="exp_summary")
    elif built and built[0] == ident:
        st.info("The thresholds or the metric changed since the last build: build again to export them.")
