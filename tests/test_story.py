"""The story of a run (core/reports/story.py, app/story.py) and the pages that tell it.

Numbers on screen are checked against core's metrics computed here by brute force over the traces;
the wording against the numbers; colours read from every plotly figure's JSON of every page and of
the HTML report; thresholds tuned on the Thresholds page followed to Overview and the exports.
"""
from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from app import paths
from app.render import shown
from core.config import MetricsConfig, SettingConfig
from core.errors import ConfigError
from core.records import Generation, GenKey, Prompt, TraceResult
from core.reports import exports, story
from core.reports.palette import SETTING_COLORS, setting_color
from core.runs.manifest import Manifest, ModelInfo
from core.runs.results import RunResults, load_results, save_results
from core.scoring import registry
from core.scoring.registry import compute_metrics
from tests.fixtures_app import THRESHOLD_TABS, _traced, make_docs, make_run, open_sections, open_tab

ROOT = Path(__file__).resolve().parents[1]
TIMEOUT = 120


# -- fixtures ----------------------------------------------------------------------------------------

def floor_run(name: str = "floored") -> RunResults:
    """The app fixture run plus a 'floor' setting (kind floor) of texts sharing 2-3 words with the corpus."""
    run = make_run(name=name)
    docs = make_docs()
    gens, traces = list(run.generations), list(run.traces)
    for i in range(5):
        key = GenKey("floor", f"floor-{i}")
        piece = " ".join(docs[i][1].split()[5:7 + i % 2])
        completion, trace = _traced(docs, key, "Fresh text never seen", piece, "ends here today.", i)
        gens.append(Generation(key, Prompt("floor", key.prompt_id, ""), completion, finish_reason="floor"))
        traces.append(trace)
    manifest = dataclasses.replace(run.manifest, settings=(
        *run.manifest.settings, SettingConfig("floor", prompts_path="floor.jsonl", kind="floor")))
    return RunResults(None, manifest, tuple(gens), tuple(traces))


def silent_run() -> RunResults:
    """prefix and generic with no verbatim span at all: every leakage metric is 0 in both (PM 0/0)."""
    gens, traces = [], []
    for s in ("prefix", "generic"):
        for i in range(4):
            key = GenKey(s, f"{s}-{i}")
            prompt = Prompt(s, key.prompt_id, f"prompt {i}", true_continuation="a b c" if s == "prefix" else None)
            gens.append(Generation(key, prompt, f"nothing memorized here {i}"))
            traces.append(TraceResult(key, f"nothing memorized here {i}", 4, (), 0))
    manifest = Manifest("silent", model=ModelInfo("silent-model"), metrics=MetricsConfig(),
                        settings=(SettingConfig("prefix"), SettingConfig("generic", prompts_path="generic.jsonl")))
    return RunResults(None, manifest, tuple(gens), tuple(traces))


@pytest.fixture(scope="module")
def floored(tmp_path_factory) -> Path:
    return save_results(floor_run(), tmp_path_factory.mktemp("story") / "floored")


@pytest.fixture(scope="module")
def silent(tmp_path_factory) -> Path:
    return save_results(silent_run(), tmp_path_factory.mktemp("story") / "silent")


def app(monkeypatch, folder: Path, page: str | None = None) -> AppTest:
    monkeypatch.setenv(paths.RESULTS_ENV, str(folder))
    monkeypatch.delenv(paths.DATA_ROOT_ENV, raising=False)
    at = AppTest.from_file(str(ROOT / "app" / "streamlit_app.py"), default_timeout=TIMEOUT)
    at.run()
    if page:
        at.switch_page(f"../pages/{page}.py").run()
    assert not at.exception, at.exception
    return at


def metrics_shown(at: AppTest) -> dict[str, str]:
    """{label as the reader sees it: value} of every st.metric."""
    return {shown(m.label): m.value for m in at.metric}


def setting_colors(figures: list[dict]) -> dict[str, set[str]]:
    """{setting: colours it is drawn in} over plotly figure dicts; traces name their setting in ``meta``
    (a list of settings for per-bar colours). A trace named like a setting without ``meta`` fails."""
    seen: dict[str, set[str]] = {}
    for fig in figures:
        for tr in fig.get("data", []):
            meta = tr.get("meta")
            marker, line = tr.get("marker") or {}, tr.get("line") or {}
            if isinstance(meta, list):
                for s, c in zip(meta, marker["color"]):
                    seen.setdefault(s, set()).add(c)
            elif isinstance(meta, str):
                seen.setdefault(meta, set()).add(marker.get("color") or line.get("color"))
            else:
                assert tr.get("name") not in SETTING_COLORS, f"trace {tr.get('name')!r} has no setting colour"
    return seen


def page_figures(at: AppTest) -> list[dict]:
    return [json.loads(c.proto.spec) for c in at.get("plotly_chart")]


def report_figures(doc: str) -> list[dict]:
    """The plotly figures of a built HTML report, read back from its newPlot calls."""
    out, dec = [], json.JSONDecoder()
    for m in re.finditer(r'Plotly\.newPlot\(\s*"fig-\d+",\s*', doc):
        data, end = dec.raw_decode(doc, m.end())
        layout, _ = dec.raw_decode(doc, re.match(r",\s*", doc[end:]).end() + end)
        out.append({"data": data, "layout": layout})
    return out


# -- the story in words and numbers --------------------------------------------------------------------

def test_headline_numbers_equal_a_brute_force_count_over_the_traces():
    run = make_run()
    for s in run.settings():
        gens, traces = run.by_setting(s)
        h = story.headline(s, compute_metrics(traces, MetricsConfig(span_threshold=20), gens), 20)
        assert h.n == len(traces)
        assert h.share == sum(t.longest_span >= 20 for t in traces) / len(traces)
        assert h.longest == max(t.longest_span for t in traces)
        assert h.full == sum(t.full_match for t in traces)


@pytest.mark.parametrize("value,word,not_word", [(0.03, "far less", "as much as the attack"), (0.2, "much less", "far"),
                                                 (0.456, "slightly less", "about as much"), (0.8, "more than", "less")])
def test_pm_sentence_wording_follows_the_number(value, word, not_word):
    from core.reports.verdicts import PMNumbers, RunNumbers, decide

    values = {"prefix": {"n_generations": 10, "r_n": 0.5, "max_span": 90, "fmr": 0.1, "als": 1 - value},
              "generic": {"n_generations": 10, "r_n": 0.3, "max_span": 80, "fmr": 0.0, "als": value}}
    pm = {"generic": PMNumbers(value, value - 0.01, value + 0.01, value, 1 - value)}
    text = decide(RunNumbers(values, 50, (), pm)).readings[0].sentence
    assert word in text and not_word not in text and f"{value:.2f}" in text


def test_pm_of_zero_against_zero_is_na_in_words():
    from core.reports.verdicts import PMNumbers, RunNumbers, decide

    values = {s: {"n_generations": 3, "r_n": 0.0, "max_span": 0, "fmr": 0.0, "als": 0.0} for s in ("prefix", "generic")}
    text = decide(RunNumbers(values, 50, (), {"generic": PMNumbers(0.0, 0.0, 0.0, 0.0, 0.0, True)}, "fmr")).sentences()[0]
    assert "n/a — no leakage in either setting" in text and "0.00" not in text


def test_answer_words_follow_the_share():
    from core.reports.verdicts import answer_text

    none = answer_text(story.Headline("generic", 50, 50, 0.0, 7, 0, 2.0), False, False, None)
    most = answer_text(story.Headline("prefix", 50, 50, 0.9, 200, 30, 120.0), True, False, None)
    assert none.startswith("No.") and "0% of 50 completions" in none
    assert most.startswith("Yes, mostly.") and "90% of 50" in most and "200 tokens" in most


def test_striking_and_telling_pick_the_longest_spans_within_the_cap():
    run = make_run()
    best = story.striking(run.traces)
    for s in run.settings():
        longest = max(t.longest_span for t in run.by_setting(s)[1])
        assert run.lookup(best[s])[1].longest_span == longest
    keys = story.telling(run.traces, ["generic", "specific", "prefix"], cap=4)
    assert len(keys) == 4 and [k.setting for k in keys[:3]] == ["generic", "specific", "prefix"]
    assert keys[:3] == [best["generic"], best["specific"], best["prefix"]]
    assert all(run.lookup(k)[1].spans for k in keys)


def test_palette_gives_each_known_setting_its_own_colour():
    colours = [setting_color(s) for s in SETTING_COLORS]
    assert len(set(colours)) == len(colours)
    assert setting_color("custom-x") == setting_color("custom-x")


def test_floor_setting_kind_is_checked():
    with pytest.raises(ConfigError, match="kind must be one of"):
        SettingConfig("floor", prompts_path="f.jsonl", kind="baseline")
    with pytest.raises(ConfigError, match="needs prompts_path"):
        SettingConfig("held-out", kind="floor")


def test_floor_setting_traces_its_texts_without_generating(tmp_path):
    """A setting of kind floor: its file's texts are the completions, traced and scored; nothing generated."""
    from core.config.file import load_experiment
    from core.runs.cache import ResultCache
    from core.runs.experiment import run_experiment
    from tests.fixtures_runs import CORPUS, make_tiny_experiment

    floor_texts = [CORPUS[2], "Zebras quietly juggle purple umbrellas near frozen volcanoes every Thursday."]
    (tmp_path / "floor.jsonl").write_text("".join(json.dumps({"id": f"f{i}", "text": t}) + "\n"
                                                  for i, t in enumerate(floor_texts)))
    toml = make_tiny_experiment(tmp_path, extra='\n[[settings]]\nname = "held-out"\nkind = "floor"\n'
                                                 'prompts_path = "floor.jsonl"\n')
    cfg = dataclasses.replace(load_experiment(toml), output_dir=str(tmp_path / "results"))
    run = run_experiment(cfg, cache=ResultCache(tmp_path / "cache"))
    gens, traces = run.by_setting("held-out")
    assert [g.completion for g in gens] == floor_texts and all(g.prompt.text == "" for g in gens)
    counts = run.manifest.counts
    assert counts.generated == counts.generations - len(floor_texts)  # floor texts are not generated
    by_id = {t.key.prompt_id: t for t in traces}
    assert by_id["f0"].full_match  # a corpus document is found whole
    assert by_id["f1"].longest_span < by_id["f0"].longest_span
    assert story.floor_settings(run.manifest, run.settings()) == ("held-out",)
    assert run.summary["held-out"]["metrics"]["als"] == compute_metrics(traces, cfg.metrics, gens)["als"]
    assert "held-out" not in run.pm and set(run.pm) == set(run.settings()) - {"prefix", "held-out"}  # no PM for a floor
    again = run_experiment(cfg, cache=ResultCache(tmp_path / "cache"))
    assert again.manifest.counts.generated == 0 and again.manifest.counts.traced == 0


# -- the Overview ------------------------------------------------------------------------------------------

def test_overview_headline_numbers_equal_cores(monkeypatch, floored):
    run = load_results(floored)
    cfg = MetricsConfig()
    at = app(monkeypatch, floored)
    vals = {s: compute_metrics(run.by_setting(s)[1], cfg, run.by_setting(s)[0]) for s in run.settings()}
    worst = max(("generic", "specific"), key=lambda s: (vals[s]["r_n"], vals[s]["als"], vals[s]["fmr"]))
    tiles = [(shown(m.label), m.value) for m in at.metric]
    for i, s in enumerate(("prefix", worst)):  # the "Can it leak?" box, then the "Does it leak?" box
        traces = run.by_setting(s)[1]
        n = len(traces)
        assert tiles[3 * i:3 * i + 3] == [("≥ 50 tokens", f"{sum(t.longest_span >= 50 for t in traces) / n:.0%}"),
                                          ("Longest span", f"{max(t.longest_span for t in traces)}"),
                                          (f"Full matches of {n}", f"{sum(t.full_match for t in traces)}")]
    assert f"Under ordinary prompts ({worst})" in shown(at.markdown[2].value)
    assert [shown(s.value) for s in at.subheader][:2] == ["Can it leak?", "Does it leak?"]
    infos = " ".join(shown(i.value) for i in at.info)
    assert "PM of ALS" in infos and "text never seen in training reaches" in infos
    floor_als = vals["floor"]["als"]
    assert f"reaches {floor_als:.1f}" in infos
    assert "tests/fixture-model · size unknown" in shown(at.markdown[0].value)  # the model badge
    links = [p for p in at.get("page_link")]
    assert links and all("explore" in p.proto.page for p in links)


def test_overview_shows_na_for_zero_against_zero_and_prefix_only_metrics(monkeypatch, silent):
    at = app(monkeypatch, silent)
    tiles = metrics_shown(at)
    assert tiles["PM of ALS (generic)"] == "n/a — no leakage in either setting"
    assert any("n/a — no leakage in either setting" in shown(i.value) for i in at.info)
    open_sections(at, "ov_open_metrics")
    at.multiselect(key="ov_secondary").set_value(["discoverable", "approx_lcp"]).run()
    table = next(d.value for d in at.dataframe if "Discoverable" in d.value.columns).set_index("setting")
    assert table.loc["generic", "Discoverable"] == "n/a" and table.loc["generic", "LCP"] == "n/a"
    assert table.loc["prefix", "Discoverable"] != "n/a"


def test_one_colour_per_setting_in_every_chart_of_every_page_and_the_report(monkeypatch, floored):
    at = app(monkeypatch, floored)
    figures = page_figures(open_sections(at, "ov_open_charts"))
    assert len(figures) == 3
    at.switch_page("../pages/thresholds.py").run()
    for tab in THRESHOLD_TABS:  # one view at a time: every tab's charts
        figures += page_figures(open_tab(at, tab))
    assert len(figures) == 3 + 5
    at.switch_page("../pages/compare.py").run()
    assert not at.exception, at.exception
    figures += page_figures(at)
    at.switch_page("../pages/export.py").run()
    at.button(key="exp_build").click().run()
    report = at.session_state["exp_report"][3]
    figures += report_figures(report)
    assert len(report_figures(report)) == 3
    seen = setting_colors(figures)
    assert set(seen) >= {"prefix", "generic", "specific", "floor"}
    assert {s: c for s, c in seen.items()} == {s: {setting_color(s)} for s in seen}


def test_floor_is_drawn_as_a_baseline(monkeypatch, floored):
    run = load_results(floored)
    floor_als = compute_metrics(run.by_setting("floor")[1])["als"]
    at = open_sections(app(monkeypatch, floored), "ov_open_charts")
    bars = json.loads(at.get("plotly_chart")[0].proto.spec)
    assert "floor" not in [t["meta"] for t in bars["data"]]  # a baseline, not one more bar
    line = bars["layout"]["shapes"][0]
    assert line["y0"] == pytest.approx(floor_als) and line["line"]["dash"] == "dash"
    at.switch_page("../pages/thresholds.py").run()
    curves = json.loads(open_tab(at, "Span-share curves").get("plotly_chart")[0].proto.spec)
    floor_curve = next(t for t in curves["data"] if t["meta"] == "floor")
    assert floor_curve["line"]["dash"] == "dash"


def test_tuned_threshold_reaches_overview_and_the_exports_and_resets(monkeypatch, floored):
    run = load_results(floored)
    at = app(monkeypatch, floored, "thresholds")
    at.slider(key="thr_span_n").set_value(12).run()
    at.switch_page("../pages/overview.py").run()
    traces = run.by_setting("prefix")[1]
    assert (shown(at.metric[0].label), at.metric[0].value) == (
        "≥ 12 tokens", f"{sum(t.longest_span >= 12 for t in traces) / len(traces):.0%}")
    assert any("tuned in this session" in shown(c.value) for c in at.caption)
    at.switch_page("../pages/explore.py").run()
    reach = sum(t.longest_span >= 12 for t in run.traces)  # no filter: every completion matches
    assert any(f"; {reach} of them hold a verbatim span of at least N = 12 tokens" in shown(c.value)
               for c in at.caption)
    at.switch_page("../pages/export.py").run()
    at.button(key="exp_build").click().run()
    _, cfg, _, report, summary, document = at.session_state["exp_report"]
    assert cfg.span_threshold == 12 and document["thresholds"]["span_threshold"] == 12
    assert document["thresholds"]["source"] == "tuned in the app"
    assert registry.column("r_n") in summary.columns  # the column name is the same under any threshold ...
    dictionary = exports.data_dictionary(summary, cfg).set_index("column")["meaning"]
    assert dictionary[registry.column("r_n")].endswith("span_threshold = 12")  # ... the dictionary names it
    assert re.search(r"<td>span_threshold</td>\s*<td>12</td>", report)
    at.switch_page("../pages/thresholds.py").run()
    assert at.slider(key="thr_span_n").value == 12  # kept across pages
    at.button(key="thr_reset").click().run()
    assert at.slider(key="thr_span_n").value == 50
    at.switch_page("../pages/overview.py").run()
    assert shown(at.metric[0].label) == "≥ 50 tokens"
