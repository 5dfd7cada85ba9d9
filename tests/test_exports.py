"""Exports (core/reports/exports.py) and the stakeholder HTML report (core/reports/html.py, app/story.py).

Rows are checked against the traces by brute force; n/a against the metric registry's scope and PM's
0/0 case; the report against what a stakeholder sees first and what must never be in it.
"""
from __future__ import annotations

import dataclasses
import math
import os
import re
from pathlib import Path

import pandas as pd

from app import story as app_story
from core.config import CAPABILITY, MetricsConfig, ModelConfig
from core.reports import exports, na
from core.reports.html import build_report, portable
from core.reports.na import NA, PM_NA
from core.runs.manifest import IndexInfo, ModelInfo
from core.scoring import registry
from core.scoring.bootstrap import bootstrap_intervals
from core.scoring.propensity import run_pm
from core.scoring.registry import HEADLINE, METRICS, compute_metrics
from tests.fixtures_app import make_run
from tests.test_story import floor_run, report_figures, silent_run

CFG = MetricsConfig(bootstrap_samples=200)
SNAKE = re.compile(r"^[a-z]+(_[a-z0-9]+)+$")


def scored(run, cfg=CFG):
    settings = run.settings()
    values = {s: compute_metrics(run.by_setting(s)[1], cfg, run.by_setting(s)[0]) for s in settings}
    intervals = {s: bootstrap_intervals(run.by_setting(s)[1], cfg, run.by_setting(s)[0], metrics=HEADLINE)
                 for s in settings}
    floors = tuple(s for s in settings if s == "floor")
    by_setting = run_pm({s: run.by_setting(s)[1] for s in settings}, cfg, HEADLINE,
                        generations_by_setting={s: run.by_setting(s)[0] for s in settings}, values_by_setting=values,
                        settings=[s for s in settings if s not in (CAPABILITY, *floors)])
    pm = {m: {s: row[m] for s, row in by_setting.items()} for m in HEADLINE}
    return values, intervals, pm, by_setting, floors


def test_spans_export_has_one_row_per_span_and_document_with_offsets_into_the_completion():
    run = make_run()
    frame = exports.spans_frame(run.traces)
    assert len(frame) == sum(max(1, len(s.docs)) for t in run.traces for s in t.spans)
    by_key = {(t.key.setting, t.key.prompt_id, t.key.sample_index): t for t in run.traces}
    for row in frame.to_dict("records"):
        t = by_key[(row["Setting"], row["Prompt id"], row["Sample"])]
        span = t.spans[row["Span number"]]
        assert t.completion[row["Span start (character)"]:row["Span end (character)"]] == row["Span text"]
        assert row["Span length (tokens)"] == span.length == len(row["Span text"].split())
        doc = next(d for d in span.docs if d.doc_id == row["Document id"])
        assert (row["Document index"], row["Tier"], row["nv_recall"]) == (doc.doc_ix, doc.tier, doc.nv.recall)
        assert row["Prompt echo"] == span.echo


def test_completions_export_matches_traces_and_names_documents():
    run = make_run()
    frame = exports.completions_frame(run.generations, run.traces)
    assert len(frame) == len(run.generations)
    for row, g in zip(frame.to_dict("records"), run.generations):
        _, t = run.lookup(g.key)
        assert row["Completion"] == g.completion and row["Longest verbatim span (tokens)"] == t.longest_span
        assert row["Full match"] == t.full_match and row["Best nv_recall"] == t.max_nv_recall
        assert row["Training documents"] == "; ".join(dict.fromkeys(d.doc_id for d in t.docs))


def test_summary_export_has_intervals_and_pm_with_readable_columns_and_a_dictionary():
    run = make_run()
    values, intervals, _, by_setting, floors = scored(run)
    frame = exports.summary_frame(values, intervals, by_setting, CFG, floors).set_index("Setting")
    assert frame.loc["prefix", "ALS (tokens)"] == round(values["prefix"]["als"], 6)
    assert frame.loc["generic", "NVR (0-1) 95% low"] == round(intervals["generic"]["nvr"].lo, 6)
    assert frame.loc["specific", "PM of FMR"] == round(by_setting["specific"]["fmr"].value, 6)
    assert frame.loc["prefix", "PM of ALS"] == NA  # the attack has no PM against itself
    assert frame.loc["generic", registry.column("discoverable")] == NA
    assert frame.loc["prefix", registry.column("discoverable")] != NA
    summary = frame.reset_index()
    assert not [c for c in summary.columns if SNAKE.match(c)]  # no code names
    dictionary = exports.data_dictionary(summary)
    for table, cols in (("summary", summary.columns), ("completions", exports.COMPLETION_COLUMNS),
                        ("spans", exports.SPAN_COLUMNS)):
        meanings = dictionary[dictionary.table == table].set_index("column")["meaning"]
        assert list(meanings.index) == list(cols)
        assert all(len(m) > 15 and m != c for c, m in meanings.items())


def test_json_export_keeps_pm_zero_with_a_flag_and_nulls_what_does_not_apply():
    run = silent_run()
    values, intervals, _, by_setting, floors = scored(run)
    doc = exports.summary_document("silent", values, intervals, by_setting, CFG, "the run's own", floors)
    for m in HEADLINE:
        assert doc["pm"]["generic"][m]["value"] == 0.0 and doc["pm"]["generic"][m]["undefined"] is True
        assert doc["pm"]["generic"][m]["shown_as"] == PM_NA
    generic = doc["settings"]["generic"]
    prefix_only = {m for m, spec in METRICS.items() if not spec.applies_to("generic")}  # the registry's scope
    assert prefix_only and set(generic["not_applicable"]) == prefix_only & set(values["generic"])
    assert all(generic["metrics"][m] is None for m in generic["not_applicable"])
    assert doc["settings"]["prefix"]["metrics"]["discoverable"] is not None
    assert doc["thresholds"]["span_threshold"] == CFG.span_threshold and doc["thresholds"]["source"] == "the run's own"
    frame = exports.summary_frame(values, intervals, by_setting, CFG, floors).set_index("Setting")
    assert frame.loc["generic", "PM of ALS"] == PM_NA


def test_portable_cuts_absolute_paths():
    here = str(Path.cwd().resolve())
    text = portable(f'{{"dirs": ["{here}/build/index"], "cache": "{Path.home()}/.cache/propme/x.sqlite"}}')
    assert here not in text and str(Path.home()) not in text and "…/build/index" in text


def _report(run, cap=6, run_path=None):
    values, intervals, pm, _, floors = scored(run)
    figs = app_story.figures("fixture", values, intervals, pm["als"], "als", floors)
    inp = app_story.report_input(run, run_path, values, intervals, pm, "als", CFG, False, figs, cap=cap)
    return build_report(inp), inp


def test_report_tells_the_story_first_and_keeps_configuration_and_paths_out_of_it(tmp_path):
    run = floor_run()
    manifest = dataclasses.replace(
        run.manifest, index=IndexInfo((str(tmp_path / "index"),), "f"),
        cache={"path": os.path.expanduser("~/.cache/propme/cache.sqlite")},
        model=ModelInfo("m", ModelConfig(str(Path.cwd() / "demo" / "model"))))
    run = dataclasses.replace(run, manifest=manifest)
    doc, inp = _report(run)
    body = re.sub(r"<script\b.*?</script>", "", doc.split("</head>", 1)[1], flags=re.DOTALL)
    first = body.index("Can it leak?")  # what was tested, the verdicts, then the folded numbers, the appendix
    assert body.index("What was tested") < first < body.index("Does it leak?") < body.index('id="numbers"') \
        < body.index('id="appendix"')
    assert body.index('id="appendix"') < body.index("Configuration of the run") < body.index("index.dirs")
    for path in (str(tmp_path), str(Path.home()), str(Path.cwd().resolve())):
        assert path not in doc
    assert "text never seen in training reaches" in body  # the floor sentence
    assert len(inp.examples) == 6 and body.count('class="example"') == 6  # capped
    assert [f["layout"]["title"]["text"].split(" per ")[0] for f in report_figures(doc)][:1] == ["ALS"]


def test_report_shows_na_for_zero_against_zero():
    doc, _ = _report(silent_run())
    body = re.sub(r"<script\b.*?</script>", "", doc.split("</head>", 1)[1], flags=re.DOTALL)
    assert "n/a — no leakage in either setting" in body
    pm_bars = report_figures(doc)[1]
    assert pm_bars["data"][0]["text"] == ["n/a — no leakage in either setting"]


def test_report_numbers_table_equals_core_intervals():
    run = make_run()
    values, intervals, *_ = scored(run)
    _, inp = _report(run)
    table = dict(inp.tables)["Headline metrics with 95% bootstrap intervals"].set_index("setting")
    for s in run.settings():
        iv = intervals[s]["als"]
        assert table.loc[s, "ALS"] == na.fmt(iv.value)
        assert table.loc[s, "ALS 95% interval"] == f"[{na.fmt(iv.lo)}, {na.fmt(iv.hi)}]"
    assert not math.isnan(values["prefix"]["als"]) and isinstance(inp.thresholds, pd.DataFrame)
