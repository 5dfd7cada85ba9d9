"""Explore: completions with their verbatim spans highlighted; click a span to see the training documents it came from."""
import streamlit as st

from app import cached, leak_render, leak_views, render, retrace, session, span_view, state, widgets
from app.views import explore
from core.errors import PropMeError
from core.scoring import registry

PICK, SPAN, SPAN_FOR, VIEW, LINKED = "ex_pick", "ex_span", "ex_span_for", "ex_completion_view", "ex_linked"


def _on_span_click() -> None:
    ix = span_view.clicked(VIEW)
    if ix is not None:
        st.session_state[SPAN] = ix


@st.fragment
def _explore(ident: str, run) -> None:
    """Everything that follows the filters, the picked completion and the clicked span: a change to any
    of them reruns this fragment only (its sidebar filters included), not the app's sidebar and page."""
    with render.page_boundary():
        rows = cached.example_rows(ident, run)
        if not rows:
            st.info("This results folder holds no traced completions yet.")
            st.stop()
        linked = explore.key_from_params(st.query_params.to_dict())
        domains = sorted({r.domain for r in rows if r.domain is not None})
        filt = widgets.explore_filters(run.settings(), domains, max(r.longest_span for r in rows),
                                       initial_setting=linked.setting if linked else None)
        shown = explore.filter_examples(rows, filt)
        view = session.of(ident, run)  # the run under this session's thresholds (tuned on the Thresholds page)
        cfg, keys = view.cfg, {r.key for r in shown}
        reach = sum(registry.holds("r_n", t, cfg) for t in view.scored if t.key in keys)
        st.caption(render.md_literal(f"{len(shown)} of {len(rows)} completions match the filters, longest verbatim "
                                     f"span first; {reach} of them hold a verbatim span of at least N = {cfg.span_threshold} tokens "
                                     "(R_N's threshold, set on the Thresholds page)."))
        if not shown:
            st.info("No completion matches these filters: lower the minimum span or nv_recall, or clear the search.")
            st.stop()
        # Options are the labels themselves (not positions), and the choice is set before the widget is
        # drawn whenever it is not among them, so the label always names the completion shown below.
        labels = {explore.example_label(r): r.key for r in shown}
        by_key = {k: lb for lb, k in labels.items()}
        fresh_link = linked is not None and linked != st.session_state.get(LINKED)  # not the one this page wrote
        if fresh_link and linked not in by_key:  # say so, never show a default silently
            missing = ("not found in this run" if linked not in {r.key for r in rows}
                       else "hidden by the filters")
            st.warning(render.md_literal(f"completion {linked.setting} / {linked.prompt_id} / sample "
                                         f"{linked.sample_index} {missing}: showing the first"))
        if fresh_link and linked in by_key:
            st.session_state[PICK] = by_key[linked]
        elif st.session_state.get(PICK) not in labels:
            st.session_state[PICK] = by_key.get(linked, next(iter(labels)))
        choice = st.selectbox("Completion", list(labels), key=PICK)
        gen, trace = run.lookup(labels[choice])
        st.query_params.from_dict(explore.params_for(gen.key))
        st.session_state[LINKED] = gen.key
        color_by = "count" if st.session_state.get("ex_color_by") == "corpus count" else "length"  # drawn below

        left, right = st.columns([3, 2], gap="medium")
        if trace.spans and (st.session_state.get(SPAN_FOR) != gen.key
                            or not 0 <= st.session_state.get(SPAN, -1) < len(trace.spans)):
            st.session_state[SPAN] = leak_views.longest_ix(trace.spans)  # a new completion: its longest span
        st.session_state[SPAN_FOR] = gen.key
        with right:
            st.markdown("**Documents behind the selected span**")
            if trace.spans:
                ix = st.selectbox("Span (or click one in the completion)", range(len(trace.spans)), key=SPAN,
                                  format_func=lambda i: explore.span_label(i, trace.spans[i]))
                span = trace.spans[ix]
                try:
                    index, _tok = retrace.run_index(run)
                    metadata = index.doc_metadata
                except PropMeError as e:
                    metadata = None
                    render.caption(f"Document metadata needs the run's corpus index: {e}")
                with st.expander("Span text (as core found it)"):
                    render.plain(span.text, "span text")
                leak_render.documents(span, metadata, key="ex_docs")
            else:
                ix = -1
                st.caption("This completion holds no verbatim span.")
        with left:
            # the completion first (its spans on the first screen); the prompt folds above it
            prefix = gen.prompt.true_continuation is not None
            with st.expander("Prefix (prompt) and the document's true continuation" if prefix else "Prompt",
                             key="ex_prompt_box"):
                if prefix:
                    c1, c2 = st.columns(2)
                    with c1:
                        st.markdown("**Prefix (prompt)**")
                        render.plain(gen.prompt.text, "prefix (prompt)")
                    with c2:
                        st.markdown("**The document's true continuation**")
                        render.plain(gen.prompt.true_continuation, "the document's true continuation")
                        if gen.prompt.source_doc_id is not None:
                            render.caption(f"source document: {gen.prompt.source_doc_id}")
                else:
                    render.plain(gen.prompt.text, "prompt")
            st.markdown("**The model's completion**: click a highlighted span (or Tab to it and press Enter) "
                        "to see its documents")
            span_view.completion(gen.completion, trace.spans, ix, VIEW, color_by, on_select=_on_span_click)
            widgets.color_by_picker()
            render.legend(color_by)

        table = widgets.lazy_expander("All matching completions", "ex_open_table")  # a table only when opened
        if table.open:
            with table:
                st.dataframe(explore.examples_frame(shown), hide_index=True, key="ex_table")


st.title("Explore")
with render.page_boundary():
    _explore(*state.current_run())
