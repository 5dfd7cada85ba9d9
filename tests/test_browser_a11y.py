"""Accessibility in a real browser: axe-core (from npm, tools/a11y/package.json, installed by scripts/test.sh
with ``npm ci``) finds no serious or critical violation on any page of the app (over the shipped demo
results) nor on the exported HTML report; the keyboard alone reaches a span, selects it and keeps focus on it.

axe-core's own rules decide (WCAG 2.x A/AA and best practices as axe tags them); the test only injects
``axe.min.js`` into the page and reads ``axe.run``'s violations.
"""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.fixtures_browser import ARTIFACTS, CHROMIUM, settle, shot

pytestmark = [pytest.mark.slow, pytest.mark.browser]
ROOT = Path(__file__).resolve().parents[1]
AXE = ROOT / "tools" / "a11y" / "node_modules" / "axe-core" / "axe.min.js"
PAGES = ("", "run", "explore", "thresholds", "compare", "leaked", "side_by_side", "corpus", "export")
SEVERE = ("serious", "critical")

if not Path(CHROMIUM).exists():
    pytest.skip(f"{CHROMIUM} is absent: install it with `apt-get install -y chromium`", allow_module_level=True)
if not AXE.is_file():
    pytest.skip(f"{AXE} is absent: run `npm ci --prefix tools/a11y` (scripts/test.sh does)", allow_module_level=True)


@pytest.fixture(scope="module")
def demo_url(demo_server):
    """The session's demo app server (tests/conftest.py)."""
    return demo_server[0]


def axe_violations(page) -> list[dict]:
    """axe-core's serious and critical violations of the page as it is now: [{id, impact, help, nodes}]."""
    if not page.evaluate("() => typeof window.axe !== 'undefined'"):
        page.add_script_tag(content=AXE.read_text(encoding="utf-8"))
    found = page.evaluate("async () => (await axe.run(document, {resultTypes: ['violations']})).violations"
                          ".map(v => ({id: v.id, impact: v.impact, help: v.help,"
                          " nodes: v.nodes.slice(0, 5).map(n => n.target.join(' ') + ' :: ' + n.failureSummary)}))")
    return [v for v in found if v["impact"] in SEVERE]


def _settled(page) -> None:
    """The page's script ran to its end and nothing on it is left stale (``settle``: a stale element is drawn
    faded, and axe would measure its faded colours), and its title is drawn."""
    page.wait_for_selector("h1", timeout=60_000)
    settle(page)
    page.wait_for_load_state("networkidle")


@pytest.mark.parametrize("path", PAGES)
def test_no_serious_axe_violations_on_page(demo_url, browser, path):
    page = browser.new_page(viewport={"width": 1440, "height": 900})
    page.goto(f"{demo_url}/{path}")
    _settled(page)
    bad = axe_violations(page)
    shot(page, f"a11y-{path or 'overview'}.png")
    page.close()
    assert not bad, json.dumps(bad, indent=1)


def test_no_serious_axe_violations_in_the_exported_report(demo_url, browser, tmp_path):
    page = browser.new_page(viewport={"width": 1440, "height": 900}, accept_downloads=True)
    page.goto(f"{demo_url}/export")
    _settled(page)
    page.get_by_role("button", name="Build the summary and the HTML report").click()
    button = page.get_by_role("button", name="Download the HTML report")
    button.wait_for(timeout=120_000)
    with page.expect_download() as dl:
        button.click()
    report = tmp_path / "propme-report.html"
    dl.value.save_as(report)
    page.goto(report.as_uri())
    page.wait_for_selector(".plotly-graph-div .main-svg", timeout=30_000)
    bad = axe_violations(page)
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "a11y-report.png"))
    page.close()
    assert not bad, json.dumps(bad, indent=1)


ACTIVE_JS = """() => { const a = document.activeElement;
  return {tag: a.tagName.toLowerCase(), ix: a.dataset ? (a.dataset.spanIx ?? null) : null,
          cls: a.className || '', label: a.getAttribute('aria-label'), text: (a.textContent || '').slice(0, 80),
          href: a.getAttribute('href')}; }"""


def _tab_to(page, test_js: str, limit: int = 150) -> dict:
    """Press Tab until the focused element passes ``test_js`` (a JS predicate on document.activeElement)."""
    for _ in range(limit):
        page.keyboard.press("Tab")
        if page.evaluate(f"() => ({test_js})(document.activeElement)"):
            return page.evaluate(ACTIVE_JS)
    raise AssertionError(f"{limit} Tabs never reached {test_js}; focus on {page.evaluate(ACTIVE_JS)}")


def test_keyboard_alone_selects_a_span_keeps_focus_and_follows_a_document_link(demo_url, browser):
    page = browser.new_page(viewport={"width": 1440, "height": 900})
    page.goto(f"{demo_url}/explore")
    page.wait_for_selector("mark.propme-span[role=button]", timeout=60_000)
    _settled(page)
    n_marks = page.locator("mark.propme-span[role=button]").count()
    assert n_marks >= 2, "the demo's first completion should hold at least two spans"
    first = _tab_to(page, "a => a.matches('mark.propme-span[role=button]')")
    # the next span (not the one selected already): Tab on, then Enter
    selected = page.evaluate("() => document.querySelector('mark.propme-span[aria-pressed=true]').dataset.spanIx")
    target = first
    while target["ix"] == selected:
        page.keyboard.press("Tab")
        target = page.evaluate(ACTIVE_JS)
        assert target["tag"] == "mark", target
    page.keyboard.press("Enter")
    page.wait_for_selector(f'mark.propme-span[data-span-ix="{target["ix"]}"][aria-pressed=true]', timeout=30_000)
    _settled(page)
    after = page.evaluate(ACTIVE_JS)
    shot(page, "a11y-keyboard-span.png")
    assert after["tag"] == "mark" and after["ix"] == target["ix"], after  # focus stayed on the span picked
    # the documents panel: its text box takes the focus and scrolls with the keyboard; its link follows
    box = _tab_to(page, "a => a.matches('.propme-text[role=region]') && a.getAttribute('aria-label')"
                        ".startsWith('training document')")
    before = page.evaluate("() => document.activeElement.scrollTop")
    scrollable = page.evaluate("() => document.activeElement.scrollHeight > document.activeElement.clientHeight")
    page.keyboard.press("PageDown")
    if scrollable:
        page.wait_for_function(f"() => document.activeElement.scrollTop > {before}", timeout=5_000)
    link = _tab_to(page, "a => a.tagName === 'A' && (a.textContent || '').includes('Open the whole document')", 10)
    page.keyboard.press("Enter")
    page.wait_for_url("**/corpus?doc=*", timeout=30_000)
    _settled(page)
    shot(page, "a11y-keyboard-corpus.png")
    page.close()
    assert box["label"].startswith("training document") and link["href"]


