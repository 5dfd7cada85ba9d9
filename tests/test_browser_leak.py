"""Real browser, shipped demo results: follow a leak from a span to its documents, from a leaked
document to its prefix attack beside natural use, and the Explore / Corpus fixes (issue 13).

Expected values come from core (the results folder and the demo index), never from the page.
Screenshots of every view land in test-artifacts/.
"""
from __future__ import annotations

import re
import urllib.parse

import pytest

from app import leak_views
from app.views import explore, tables
from core.records import GenKey
from core.reports import leaks
from core.runs.results import load_results
from tests.fixtures_browser import commit, eventually, grid_ready, idle
from tests.fixtures_browser import settle as _settle
from tests.fixtures_browser import shot as _shot
from tests.test_render import expected_marks, visible

pytestmark = [pytest.mark.slow, pytest.mark.browser]
MARKS_IN = "(root) => Array.from(document.querySelectorAll(root + ' mark.propme-span'))" \
           ".map(m => [Number(m.dataset.spanIx), m.textContent])"


def _query(page) -> dict[str, str]:
    return {k: v[0] for k, v in urllib.parse.parse_qs(urllib.parse.urlparse(page.url).query).items()}


def _wait_selected(page, ix: int) -> None:
    """Wait until span ``ix`` is the selected one and the rerun that selected it is over."""
    page.wait_for_function("ix => { const m = document.querySelectorAll('mark.propme-span[aria-pressed=\"true\"]');"
                           " return m.length === 1 && Number(m[0].dataset.spanIx) === ix; }", arg=ix, timeout=60_000)
    _settle(page)


def _marks_once(page, want, timeout: int = 20_000):
    """The page's marks once they equal ``want``, or as they are after ``timeout`` ms (the assert says what
    differs)."""
    eventually(page, f"want => JSON.stringify(({MARKS_IN})('')) === JSON.stringify(want)", want, timeout)
    return page.evaluate(MARKS_IN, "")


def _combo(page, key: str) -> str:
    """The text a selectbox (a combobox input) shows."""
    return page.locator(f".st-key-{key} input[role=combobox]").input_value()


def _selected(page) -> list[int]:
    return page.evaluate("() => Array.from(document.querySelectorAll('mark.propme-span[aria-pressed=\"true\"]'))"
                         ".map(m => Number(m.dataset.spanIx))")


@pytest.fixture(scope="module")
def demo(demo_server):
    url, folder = demo_server
    from core.index.tokenizer import load_tokenizer
    from core.runs.demo import demo_model_dir, ensure_demo_index

    return url, load_results(folder), ensure_demo_index(), load_tokenizer(str(demo_model_dir()))


def _open_explore(browser, url):
    page = browser.new_page(viewport={"width": 1500, "height": 1100})
    page.goto(f"{url}/explore")
    page.wait_for_selector("mark.propme-span", timeout=60_000)
    _settle(page)
    return page


def test_clicking_the_longest_span_shows_its_documents_matched_and_in_view(demo, browser):
    url, run, index, _ = demo
    page = _open_explore(browser, url)
    q = _query(page)
    gen, trace = run.lookup(GenKey(q["setting"], q["prompt"], int(q["sample"])))
    longest = leak_views.longest_ix(trace.spans)
    assert trace.spans[longest].length == max(s.length for s in trace.spans) == max(t.longest_span for t in run.traces)
    assert page.evaluate(MARKS_IN, "") == [[ix, visible(t)] for ix, t in expected_marks(gen.completion, trace.spans)]
    assert _selected(page) == [longest]  # selected by default: the longest span, not span 0
    assert page.evaluate("() => Array.from(document.querySelectorAll('mark.propme-span'))"
                         ".every(m => m.tabIndex === 0 && m.getAttribute('role') === 'button')")
    other = next(i for i, s in enumerate(trace.spans) if i != longest and s.docs)
    for ix in (other, longest):  # one click each: the panel follows
        page.click(f"mark.propme-span[data-span-ix='{ix}']")
        _wait_selected(page, ix)
        page.wait_for_function("t => (document.querySelector('.st-key-ex_span input')?.value || '').startsWith(t)",
                               arg=f"span {ix}:", timeout=60_000)
        assert _selected(page) == [ix] and _combo(page, "ex_span").startswith(f"span {ix}:")
        groups = leaks.group_windows(trace.spans[ix].docs)
        first = leaks.trim_window(groups[0].window)
        heading = page.get_by_text(leak_views.group_heading(groups[0])[:40]).first
        assert heading.is_visible()
        match = page.locator("mark.propme-doc-match").first
        assert match.text_content() == visible(first.window_text[first.match_char_start:first.match_char_end])
        if ix == longest:
            _shot(page, "leak-explore-longest-span-documents.png")
    # keyboard: Tab lands on a span, Enter selects it
    for ix in (other, longest):
        page.focus(f"mark.propme-span[data-span-ix='{ix}']")
        page.keyboard.press("Enter")
        _wait_selected(page, ix)
        assert _selected(page) == [ix]
    # the matched region sits inside the viewport and inside its own scroll box
    box = page.evaluate("""() => { const m = document.querySelector('mark.propme-doc-match');
        const b = m.closest('.propme-text'); const r = m.getBoundingClientRect(), s = b.getBoundingClientRect();
        return {top: r.top, bottom: r.bottom, left: r.left, right: r.right, boxTop: s.top, boxBottom: s.bottom,
                h: window.innerHeight, w: window.innerWidth}; }""")
    assert 0 <= box["top"] < box["h"] and 0 <= box["left"] < box["right"] <= box["w"], box
    assert box["boxTop"] <= box["top"] < min(box["boxBottom"], box["h"]), box
    # metadata of the document shown
    meta = index.doc_metadata(leaks.group_windows(trace.spans[longest].docs)[0].doc_ixs[0])
    assert page.get_by_text(f"source: {meta['source']}").count() >= 1 and f"licence: {meta['licence']}" in \
        page.inner_text("body")
    # the link under the first window opens that document on the Corpus page, in the same session
    page.get_by_text(re.compile(r"Open the whole document \(.*\) on the Corpus page")).first.click()
    page.wait_for_url("**/corpus?**", timeout=60_000)
    page.wait_for_selector(".propme-span-view mark.propme-doc-match", timeout=60_000)
    _settle(page)
    first_doc = leaks.group_windows(trace.spans[longest].docs)[0].doc_ixs[0]
    # the page switch can take two runs on a loaded machine (the input shows the linked document after both)
    eventually(page, "d => document.querySelector('.st-key-corpus_doc_ix input')?.value === d", str(first_doc), 30_000)
    assert _query(page)["doc"] == str(first_doc)
    assert page.locator(".st-key-corpus_doc_ix input").input_value() == str(first_doc)
    page.close()


def _leaked(run, index):
    keys = {ix: tuple(index.doc_tokens(ix)) for ix in {d.doc_ix for t in run.traces for d in t.docs}
            | {g.prompt.source_doc_ix for g in run.generations if g.prompt.source_doc_ix is not None}}
    return leaks.leaked_documents(run.traces, run.settings(), keys), keys


def test_a_leaked_document_opens_its_attack_beside_natural_use(demo, browser):
    url, run, index, _ = demo
    docs, keys = _leaked(run, index)
    page = browser.new_page(viewport={"width": 1500, "height": 1100})
    page.goto(f"{url}/leaked")
    grid = page.locator('[data-testid="stDataFrame"]')
    grid.wait_for(timeout=60_000)
    _settle(page)
    grid_ready(page, '[data-testid="stDataFrame"]')
    _shot(page, "leak-leaked-documents.png")
    # click the first row's selection cell (the grid is a canvas: header row, then 35 px rows)
    b = grid.bounding_box()
    page.mouse.click(b["x"] + 16, b["y"] + 35 + 17)
    page.wait_for_url("**/side_by_side**", timeout=60_000)
    page.wait_for_selector("[class*='st-key-sbs_natural_0'] mark.propme-span", timeout=60_000)
    _settle(page)
    doc = docs[0]
    assert _query(page) == {"view": "document", "doc": str(doc.doc_ix)}
    same = lambda ix: keys.get(ix) == keys[doc.doc_ix]
    pairing = leaks.pair_by_document(doc, run.generations, run.traces, same)
    assert pairing.attacks and pairing.natural
    attack_gen, attack = run.lookup(pairing.attacks[0])
    nat_gen, nat = run.lookup(pairing.natural[0].key)
    assert attack_gen.key.setting == "prefix" and nat_gen.key.setting != "prefix"
    shown_attack = page.evaluate(MARKS_IN, "[class*='st-key-sbs_attack_0']")
    shown_nat = page.evaluate(MARKS_IN, "[class*='st-key-sbs_natural_0']")
    assert shown_attack == [[ix, visible(t)] for ix, t in expected_marks(attack_gen.completion, attack.spans)]
    assert shown_nat == [[ix, visible(t)] for ix, t in expected_marks(nat_gen.completion, nat.spans)]
    assert shown_nat and all(visible(nat.spans[ix].text).endswith(t) for ix, t in shown_nat)
    attack_text = page.inner_text("[class*='st-key-sbs_attack_0']")
    assert visible(attack_gen.prompt.true_continuation.strip().splitlines()[0]) in attack_text
    _shot(page, "leak-side-by-side-document.png")
    page.close()


def test_free_pairing_defaults_and_deep_link_keep_both_panes(demo, browser):
    url, run, _, _ = demo
    page = browser.new_page(viewport={"width": 1500, "height": 1100})
    page.goto(f"{url}/side_by_side?view=pair")
    page.wait_for_selector("[class*='st-key-sbs_pane_right'] mark.propme-span", timeout=60_000)
    _settle(page)
    want = {"left": leaks.best_completion(run.traces, natural=False),
            "right": leaks.best_completion(run.traces, natural=True)}
    for side, key in want.items():
        gen, trace = run.lookup(key)
        shown = page.evaluate(MARKS_IN, f"[class*='st-key-sbs_pane_{side}']")
        assert shown == [[ix, visible(t)] for ix, t in expected_marks(gen.completion, trace.spans)]
    assert {s: leak_views.pane_key(_query(page), s) for s in leak_views.SIDES} == want
    _shot(page, "leak-side-by-side-pair.png")
    # a deep link to two other completions opens exactly them
    other = {"left": sorted(run.by_setting("generic")[1], key=lambda t: -t.longest_span)[3].key,
             "right": sorted(run.by_setting("prefix")[1], key=lambda t: -t.longest_span)[5].key}
    link = f"{url}/side_by_side?" + urllib.parse.urlencode(leak_views.pane_params(other))
    page2 = browser.new_page(viewport={"width": 1500, "height": 1100})
    page2.goto(link)
    page2.wait_for_selector("[class*='st-key-sbs_pane_right'] mark.propme-span", timeout=60_000)
    _settle(page2)
    for side, key in other.items():
        gen, trace = run.lookup(key)
        assert page2.evaluate(MARKS_IN, f"[class*='st-key-sbs_pane_{side}']") == \
            [[ix, visible(t)] for ix, t in expected_marks(gen.completion, trace.spans)]
        label = _combo(page2, f"sbs_{side}_pick")
        assert f"{key.setting} / {key.prompt_id} / sample {key.sample_index}" in label
    assert {s: leak_views.pane_key(_query(page2), s) for s in leak_views.SIDES} == other
    page.close()
    page2.close()


def _choose(page, key: str, option: str) -> None:
    page.locator(f".st-key-{key} input[role=combobox]").click()
    page.get_by_role("option", name=option, exact=True).click()
    _settle(page)


def test_completion_label_matches_the_shown_completion_after_every_filter_change(demo, browser):
    url, run, _, _ = demo
    page = _open_explore(browser, url)
    for setting in ("prefix", "specific", "all", "generic", "all", "prefix", "generic"):
        _choose(page, "ex_setting", setting)
        # once the rerun is over the label names the completion in the URL (the bug: never, it kept the old one)
        eventually(page, """s => { const q = new URLSearchParams(location.search);
            const v = document.querySelector('.st-key-ex_pick input')?.value || '';
            const f = document.querySelector('.st-key-ex_setting input')?.value;
            return f === s && (s === 'all' || q.get('setting') === s)
                && v.startsWith(`${q.get('setting')} / ${q.get('prompt')} / sample ${q.get('sample')}:`); }""", setting)
        idle(page)
        q = _query(page)
        key = GenKey(q["setting"], q["prompt"], int(q["sample"]))
        assert setting == "all" or key.setting == setting
        shown = _combo(page, "ex_pick")
        assert f"{key.setting} / {key.prompt_id} / sample {key.sample_index}:" in shown, (setting, shown, q)
        gen, trace = run.lookup(key)
        want = [[ix, visible(t)] for ix, t in expected_marks(gen.completion, trace.spans)]
        assert _marks_once(page, want) == want
        if setting != "all":  # the top completion of the filtered list
            rows = explore.filter_examples(explore.example_rows(run.generations, run.traces),
                                         explore.ExploreFilter(setting=setting))
            assert key in {r.key for r in rows}
    _shot(page, "leak-explore-after-filters.png")
    page.close()


def test_a_mid_text_phrase_without_leading_space_is_found(demo, browser):
    url, _, index, tok = demo
    phrase = "GNU General Public License"
    docs = [index.doc_tokens(i) for i in range(index.num_docs)]
    spellings = {tuple(tok(v, add_special_tokens=False)["input_ids"]) for v in (phrase, " " + phrase)}
    brute = sum(1 for ids in spellings for d in docs for i in range(len(d) - len(ids) + 1)
                if tuple(d[i:i + len(ids)]) == ids)
    assert brute > 0
    page = browser.new_page(viewport={"width": 1500, "height": 1100})
    page.goto(f"{url}/corpus")
    box = page.get_by_label("Search a phrase")
    box.wait_for(timeout=60_000)
    commit(box, phrase)
    page.wait_for_selector("text=Occurrences in the index", timeout=60_000)
    _settle(page)
    metric = page.locator('[data-testid="stMetric"]').filter(has_text="Occurrences in the index")
    assert metric.locator('[data-testid="stMetricValue"]').inner_text().strip() == f"{brute:,}"
    assert "Searched:" in page.inner_text("body")
    page.locator('[data-testid="stMetric"]').filter(has_text="Occurrences").scroll_into_view_if_needed()
    _shot(page, "leak-corpus-phrase.png")
    page.close()


def test_corpus_document_shows_every_traced_span_and_the_completions(demo, browser):
    url, run, index, tok = demo
    docs, keys = _leaked(run, index)
    doc = docs[0]
    page = browser.new_page(viewport={"width": 1500, "height": 1100})
    page.goto(f"{url}/corpus?doc={doc.doc_ix}")
    page.wait_for_selector(".propme-span-view mark.propme-doc-match", timeout=60_000)
    _settle(page)
    copies = [ix for ix, k in keys.items() if k == keys[doc.doc_ix]]
    hits = leaks.doc_hits(run.traces, copies)
    text = tok.decode(index.doc_tokens(doc.doc_ix, 0, 6000))
    needles = [run.lookup(h.key)[1].spans[i].text for h in hits for i in h.span_ixs]
    ranges = leaks.text_ranges(text, needles)
    shown = page.evaluate("() => Array.from(document.querySelectorAll('.propme-span-view mark.propme-doc-match'))"
                          ".map(m => m.textContent)")
    assert shown == [visible(text[s:e]) for s, e in ranges] and shown
    assert f"Reproduced by {len(hits)} completions" in page.inner_text("body")
    page.locator(".propme-span-view").scroll_into_view_if_needed()
    _shot(page, "leak-corpus-document.png")
    page.close()


def test_corpus_tables_are_clickable(demo, browser):
    url, run, index, _ = demo
    frame = tables.leaks_by_doc(run.traces)
    page = browser.new_page(viewport={"width": 1500, "height": 1100})
    page.goto(f"{url}/corpus?doc=0")
    grid = page.locator(".st-key-corpus_leaks [data-testid=stDataFrame]")
    grid.wait_for(timeout=60_000)
    _settle(page)
    grid.scroll_into_view_if_needed()  # a ?doc= link draws its document first, the tables below it
    grid_ready(page, ".st-key-corpus_leaks [data-testid=stDataFrame]")
    b = grid.bounding_box()
    page.mouse.click(b["x"] + 16, b["y"] + 35 + 35 + 17)  # the second row: browse that document below
    page.wait_for_function("v => document.querySelector('.st-key-corpus_doc_ix input')?.value === v",
                           arg=str(int(frame["doc_ix"].iloc[1])), timeout=60_000)
    _settle(page)
    hits = page.locator(".st-key-corpus_hits [data-testid=stDataFrame]")
    hits.scroll_into_view_if_needed()
    grid_ready(page, ".st-key-corpus_hits [data-testid=stDataFrame]")
    b = hits.bounding_box()
    page.mouse.click(b["x"] + 16, b["y"] + 35 + 17)  # the first completion: open it in Explore
    page.wait_for_url("**/explore?**", timeout=60_000)
    page.wait_for_selector("mark.propme-span", timeout=60_000)
    _settle(page)
    target = index.doc_tokens(int(frame["doc_ix"].iloc[1]))
    copies = [ix for ix in range(index.num_docs) if index.doc_tokens(ix) == target]
    first = leaks.doc_hits(run.traces, copies)[0].key
    q = _query(page)
    assert GenKey(q["setting"], q["prompt"], int(q["sample"])) == first
    assert _combo(page, "ex_pick").startswith(f"{first.setting} / {first.prompt_id} / sample {first.sample_index}:")
    _shot(page, "leak-explore-from-corpus.png")
    page.close()
