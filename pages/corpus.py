"""Corpus: which documents leaked in which settings; phrase search and document browsing in the index."""
import streamlit as st

from app import cached, render, retrace, state
from app.views import explore, tables
from core.errors import IndexNotBuilt

st.title("Corpus")
with render.page_boundary():
    ident, run = state.current_run()
    st.subheader("Training documents behind the verbatim spans")
    leaks = tables.leaks_by_doc(run.traces)
    st.caption(render.md_literal(f"{len(leaks)} distinct training documents were retrieved for verbatim spans; most reproduced "
               "first (max nv_recall: how much of the document window a completion recalls near-verbatim)."))
    st.dataframe(leaks, hide_index=True, key="corpus_leaks")

    try:
        index, tok = retrace.run_index(run)
    except IndexNotBuilt as e:  # the table above stands; the rest needs the index
        st.info(render.md_literal(e))
        st.stop()
    st.subheader("The corpus index")
    c1, c2 = st.columns(2)
    c1.metric("Documents", f"{index.num_docs:,}")
    c2.metric("Tokens", f"{index.num_tokens:,}")

    phrase = st.text_input("Search a phrase (exact, in index tokens)", key="corpus_phrase")
    if phrase:
        count, occs = cached.phrase_search(index.fingerprint, str(tok.name_or_path), phrase, 20, index, tok)
        st.metric("Occurrences in the index", f"{count:,}")
        if occs:
            n_ids = len(tok(phrase, add_special_tokens=False)["input_ids"])
            pick = st.selectbox("Occurrence", range(len(occs)), key="corpus_occ",
                                format_func=lambda i: render.option(f"document {occs[i].doc_id} at token {occs[i].start}"))
            occ = occs[pick]
            ids, off = index.doc_window(occ, n_ids, 200)
            text, start, end = explore.decoded_window(tok, ids, off, n_ids)
            render.window(explore.window_match(occ, text, start, end))

    st.subheader("Browse a document")
    first = int(leaks["doc_ix"].iloc[0]) if len(leaks) else 0  # start on the most reproduced document
    doc_ix = st.number_input("Document index", 0, max(0, index.num_docs - 1), min(first, max(0, index.num_docs - 1)),
                             key="corpus_doc_ix")
    meta = index.doc_metadata(int(doc_ix))
    doc_id = index.doc_id(int(doc_ix))
    render.caption(f"document id: {doc_id}; duplication count: {meta.get('dup_count', 'unknown')}")
    leaked = leaks[leaks["doc_id"] == doc_id]
    render.caption("Leaked in settings: " + (", ".join(leaked["settings"]) if len(leaked) else "none in this run"))
    render.plain(tok.decode(index.doc_tokens(int(doc_ix), 0, 2000)))
    with st.expander("Metadata"):
        st.json(meta)
