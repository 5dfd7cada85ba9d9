"""Explore: completions with their verbatim spans highlighted and linked to training documents."""
import streamlit as st

from app import render, state, widgets
from app.views import explore

st.title("Explore")
with render.page_boundary():
    ident, run = state.current_run()
    rows = explore.example_rows(run.generations, run.traces)
    if not rows:
        st.info("This results folder holds no traced completions yet.")
        st.stop()
    linked = explore.key_from_params(st.query_params.to_dict())
    domains = sorted({r.domain for r in rows if r.domain is not None})
    filt = widgets.explore_filters(run.settings(), domains, max(r.longest_span for r in rows),
                                   initial_setting=linked.setting if linked else None)
    shown = explore.filter_examples(rows, filt)
    st.caption(render.md_literal(f"{len(shown)} of {len(rows)} completions match the filters, longest verbatim span first."))
    if not shown:
        st.info("No completion matches these filters: lower the minimum span or nv_recall, or clear the search.")
        st.stop()
    keys = [r.key for r in shown]
    start = keys.index(linked) if linked in keys else 0
    choice = st.selectbox("Completion", range(len(shown)), start, format_func=lambda i: render.option(explore.example_label(shown[i])),
                          key="ex_pick")
    gen, trace = run.lookup(keys[choice])
    st.query_params.from_dict(explore.params_for(gen.key))
    color_by = widgets.color_by_picker()
    render.legend(color_by)

    if gen.prompt.true_continuation is not None:
        c1, c2, c3 = st.columns(3)
        with c1:
            st.markdown("**Prefix (prompt)**")
            render.plain(gen.prompt.text)
        with c2:
            st.markdown("**The document's true continuation**")
            render.plain(gen.prompt.true_continuation)
            if gen.prompt.source_doc_id is not None:
                render.caption(f"source document: {gen.prompt.source_doc_id}")
        with c3:
            st.markdown("**The model's completion**")
            render.completion(gen.completion, trace.spans, color_by)
    else:
        st.markdown("**Prompt**")
        render.plain(gen.prompt.text)
        st.markdown("**The model's completion** (verbatim spans highlighted; hover for length, count and documents)")
        render.completion(gen.completion, trace.spans, color_by)

    if trace.spans:
        ix = st.selectbox("Span", range(len(trace.spans)), key="ex_span",
                          format_func=lambda i: explore.span_label(i, trace.spans[i]))
        span = trace.spans[ix]
        st.markdown("**Span text** (as core found it; spans that overlap an earlier one are highlighted "
                    "above from where the earlier one ends)")
        render.plain(span.text)
        if span.echo:
            render.caption("prompt echo: this span's text is also in the prompt, so the prompt may be its source "
                           "(see [metrics] count_echo)")
        for d in span.docs:
            render.caption(f"document {d.doc_id} (index {d.doc_ix}), tier {d.tier}, nv_recall {d.nv.recall:.3f}")
            render.window(d)
    with st.expander("All matching completions", expanded=False):
        st.dataframe(explore.examples_frame(shown), hide_index=True, key="ex_table")
