"""Compare: two or more results folders side by side, and PM of each run against a reference run."""
import streamlit as st

from app import cached, charts, paths, render, state
from app.views import manifest, reading, tables

st.title("Compare runs")
with render.page_boundary():
    current = st.session_state.get(state.RUN_PATH, "")
    text = st.text_area("Results folders, one per line (models, checkpoints, decodings)", value=current,
                        key="cmp_paths", height=110)
    folders = [str(paths.confine(line, paths.data_root() if line.strip() != current else None))
               for line in text.splitlines() if line.strip()]
    if len(folders) < 2:
        st.info("Add at least two results folders (one per line) to compare them.")
    runs = {}
    for folder in dict.fromkeys(folders):
        ident = cached.run_id(folder)
        run = cached.load_run(folder, ident)
        runs[f"{manifest.run_label(run.manifest, folder)} ({folder})"] = (ident, run)
    if not runs:
        st.stop()
    metric = st.selectbox("Metric", tables.PRIMARY + ("r_n",), format_func=tables.metric_label, key="cmp_metric")
    values = {label: {s: cached.setting_metrics(ident, s, run.manifest.metrics, run)[metric]
                      for s in run.settings()} for label, (ident, run) in runs.items()}
    st.plotly_chart(charts.compare_bars(values, tables.metric_label(metric)), key="cmp_bars")
    st.dataframe(tables.compare_frame(values), hide_index=True, key="cmp_table")

    points = []
    for label, (ident, run) in runs.items():
        cfg = run.manifest.metrics
        ivs = {s: cached.setting_intervals(ident, s, cfg, (metric,), run) for s in run.settings()}
        points += reading.plane_points(label, ivs, metric)
    if points:
        st.plotly_chart(charts.capability_propensity(points, tables.metric_label(metric)), key="cmp_plane")

    if len(runs) >= 2:
        st.subheader("Model-vs-model PM")
        ref_label = st.selectbox("Reference run (takes the prefix slot of PM)", list(runs), key="cmp_ref",
                                 format_func=render.option)
        ref_ident, ref = runs[ref_label]
        cfg = ref.manifest.metrics
        rows = []
        for label, (ident, run) in runs.items():
            if label == ref_label:
                continue
            for s in run.settings():
                if s in ref.settings():
                    iv = cached.cross_pm(ident, ref_ident, s, metric, cfg, run, ref)
                    rows.append({"run": label, "setting": s, "PM": iv.value, "lo": iv.lo, "hi": iv.hi})
        st.caption("PM = f(run) / (f(run) + f(reference)); 0.5: the run leaks as much as the reference.")
        st.dataframe(tables.rows_frame(rows), hide_index=True, key="cmp_pm")
