"""Following a leak (core/reports/leaks.py, core/index/phrase.py, app/span_view.py pieces): each
pure function against a brute-force answer computed another way, on random traces and on the demo."""
from __future__ import annotations

import random

import pytest

from app import leak_views, span_view
from core.index.phrase import phrase_variants, search_phrase
from core.records import MATCH_TIERS, DocMatch, Generation, GenKey, NVResult, Prompt, Span, TraceResult
from core.reports import leaks
from tests.test_render import expected_marks, visible

SETTINGS = ("prefix", "generic", "specific")
WINDOWS = ["alpha beta gamma", "delta epsilon", "zeta eta theta iota", "kappa lambda"]


def _doc(rng: random.Random, doc_ix: int) -> DocMatch:
    text = WINDOWS[doc_ix % len(WINDOWS)]  # copies of a text share doc_ix modulo 4
    s = rng.randrange(len(text))
    return DocMatch(doc_ix, f"d{doc_ix}", rng.choice(MATCH_TIERS), text, s, rng.randrange(s, len(text) + 1),
                    NVResult(round(rng.random(), 2), 1, 2, 2))


def _traces(seed: int, n: int = 40) -> list[TraceResult]:
    rng = random.Random(seed)
    out = []
    for i in range(n):
        spans = []
        for j in range(rng.randrange(0, 4)):
            start = rng.randrange(0, 50)
            spans.append(Span(start, start + rng.randrange(1, 60), f"s{j}", j, j + 1, 1,
                              tuple(_doc(rng, rng.randrange(12)) for _ in range(rng.randrange(0, 4)))))
        out.append(TraceResult(GenKey(SETTINGS[i % 3], f"p{i}", 0), "c", 60, tuple(spans)))
    return out


@pytest.mark.parametrize("seed", range(8))
def test_group_windows_partitions_identical_windows_and_ranks_them(seed):
    rng = random.Random(seed)
    docs = [_doc(rng, rng.randrange(12)) for _ in range(30)]
    groups = leaks.group_windows(docs)
    # brute force: every (window, region) once, with the set of documents showing it
    expected = {}
    for d in docs:
        expected.setdefault((d.window_text, d.match_char_start, d.match_char_end), set()).add(d.doc_ix)
    got = {(g.window.window_text, g.window.match_char_start, g.window.match_char_end): set(g.doc_ixs) for g in groups}
    assert got == expected and all(len(g.doc_ixs) == len(set(g.doc_ixs)) for g in groups)
    for g in groups:
        same = [d for d in docs if d.doc_ix in g.doc_ixs and d.window_text == g.window.window_text
                and (d.match_char_start, d.match_char_end) == (g.window.match_char_start, g.window.match_char_end)]
        assert g.nv_recall == max(d.nv.recall for d in same)
        assert g.tier == MATCH_TIERS[min(MATCH_TIERS.index(d.tier) for d in same)]
        assert g.doc_ids == tuple(f"d{ix}" for ix in sorted(g.doc_ixs))
    keys = [(MATCH_TIERS.index(g.tier), -g.nv_recall, -len(g.doc_ixs)) for g in groups]
    assert keys == sorted(keys)  # full match first, then nv_recall, then copies


@pytest.mark.parametrize("seed", range(5))
def test_trim_window_keeps_the_match_near_the_top(seed):
    rng = random.Random(seed)
    text = "".join(rng.choice("ab \n") for _ in range(rng.randrange(1, 3000)))
    s = rng.randrange(len(text))
    e = rng.randrange(s, len(text) + 1)
    d = DocMatch(0, "d", "partial", text, s, e, NVResult(0, 0, 0, 0))
    t = leaks.trim_window(d, before=100, after=50)
    assert t.window_text[t.match_char_start:t.match_char_end] == text[s:e]
    assert t.match_char_start <= 102 and len(t.window_text) <= (e - s) + 100 + 50 + 4
    assert t.window_text.startswith("… ") == (s > 100) and t.window_text.endswith(" …") == (e + 50 < len(text))


@pytest.mark.parametrize("seed", range(6))
def test_doc_hits_match_a_scan_of_every_span(seed):
    traces = _traces(seed)
    wanted = {1, 5}
    hits = leaks.doc_hits(traces, wanted)
    brute = {}
    for t in traces:
        for i, s in enumerate(t.spans):
            for d in s.docs:
                if d.doc_ix in wanted:
                    h = brute.setdefault(t.key, {"ixs": set(), "longest": 0, "nv": 0.0})
                    h["ixs"].add(i)
                    h["longest"] = max(h["longest"], s.length)
                    h["nv"] = max(h["nv"], d.nv.recall)
    assert {h.key for h in hits} == set(brute)
    for h in hits:
        assert set(h.span_ixs) == brute[h.key]["ixs"]
        assert (h.longest_span, h.max_nv_recall) == (brute[h.key]["longest"], brute[h.key]["nv"])
    assert [(-h.longest_span, -h.max_nv_recall) for h in hits] == sorted((-h.longest_span, -h.max_nv_recall)
                                                                          for h in hits)


@pytest.mark.parametrize("seed", range(6))
def test_leaked_documents_count_like_a_brute_force_scan(seed):
    traces = _traces(seed)
    text_of = lambda ix: ix % len(WINDOWS)
    docs = leaks.leaked_documents(traces, SETTINGS, text_of)
    for d in docs:
        assert len({text_of(ix) for ix in d.doc_ixs}) == 1
        for setting in SETTINGS:
            mine = [(t, s, doc) for t in traces if t.key.setting == setting for s in t.spans for doc in s.docs
                    if text_of(doc.doc_ix) == text_of(d.doc_ix)]
            leak = d.leak(setting)
            if not mine:
                assert leak is None
                continue
            assert leak.completions == len({t.key for t, _, _ in mine})
            assert leak.longest_span == max(s.length for _, s, _ in mine)
            assert leak.max_nv_recall == max(doc.nv.recall for _, _, doc in mine)
    retrieved = {text_of(doc.doc_ix) for t in traces for doc in t.docs}
    assert sorted(text_of(d.doc_ix) for d in docs) == sorted(retrieved)
    order = [(-d.longest_span, -d.max_nv_recall, -d.completions) for d in docs]
    assert order == sorted(order)
    for s in SETTINGS:  # ranked by one setting: only its documents, by its own numbers
        ranked = leaks.rank_for(docs, s)
        assert {d.doc_ix for d in ranked} == {d.doc_ix for d in docs if d.leak(s)}
        keys = [(-d.leak(s).longest_span, -d.leak(s).max_nv_recall) for d in ranked]
        assert keys == sorted(keys)


def test_pair_by_document_puts_the_documents_attack_beside_natural_use():
    traces = _traces(3, 60)
    gens = [Generation(t.key, Prompt(t.key.setting, t.key.prompt_id, "x", source_doc_ix=(i % 12)
                                     if t.key.setting == "prefix" else None), "c") for i, t in enumerate(traces)]
    text_of = lambda ix: ix % len(WINDOWS)
    docs = leaks.leaked_documents(traces, SETTINGS, text_of)
    for doc in docs:
        same = lambda ix, d=doc: text_of(ix) == text_of(d.doc_ix)
        p = leaks.pair_by_document(doc, gens, traces, same)
        sources = {g.key for g in gens if g.prompt.source_doc_ix is not None and same(g.prompt.source_doc_ix)}
        assert set(p.attacks[:len(sources)]) == sources and all(k.setting == "prefix" for k in p.attacks)
        nat = {t.key for t in traces if t.key.setting != "prefix"
               and any(d.doc_ix in doc.doc_ixs for d in t.docs)}
        assert {h.key for h in p.natural} == nat


@pytest.mark.parametrize("seed", range(4))
def test_best_completion_is_the_longest_span_of_its_kind(seed):
    traces = _traces(seed)
    for natural in (False, True):
        pool = [t for t in traces if (t.key.setting != "prefix") == natural]
        best = leaks.best_completion(traces, natural)
        top = max(t.longest_span for t in pool)
        chosen = next(t for t in traces if t.key == best)
        assert chosen.longest_span == top and (chosen.key.setting != "prefix") == natural
    assert leaks.best_completion([t for t in traces if t.key.setting == "prefix"], natural=True) is None


@pytest.mark.parametrize("seed", range(10))
def test_text_ranges_cover_exactly_the_characters_of_every_occurrence(seed):
    rng = random.Random(seed)
    text = "".join(rng.choice("abc ") for _ in range(200))
    needles = ["".join(rng.choice("abc ") for _ in range(rng.randrange(0, 4))) for _ in range(5)]
    covered = [False] * len(text)
    for n in needles:
        for i in range(len(text) - len(n) + 1):
            if n and text[i:i + len(n)] == n:
                covered[i:i + len(n)] = [True] * len(n)
    runs = []
    for i, c in enumerate(covered):
        if c and (i == 0 or not covered[i - 1]):
            runs.append([i, i + 1])
        elif c:
            runs[-1][1] = i + 1
    assert leaks.text_ranges(text, needles) == [tuple(r) for r in runs]


@pytest.mark.parametrize("seed", range(6))
def test_span_view_pieces_draw_the_text_and_marks_as_highlight_html_does(seed):
    rng = random.Random(seed)
    text = "".join(rng.choice(["a", "b", " ", "\u202e", "\u200b", "<", "\n"]) for _ in range(120))
    spans = []
    for _ in range(rng.randrange(0, 6)):
        s = rng.randrange(len(text))
        e = rng.randrange(s, len(text) + 1)
        spans.append(Span(0, e - s + 1, text[s:e], s, e, rng.randrange(1, 200), echo=rng.random() < 0.5))
    pieces = span_view.span_pieces(text, spans, rng.choice(["length", "count"]))
    assert all(p["echo"] == spans[p["ix"]].echo for p in pieces if p["ix"] >= 0)  # prompt echo drawn apart
    assert "".join(r[0] for p in pieces for r in p["runs"]) == visible(text)
    marks = [(p["ix"], "".join(r[0] for r in p["runs"])) for p in pieces if p["ix"] >= 0]
    assert marks == [(ix, visible(t)) for ix, t in expected_marks(text, spans)]
    ctl = [r[0] for p in pieces for r in p["runs"] if r[1]]
    assert ctl == [f"[U+{ord(c):04X}]" for c in text if c in "\u202e\u200b"]


def test_longest_ix_and_deep_link_params_round_trip():
    spans = [Span(0, 3, "a", 0, 1, 1), Span(3, 10, "b", 1, 2, 1), Span(10, 17, "c", 2, 3, 1)]
    assert leak_views.longest_ix(spans) == 1
    keys = {"left": GenKey("prefix", "p/1 & x", 2), "right": GenKey("generic", "g", 0)}
    params = leak_views.pane_params(keys)
    assert {s: leak_views.pane_key(params, s) for s in leak_views.SIDES} == keys


def test_phrase_variants_add_or_drop_one_leading_space():
    assert phrase_variants("GNU General") == ["GNU General", " GNU General"]
    assert phrase_variants(" drive") == [" drive", "drive"]
    assert phrase_variants("") == [] and phrase_variants("   ") == []


@pytest.fixture(scope="module")
def demo_index():
    from core.index.tokenizer import load_tokenizer
    from core.runs.demo import demo_model_dir, ensure_demo_index

    return ensure_demo_index(), load_tokenizer(str(demo_model_dir()))


@pytest.mark.parametrize("phrase", ["GNU General Public License", "drive specifier", " drive specifier"])
def test_a_mid_text_phrase_is_found_and_counted_like_a_token_scan(demo_index, phrase):
    index, tok = demo_index
    docs = [index.doc_tokens(i) for i in range(index.num_docs)]
    result = search_phrase(index, tok, phrase, max_docs=5)
    brute = 0
    for v in result.variants:
        ids = list(v.ids)
        n = sum(1 for d in docs for i in range(len(d) - len(ids) + 1) if d[i:i + len(ids)] == ids)
        assert v.count == n
        brute += n
    assert result.count == brute > 0  # "GNU General Public License" alone (as typed) occurs 0 times
    assert {v.text for v in result.variants} == set(phrase_variants(phrase))
    for occ, n_ids in result.hits():  # every occurrence shown is the phrase, spelled one way or the other
        text = tok.decode(index.doc_tokens(occ.doc_ix, occ.start, occ.start + n_ids))
        assert text.strip() == phrase.strip()


def test_span_view_script_sets_text_only_with_textContent():
    """The component's script is the only code drawing completion text: no HTML parsing of data."""
    js = span_view._JS
    assert "innerHTML" not in js and "outerHTML" not in js and "insertAdjacentHTML" not in js
    assert "document.write" not in js and "eval(" not in js
    assert js.count("textContent") == 1 and "createTextNode" in js


@pytest.mark.parametrize("page, query", [
    ("side_by_side", {"view": "pair", "left_setting": "nope", "left_prompt": "x", "left_sample": "y",
                      "right_setting": "generic", "right_prompt": "missing"}),
    ("side_by_side", {"view": "document", "doc": "999999"}),
    ("side_by_side", {"view": "bogus", "doc": "abc"}),
    ("corpus", {"doc": "-5"}),
    ("corpus", {"doc": "99999999"}),
    ("explore", {"setting": "nope", "prompt": "x", "sample": "z"}),
])
def test_deep_links_to_missing_things_open_the_defaults(monkeypatch, page, query):
    from core.runs.demo import demo_results_dir
    from core.runs.results import load_results
    from tests.test_app_pages import app

    folder = demo_results_dir()
    at = app(monkeypatch, folder, page, query)
    assert not at.exception and not at.error, [e.value for e in at.error]
    run = load_results(folder)
    if page == "side_by_side" and query["view"] == "pair":
        best_prefix = leaks.best_completion(run.traces, natural=False)
        best_generic = leaks.best_completion(run.by_setting("generic")[1], natural=True)
        assert at.selectbox(key="sbs_left_pick").value.startswith(f"prefix / {best_prefix.prompt_id} / sample 0:")
        assert at.selectbox(key="sbs_right_pick").value.startswith(f"generic / {best_generic.prompt_id} / sample 0:")
    elif page == "side_by_side":
        assert at.radio(key="sbs_view").value == "document" and at.selectbox(key="sbs_doc").value
    elif page == "corpus":
        from app.views.tables import leaks_by_doc

        assert at.number_input(key="corpus_doc_ix").value == int(leaks_by_doc(run.traces)["doc_ix"].iloc[0])
    else:
        top = max(run.traces, key=lambda t: (t.longest_span, t.max_nv_recall))
        assert at.selectbox(key="ex_pick").value.startswith(f"{top.key.setting} / {top.key.prompt_id} /")


def test_leak_view_helpers_do_what_their_examples_say():
    import doctest

    result = doctest.testmod(leak_views)
    assert result.attempted >= 6 and result.failed == 0
