"""Corpus: which documents leaked in which settings; phrase search and document browsing in the index."""
import streamlit as st

from app import cached, leak_render, leak_views, render, retrace, span_view, state
from app.views import explore, tables
from core.errors import IndexNotBuilt
from core.reports.leaks import doc_hits, doc_text_key, text_ranges

DOC, DOC_LINKED, LEAKS, HITS = "corpus_doc_ix", "corpus_doc_linked", "corpus_leaks", "corpus_hits"


def _browse_row(doc_ixs: list[int]) -> None:
    """A row picked in the table of documents behind spans: browse that document below."""
    rows = st.session_state[LEAKS].selection.rows
    if rows:
        st.session_state[DOC] = int(doc_ixs[rows[0]])


def _tables(run, index, tok, leaks) -> None:
    """The documents behind the spans, the index's size and the phrase search."""
    st.subheader("Training documents behind the verbatim spans")
    st.caption(render.md_literal(f"{len(leaks)} distinct training documents were retrieved for verbatim spans; most reproduced "
               "first (max nv_recall: how much of the document window a completion recalls near-verbatim). "
               "Click a row to browse the document below."))
    st.dataframe(leaks, hide_index=True, key=LEAKS, on_select=lambda: _browse_row(leaks["doc_ix"].tolist()),
                 selection_mode="single-row")

    st.subheader("The corpus index")
    c1, c2 = st.columns(2)
    c1.metric("Documents", f"{index.num_docs:,}")
    c2.metric("Tokens", f"{index.num_tokens:,}")

    phrase = st.text_input("Search a phrase (exact; found at the start of a text and after a space alike)",
                           key="corpus_phrase")
    if phrase:
        found = cached.phrase_search_all(index.fingerprint, str(tok.name_or_path), phrase, 20, index, tok)
        st.metric("Occurrences in the index", f"{found.count:,}")
        render.caption("Searched: " + "; ".join(
            f"{leak_views.variant_label(phrase, v.text)} (“{v.text}”, {len(v.ids)} tokens): {v.count:,}" for v in found.variants))
        hits = found.hits()
        if hits:
            pick = st.selectbox("Occurrence", range(len(hits)), key="corpus_occ",
                                format_func=lambda i: f"document {hits[i][0].doc_id} at token {hits[i][0].start}")
            occ, n_ids = hits[pick]
            ids, off = index.doc_window(occ, n_ids, 200)
            text, start, end = explore.decoded_window(tok, ids, off, n_ids)
            render.window(explore.window_match(occ, text, start, end))



def _browse(ident, run, index, tok, top: int) -> None:
    """The document in view (``DOC``): its text with every traced span found in it highlighted, and the completions
    that reproduced it."""
    st.subheader("Browse a document")
    doc_ix = int(st.number_input("Document index", 0, max(0, top), key=DOC))
    st.query_params["doc"] = str(doc_ix)
    st.session_state[DOC_LINKED] = str(doc_ix)  # the link this page wrote (a fresh one differs)
    meta = index.doc_metadata(doc_ix)
    doc_id = index.doc_id(doc_ix)
    render.caption(f"document id: {doc_id}; {leak_views.metadata_text(meta)}")

    keys = cached.doc_keys(ident, index.fingerprint, run, index)
    mine = keys.get(doc_ix) or doc_text_key(index, doc_ix)
    copies = sorted({ix for ix, k in keys.items() if k == mine} | {doc_ix})
    hits = doc_hits(run.traces, copies)
    needles = [run.lookup(h.key)[1].spans[i].text for h in hits for i in h.span_ixs]
    limit = 6000
    tokens = index.doc_tokens(doc_ix, 0, limit)
    text = tok.decode(tokens)
    ranges = text_ranges(text, needles)
    settings = sorted({h.key.setting for h in hits})
    st.write(render.md_literal(f"Reproduced by {len(hits)} completion{'s' if len(hits) != 1 else ''}"
             + (f" in {', '.join(settings)}" if settings else "") + f"; {len(copies) - 1} identical "
             f"cop{'y' if len(copies) == 2 else 'ies'} of this text in the retrieved documents. "
             f"Every traced span found in it is highlighted ({len(ranges)} regions)."))
    span_view.marked_text(text, ranges, key="corpus_doc_view", title="reproduced by a completion", label="document text")
    if len(tokens) >= limit:
        st.caption(render.md_literal(f"Showing the first {limit:,} tokens of the document."))
    if hits:
        st.markdown("**Completions that reproduced text from this document** (any setting; click one to open it "
                    "in Explore)")
        picked = st.dataframe(leak_views.hits_frame(hits), hide_index=True, key=HITS, on_select="rerun",
                              selection_mode="single-row")
        if picked.selection.rows:
            k = hits[picked.selection.rows[0]].key
            st.switch_page(leak_render.EXPLORE_PAGE, query_params=explore.params_for(k))
        st.page_link(leak_render.SIDE_PAGE, label="See this document's prefix attack beside natural use",
                     query_params={"view": "document", "doc": str(doc_ix)})
    with st.expander("Metadata"):
        st.json(meta)


st.title("Corpus")
with render.page_boundary():
    ident, run = state.current_run()
    try:
        index, tok = retrace.run_index(run)
    except IndexNotBuilt as e:  # nothing here works without the index
        st.info(render.md_literal(e))
        st.stop()
    leaks = tables.leaks_by_doc(run.traces)
    top = index.num_docs - 1
    raw = st.query_params.get("doc")
    linked = leak_views.int_param(st.query_params.to_dict(), "doc")
    fresh = raw is not None and raw != st.session_state.get(DOC_LINKED)
    if fresh and (linked is None or linked > top):  # a deep link that names no document of this index
        st.warning(render.md_literal(f"document {raw!r} not found (the index has documents 0 to {top}): "
                                     "showing the first"))
        st.session_state[DOC] = min(int(leaks["doc_ix"].iloc[0]) if len(leaks) else 0, max(0, top))
    elif fresh:
        st.session_state[DOC] = linked  # a link from another page names this document
    elif DOC not in st.session_state:
        st.session_state[DOC] = min(int(leaks["doc_ix"].iloc[0]) if len(leaks) else 0, max(0, top))
    if fresh:  # a link lands on its document: first on the page, the tables after it
        _browse(ident, run, index, tok, top)
        _tables(run, index, tok, leaks)
    else:
        _tables(run, index, tok, leaks)
        _browse(ident, run, index, tok, top)
