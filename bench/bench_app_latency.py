"""App latency as a user feels it: a real browser (Playwright + headless Chromium) on a real server.

Starts ``streamlit run app/serve.py`` (the README's command: the app with its warm start) on a free
port over the shipped demo results (as the browser tests do) and times, each the median of ``--runs`` tries:

- slider drag: the Thresholds page's span-threshold slider dragged to a new value and released;
- arrow step: one ArrowRight on the focused slider; three steps: three ArrowRight 60 ms apart;
- plane metric: the Thresholds page's plane metric changed in its Plane tab (intervals of a metric not stored);
- navigation: a click on a sidebar link (Overview <-> Explore <-> Thresholds), warm caches;
- URL, new tab: a page opened by its URL in a new tab (a new session), warm caches;
- first Overview: the app's first page after a fresh server start (``--starts`` servers), opened as
  soon as the server answers; also without the warm start (``streamlit run app/streamlit_app.py``).

Two instants per action, both read in the page (``performance.now()``, polled every frame):
"numbers" = the first frame showing the new value's numbers (the R_N metric tiles name the new N
and are not stale); "idle" = the page is done: Streamlit's script state is ``notRunning`` after a
run that started after the action, no element is stale (faded), no spinner or skeleton, and every
Plotly chart has drawn. The baseline of each page, measured in the same run, is a no-op rerun of
that page (the ``r`` shortcut: the whole script again, nothing changed, everything from cache); the
baseline of a first page and of a new tab is the same on a one-line Streamlit app (the frontend's
own cost of booting in a tab: loading and compiling its JavaScript, opening the websocket).

    python bench/bench_app_latency.py [--runs 7] [--starts 3] [--results FOLDER] [--json OUT]
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # `python bench/...` puts only bench/ on the path
from tests import launch
from tests.launch import BARE_ENTRY, ENTRY

CHROMIUM = "/usr/bin/chromium"
TARGETS = {"drag numbers": 0.300, "drag idle": 0.600, "navigation idle": 0.500,
           "first Overview idle": 2.5, "URL new tab idle": 1.0}

# Records the start of every script run (the stApp element's data-test-script-state attribute).
INIT_JS = """(() => {
  window.__pm = {runs: 0, lastStart: -1, lastEnd: -1};
  let prev = null;
  const check = () => {
    const app = document.querySelector('[data-testid="stApp"]');
    const s = app ? app.getAttribute('data-test-script-state') : null;
    if (s !== prev) {
      if (s === 'running') { window.__pm.runs++; window.__pm.lastStart = performance.now(); }
      else if (prev === 'running') window.__pm.lastEnd = performance.now();
      prev = s;
    }
  };
  const start = () => new MutationObserver(check).observe(document.documentElement,
      {subtree: true, childList: true, attributes: true, attributeFilter: ['data-test-script-state']});
  if (document.documentElement) start(); else document.addEventListener('DOMContentLoaded', start);
})();"""

IDLE_JS = """([t0, title]) => {
  const app = document.querySelector('[data-testid="stApp"]');
  if (!app || app.getAttribute('data-test-script-state') !== 'notRunning') return false;
  if (window.__pm.lastStart < t0) return false;
  if (document.querySelector('[data-stale="true"], [data-testid="stStatusWidgetRunningIcon"], '
                             + '[data-testid="stSkeleton"], [data-testid="stSpinner"]')) return false;
  if (title !== null) {
    const h = document.querySelector('[data-testid="stMain"] h1');
    if (!h || !h.textContent.startsWith(title)) return false;
  }
  for (const c of document.querySelectorAll('[data-testid="stPlotlyChart"]'))
    if (!c.querySelector('.main-svg')) return false;
  return performance.now();
}"""

# The first frame whose R_N tiles (st.metric labels "R_<n> (...)") name ``n`` and are not stale.
NUMBERS_JS = """([n]) => {
  const tiles = Array.from(document.querySelectorAll('[data-testid="stMetric"]'))
      .filter(m => m.textContent.includes('R_' + n + ' ('));
  if (!tiles.length) return false;
  if (tiles.some(m => m.closest('[data-stale="true"]'))) return false;
  return performance.now();
}"""


STATE_JS = """() => ({pm: window.__pm, now: performance.now(), url: location.href,
  state: document.querySelector('[data-testid="stApp"]')?.getAttribute('data-test-script-state'),
  stale: document.querySelectorAll('[data-stale="true"]').length,
  busy: document.querySelectorAll('[data-testid="stStatusWidgetRunningIcon"], [data-testid="stSkeleton"], '
                                  + '[data-testid="stSpinner"]').length,
  h1: document.querySelector('[data-testid="stMain"] h1')?.textContent,
  undrawn: Array.from(document.querySelectorAll('[data-testid="stPlotlyChart"]')).filter(c => !c.querySelector('.main-svg')).length})"""


@contextmanager
def serve(results: Path | None, log_path: Path, script: str = ENTRY):
    """``tests.launch.serve``; a server that does not start ends the bench with its log."""
    try:
        with launch.serve(results, log_path, script) as served:
            yield served
    except RuntimeError as e:
        raise SystemExit(str(e)) from None


class Timer:
    """One browser tab; every time is read inside the page (ms since the action, polled every frame)."""

    def __init__(self, page):
        self.page = page

    def now(self) -> float:
        return self.page.evaluate("performance.now()")

    def idle(self, t0: float, title: str | None = None) -> float:
        from playwright.sync_api import TimeoutError as PlaywrightTimeout

        try:
            h = self.page.wait_for_function(IDLE_JS, arg=[t0, title], polling="raf", timeout=60_000)
        except PlaywrightTimeout:
            raise RuntimeError(f"not idle after 60 s (t0 {t0:.0f}, title {title!r}): {self.page.evaluate(STATE_JS)}") from None
        return (h.json_value() - t0) / 1000

    def numbers(self, t0: float, n: int) -> float:
        h = self.page.wait_for_function(NUMBERS_JS, arg=[n], polling="raf", timeout=120_000)
        return (h.json_value() - t0) / 1000

    def settle(self, title: str | None = None) -> None:
        """Wait until the page is idle (after whatever ran last) and a little more."""
        self.page.wait_for_function(IDLE_JS, arg=[-2, title], polling=50, timeout=120_000)
        self.page.wait_for_timeout(150)

    def started(self, t0: float, timeout_ms: int = 5000) -> bool:
        """Whether a script run starts after ``t0`` within ``timeout_ms``."""
        from playwright.sync_api import TimeoutError as PlaywrightTimeout

        try:
            self.page.wait_for_function("t0 => window.__pm.lastStart >= t0", arg=t0, polling="raf", timeout=timeout_ms)
        except PlaywrightTimeout:
            return False
        return True

    def noop_rerun(self, title: str | None = None) -> float:
        """The ``r`` shortcut: the page's script again with nothing changed."""
        for _ in range(3):  # a key press lost (focus moving while the page redraws) is pressed again
            self.settle(title)
            self.page.evaluate("document.activeElement && document.activeElement.blur()")
            t0 = self.now()
            self.page.keyboard.press("r")
            if self.started(t0):
                return self.idle(t0, title)
        raise RuntimeError("the r shortcut started no rerun (three tries)")


def _slider(page, label: str):
    """The slider's range input (react-aria: visually hidden inside the thumb; focus it for the keys)."""
    return page.locator('[data-testid="stSlider"]', has_text=label).locator('input[type="range"]').first


def slider_value(page, label: str) -> int:
    return int(float(_slider(page, label).input_value()))


def drag_slider(tm: Timer, label: str, frac: float) -> float:
    """Drag the slider's thumb to ``frac`` of its track and release; returns t0 = the release."""
    page = tm.page
    group = page.locator('[data-testid="stSlider"]', has_text=label).locator('[role="group"]').first
    track = group.locator(":scope > div").first  # react-aria's track: the thumb sits in it at left: x%
    thumb = track.locator(':scope > div[style*="left"]').first
    box, tb = thumb.bounding_box(), track.bounding_box()
    x0, y = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
    x1 = tb["x"] + frac * tb["width"]
    page.mouse.move(x0, y)
    page.mouse.down()
    for i in range(1, 9):  # a hand's drag: several moves
        page.mouse.move(x0 + (x1 - x0) * i / 8, y)
        page.wait_for_timeout(15)
    t0 = tm.now()
    page.mouse.up()
    return t0


def bench_thresholds(tm: Timer, url: str, runs: int, out: dict) -> None:
    page, label, title = tm.page, "Span threshold N", "Thresholds"
    page.goto(f"{url}/thresholds")
    tm.settle(title)
    out["thresholds no-op"] = [tm.noop_rerun(title) for _ in range(runs)]
    numbers, idle = [], []
    for i in range(runs):
        tm.settle(title)
        before = slider_value(page, label)
        frac = 0.12 + 0.5 * ((i * 0.37) % 1)  # spread over the track, each new
        t0 = drag_slider(tm, label, frac)
        n = slider_value(page, label)
        if n == before:
            continue
        numbers.append(tm.numbers(t0, n))
        idle.append(tm.idle(t0, title))
    out["drag numbers"], out["drag idle"] = numbers, idle
    for name, steps in (("arrow step", 1), ("three steps", 3)):
        numbers, idle = [], []
        for _ in range(runs):
            tm.settle(title)
            thumb = _slider(page, label)
            thumb.focus()
            n = slider_value(page, label) + steps
            t0 = tm.now()
            for k in range(steps):
                if k:
                    page.wait_for_timeout(60)
                page.keyboard.press("ArrowRight")
            numbers.append(tm.numbers(t0, n))
            idle.append(tm.idle(t0, title))
        out[f"{name} numbers"], out[f"{name} idle"] = numbers, idle
    out["plane metric idle"] = _plane(tm, title, runs)


def _plane(tm: Timer, title: str, runs: int) -> list[float]:
    """Alternate the plane metric between options; the first visit of each is a cache miss."""
    page = tm.page
    tm.settle(title)
    page.get_by_role("tab", name="Plane").click()  # the plane is drawn in its own (lazy) tab
    box = page.locator('[data-testid="stSelectbox"]', has_text="Plane metric")
    try:
        box.wait_for(timeout=30_000)
    except Exception:  # noqa: BLE001 - Playwright's TimeoutError: a run without a plane
        return []
    combo = box.locator('input[role="combobox"]')
    tm.settle(title)
    _open_list(page, box)
    names = page.eval_on_selector_all('[role="option"]', "os => os.map(o => o.innerText)")
    page.keyboard.press("Escape")
    times = []
    for i in range(runs):
        tm.settle(title)
        name = next(n for n in names[(i + 1) % len(names):] + names if n != combo.input_value())
        _open_list(page, box)
        option = page.get_by_role("option", name=name, exact=True)
        t0 = tm.now()
        option.click()
        times.append(tm.idle(t0, title))
    return times


def _open_list(page, box) -> None:
    """Open a selectbox's list of options (its button; once more if a click was lost)."""
    for _ in range(5):
        box.locator('button[aria-haspopup="listbox"]').click()
        try:
            page.wait_for_selector('[role="option"]', timeout=3000)
            return
        except Exception:  # noqa: BLE001 - Playwright's TimeoutError: try again
            page.keyboard.press("Escape")
    raise RuntimeError("the selectbox's options did not open")


NAV = (("Explore", "Explore"), ("Thresholds and curves", "Thresholds"), ("Overview", "Overview"))


def bench_navigation(tm: Timer, url: str, runs: int, out: dict) -> None:
    page = tm.page
    page.goto(url)
    tm.settle("Overview")
    for link, title in NAV:  # warm every page once
        page.locator('[data-testid="stSidebarNav"] a', has_text=link).click()
        tm.settle(title)
    nav, noop = [], []
    for i in range(runs):
        for link, title in NAV:
            for _ in range(3):  # a click lost while the page redraws is clicked again
                tm.settle()
                t0 = tm.now()
                page.locator('[data-testid="stSidebarNav"] a', has_text=link).click()
                if tm.started(t0):
                    break
            nav.append(tm.idle(t0, title))
            if i == 0:
                noop.append(tm.noop_rerun(title))
    out["navigation idle"], out["navigation no-op"] = nav, noop


def bench_new_tab(ctx, url: str, runs: int, out: dict) -> None:
    """Each page by its URL in a new tab (a new session); caches are warm from the tabs before."""
    times = []
    for i in range(runs + 1):
        for path, title in (("", "Overview"), ("/thresholds", "Thresholds"), ("/explore", "Explore")):
            page = ctx.new_page()
            page.goto(f"{url}{path}", wait_until="commit")
            secs = Timer(page).idle(0.0, title)  # performance.now() counts from the navigation's start
            if i:  # the first round warms the caches
                times.append(secs)
            page.close()
    out["URL new tab idle"] = times


BLANK_APP = 'import streamlit as st\n\nst.title("Blank")\nst.write("A page with nothing on it.")\n'


def blank_baseline(browser, runs: int, out: dict) -> None:
    """The frontend's own floor: a one-line Streamlit app, first page after its server starts and by URL in a new tab."""
    with tempfile.TemporaryDirectory() as tmp:
        script = Path(tmp) / "blank.py"
        script.write_text(BLANK_APP)
        first = []
        for _ in range(2):
            with serve(None, Path(tmp) / "log", str(script)) as (url, _):
                ctx = browser.new_context(viewport={"width": 1500, "height": 1100})
                ctx.add_init_script(INIT_JS)
                page = ctx.new_page()
                page.goto(url, wait_until="commit")
                first.append(Timer(page).idle(0.0, "Blank"))
                page.close()
                times = []
                for _ in range(runs):
                    page = ctx.new_page()
                    page.goto(url, wait_until="commit")
                    times.append(Timer(page).idle(0.0, "Blank"))
                    page.close()
                ctx.close()
        out["blank app: first page idle"], out["blank app: URL new tab idle"] = first, times


def first_overview(browser, results, starts: int, out: dict) -> None:
    first, bare, up = [], [], []
    for _ in range(starts):
        for script, times in ((ENTRY, first), (BARE_ENTRY, bare)):
            with tempfile.TemporaryDirectory() as tmp, serve(results, Path(tmp) / "log", script) as (url, secs):
                if script == ENTRY:
                    up.append(secs)
                page = browser.new_page(viewport={"width": 1500, "height": 1100})
                page.add_init_script(INIT_JS)
                page.goto(url, wait_until="commit")
                times.append(Timer(page).idle(0.0, "Overview"))
                page.close()
    out["server start (launch -> healthy)"], out["first Overview idle"] = up, first
    out["first Overview, no warm start"] = bare


def report(out: dict, load_before, load_after) -> None:
    med = {k: statistics.median(v) for k, v in out.items() if v}
    base = {"drag": "thresholds no-op", "arrow": "thresholds no-op", "three": "thresholds no-op",
            "plane": "thresholds no-op", "navigation": "navigation no-op", "URL": "blank app: URL new tab idle",
            "first": "blank app: first page idle"}
    print(f"\n{'measure':<36}{'n':>3}{'median':>9}{'min':>8}{'max':>8}{'/ no-op':>9}  target")
    for k, v in out.items():
        if not v:
            print(f"{k:<36}  (not measured)")
            continue
        b = med.get(base.get(k.split()[0], ""), None)
        ratio = f"{med[k] / b:8.1f}x" if b and "no-op" not in k else " " * 9
        tgt = TARGETS.get(k)
        flag = "" if tgt is None else f"<= {tgt:.2f} s {'met' if med[k] <= tgt else 'NOT met'}"
        print(f"{k:<36}{len(v):>3}{med[k]:8.3f}s{min(v):7.3f}s{max(v):7.3f}s{ratio}  {flag}")
    print(f"\nload average (1, 5, 15 min): before {load_before}, after {load_after}; {os.cpu_count()} CPUs")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=7, help="tries per measure")
    ap.add_argument("--starts", type=int, default=3, help="fresh servers for the first Overview")
    ap.add_argument("--results", help="results folder (default: the shipped demo results)")
    ap.add_argument("--only", default="blank,first,thresholds,navigation,tab", help="comma-separated parts")
    ap.add_argument("--json", help="write the raw times here")
    args = ap.parse_args()
    if not Path(CHROMIUM).exists():
        raise SystemExit(f"{CHROMIUM} is absent: `apt-get install -y chromium`")
    from playwright.sync_api import sync_playwright

    results = Path(args.results) if args.results else None
    parts = set(args.only.split(","))
    load_before = tuple(round(x, 2) for x in os.getloadavg())
    out: dict[str, list[float]] = {}
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--headless", "--no-sandbox", "--disable-gpu",
                                                                    "--disable-background-networking"])
        if "blank" in parts:
            blank_baseline(browser, args.runs, out)
        if "first" in parts:
            first_overview(browser, results, args.starts, out)
        with tempfile.TemporaryDirectory() as tmp, serve(results, Path(tmp) / "log") as (url, _):
            ctx = browser.new_context(viewport={"width": 1500, "height": 1100})
            ctx.add_init_script(INIT_JS)
            tm = Timer(ctx.new_page())
            if "thresholds" in parts:
                bench_thresholds(tm, url, args.runs, out)
            if "navigation" in parts:
                bench_navigation(tm, url, args.runs, out)
            if "tab" in parts:
                bench_new_tab(ctx, url, args.runs, out)
            ctx.close()
        browser.close()
    report(out, load_before, tuple(round(x, 2) for x in os.getloadavg()))
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
