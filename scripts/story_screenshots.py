"""Screenshots of the story for a person to look at: Overview and the HTML report's first screen of a results
folder, at 1440 x 900 in headless Chromium, and the report's height before its appendix (issue 22).

    PYTHONPATH=. .venv/bin/python scripts/story_screenshots.py RESULTS_FOLDER NAME [OUT_DIR]

writes OUT_DIR/NAME-overview.png, NAME-report.html, NAME-report-first-screen.png (and -full.png) and prints
the seconds until the Overview's tiles show numbers and the report's screens before its appendix.
"""
from __future__ import annotations

import sys
import time
from pathlib import Path

from playwright.sync_api import sync_playwright

from app.story import report_of_run
from core.runs.results import load_results
from tests.launch import serve

CHROMIUM = "/usr/bin/chromium"
VIEW = {"width": 1440, "height": 900}


def main(folder: str, name: str, out: str = "test-artifacts") -> None:
    out_dir = Path(out)
    out_dir.mkdir(parents=True, exist_ok=True)
    report = out_dir / f"{name}-report.html"
    report.write_text(report_of_run(load_results(folder)), encoding="utf-8")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--headless", "--no-sandbox", "--disable-gpu"])
        page = browser.new_page(viewport=VIEW)
        page.goto(report.resolve().as_uri())
        page.wait_for_selector(".js-plotly-plot .main-svg")
        top = page.evaluate("document.getElementById('appendix').getBoundingClientRect().top + window.scrollY")
        print(f"{name}: report {top:.0f} px before the appendix = {top / VIEW['height']:.1f} screens of 900 px")
        page.screenshot(path=str(out_dir / f"{name}-report-first-screen.png"))
        page.screenshot(path=str(out_dir / f"{name}-report-full.png"), full_page=True)
        with serve(Path(folder).resolve(), out_dir / f"{name}-server.log") as (url, _):
            page = browser.new_page(viewport=VIEW)
            t = time.perf_counter()
            page.goto(url)
            page.wait_for_selector("[data-testid='stMetricValue']", timeout=120_000)
            print(f"{name}: Overview tiles show numbers {time.perf_counter() - t:.1f} s after the page was opened")
            page.wait_for_selector("text=How to read this page", timeout=120_000)
            page.wait_for_load_state("networkidle")
            page.screenshot(path=str(out_dir / f"{name}-overview.png"))
            page.screenshot(path=str(out_dir / f"{name}-overview-full.png"), full_page=True)
        browser.close()


if __name__ == "__main__":
    main(*sys.argv[1:])
