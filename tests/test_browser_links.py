"""Real browser, shipped demo results: deep links land on their content (issue 23, item 2).

Explore's linked completion, with its selected span, is on the first screen at 1440x900 and 1280x720; the
Corpus page's ``?doc=`` opens with that document (its match highlighted) on the first screen; an unknown or
invalid parameter says so instead of showing a default silently. Expected values come from core.
"""
from __future__ import annotations

import urllib.parse

import pytest
from playwright.sync_api import expect

from core.index.corpus_index import CorpusIndex
from core.runs.demo import demo_index_dir
from core.runs.results import load_results
from tests.fixtures_browser import IDLE, shot

pytestmark = [pytest.mark.slow, pytest.mark.browser]
BOX_JS = """(sel) => { const m = document.querySelector(sel); if (!m) return null; const r = m.getBoundingClientRect();
  return {top: r.top, bottom: r.bottom, left: r.left, right: r.right, h: window.innerHeight, w: window.innerWidth}; }"""


def _in_first_screen(page, selector: str) -> dict:
    page.wait_for_selector(selector, timeout=60_000)
    page.wait_for_selector(IDLE, state="detached", timeout=60_000)
    page.wait_for_function(f"() => {{ const b = ({BOX_JS})({selector!r}); return b && b.bottom > 0; }}",
                           timeout=10_000)
    box = page.evaluate(BOX_JS, selector)
    # its start is on the first screen (a span of 200 tokens may run on below the fold)
    assert 0 <= box["top"] <= box["h"] - 24 and 0 <= box["left"] < box["right"] <= box["w"], box
    return box


@pytest.mark.parametrize("size", [(1440, 900), (1280, 720)])
def test_an_explore_link_shows_its_completion_and_span_on_the_first_screen(demo_server, browser, size):
    url, folder = demo_server
    run = load_results(folder)
    trace = max((t for t in run.traces if t.key.setting == "prefix"), key=lambda t: t.longest_span)
    k = trace.key
    page = browser.new_page(viewport={"width": size[0], "height": size[1]})
    page.goto(f"{url}/explore?setting={k.setting}&prompt={k.prompt_id}&sample={k.sample_index}")
    _in_first_screen(page, "mark.propme-span[aria-pressed=true]")
    shown = dict(urllib.parse.parse_qsl(urllib.parse.urlparse(page.url).query))  # the page names what it shows
    assert (shown["setting"], shown["prompt"], shown["sample"]) == (k.setting, k.prompt_id, str(k.sample_index))
    shot(page, f"links-explore-{size[0]}x{size[1]}.png")
    # the prompt and the true continuation fold: closed, then opened on demand
    assert not page.locator(".st-key-ex_prompt_box .propme-text").first.is_visible()
    page.locator(".st-key-ex_prompt_box summary").click()
    page.locator(".st-key-ex_prompt_box .propme-text").first.wait_for(timeout=10_000)
    page.close()


def test_an_unknown_explore_link_says_so(demo_server, browser):
    url, _ = demo_server
    page = browser.new_page(viewport={"width": 1440, "height": 900})
    page.goto(f"{url}/explore?setting=prefix&prompt=no-such-prompt&sample=0")
    page.get_by_text("completion prefix / no-such-prompt / sample 0 not found in this run: showing the first") \
        .wait_for(timeout=60_000)
    page.close()


def test_a_corpus_link_opens_that_document_first_with_its_match_highlighted(demo_server, browser):
    url, folder = demo_server
    run = load_results(folder)
    index = CorpusIndex.open(str(demo_index_dir()))
    doc = max((d for t in run.traces for s in t.spans for d in s.docs), key=lambda d: d.nv.recall)
    page = browser.new_page(viewport={"width": 1440, "height": 900})
    page.goto(f"{url}/corpus?doc={doc.doc_ix}")
    _in_first_screen(page, ".propme-span-view mark.propme-doc-match")
    assert page.locator(".st-key-corpus_doc_ix input").input_value() == str(doc.doc_ix)
    assert page.get_by_text(f"document id: {index.doc_id(doc.doc_ix)};").first.is_visible()
    shot(page, "links-corpus-doc.png")
    page.close()


@pytest.mark.parametrize("bad", ["x", "99999999"])
def test_an_invalid_corpus_link_says_so(demo_server, browser, bad):
    url, _ = demo_server
    page = browser.new_page(viewport={"width": 1440, "height": 900})
    page.goto(f"{url}/corpus?doc={bad}")
    page.get_by_text(f"document '{bad}' not found").wait_for(timeout=60_000)
    assert "showing the first" in page.locator('[data-testid="stAlert"]').first.inner_text()
    page.close()


def test_reset_to_the_runs_values_moves_the_sliders_back_at_once(demo_server, browser):
    url, folder = demo_server
    want = load_results(folder).manifest.metrics.span_threshold
    page = browser.new_page(viewport={"width": 1440, "height": 900})
    page.goto(f"{url}/thresholds")
    thumb = page.locator(".st-key-thr_span_n input[type=range]")  # the slider's thumb (react-aria: a range input)
    thumb.wait_for(state="attached", timeout=60_000)
    page.wait_for_selector(IDLE, state="detached", timeout=60_000)
    assert thumb.input_value() == str(want)
    thumb.focus()
    for _ in range(5):
        page.keyboard.press("ArrowLeft")
    expect(thumb).to_have_value(str(want - 5), timeout=10_000)
    reset = page.locator(".st-key-thr_reset button")
    expect(reset).to_be_enabled(timeout=30_000)  # tuned: the numbers follow
    expect(page.get_by_text(f"R_{want - 5} (prefix)").first).to_be_visible(timeout=30_000)
    reset.click()
    expect(thumb).to_have_value(str(want), timeout=10_000)  # the slider moved back at once
    expect(page.get_by_text(f"R_{want} (prefix)").first).to_be_visible(timeout=10_000)
    expect(reset).to_be_disabled(timeout=10_000)
    shot(page, "links-thresholds-reset.png")
    page.close()
