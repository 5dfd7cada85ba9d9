"""Real browser: the running app in headless Chromium shows core's spans and runs no planted script.

Starts ``streamlit run app/serve.py`` (the README's command: the app with its warm start) on a free port over a fixture results folder whose
document and completion carry <script>, onerror handlers, javascript: links and bidi overrides,
and once more with no results folder set, so it opens the shipped demo results as a new user sees them.
Needs /usr/bin/chromium (tests/run script installs it with apt); skipped with a message otherwise.
"""
from __future__ import annotations

import urllib.parse
import urllib.request
from pathlib import Path

import pytest
from playwright.sync_api import expect

from app.views import explore
from core.records import GenKey
from core.runs.results import load_results
from tests.fixtures_app import HOSTILE_SPAN_TEXT, write_run
from tests.fixtures_browser import ARTIFACTS, CHROMIUM, idle, serve_app, settle
from tests.test_render import expected_marks, visible

pytestmark = [pytest.mark.slow, pytest.mark.browser]
ROOT = Path(__file__).resolve().parents[1]
MARKS_JS = "() => Array.from(document.querySelectorAll('mark.propme-span')).map(m => m.textContent)"
INDEXED_MARKS_JS = ("() => Array.from(document.querySelectorAll('mark.propme-span'))"
                    ".map(m => [Number(m.dataset.spanIx), m.textContent])")
PWNED_JS = "() => [document.title, typeof window.__pwned]"

if not Path(CHROMIUM).exists():
    pytest.skip(f"{CHROMIUM} is absent: install it with `apt-get install -y chromium` to run the browser tests",
                allow_module_level=True)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    folder = write_run(tmp_path_factory.mktemp("browser") / "run")
    with serve_app(folder, tmp_path_factory.mktemp("log") / "streamlit.log") as url:
        yield url, folder


def _open(browser, url: str):
    page = browser.new_page(viewport={"width": 1500, "height": 1100})
    page.goto(url)
    page.wait_for_selector("mark.propme-span", timeout=60_000)
    settle(page)  # the run that drew the spans is over: the rest of the page is drawn too
    return page


def test_explore_first_screen_shows_core_spans(server, browser):
    url, folder = server
    run = load_results(folder)
    first = explore.filter_examples(explore.example_rows(run.generations, run.traces), explore.ExploreFilter())[0]
    _, top = run.lookup(first.key)
    assert top.longest_span == max(t.longest_span for t in run.traces)
    page = _open(browser, f"{url}/explore")
    assert page.evaluate(MARKS_JS) == [visible(s.text) for s in top.spans]
    titles = page.eval_on_selector_all("mark.propme-span", "ms => ms.map(m => m.getAttribute('title'))")
    assert titles[0].startswith(f"{top.spans[0].length} tokens; {top.spans[0].count} occurrences")
    assert page.get_by_text("Results folder").count() >= 1  # the entrypoint's sidebar ran on this page
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "explore.png"), full_page=False)
    page.close()


def test_demo_results_open_in_explore_with_core_spans(demo_server, browser):
    """A new user: open /, click Explore; the first screen marks the spans core found, nothing to set up."""
    url, folder = demo_server
    run = load_results(folder)
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    page.goto(url)
    page.wait_for_selector('[data-testid="stSidebarNav"] a', timeout=60_000)
    page.locator('[data-testid="stSidebarNav"] a', has_text="Explore").click()  # the page list, not a story link
    page.wait_for_selector("mark.propme-span", timeout=60_000)
    page.wait_for_function("() => location.search.includes('setting=')", timeout=60_000)  # Explore named it
    idle(page)  # the rerun that named it is over
    query = urllib.parse.parse_qs(urllib.parse.urlparse(page.url).query)  # Explore names the example it shows
    assert urllib.parse.urlparse(page.url).path.rstrip("/").endswith("explore")
    gen, trace = run.lookup(GenKey(query["setting"][0], query["prompt"][0], int(query["sample"][0])))
    assert trace.longest_span == max(t.longest_span for t in run.traces)  # the strongest example comes first
    shown = [(ix, text) for ix, text in page.evaluate(INDEXED_MARKS_JS)]
    assert shown == expected_marks(gen.completion, trace.spans)
    # each mark is (the end of) one of core's spans, and together they cover exactly the spans' characters
    assert all(visible(trace.spans[ix].text).endswith(text) for ix, text in shown)
    covered = sorted({i for s in trace.spans for i in range(s.char_start, s.char_end)})
    assert "".join(t for _, t in shown) == "".join(visible(gen.completion[i]) for i in covered)
    # no set-up: the sidebar names the demo folder (waited for: the sidebar may be redrawn by the rerun that
    # the click started while the first run was still going)
    expect(page.get_by_test_id("stSidebar")).to_contain_text(str(folder), timeout=10_000)
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "explore-demo.png"), full_page=False)
    page.close()


def test_hostile_completion_and_document_show_as_text_and_run_nothing(server, browser):
    url, _ = server
    page = _open(browser, f"{url}/explore?setting=generic&prompt=generic-hostile&sample=0")
    assert page.evaluate(MARKS_JS) == [visible(HOSTILE_SPAN_TEXT)]
    page.wait_for_selector("mark.propme-doc-match", timeout=30_000)
    doc_text = page.eval_on_selector("mark.propme-doc-match", "m => m.textContent")
    assert doc_text == HOSTILE_SPAN_TEXT
    title, pwned = page.evaluate(PWNED_JS)
    assert title != "pwned" and pwned == "undefined"
    # nothing injected became an element: no <img>, <script> or javascript: link inside our blocks
    injected = page.evaluate("""() => Array.from(document.querySelectorAll('.propme-text'))
        .map(d => d.querySelectorAll('img, script, a, svg, iframe').length).reduce((a, b) => a + b, 0)""")
    assert injected == 0
    # the 10k-character token wraps instead of widening the page
    widths = page.evaluate("() => [document.documentElement.scrollWidth, window.innerWidth]")
    assert widths[0] <= widths[1] + 5
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "explore-hostile.png"), full_page=False)
    page.close()


def test_html_report_runs_no_planted_script(browser, tmp_path):
    from tests.test_html_report import _report

    doc, _ = _report()
    path = tmp_path / "report.html"
    path.write_text(doc, encoding="utf-8")
    page = browser.new_page()
    page.goto(path.as_uri())
    page.wait_for_selector(".plotly-graph-div .main-svg", timeout=30_000)  # charts drew offline
    assert visible(HOSTILE_SPAN_TEXT) in page.evaluate(MARKS_JS)
    title, pwned = page.evaluate(PWNED_JS)
    assert title != "pwned" and pwned == "undefined"
    page.close()
