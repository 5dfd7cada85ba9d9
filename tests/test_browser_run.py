"""Real browser, Run and Compare pages (issue 16): a status within a second of pressing Run, a run that keeps
going while the user visits another page, form values kept, Cancel after a confirmation saying what the
result cache kept (checked against the cache itself), and Compare naming a trace-mode mismatch.

The runs are small demo runs (the toy demo model on the demo corpus: 8 prompts per setting, 32 new tokens)
written to a temporary folder, with a temporary result cache.
"""
from __future__ import annotations

import dataclasses
import re

import pytest
from playwright.sync_api import expect

from app import setting_form
from core.config import TraceConfig
from core.config.file import load_experiment
from core.runs.cache import ResultCache
from core.runs.demo import demo_experiment_path, demo_results_dir
from core.runs.results import load_results, save_results
from tests.fixtures_browser import commit, idle, serve_app
from tests.fixtures_browser import settle as _settle
from tests.fixtures_browser import shot as _shot

pytestmark = [pytest.mark.slow, pytest.mark.browser]
CLOCK_JS = """(watch) => {
  const c = window.__clock = {clicks: []};
  document.addEventListener('click', () => c.clicks.push(performance.now()), true);
  new MutationObserver(() => {
    const text = document.body.innerText;
    for (const [name, want] of watch) if (!c[name] && text.includes(want)) c[name] = performance.now();
  }).observe(document.body, {subtree: true, childList: true, characterData: true});
}"""


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    cache = tmp_path_factory.mktemp("cache")
    with serve_app(None, tmp_path_factory.mktemp("log") / "streamlit-run.log", cache=cache) as url:
        yield url, cache, tmp_path_factory.mktemp("out")


def _type(page, key: str, value: str) -> None:
    box = page.locator(f".st-key-{key} input")
    if box.input_value() == value:  # already so: Enter would start no rerun to wait for
        return
    commit(box, value)
    _settle(page)


def _value(page, key: str) -> str:
    return page.locator(f".st-key-{key} input").first.input_value()


def _open_run_page(browser, url: str):
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    page.goto(f"{url}/run")
    page.wait_for_selector(".st-key-run_start button", timeout=60_000)
    _settle(page)
    return page


def _nav(page, name: str) -> None:
    page.locator('[data-testid="stSidebarNav"] a', has_text=name).first.click()
    _settle(page)


def test_run_shows_status_at_once_keeps_going_across_pages_and_opens_overview(server, browser):
    url, _, out = server
    page = _open_run_page(browser, url)
    assert _value(page, "run_trace_mode") == "mixed"  # the demo experiment's choice (and the CLI's default)
    # times, in the browser, from a click to what it shows: first a plain rerun of this page (the baseline on
    # this machine now), then Run
    page.evaluate(CLOCK_JS, [["rerun", "Index folder"], ["toast", "Starting the run"], ["panel", "Running ..."]])
    page.get_by_text("existing index folder").click()
    page.locator(".st-key-run_index_path").wait_for(timeout=30_000)
    _settle(page)
    page.get_by_text("demo corpus").click()
    _settle(page)
    # each setting has its own prompt count now (app/setting_form.py): 8 for every one of the demo's settings
    eight = [(setting_form.key(s.name, "n_prompts"), "8") for s in load_experiment(demo_experiment_path()).settings]
    for key, value in (*eight, ("run_max_new", "32"), ("run_name", "nav-run"), ("run_out", str(out))):
        _type(page, key, value)
    page.locator(".st-key-run_start button").click()
    page.get_by_text("Starting the run: checking the form").first.wait_for(timeout=10_000)  # a toast, at once
    page.get_by_text(re.compile(r"Running \.\.\.")).first.wait_for(timeout=10_000)  # the run's own status panel
    clock = page.evaluate("() => window.__clock")
    run_click = clock["clicks"][-1]  # Run (the last click)
    baseline = (clock["rerun"] - clock["clicks"][0]) / 1000
    toast_after, panel_after = (clock["toast"] - run_click) / 1000, (clock["panel"] - run_click) / 1000
    page.get_by_text(re.compile(r"^(starting|loading|generating)")).first.wait_for(timeout=5_000)
    _shot(page, "run-status.png")
    assert page.get_by_role("progressbar").count() >= 1, page.evaluate(
        "() => Array.from(new Set(Array.from(document.querySelectorAll('[data-testid]')).map(e => e.dataset.testid)))")
    _nav(page, "Compare")
    page.get_by_role("heading", name="Compare runs").wait_for(timeout=30_000)
    _nav(page, "Run")
    # back on the Run page: the form kept its values and the run is still there (running or finished)
    assert (_value(page, "run_s_prefix_n_prompts"), _value(page, "run_max_new"), _value(page, "run_name")) == ("8", "32", "nav-run")
    page.get_by_text(re.compile(r"Running \.\.\.|Done: ")).first.wait_for(timeout=10_000)
    job = dict(re.findall(r"[?&](\w+)=(\w+)", page.url))["job"]  # the page's URL names the job in view
    page.reload()  # a new browser session: the form starts afresh, the job is found again from the URL
    page.get_by_text(re.compile(r"Running \.\.\.|Done: ")).first.wait_for(timeout=30_000)
    assert f"job={job}" in page.url
    page.get_by_text(re.compile(r"Done: \d+ completions in")).first.wait_for(timeout=300_000)
    _settle(page)
    _shot(page, "run-done.png")
    run = load_results(out / "nav-run")
    demo_settings = [s.name for s in load_experiment(demo_experiment_path()).settings]  # the demo's, floor included
    assert {s: sum(1 for g in run.generations if g.key.setting == s) for s in run.settings()} == {
        s: 8 for s in demo_settings}
    assert all(len(g.completion_ids) <= 32 for g in run.generations) and run.manifest.trace.mode == "mixed"
    page.get_by_role("button", name="Open these results").first.click()
    page.wait_for_function("() => !location.pathname.endsWith('/run')", timeout=30_000)
    _settle(page)
    expect(page.get_by_test_id("stSidebar")).to_contain_text(str(out / "nav-run"), timeout=10_000)
    _shot(page, "run-opened-overview.png")
    page.close()
    print(f"status shown after {toast_after:.2f} s (toast), {panel_after:.2f} s (progress panel); "
          f"a plain rerun of the page: {baseline:.2f} s")
    # about as fast as a plain rerun of the page (within 2x): nothing waits for the model or the index
    assert min(toast_after, panel_after) <= max(1.0, 2.0 * baseline), (toast_after, panel_after, baseline)


def test_cancel_asks_then_says_what_the_cache_kept(server, browser):
    url, cache_dir, out = server
    page = _open_run_page(browser, url)
    for key, value in (("run_s_prefix_n_prompts", "100"), ("run_max_new", "128"), ("run_name", "cancel-run"),
                       ("run_out", str(out))):
        _type(page, key, value)
    page.locator(".st-key-run_start button").click()
    page.get_by_text(re.compile(r"generating: (1[6-9]|[2-9]\d|\d{3,})/\d+ generations")).first.wait_for(timeout=300_000)
    page.locator(".st-key-run_cancel button").click()
    page.get_by_text("Stop this run?").wait_for(timeout=10_000)
    _shot(page, "run-cancel-confirm.png")
    page.locator(".st-key-run_cancel_yes button").click()
    kept = page.get_by_text(re.compile(r"kept in the result cache: \d+ of \d+ completions"))
    kept.first.wait_for(timeout=120_000)
    _shot(page, "run-cancelled.png")
    made, total = map(int, re.search(r"(\d+) of (\d+) completions", kept.first.inner_text()).groups())
    assert 16 <= made < total == 300
    # what the page says is what the cache holds: this run's decoding (128 tokens) matches no earlier entry
    entries = ResultCache(cache_dir).size_report()["tables"]["generations"]["entries"]
    assert entries - 24 == made  # 24 from the navigation test's run (3 settings x 8 prompts)
    assert not (out / "cancel-run").exists()
    page.close()


def test_compare_flags_a_trace_mode_mismatch_of_one_model(server, browser, tmp_path):
    url, _, _ = server
    demo = load_results(demo_results_dir())
    save_results(demo, tmp_path / "runs" / "demo-mixed")
    text = dataclasses.replace(demo.manifest, run_name="demo-text", trace=dataclasses.replace(
        demo.manifest.trace, mode="text" if demo.manifest.trace.mode != "text" else "mixed"))
    save_results(dataclasses.replace(demo, manifest=text), tmp_path / "runs" / "demo-text")
    assert TraceConfig().mode == demo.manifest.trace.mode == "mixed"
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    page.goto(f"{url}/compare")
    page.wait_for_selector(".st-key-cmp_root textarea", timeout=60_000)
    _settle(page)
    commit(page.locator(".st-key-cmp_root textarea"), str(tmp_path / "runs"), "Control+Enter")  # one folder per line
    _settle(page)
    for name in ("demo-mixed", "demo-text"):
        page.locator(".st-key-cmp_runs input").click()
        page.get_by_role("option", name=re.compile(name)).click()
        _settle(page)
    page.keyboard.press("Escape")
    page.get_by_text("NOT comparable: its charts below are marked").first.wait_for(timeout=30_000)
    page.get_by_text("No run is comparable with the reference").first.wait_for(timeout=60_000)  # drawn below the charts
    idle(page)
    _shot(page, "compare-trace-mismatch.png")
    body = page.locator("body").inner_text()
    verdict = next(line for line in body.splitlines() if "NOT comparable" in line)
    # runs go by their letter (each folder named once, in the runs table); the differences are a table below
    assert verdict == "run B (the same model) against the reference (run A): NOT comparable: its charts below are marked."
    assert "No run is comparable with the reference" in body
    page.close()
