"""App responsiveness, server side, measured through AppTest (no browser, no network).

What a user feels (the browser drawing the page, a new tab booting the frontend) is measured by
bench/bench_app_latency.py with a real browser; this bench isolates the script runs it contains.

1. Threshold change -> updated metrics: on the Thresholds page, move the span threshold N of R_N
   (and the nv threshold) to values not seen before, and time each script rerun (re-scoring,
   metrics, PM, curves and charts). Baseline in the same run: a rerun with nothing changed
   (everything from cache). Target: p95 <= 200 ms.
2. First render of every page with empty caches (a fresh AppTest each, caches cleared).
   Target: <= 2 s per page once the demo index is built.

Data: the shipped demo results when present (or --results), else a synthetic run of
``--prompts`` prompts per setting from tests/fixtures_app.py.

    python bench/bench_app.py [--results FOLDER] [--changes 30] [--prompts 100]
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run as a script from anywhere

import streamlit as st
from streamlit.testing.v1 import AppTest

PAGES = ["overview", "run", "explore", "thresholds", "compare", "corpus", "export"]


def _results(args) -> tuple[Path, str]:
    if args.results:
        return Path(args.results), "given"
    try:
        from core.runs.demo import demo_results_dir

        demo = demo_results_dir()
        if (demo / "manifest.json").is_file():
            return demo, "demo"
    except ModuleNotFoundError:
        pass
    from tests.fixtures_app import write_run

    folder = Path(tempfile.mkdtemp(prefix="bench_app_")) / "run"
    return write_run(folder, n_per_setting=args.prompts), f"synthetic ({args.prompts} prompts per setting)"


def _p(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, round(q * (len(values) - 1)))]


def _timed(fn) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def bench_thresholds(changes: int) -> None:
    at = AppTest.from_file(str(ROOT / "app" / "streamlit_app.py"), default_timeout=300).run()
    at.switch_page("../pages/thresholds.py").run()
    assert not at.exception, at.exception
    top = at.slider(key="thr_span_n").max
    ns = [1 + (7 * i) % (top - 1) for i in range(1, changes + 1)]
    change = [_timed(lambda n=n: at.slider(key="thr_span_n").set_value(n).run()) for n in ns]
    nv = [_timed(lambda v=v: at.slider(key="thr_nv").set_value(v).run()) for v in (0.1, 0.2, 0.3, 0.4, 0.6, 0.7)]
    idle = [_timed(at.run) for _ in range(10)]
    assert not at.exception, at.exception
    ms = lambda xs, q: 1000 * _p(xs, q)
    print(f"threshold change (span N, {len(change)} new values): p50 {ms(change, .5):.0f} ms, "
          f"p95 {ms(change, .95):.0f} ms (target <= 200 ms)")
    print(f"threshold change (nv threshold, {len(nv)} new values): p50 {ms(nv, .5):.0f} ms, p95 {ms(nv, .95):.0f} ms")
    print(f"baseline rerun with nothing changed: p50 {ms(idle, .5):.0f} ms; "
          f"span-N change / baseline = {statistics.median(change) / statistics.median(idle):.2f}x")


def bench_first_render() -> None:
    """Each page opened directly (a deep link) with empty caches: the entrypoint renders that page first."""
    for page in PAGES:
        st.cache_data.clear()
        st.cache_resource.clear()
        at = AppTest.from_file(str(ROOT / "app" / "streamlit_app.py"), default_timeout=300)
        at.switch_page(f"../pages/{page}.py")
        secs = _timed(at.run)
        again = _timed(at.run)  # the same page once more, from cache
        status = "error: " + str(at.exception) if at.exception else "ok" if secs <= 2.0 else "OVER TARGET"
        print(f"first render {page:<11} {secs * 1000:7.0f} ms  (target <= 2000 ms)  {status};  "
              f"rerun {again * 1000:5.0f} ms")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--results", help="results folder to open (default: demo results, else synthetic)")
    ap.add_argument("--changes", type=int, default=30, help="threshold values to time")
    ap.add_argument("--prompts", type=int, default=100, help="synthetic run: prompts per setting")
    args = ap.parse_args()
    folder, kind = _results(args)
    os.environ["PROPME_RESULTS_DIR"] = str(folder)
    print(f"results: {folder} [{kind}]")
    bench_first_render()
    bench_thresholds(args.changes)


if __name__ == "__main__":
    main()
