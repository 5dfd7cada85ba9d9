"""Compare: runs picked from the results folders under a root, checked for comparability, side by side, with
model-vs-model PM against a reference run only where the runs differ in nothing but the model."""
from pathlib import Path

import streamlit as st

from app import cached, charts, paths, render, state
from app.views import manifest, reading, tables
from core.runs.compare import difference_rows
from core.scoring import registry

st.title("Compare runs")
with render.page_boundary():
    current = st.session_state.get(state.RUN_PATH, "")
    root = paths.data_root()
    st.session_state.setdefault("cmp_root", str(root) if root else str(Path(current).parent) if current else "results")
    typed = st.text_area("Results folders, one per line: a folder holding runs (every results folder under it is "
                         "listed) or a results folder itself", key="cmp_root", height=100)
    catalog = cached.run_catalog("\n".join(str(paths.confine(line, root, what="results folder"))
                                           for line in typed.splitlines() if line.strip()),
                                 str(root) if root else None)
    if catalog.problems:
        with st.expander(render.md_literal(f"{len(catalog.problems)} folder(s) that cannot be read, or look like a "
                                           "run but are not one"), expanded=True):
            for p in catalog.problems:
                st.caption(render.md_literal(p))
    if not catalog.runs:
        st.info("No results folders under this root: choose the folder that holds your runs.")
        st.stop()
    if catalog.truncated:
        st.caption(render.md_literal(f"Only the first {len(catalog.runs)} runs are listed: choose a narrower root."))
    st.dataframe(tables.rows_frame([{"run": e.manifest.label, "model": e.model, "date": e.manifest.created or "",
                                     "settings": e.settings_text(), "prompts": e.prompts_text(), "folder": e.path}
                                    for e in catalog.runs]), hide_index=True, key="cmp_catalog")
    by_path = {e.path: e for e in catalog.runs}
    start = [p for p in by_path if p == str(Path(current).resolve())] if current else []
    chosen = st.multiselect("Runs to compare", list(by_path), start, key="cmp_runs",
                            format_func=lambda p: render.option(f"{by_path[p].manifest.label} | {by_path[p].model} | "
                                                                f"{by_path[p].manifest.created or ''} | {p}"))
    if len(chosen) < 2:
        st.info("Pick at least two runs to compare them.")
        st.stop()
    runs, folder_of = {}, {}
    for folder in chosen:
        ident = cached.run_id(folder)
        run = cached.load_run(folder, ident)
        label = f"{manifest.run_label(run.manifest, folder)} ({folder})"
        runs[label], folder_of[label] = (ident, run), folder

    ref_label = st.selectbox("Reference run (takes the prefix slot of model-vs-model PM)", list(runs), key="cmp_ref",
                             format_func=render.option)
    ref_ident, ref = runs[ref_label]
    checks = {label: cached.run_comparability(ident, ref_ident, (label, ref_label), run, ref)
              for label, (ident, run) in runs.items() if label != ref_label}
    st.subheader("Can these runs be compared?")
    names = {label: f"run {chr(65 + i)}" if i < 26 else f"run {i + 1}" for i, label in enumerate(runs)}
    st.dataframe(tables.rows_frame([{"run": names[label], "name": manifest.run_label(run.manifest, ""),
                                     "folder": folder_of[label]} for label, (_, run) in runs.items()]),
                 hide_index=True, key="cmp_names")  # each folder named once; below, runs go by their letter
    for label, c in checks.items():
        same = " (the same model)" if c.same_model else ""
        pair = f"{names[label]}{same} against the reference ({names[ref_label]})"
        if c.comparable:
            st.success(render.md_literal(f"{pair}: comparable: same index, trace parameters, prompts and decoding."))
        else:
            st.warning(render.md_literal(f"{pair}: NOT comparable: its charts below are marked."))
        rows = difference_rows(c)
        if rows:
            frame = tables.rows_frame(rows).rename(columns={"a": names[label], "b": names[ref_label]})
            st.dataframe(frame, hide_index=True, key=f"cmp_diff_{names[label].replace(' ', '_')}")

    metric = st.selectbox("Metric", tables.PRIMARY + ("r_n",), format_func=registry.label, key="cmp_metric")

    def chart_name(label: str) -> str:  # a run not comparable with the reference is marked in every chart
        ok = label == ref_label or checks[label].comparable
        return f"{names[label]}{' (reference)' if label == ref_label else ''}" + ("" if ok else " (NOT comparable)")

    values = {chart_name(label): {s: cached.setting_metrics(ident, s, run.manifest.metrics, run)[metric]
                                  for s in run.settings()} for label, (ident, run) in runs.items()}
    st.plotly_chart(charts.compare_bars(values, registry.label(metric)), key="cmp_bars")
    st.dataframe(tables.compare_frame(values), hide_index=True, key="cmp_table")
    points = []
    for label, (ident, run) in runs.items():
        ivs = {s: cached.setting_intervals(ident, s, run.manifest.metrics, (metric,), run) for s in run.settings()}
        points += reading.plane_points(chart_name(label), ivs, metric)
    if points:
        st.plotly_chart(charts.capability_propensity(points, registry.label(metric)), key="cmp_plane")

    st.subheader("Model-vs-model PM")
    st.caption("PM = f(run) / (f(run) + f(reference)); 0.5: the run leaks as much as the reference. Only runs that "
               "differ from the reference in nothing but the model are compared.")
    show_all = st.checkbox("Also show PM for runs that are not comparable (marked)", False, key="cmp_show_all")
    cfg = ref.manifest.metrics
    rows = []
    for label, (ident, run) in runs.items():
        if label == ref_label or not (checks[label].comparable or show_all):
            continue
        for s in run.settings():
            if s in ref.settings():
                iv = cached.cross_pm(ident, ref_ident, s, metric, cfg, run, ref)
                rows.append({"run": names[label], "setting": s, "PM": iv.value, "lo": iv.lo, "hi": iv.hi,
                             "comparable": "yes" if checks[label].comparable else checks[label].summary()})
    if rows:
        st.dataframe(tables.rows_frame(rows), hide_index=True, key="cmp_pm")
    else:
        st.info("No run is comparable with the reference: model-vs-model PM is not shown (tick the box above to "
                "see it anyway, marked as not comparable).")
