"""Real browser: the Overview tells the story with core's numbers and one colour per setting, and the
stakeholder HTML report opens on the story (no configuration, no machine paths) with the same colours.

Starts ``streamlit run`` (tests/test_browser.py's server) over a fixture run with a chance floor, and
over the shipped demo; opens a built report file. Screenshots go to test-artifacts/ (overview-story.png,
overview-demo.png, report-first-screen.png). Needs /usr/bin/chromium; skipped with a message otherwise.
"""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from core.runs.results import load_results, save_results
from tests.fixtures_browser import ARTIFACTS, CHROMIUM, colours_by_setting, serve_app, settle

pytestmark = [pytest.mark.slow, pytest.mark.browser]
ROOT = Path(__file__).resolve().parents[1]
FIGURE_COLOURS_JS = """sel => Array.from(document.querySelectorAll(sel)).map(d => (d.data || []).map(t => [
    t.meta === undefined ? null : t.meta, t.marker ? t.marker.color : null, t.line ? t.line.color : null]))"""
METRICS_JS = """() => Array.from(document.querySelectorAll('[data-testid="stMetric"]')).map(m => [
    m.querySelector('[data-testid="stMetricLabel"]').innerText.trim(),
    m.querySelector('[data-testid="stMetricValue"]').innerText.trim()])"""

if not Path(CHROMIUM).exists():
    pytest.skip(f"{CHROMIUM} is absent: install it with `apt-get install -y chromium`", allow_module_level=True)


@pytest.fixture(scope="module")
def floored(tmp_path_factory):
    from tests.test_story import floor_run

    folder = save_results(floor_run(), tmp_path_factory.mktemp("browser-story") / "floored")
    with serve_app(folder, tmp_path_factory.mktemp("log") / "streamlit-story.log") as url:
        yield url, folder


def _overview(browser, url: str, n_figures: int):
    """The Overview with its Charts section opened (closed on the first screen: tests/test_browser_lazy.py)."""
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    page.goto(url)
    page.get_by_text("Can it leak?").wait_for(timeout=90_000)
    settle(page)
    page.get_by_text("Charts: ALS per setting").click()
    settle(page)
    page.wait_for_function(f"() => document.querySelectorAll('.js-plotly-plot .main-svg').length >= {n_figures}",
                           timeout=90_000)  # every chart drawn
    page.evaluate("() => document.querySelector('h1').scrollIntoView()")  # back to the first screen
    return page


def test_overview_tells_the_story_with_cores_numbers_and_colours(floored, browser):
    url, folder = floored
    run = load_results(folder)
    page = _overview(browser, url, 3)
    shown = page.evaluate(METRICS_JS)[:3]  # the "Can it leak?" box: the attack
    traces = run.by_setting("prefix")[1]
    assert shown == [["≥ 50 tokens", f"{sum(t.longest_span >= 50 for t in traces) / len(traces):.0%}"],
                     ["Longest span", f"{max(t.longest_span for t in traces)}"],
                     [f"Full matches of {len(traces)}", f"{sum(t.full_match for t in traces)}"]]
    text = page.inner_text("body")
    assert "Does it leak?" in text and "text never seen in training reaches" in text
    seen = colours_by_setting(page.evaluate(FIGURE_COLOURS_JS, ".js-plotly-plot"))
    assert {"prefix", "generic", "specific"} <= set(seen)
    link = page.get_by_role("link", name="Open in Explore").first
    href = link.get_attribute("href")
    assert "explore" in href and "setting=" in href and "prompt=" in href
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "overview-story.png"), full_page=False)
    link.click()
    page.wait_for_selector("mark.propme-span", timeout=60_000)  # the example opened in Explore
    page.close()


def test_demo_overview_first_screen(browser, demo_server):
    url, _ = demo_server
    page = _overview(browser, url, 3)
    text = page.inner_text("body")
    assert "toy demo" in text and "Can it leak?" in text and "Does it leak?" in text
    colours_by_setting(page.evaluate(FIGURE_COLOURS_JS, ".js-plotly-plot"))
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "overview-demo.png"), full_page=False)
    page.close()


def test_report_first_screen_holds_the_story_and_no_configuration(browser, tmp_path):
    from core.runs.demo import demo_results_dir
    from tests.test_exports import _report
    from tests.test_story import floor_run

    demo = demo_results_dir()
    run = load_results(demo) if (demo / "manifest.json").is_file() else floor_run()
    if "floor" not in run.settings():
        run = floor_run()
    doc, _ = _report(run, run_path=run.path)
    path = tmp_path / "report.html"
    path.write_text(doc, encoding="utf-8")
    for machine_path in (str(ROOT), str(Path.home()), str(tmp_path), os.getcwd()):
        assert machine_path not in doc
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    page.goto(path.as_uri())
    page.wait_for_selector("#fig-0 .main-svg", timeout=60_000)
    first = page.evaluate(r"""() => {
        const h = window.innerHeight, seen = el => el.getBoundingClientRect().top < h;
        return {questions: Array.from(document.querySelectorAll('.question h2')).filter(seen).map(e => e.innerText),
                reading: Array.from(document.querySelectorAll('.reading')).filter(seen).length,
                configRows: Array.from(document.querySelectorAll('.appendix tr')).filter(seen).length,
                configText: /index\.|decoding\.|package_versions/.test(Array.from(document.querySelectorAll('td'))
                    .filter(seen).map(td => td.innerText).join(' ')),
                appendix: seen(document.querySelector('.appendix'))};
    }""")
    assert first["questions"] == ["Can it leak?", "Does it leak?"] and first["reading"] >= 1
    assert not first["appendix"] and first["configRows"] == 0 and not first["configText"]  # no configuration
    colours_by_setting(page.evaluate(FIGURE_COLOURS_JS, ".plotly-graph-div"))
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "report-first-screen.png"), full_page=False)
    page.close()
