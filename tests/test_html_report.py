"""The self-contained HTML report (core/reports/html.py): offline, escaped, with charts and examples."""
from __future__ import annotations

import re

import pandas as pd
from plotly.offline import get_plotlyjs

from app import charts
from app import story as app_story
from core.reports.html import ReportInput, build_report
from core.scoring.bootstrap import Interval, bootstrap_intervals
from core.scoring.propensity import run_pm
from core.scoring.registry import compute_metrics
from tests.fixtures_app import HOSTILE_SPAN_TEXT, make_run
from tests.test_render import parse, visible


def _report(n_examples: int = 40) -> tuple[str, object]:
    run = make_run()
    cfg = run.manifest.metrics
    values = {s: compute_metrics(run.by_setting(s)[1], cfg) for s in run.settings()}
    from core.config import MetricsConfig

    small = MetricsConfig(bootstrap_samples=200)
    ivs = {s: bootstrap_intervals(run.by_setting(s)[1], small) for s in run.settings()}
    pm = {"generic": Interval(0.3, 0.1, 0.5, "percentile-bootstrap")}
    figs = [charts.metric_bars({s: ivs[s]["nvr"] for s in ivs}, "NVR"), charts.pm_bars(pm, "NVR")]
    traces = {s: run.by_setting(s)[1] for s in run.settings()}
    pm_by = run_pm(traces, small, values_by_setting=values)
    pm_by_metric = {m: {s: row[m] for s, row in pm_by.items()} for m in ("als", "fmr", "nvr")}
    inp = app_story.report_input(run, None, values, ivs, pm_by_metric, "nvr", cfg, False, figs, cap=n_examples)
    return build_report(inp), run


def test_report_is_offline_and_has_one_script_per_figure_plus_plotly():
    doc, _ = _report()
    scripts = re.findall(r"<script\b[^>]*>", doc)
    assert len(scripts) == 1 + 2  # plotly.js + one per figure
    assert "src=" not in "".join(scripts) and "<link" not in doc  # nothing fetched when opened
    assert doc.count("cdn.plot.ly") == get_plotlyjs().count("cdn.plot.ly")  # only plotly.js's own mentions
    assert len(doc) > 1_000_000  # plotly.js itself is inlined
    assert doc.count('class="plotly-graph-div"') == 2


def test_report_shows_hostile_text_literally_and_marks_every_span():
    doc, run = _report()
    body = doc.split("</head>", 1)[1]
    no_scripts = re.sub(r"<script\b.*?</script>", "", body, flags=re.DOTALL)
    c = parse(no_scripts)
    assert {t for t, _ in c.tags} <= {"body", "h1", "h2", "h3", "p", "b", "div", "mark", "span", "table", "thead",
                                       "tbody", "tr", "th", "td", "html", "dl", "dt", "dd",
                                       "header", "main", "nav", "section", "ul", "li", "a",
                                       "details", "summary"}  # landmarks, section links, folded tables and examples
    assert all(a.get("href", "").startswith("#") for t, a in c.tags if t == "a")  # links only within the report
    assert "<script>document" not in no_scripts and "<img" not in no_scripts
    assert visible(HOSTILE_SPAN_TEXT) in c.marks
    expected = [visible(s.text) for t in run.traces for s in t.spans]
    assert sorted(c.marks) == sorted(expected)  # every example shown (n_examples covers the run)


def test_report_tables_escape_manifest_values():
    inp = ReportInput("t", "r", pd.DataFrame([{"field": "model", "value": "<img src=x onerror=alert(1)>"}]),
                      (("<h1>", pd.DataFrame({"a": ["<script>x</script>"]})),), (), ())
    doc = build_report(inp).split("</head>", 1)[1]
    assert "<img" not in doc and "<script>x" not in doc and "&lt;img src=x onerror=alert(1)&gt;" in doc
