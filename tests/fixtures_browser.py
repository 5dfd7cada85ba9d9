"""What every real-browser test shares: headless Chromium through Playwright, waiting for a Streamlit
rerun to finish (on page state, never a fixed time), and screenshots into test-artifacts/ (look at them). The ``browser`` fixture (headless
Chromium, one per test module) is in tests/conftest.py."""
from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path

import pytest
from playwright.sync_api import TimeoutError as PlaywrightTimeout

from tests import launch

CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = Path(__file__).resolve().parents[1] / "test-artifacts"
IDLE = '[data-testid="stStatusWidget"]'  # Streamlit's "running" indicator: detached once a rerun is done

# Runs the page has finished, counted from the app root's script state (Streamlit sets
# ``data-test-script-state`` on ``stApp``: running -> notRunning when a run or a fragment run ends). A
# MutationObserver sees every change, so a short rerun between two polls is still counted.
_WATCH_JS = """() => {
  if (window.__propmeRuns) return true;
  const app = document.querySelector('[data-testid="stApp"]');
  if (!app) return false;
  const w = window.__propmeRuns = {done: 0, seen: 0};
  new MutationObserver(recs => { for (const r of recs)
      if (r.oldValue !== 'notRunning' && app.getAttribute('data-test-script-state') === 'notRunning') w.done++; })
    .observe(app, {attributes: true, attributeOldValue: true, attributeFilter: ['data-test-script-state']});
  return 'new';
}"""
# Idle: connected, no script running, no running indicator, no element left stale by the last run.
_IDLE_JS = """() => { const app = document.querySelector('[data-testid="stApp"]');
  return !!app && app.getAttribute('data-test-connection-state') === 'CONNECTED'
    && app.getAttribute('data-test-script-state') === 'notRunning'
    && !document.querySelector('[data-testid="stStatusWidget"]')
    && !document.querySelector('[data-stale="true"]'); }"""
_NEW_RUN_JS = "() => { const w = window.__propmeRuns; return w.done > w.seen && (" + _IDLE_JS + ")(); }"


# What a settle() that timed out says about the page: which of the idle conditions failed.
_STATE_JS = """() => { const app = document.querySelector('[data-testid="stApp"]');
  const stale = Array.from(document.querySelectorAll('[data-stale="true"]'));
  return {url: location.pathname + location.search, runs: window.__propmeRuns || null,
    connection: app && app.getAttribute('data-test-connection-state'),
    script: app && app.getAttribute('data-test-script-state'),
    running_indicator: !!document.querySelector('[data-testid="stStatusWidget"]'),
    stale: stale.length, stale_first: stale.slice(0, 5).map(e => (e.getAttribute('data-testid') || e.tagName)
      + ' ' + (e.className || '').toString().split(' ').filter(c => c.startsWith('st-key-')).join(' '))}; }"""


def settle(page, timeout: int = 90_000) -> None:
    """Wait on page state, never a fixed time: on the first call for a page (after ``goto``), until the app is
    idle; on later calls (after a click, a key, an upload), until a run that began since the previous call has
    finished and the page is idle again. An action that starts no rerun therefore fails here, by timeout."""
    page.wait_for_selector('[data-testid="stApp"]', state="attached", timeout=timeout)
    wait = _IDLE_JS if page.evaluate(_WATCH_JS) == "new" else _NEW_RUN_JS
    try:
        page.wait_for_function(wait, timeout=timeout)
    except PlaywrightTimeout as e:
        raise PlaywrightTimeout(f"{e.message.splitlines()[0]} waiting for the app to settle; page state: "
                                f"{page.evaluate(_STATE_JS)}") from None
    page.evaluate("() => { window.__propmeRuns.seen = window.__propmeRuns.done; }")


def idle(page, timeout: int = 90_000) -> None:
    """Wait until the app is idle (no rerun needed: e.g. before reading a page a test merely opened)."""
    page.wait_for_function(_IDLE_JS, timeout=timeout)
    if page.evaluate(_WATCH_JS) is not False:
        page.evaluate("() => { window.__propmeRuns.seen = window.__propmeRuns.done; }")


# A Streamlit text input, text area or number input commits on Enter (a text area: Ctrl+Enter) only once it has
# re-rendered as edited: its key handler reads the "edited" flag of its last render, so a key pressed right after
# ``fill`` on a busy machine can come before that render and commit nothing. That render shows the widget's
# "Press Enter to apply" hint (hidden on widgets under 180 px wide, where there is nothing to wait on).
_EDITED_JS = """el => { const w = el.closest('[data-testid=stTextInput],[data-testid=stTextArea],[data-testid=stNumberInput]');
  if (!w || w.getBoundingClientRect().width < 180) return true;
  const hint = w.querySelector('[data-testid=InputInstructions]');
  return !!hint && hint.textContent.includes('to apply'); }"""


def commit(box, value: str, key: str = "Enter", timeout: int = 90_000) -> None:
    """Type ``value`` into the Streamlit input ``box`` (a locator) and commit it with ``key`` once the widget
    shows it is edited (see ``_EDITED_JS``); the caller then waits for the rerun (``settle``)."""
    box.fill(value)
    box.page.wait_for_function(_EDITED_JS, arg=box.element_handle(), timeout=timeout)
    box.press(key)


def grid_ready(page, grid: str, timeout: int = 90_000) -> None:
    """Wait until the data grid ``grid`` (a CSS selector of an ``stDataFrame``) has drawn its cells: its canvas
    takes clicks only then (its accessibility table holds the cells once they are drawn)."""
    page.wait_for_selector(f"{grid} table[role=grid] [role=gridcell]", state="attached", timeout=timeout)


@contextmanager
def serve_app(folder: Path | None, log_path: Path, entry: str = launch.ENTRY, cache: Path | None = None):
    """``launch.serve`` for tests (``cache``: the server's own cache root): yields the url; a server that does not
    start fails the test with its log."""
    try:
        with launch.serve(folder, log_path, entry, cache=cache) as (url, _):
            yield url
    except RuntimeError as e:
        pytest.fail(str(e))


def shot(page, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / name), full_page=False)


def colours_by_setting(figures) -> dict[str, set]:
    """{setting: colours} of every trace of ``figures`` (each a list of (meta, marker colour, line colour) per
    trace, as the tests' page scripts read them); asserts one colour per setting, the palette's."""
    from core.reports.palette import setting_color

    seen: dict[str, set] = {}
    for traces in figures:
        for meta, marker, line in traces:
            if isinstance(meta, list):
                for s, c in zip(meta, marker):
                    seen.setdefault(s, set()).add(c)
            elif meta is not None:
                seen.setdefault(meta, set()).add(marker if isinstance(marker, str) else line)
    assert seen and seen == {s: {setting_color(s)} for s in seen}, seen
    return seen
