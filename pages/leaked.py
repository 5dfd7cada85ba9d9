"""Leaked documents: training documents ranked by how much each setting reproduced of them; a row opens the side-by-side view."""
import streamlit as st

from app import cached, leak_render, leak_views, render, retrace, state
from core.reports.leaks import rank_for

TABLE = "leaked_table"

st.title("Leaked documents")
with render.page_boundary():
    ident, run = state.current_run()
    index = retrace.index_if_here(run)
    if index is None:
        st.caption("The run's corpus index is not on this machine: identical copies of a text are listed apart.")
    docs = cached.leaked_documents(ident, index.fingerprint if index else None, run, index)
    if not docs:
        st.info("No completion of this run reproduced text from a training document.")
        st.stop()
    settings = run.settings()
    by = st.selectbox("Rank by", ["all settings"] + list(settings), key="leaked_rank_by",
                      help="All settings: longest span in any setting, then max nv_recall, then completions. "
                           "A setting: only the documents it reproduced, ranked by that setting alone.")
    ranked = rank_for(docs, None if by == "all settings" else by)
    natural = [s for s in settings if s != "prefix"]
    both = sum(1 for d in ranked if d.leak("prefix") and any(d.leak(s) for s in natural))
    st.caption(render.md_literal(f"{len(ranked)} training documents (identical copies counted once) had text reproduced"
               f"{'' if by == 'all settings' else ' by ' + by}; {both} of them by the prefix attack and by "
               "ordinary use alike. Click a row to see its prefix attack beside the natural completions."))
    frame = leak_views.leaked_frame(ranked, settings)
    picked = st.dataframe(frame, hide_index=True, key=TABLE, on_select="rerun", selection_mode="single-row")
    if picked.selection.rows:
        d = ranked[picked.selection.rows[0]]
        st.switch_page(leak_render.SIDE_PAGE, query_params={"view": "document", "doc": str(d.doc_ix)})
