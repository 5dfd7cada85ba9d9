"""Side by side (issue 23, item 3): the spans a pane highlights as tracing to the document in view are the ones
the Leaked documents table counts for it, so the pane's longest span per setting equals the table's; spans
that trace only to other documents are drawn apart (outlined, class propme-other-doc)."""
from __future__ import annotations

from app.leak_views import spans_of_doc
from core.reports import highlight
from core.reports.leaks import leaked_documents
from tests.fixtures_app import make_run
from tests.test_render import parse


def test_pane_numbers_per_setting_agree_with_the_leaked_documents_table():
    run = make_run(seed=11, n_per_setting=8, hostile=False)
    docs = leaked_documents(run.traces, run.settings())
    assert docs
    for doc in docs:
        for setting, leak in doc.per_setting:
            of_doc = doc.doc_ixs.__contains__
            per_completion = [(len(ix), max(t.spans[i].length for i in ix)) for t in run.by_setting(setting)[1]
                              if (ix := spans_of_doc(t.spans, of_doc))]
            assert len(per_completion) == leak.completions
            assert max(longest for _, longest in per_completion) == leak.longest_span


def test_spans_of_other_documents_are_outlined_not_highlighted():
    run = make_run(seed=11, n_per_setting=8, hostile=False)
    trace = max(run.traces, key=lambda t: len({d.doc_ix for s in t.spans for d in s.docs}))
    doc_ix = trace.spans[0].docs[0].doc_ix
    mine = spans_of_doc(trace.spans, lambda ix: ix == doc_ix)
    other = frozenset(range(len(trace.spans))) - frozenset(mine)
    gen, _ = run.lookup(trace.key)
    c = parse(highlight.highlight_html(gen.completion, trace.spans, other=other))
    classes = {int(a["data-span-ix"]): a["class"] for t, a in c.tags if t == "mark"}
    assert all((highlight.OTHER_CLASS in cls) == (ix in other) for ix, cls in classes.items())
    assert 0 in classes and highlight.OTHER_CLASS not in classes[0]
