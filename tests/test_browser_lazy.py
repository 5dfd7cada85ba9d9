"""Real browser (issue 16): Overview and Thresholds open with no plotly chart and no big table on the first
screen; one click on a section or tab draws its charts, and the choice stays through reruns.

Over the app fixture run (tests/fixtures_app.write_run) served by ``streamlit run`` (tests/test_browser.py's
server). Screenshots: test-artifacts/lazy-overview-first.png, lazy-overview-charts.png,
lazy-thresholds-first.png, lazy-thresholds-curves.png, lazy-thresholds-curves-moved.png,
lazy-thresholds-plane.png.
Needs /usr/bin/chromium; skipped with a message otherwise.
"""
from __future__ import annotations

from pathlib import Path

import pytest
from playwright.sync_api import TimeoutError as PlaywrightTimeout

from tests.fixtures_app import write_run
from tests.fixtures_browser import CHROMIUM, colours_by_setting, eventually, serve_app, settle, shot

pytestmark = [pytest.mark.slow, pytest.mark.browser]

if not Path(CHROMIUM).exists():
    pytest.skip(f"{CHROMIUM} is absent: install it with `apt-get install -y chromium`", allow_module_level=True)

# every plotly chart on the page: drawn (its .main-svg exists), its traces' setting and colours
CHARTS_JS = """() => Array.from(document.querySelectorAll('.js-plotly-plot')).map(d => ({
    drawn: d.querySelector('.main-svg') !== null,
    traces: (d.data || []).map(t => [t.meta === undefined ? null : t.meta, t.marker ? t.marker.color : null,
                                     t.line ? t.line.color : null]),
    notes: ((d.layout || {}).annotations || []).map(a => a.text)}))"""
TABLES = '[data-testid="stDataFrame"], [data-testid="stTable"]'


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    folder = write_run(tmp_path_factory.mktemp("browser-lazy") / "run", hostile=False)
    with serve_app(folder, tmp_path_factory.mktemp("log") / "streamlit-lazy.log") as url:
        yield url


def _colours(charts) -> dict[str, set]:
    return colours_by_setting([c["traces"] for c in charts])


def _charts(page, n: int) -> list[dict]:
    """Once exactly ``n`` plotly charts are on the page, all drawn, and the app is idle: every chart on the page.
    (A rerun can show the old chart beside its replacement for a moment: that passing state is not read.)"""
    eventually(page, "n => { const c = document.querySelectorAll('.js-plotly-plot');"
               " return c.length === n && Array.from(c).every(d => d.querySelector('.main-svg')); }", n, 90_000)
    charts = page.evaluate(CHARTS_JS)
    assert len(charts) == n and all(c["drawn"] for c in charts), charts
    return charts


def test_overview_opens_on_the_story_and_draws_the_charts_in_one_click(served, browser):
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    page.goto(served)
    page.get_by_text("Can it leak?").wait_for(timeout=90_000)
    settle(page)
    assert page.locator(".js-plotly-plot").count() == 0 and page.locator(TABLES).count() == 0
    assert page.locator('[data-testid="stMain"] [data-testid="stExpander"]').count() == 4  # glossary + 3 closed
    shot(page, "lazy-overview-first.png")
    page.get_by_text("Charts: ALS per setting").click()
    settle(page)
    charts = _charts(page, 3)  # metric per setting, PM, the plane
    assert {"prefix", "generic", "specific"} <= set(_colours(charts))
    page.locator(".js-plotly-plot").last.scroll_into_view_if_needed()
    shot(page, "lazy-overview-charts.png")
    # another metric renames the section (a new widget for Streamlit): it stays open, its charts redrawn
    for _ in range(5):  # a click lost while the page redraws is clicked again
        page.locator(".st-key-ov_metric").click()
        try:
            page.get_by_role("option", name="FMR", exact=True).click(timeout=5_000)
            break
        except PlaywrightTimeout:
            page.keyboard.press("Escape")
    else:
        raise AssertionError("the metric picker's options did not open")
    settle(page)
    page.get_by_text("Charts: FMR per setting").wait_for(timeout=60_000)
    charts = _charts(page, 3)
    _colours(charts)
    page.get_by_text("Every metric, with 95% bootstrap intervals").click()
    settle(page)
    page.locator(TABLES).first.wait_for(timeout=60_000)
    assert page.locator(TABLES).count() == 2 and len(_charts(page, 3)) == 3  # both sections open
    page.close()


def test_thresholds_tab_stays_open_when_the_slider_moves_and_reruns_only_the_fragment(served, browser):
    from streamlit.proto.BackMsg_pb2 import BackMsg

    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    reruns: list[str] = []  # the fragment id of every rerun the browser asks for ('' = the whole page)

    def on_socket(ws):
        def sent(payload):
            msg = BackMsg()
            if isinstance(payload, bytes):
                msg.ParseFromString(payload)
                if msg.HasField("rerun_script"):
                    reruns.append(msg.rerun_script.fragment_id)
        ws.on("framesent", sent)

    page.on("websocket", on_socket)
    page.goto(f"{served}/thresholds")
    page.get_by_role("tab", name="Numbers").wait_for(timeout=90_000)
    page.locator(TABLES).first.wait_for(timeout=90_000)
    settle(page)
    assert page.locator(".js-plotly-plot").count() == 0 and page.locator(TABLES).count() == 1
    assert [t.inner_text().strip() for t in page.get_by_role("tab").all()] == [
        "Numbers", "Span-share curves", "PM vs N", "Distributions", "Plane"]
    shot(page, "lazy-thresholds-first.png")

    reruns.clear()
    page.get_by_role("tab", name="Span-share curves").click()
    settle(page)
    (chart,) = _charts(page, 1)
    assert chart["notes"] == ["N = 50"] and page.locator(TABLES).count() == 0
    _colours([chart])
    assert reruns and all(reruns), reruns  # the tab switch reran the fragment only
    shot(page, "lazy-thresholds-curves.png")

    reruns.clear()
    thumb = page.locator('.st-key-thr_span_n input[type="range"]')
    thumb.focus()
    for _ in range(5):
        thumb.press("ArrowLeft")
    settle(page)
    page.wait_for_function("() => { const d = document.querySelector('.js-plotly-plot');"
                           " return d && d.layout.annotations[0].text === 'N = 45'; }", timeout=60_000)
    (chart,) = _charts(page, 1)
    assert chart["notes"] == ["N = 45"]
    assert page.get_by_role("tab", name="Span-share curves").get_attribute("aria-selected") == "true"
    assert reruns and all(reruns), reruns  # a slider move reruns the fragment only
    shot(page, "lazy-thresholds-curves-moved.png")

    for tab, n in (("PM vs N", 1), ("Distributions", 2), ("Plane", 1)):  # every other view, one click each
        page.get_by_role("tab", name=tab).click()
        settle(page)
        _colours(_charts(page, n))
        assert page.get_by_text("Plane metric").count() == (tab == "Plane")
    shot(page, "lazy-thresholds-plane.png")
    page.close()
