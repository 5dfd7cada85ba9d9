"""Side by side: a leaked document's prefix attack beside the natural completions that reproduced it, or any two completions."""
import streamlit as st

from app import cached, leak_render, leak_views, render, retrace, state, widgets
from core.config import CAPABILITY
from core.reports.leaks import best_completion, pair_by_document

VIEWS = {"document": "By leaked document", "pair": "Free pairing"}
VIEW, DOC, WRITTEN = "sbs_view", "sbs_doc", "sbs_written"
MAX_NATURAL = 12  # natural completions drawn at once for one document


def _fresh(params: dict) -> bool:
    """True when the URL's parameters are not the ones this page wrote last (a link was followed)."""
    return params != st.session_state.get(WRITTEN)


st.title("Side by side: attack vs ordinary use")
with render.page_boundary():
    ident, run = state.current_run()
    index = retrace.index_if_here(run)
    params = st.query_params.to_dict()
    fresh = _fresh(params)
    if fresh and params.get("view") in VIEWS:
        st.session_state[VIEW] = params["view"]
    view = st.radio("View", list(VIEWS), format_func=lambda v: render.md_literal((VIEWS.get)(v)), horizontal=True, key=VIEW)
    color_by = widgets.color_by_picker("sbs_color_by")
    render.legend(color_by)  # one legend for both panes
    written: dict[str, str] = {"view": view}

    if view == "document":
        docs = cached.leaked_documents(ident, index.fingerprint if index else None, run, index)
        if not docs:
            st.info("No completion of this run reproduced text from a training document.")
            st.stop()
        keys = cached.doc_keys(ident, index.fingerprint if index else None, run, index)
        labels = {leak_views.doc_label(d): d for d in docs}
        linked = leak_views.int_param(params, "doc")
        target = next((d for d in docs if linked in d.doc_ixs or (keys and keys.get(linked) is not None
                                                                   and keys.get(linked) == keys.get(d.doc_ix))), None)
        if fresh and target is not None:
            st.session_state[DOC] = leak_views.doc_label(target)
        elif st.session_state.get(DOC) not in labels:
            # start on the most leaked document that both an attack and ordinary use reproduced
            both = next((d for d in docs if d.leak(CAPABILITY) and len(d.per_setting) > 1), docs[0])
            st.session_state[DOC] = leak_views.doc_label(both)
        choice = st.selectbox("Leaked document (most leaked first)", list(labels), key=DOC)
        doc = labels[choice]
        written["doc"] = str(doc.doc_ix)
        if index is not None:
            render.caption(f"{doc.doc_id}: {leak_views.metadata_text(index.doc_metadata(doc.doc_ix))}; copies "
                           f"retrieved: {leak_views.ids_text(doc.doc_ids)}")
            st.page_link(leak_render.CORPUS_PAGE, label="Open the whole document on the Corpus page",
                         query_params={"doc": str(doc.doc_ix)})
        same = (lambda ix: keys.get(ix) is not None and keys.get(ix) == keys.get(doc.doc_ix)) if keys else None

        def of_doc(ix: int) -> bool:  # this document or an identical copy: what the Leaked documents table counts
            return ix in doc.doc_ixs or (same is not None and same(ix))

        pairing = pair_by_document(doc, run.generations, run.traces, same)
        render.caption("Spans that trace to this document are highlighted; spans that trace only to other documents "
                       "are outlined (dashed).")
        left, right = st.columns(2, gap="medium")
        with left:
            st.subheader("Prefix attack (capability)")
            leak = doc.leak(CAPABILITY)  # the Leaked documents table's numbers for this document
            render.caption(f"Leaked documents table: {leak.completions} completion(s), longest span {leak.longest_span} "
                           f"tokens, nv_recall {leak.max_nv_recall:.2f}" if leak else
                           "The Leaked documents table counts no prefix completion for this document.")
            if not pairing.attacks:
                st.caption("No prefix prompt of this run was cut from this document or reproduced it.")
            for i, k in enumerate(pairing.attacks[:3]):
                gen, trace = run.lookup(k)
                src = gen.prompt.source_doc_ix
                with st.container(border=True, key=f"sbs_attack_{i}"):
                    if src is not None and of_doc(src):
                        st.caption("The prefix was cut from this document (or an identical copy).")
                    else:
                        render.caption(f"The prefix was cut from another document ({gen.prompt.source_doc_id}); "
                                       "its completion reproduced text from this one.")
                    leak_render.completion_pane(gen, trace, color_by, of_doc=of_doc, fold_prompt=True)
        with right:
            st.subheader("Natural use (propensity)")
            natural = [(s, lk) for s, lk in doc.per_setting if s != CAPABILITY]
            render.caption("Leaked documents table: " + ("; ".join(
                f"{s}: {lk.completions} completion(s), longest span {lk.longest_span} tokens" for s, lk in natural)
                or "no natural completion"))
            for i, h in enumerate(pairing.natural[:MAX_NATURAL]):
                with st.container(border=True, key=f"sbs_natural_{i}"):
                    render.caption(f"{h.key.setting}: a natural prompt reproduced text from this document")
                    leak_render.completion_pane(*run.lookup(h.key), color_by, of_doc=of_doc, fold_prompt=True)
            if len(pairing.natural) > MAX_NATURAL:
                st.caption(render.md_literal(f"The first {MAX_NATURAL} of {len(pairing.natural)} natural completions "
                                             "are shown, longest span first."))
    else:
        by_setting = {s: sorted(run.by_setting(s)[1], key=lambda t: (-t.longest_span, -t.max_nv_recall, t.key))
                      for s in run.settings()}
        defaults = {"left": best_completion(run.traces, natural=False),
                    "right": best_completion(run.traces, natural=True)}
        chosen = {}
        panes = dict(zip(leak_views.SIDES, st.columns(2, gap="medium")))
        for side, col in panes.items():
            with col:
                st.subheader(render.md_literal(side.capitalize()))
                linked = leak_views.pane_key(params, side)
                start = linked if linked is not None and linked.setting in by_setting else defaults[side]
                skey, pkey = f"sbs_{side}_setting", f"sbs_{side}_pick"
                if start is not None and ((fresh and linked is not None) or skey not in st.session_state):
                    st.session_state[skey] = start.setting
                setting = st.selectbox("Setting", run.settings(), key=skey)
                traces = by_setting[setting]
                if not traces:
                    st.caption("This setting holds no traced completion.")
                    continue
                labels = {leak_views.key_label(t.key, t.longest_span, t.max_nv_recall): t.key for t in traces}
                by_key = {k: lb for lb, k in labels.items()}
                if fresh and linked in by_key:
                    st.session_state[pkey] = by_key[linked]
                elif st.session_state.get(pkey) not in labels:
                    st.session_state[pkey] = by_key.get(start, next(iter(labels)))
                pick = st.selectbox("Completion", list(labels), key=pkey)
                chosen[side] = labels[pick]
                with st.container(key=f"sbs_pane_{side}"):
                    leak_render.completion_pane(*run.lookup(chosen[side]), color_by)
        written = leak_views.pane_params(chosen)
    st.query_params.from_dict(written)
    st.session_state[WRITTEN] = written
