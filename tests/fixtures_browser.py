"""What every real-browser test shares: headless Chromium through Playwright, waiting for a Streamlit
rerun to finish (on page state, never a fixed time), and screenshots into test-artifacts/ (look at them). The ``browser`` fixture (headless
Chromium, one per test module) is in tests/conftest.py."""
from __future__ import annotations

import time
from contextlib import contextmanager
from pathlib import Path

import pytest
from playwright.sync_api import Error as PlaywrightError
from playwright.sync_api import TimeoutError as PlaywrightTimeout

from tests import launch

CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = Path(__file__).resolve().parents[1] / "test-artifacts"
IDLE = '[data-testid="stStatusWidget"]'  # Streamlit's "running" indicator: detached once a rerun is done

# Idle: connected, no script running, no running indicator, no element left stale by the last run.
_IDLE_JS = """() => { const app = document.querySelector('[data-testid="stApp"]');
  return !!app && app.getAttribute('data-test-connection-state') === 'CONNECTED'
    && app.getAttribute('data-test-script-state') === 'notRunning'
    && !document.querySelector('[data-testid="stStatusWidget"]')
    && !document.querySelector('[data-stale="true"]'); }"""
# Two animation frames: the page has drawn what the last message it received changed.
_FRAMES_JS = "() => new Promise(done => requestAnimationFrame(() => requestAnimationFrame(done)))"
# What a settle() that timed out says about the page: which of the idle conditions failed.
_STATE_JS = """() => { const app = document.querySelector('[data-testid="stApp"]');
  const stale = Array.from(document.querySelectorAll('[data-stale="true"]'));
  return {url: location.pathname + location.search,
    connection: app && app.getAttribute('data-test-connection-state'),
    script: app && app.getAttribute('data-test-script-state'),
    running_indicator: !!document.querySelector('[data-testid="stStatusWidget"]'),
    stale: stale.length, stale_first: stale.slice(0, 5).map(e => (e.getAttribute('data-testid') || e.tagName)
      + ' ' + (e.className || '').toString().split(' ').filter(c => c.startsWith('st-key-')).join(' '))}; }"""


class _Runs:
    """The Streamlit runs (whole-page or fragment) a page has seen finish, counted from the server's own
    messages: every ``script_finished`` on the page's websocket, except a run cut short by a newer rerun.
    (The app root's ``data-test-script-state`` is no count: a short run on a busy machine can go from
    running to not running within one render, and the attribute never changes.)"""

    def __init__(self) -> None:
        self.done = self.seen = 0
        self.socket = None

    def watch(self, ws) -> None:
        self.socket = ws
        ws.on("framereceived", lambda payload: setattr(self, "done", self.done + _finished(payload)))


def _finished(payload) -> bool:
    from streamlit.proto.ForwardMsg_pb2 import ForwardMsg

    if not isinstance(payload, bytes):
        return False
    msg = ForwardMsg()
    msg.ParseFromString(payload)
    return (msg.WhichOneof("type") == "script_finished"
            and msg.script_finished != ForwardMsg.ScriptFinishedStatus.FINISHED_EARLY_FOR_RERUN)


def watch_runs(page):
    """Count the runs ``page`` sees finish (``settle`` waits on them). The ``browser`` fixture does this for every
    page it opens, before the page connects."""
    runs = page.__dict__.setdefault("_propme_runs", _Runs())
    page.on("websocket", runs.watch)
    return page


class WatchedBrowser:
    """The session's Chromium, as tests use it: every page it opens (``new_page``, or a page of a ``new_context``)
    counts its finished runs (``watch_runs``); everything else is the Playwright browser's own."""

    def __init__(self, browser) -> None:
        self._browser = browser

    def new_page(self, **kwargs):
        return watch_runs(self._browser.new_page(**kwargs))

    def new_context(self, **kwargs):
        context = self._browser.new_context(**kwargs)
        context.on("page", watch_runs)
        return context

    def __getattr__(self, name):
        return getattr(self._browser, name)


def _runs(page) -> _Runs:
    runs = page.__dict__.get("_propme_runs")
    assert runs is not None, "open the page with the `browser` fixture (it counts the page's runs for settle())"
    return runs


def settle(page, timeout: int = 90_000) -> None:
    """Wait on page state, never a fixed time: until a run has finished that the previous call for this page did not
    see (on the first call: the page's first run), and the page is idle and drawn. An action that starts no rerun
    therefore fails here, by timeout, naming what the page shows."""
    runs, deadline = _runs(page), time.monotonic() + timeout / 1000
    try:
        page.wait_for_selector('[data-testid="stApp"]', state="attached", timeout=timeout)
        while runs.done <= runs.seen:  # events arrive only while Playwright waits: none is missed between these lines
            left = deadline - time.monotonic()
            if left <= 0:
                raise PlaywrightTimeout(f"Timeout {timeout}ms exceeded: no Streamlit run finished"
                                        + ("" if runs.socket else " (the page opened no websocket)"))
            try:
                if runs.socket is None or runs.socket.is_closed():  # not connected yet, or reloading
                    page.wait_for_event("websocket", timeout=left * 1000)
                else:
                    runs.socket.wait_for_event("framereceived", _finished, timeout=left * 1000)
            except PlaywrightError:
                pass  # a timeout is said above; a socket closed by a reload is replaced and waited on afresh
        idle(page, max(1_000, int((deadline - time.monotonic()) * 1000)))
    except PlaywrightTimeout as e:
        raise PlaywrightTimeout(f"{e.message.splitlines()[0]} waiting for the app to settle ({runs.done} runs "
                                f"finished, {runs.seen} seen before); page state: {page.evaluate(_STATE_JS)}") from None


def idle(page, timeout: int = 90_000) -> None:
    """Wait until the app is idle and drawn (no rerun needed: e.g. before reading a page a test merely opened);
    the runs finished so far count as seen by ``settle``."""
    page.wait_for_function(_IDLE_JS, timeout=timeout)
    page.evaluate(_FRAMES_JS)
    page.wait_for_function(_IDLE_JS, timeout=timeout)
    runs = page.__dict__.get("_propme_runs")
    if runs is not None:
        runs.seen = runs.done


def eventually(page, js: str, arg=None, timeout: int = 60_000) -> bool:
    """Wait until the page function ``js`` (given ``arg``) holds and the app is idle; False when it does not within
    ``timeout`` ms, so the caller's assertion says what the page shows instead."""
    try:
        page.wait_for_function(js, arg=arg, timeout=timeout)
        idle(page)
    except PlaywrightTimeout:
        return False
    return True


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
