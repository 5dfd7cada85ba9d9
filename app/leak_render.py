"""Drawing the leak views: a span's documents panel and a completion pane (Explore, Side by side, Corpus).

Untrusted text goes through app/render.py (escaped ``st.html``, markdown-escaped captions) only.
"""
from __future__ import annotations

from collections.abc import Callable

import streamlit as st

from app import leak_views, render
from core.records import Generation, Span, TraceResult
from core.reports.leaks import group_windows, trim_window

CORPUS_PAGE = "../pages/corpus.py"  # relative to the entry script, app/streamlit_app.py
EXPLORE_PAGE = "../pages/explore.py"
SIDE_PAGE = "../pages/side_by_side.py"


def documents(span: Span, metadata: Callable[[int], dict] | None, key: str) -> None:
    """The documents behind one span: identical windows grouped, ranked (full match, nv_recall,
    copies); each window cut so its matched region sits at the top, with the document's metadata
    and a link to the whole document on the Corpus page."""
    groups = group_windows(span.docs)
    if not groups:
        st.caption("No document was retrieved for this span (it is too common, or tracing sampled none).")
        return
    st.caption(render.md_literal(f"{len(span.docs)} windows retrieved, {len(groups)} distinct; full matches first, then "
               "nv_recall, then copies. The matched region is highlighted in blue."))
    for gi, g in enumerate(groups):
        with st.container(border=True, key=f"{key}_group_{gi}"):
            render.caption(leak_views.group_heading(g))
            if metadata is not None:
                render.caption(leak_views.metadata_text(metadata(g.doc_ixs[0])))
            render.window(trim_window(g.window))
            st.page_link(CORPUS_PAGE, label=render.md_literal(f"Open the whole document ({g.doc_ids[0]}) on the Corpus page"),
                         query_params={"doc": str(g.doc_ixs[0])})  # the copy named first in the heading


def completion_pane(gen: Generation, trace: TraceResult, color_by: str, show_prompt: bool = True,
                    of_doc: Callable[[int], bool] | None = None, fold_prompt: bool = False) -> None:
    """A completion with its spans highlighted; a prefix prompt with its true continuation above it (folded
    with ``fold_prompt``, so panes side by side start their completions level). ``of_doc``: the document in
    view (a doc_ix predicate): spans that trace to it are highlighted, spans that trace only to other
    documents are outlined, and the caption counts them apart."""
    if show_prompt:
        prefix = gen.prompt.true_continuation is not None
        box = st.expander("Prefix (prompt) and the document's true continuation" if prefix else "Prompt") \
            if fold_prompt else st.container()
        with box:
            if prefix:
                st.markdown("**Prefix (prompt)**")
                render.plain(gen.prompt.text, "prefix (prompt)")
                st.markdown("**The document's true continuation**")
                render.plain(gen.prompt.true_continuation, "the document's true continuation")
            else:
                st.markdown("**Prompt**")
                render.plain(gen.prompt.text, "prompt")
    st.markdown("**The model's completion** (verbatim spans highlighted)")
    mine = leak_views.spans_of_doc(trace.spans, of_doc) if of_doc is not None else None
    other = frozenset(range(len(trace.spans))) - frozenset(mine) if mine is not None else frozenset()
    render.completion(gen.completion, trace.spans, color_by, other=other)
    where = f"{trace.key.setting} / {trace.key.prompt_id} / sample {trace.key.sample_index}: "
    if mine is not None:
        longest = max((trace.spans[i].length for i in mine), default=0)
        render.caption(where + f"{len(mine)} span{'s' if len(mine) != 1 else ''} trace to this document, longest "
                       f"{longest} tokens (highlighted); {len(other)} trace only to other documents (outlined)")
    else:
        render.caption(where + f"{len(trace.spans)} spans, longest {trace.longest_span} tokens, "
                       f"nv_recall {trace.max_nv_recall:.2f}")
    st.page_link(EXPLORE_PAGE, label="Open in Explore", query_params={
        "setting": gen.key.setting, "prompt": gen.key.prompt_id, "sample": str(gen.key.sample_index)})
