"""Overview: the story first (can it leak, does it, PM in words, striking examples), then the details.

Nothing heavy on the first screen: the tables and plotly charts sit in lazy sections (app/widgets.py
``lazy_expander``, closed until clicked; their bodies run only when open), since a new browser tab pays
~1.5 s to load plotly's frontend for the first chart it receives (issue 16).
"""
from pathlib import Path

import streamlit as st

from app import cached, charts, render, session, state, story, widgets
from app.views import explore, manifest, planted_records, tables
from core.errors import PropMeError
from core.reports import floor_text, na
from core.reports import story as story_legend
from core.reports.story import GLOSSARY, striking
from core.reports.text import prompt_formats, run_notes
from core.scoring import registry

EXPLORE = Path(__file__).resolve().parent / "explore.py"  # the Page st.navigation lists (app/streamlit_app.py)
EXCERPT = 280  # characters of a striking span shown here (Explore shows it all)

st.title("Overview")
with render.page_boundary():
    current = session.view()  # the run under this session's thresholds (tuned on the Thresholds page)
    ident, run, cfg, settings, floors = current.ident, current.run, current.cfg, current.settings, current.floors
    for note in run.manifest.warnings:
        st.warning(render.md_literal(note))
    label = manifest.run_label(run.manifest)
    st.markdown("**Model:** " + render.md_literal(story.badge(run.manifest, run.path)) + " · run *"
                + render.md_literal(label) + "*")

    # the story and the details below depend on the session's thresholds (tuned on the Thresholds page)
    if current.tuned:
        base = state.run_metrics_config(run)
        st.caption(render.md_literal(
            f"Thresholds tuned in this session (span threshold N = {cfg.span_threshold}, run: "
            f"{base.span_threshold}; nv threshold {cfg.nv_threshold:g}, run: {base.nv_threshold:g}). "
            "Reset them on the Thresholds page."))
    values = current.metrics()
    metric = st.session_state.get("ov_metric", "als")  # the Details picker below; ALS until it is changed
    metric = metric if metric in tables.PRIMARY else "als"
    floor_hi = (current.intervals(("als",), floors[:1])[floors[0]]["als"].hi if floors and floors[0] in values else None)
    # the verdicts and tiles first, from the metric values alone (summary.json's, no bootstrap): numbers on
    # the first paint; the PM sentence (its interval may need a bootstrap) follows below them
    view = story.story_view(values, cfg.span_threshold, floors, {}, metric, floor_hi)
    legend = story_legend.legend(settings, floors, cfg, metric)
    st.caption("How to read this page — " + " · ".join(f"**{render.md_literal(t)}**: {render.md_literal(m)}"
                                                       for t, m in legend))

    c1, c2 = st.columns(2)
    for col, (question, text, h) in zip((c1, c2), view.answers()):
        with col, st.container(border=True):
            st.subheader(render.md_literal(question))
            st.markdown(render.md_literal(text))
            # short labels: the box's question and answer name the setting; their meaning is one caption
            # below (a help icon on a tile costs a first visit ~0.3 s of icon font and tooltip code)
            t1, t2, t3 = st.columns(3)
            t1.metric(render.md_literal(f"≥ {h.threshold} tokens"), f"{h.share:.0%}")
            t2.metric("Longest span", f"{h.longest}")
            t3.metric(render.md_literal(f"Full matches of {h.n}"), f"{h.full}")
    if view.answers():
        n = view.answers()[0][2].threshold
        st.caption(render.md_literal(
            f"≥ {n} tokens: share of completions holding a verbatim span of at least {n} tokens (R_N; N is set on "
            "the Thresholds page). Longest span: the longest verbatim span, in tokens. Full matches: completions "
            "found whole, word for word, in a training document."))
    if not view.answers():
        st.info("This run has neither a prefix nor a natural setting to answer the two questions.")
    pm = current.pm(metric)
    view = story.story_view(values, cfg.span_threshold, floors, pm, metric, floor_hi)
    for sentence in view.sentences():
        st.info(render.md_literal(sentence))
    floor_note = floor_text.floor_description(run.manifest, floors)
    if floor_note:
        st.caption(render.md_literal("Chance floor — " + floor_note))
    elif view.does:
        st.caption("No chance floor in this run: add a setting of kind 'floor' (texts known not to be in the "
                   "corpus), or build the index with held-out documents (the default for new indexes), to see "
                   "what ordinary text reaches by chance.")

    st.subheader("The most striking example of each setting")
    best = striking(current.scored)
    shown = [s for s in settings if s in best]
    if not shown:
        st.info("No completion of this run holds a verbatim span.")
    for col, s in zip(st.columns(max(1, len(shown))), shown):
        gen, trace = run.lookup(best[s])
        longest = max(trace.spans, key=lambda sp: sp.length)
        with col, st.container(border=True):
            st.markdown("**" + render.md_literal(s) + "**" + render.md_literal(
                f": longest verbatim span {longest.length} tokens"
                + (", found whole in a training document" if trace.full_match else "")))
            render.plain(longest.text if len(longest.text) <= EXCERPT else longest.text[:EXCERPT] + " …", "longest verbatim span")
            st.page_link(str(EXPLORE), label="Open in Explore", icon="🔎", query_params=explore.params_for(best[s]))
    with st.expander("Glossary: prefix, generic, specific, floor, ALS, FMR, NVR, PM"):
        for term, meaning in GLOSSARY:
            st.markdown("**" + render.md_literal(term) + "**: " + render.md_literal(meaning))

    st.header("Details")  # light parts shown; heavy ones (tables, charts) run only in an opened section
    run_box = widgets.lazy_expander("Run in view: model, corpus, index, settings, decoding, seeds", "ov_open_run")
    if run_box.open:
        with run_box:
            st.dataframe(manifest.manifest_rows(run.manifest), hide_index=True, key="ov_manifest")
    formats = prompt_formats(run.manifest)
    if formats:
        render.caption("Prompt format: " + ", ".join(f"{s} {f}" for s, f in formats.items()))
    if floor_note:  # how the chance floor was made (also in the manifest's floor record)
        render.caption("Chance floor — " + floor_note)
    for note in run_notes(run):
        st.warning(render.md_literal(note))
    metric = st.selectbox("Metric for PM and the charts", tables.PRIMARY, format_func=registry.label,
                          key="ov_metric")
    for col, (s, r) in zip(st.columns(max(1, len(pm))), pm.items()):
        col.metric(render.md_literal(f"{registry.pm_label(metric)} ({s})"),
                   na.PM_NA if r.undefined else f"{r.value:.3f}")
    for col, s in zip(st.columns(len(settings)), settings):
        col.metric(render.md_literal(f"ALS ({s})"), tables.tokens(values[s]["als"]))
    st.caption(render.md_literal("PM: 0.5 = ordinary use leaks as much as the attack; n/a when both settings "
                                 f"score 0. ALS: {registry.help('als')}"))

    def intervals():
        return current.intervals(tables.PRIMARY)

    every = widgets.lazy_expander("Every metric, with 95% bootstrap intervals", "ov_open_metrics")
    if every.open:
        with every:
            secondary = st.multiselect("More metrics", tables.metric_names(values), tables.SECONDARY,
                                       format_func=lambda m: registry.label(m, cfg), key="ov_secondary")
            st.dataframe(story.na_table(values, ("n_generations", *tables.PRIMARY, *secondary), cfg),
                         hide_index=True, key="ov_points")
            st.subheader("With 95% bootstrap intervals")
            st.dataframe(story.interval_table(intervals(), tables.PRIMARY, cfg), hide_index=True, key="ov_intervals")
    charts_box = widgets.lazy_expander(f"Charts: {registry.label(metric)} per setting, PM and the "
                                       "capability-propensity plane", "ov_open_charts")
    if charts_box.open:
        with charts_box:
            iv = intervals()
            figs = cached.figure("ov_story", (ident, settings, cfg, metric, label, floors),  # what they are drawn from
                                 lambda: story.figures(label, values, iv, pm, metric, floors))
            c1, c2 = st.columns(2)
            c1.plotly_chart(figs[0], key="ov_bars")
            if pm:
                c2.plotly_chart(figs[1], key="ov_pm")
            else:
                c2.info("PM needs a prefix setting and at least one natural setting in the run.")
            if len(figs) > 1 + bool(pm):
                st.plotly_chart(figs[-1], key="ov_plane")

    planted = None
    if run.path:
        try:
            data = cached.planted_extraction(run.path)
            planted = planted_records.planted_table(data) if data else None
        except PropMeError as e:
            st.warning(render.md_literal(e))  # optional panel: the rest of the overview stays
    if planted is not None:
        box = widgets.lazy_expander("Planted records: discoverable extraction by duplication count", "ov_open_planted")
        if box.open:
            with box:
                st.caption(render.md_literal(
                    "Each planted record is cut just after 'E-mail:'; greedy = the greedy completion reproduces "
                    "the rest exactly; sampled = share of temperature-1 samples that do; P(rest) = their exact "
                    f"probability ({planted_records.PLANTED_FILE} beside this run, written by python -m "
                    "demo.planted_extraction)."))
                st.plotly_chart(cached.figure("ov_planted", (data,), lambda: charts.planted_extraction(
                    planted["copies"].tolist(),
                    {c: planted[c].tolist() for c in ("greedy rest share", "sampled rest rate", "P(rest)")})),
                    key="ov_planted")
                st.dataframe(planted, hide_index=True, key="ov_planted_table")
