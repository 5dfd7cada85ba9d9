"""Issue 16 (latency): the first screen of Overview and of Thresholds sends no plotly chart (its 4.7 MB
frontend chunk costs ~1.5 s in every new browser tab) and no big table; charts and tables arrive only
in the section or tab the reader opens, which then stays open across reruns, label changes and pages.

AppTest through the real entrypoint on the app fixture run (prefix, generic, specific: PM and the plane
are defined). Elements are named by their widget keys (the suffix of their element id). The real-browser
clicks are in tests/test_browser_lazy.py.
"""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from app import render
from core.runs.results import RunResults, load_results, save_results
from core.scoring.registry import compute_metrics
from tests.fixtures_app import THRESHOLD_TABS, make_run, open_sections, open_tab, write_run
from tests.test_app_pages import app


@pytest.fixture(scope="module")
def results(tmp_path_factory) -> Path:
    return write_run(tmp_path_factory.mktemp("lazy") / "run")


def keys(elements) -> list[str]:
    """The user keys of ``elements`` (Streamlit ends a keyed element's id with ``-<key>``)."""
    return [e.proto.id.rsplit("-", 1)[-1] for e in elements]


def charts(at) -> list[str]:
    return keys(at.get("plotly_chart"))


def tables(at) -> list[str]:
    """What each st.dataframe / st.table shows, named from its columns (a table carries no key in its id)."""
    def name(cols: list[str]) -> str:
        if cols[:2] == ["field", "value"]:
            return "manifest"
        if any(c.endswith("95% interval") for c in cols):
            return "intervals"
        return "metrics" if cols[0] == "setting" and "ALS" in cols else f"other {cols}"
    return [name(list(d.value.columns)) for d in [*at.dataframe, *at.table]]


def expanders(at) -> list[str]:
    """The labels of the page's expanders as the reader sees them."""
    return [render.shown(e.label) for e in at.main.expander]


def test_overview_first_screen_has_no_chart_and_no_table_until_a_section_is_opened(monkeypatch, results):
    at = app(monkeypatch, results, "overview")
    assert charts(at) == [] and tables(at) == []
    assert expanders(at) == ["Glossary: prefix, generic, specific, floor, ALS, FMR, NVR, PM",
                             "Run in view: model, corpus, index, settings, decoding, seeds",
                             "Every metric, with 95% bootstrap intervals",
                             "Charts: ALS per setting, PM and the capability-propensity plane"]
    assert [e.proto.expanded for e in at.main.expander] == [False] * 4
    assert at.selectbox(key="ov_metric").value == "als" and any(m.label.startswith("PM of ALS") for m in at.metric)
    assert "More metrics" not in [m.label for m in at.multiselect]  # inside its closed section
    # each section, opened alone, brings exactly its own elements
    assert tables(open_sections(at, "ov_open_run")) == ["manifest"] and charts(at) == []
    at.session_state["ov_open_run"] = False
    assert tables(open_sections(at, "ov_open_metrics")) == ["metrics", "intervals"] and charts(at) == []
    assert [m.label for m in at.multiselect] == ["More metrics"]
    at.session_state["ov_open_metrics"] = False
    assert charts(open_sections(at, "ov_open_charts")) == ["ov_bars", "ov_pm", "ov_plane"] and tables(at) == []
    at.session_state["ov_open_charts"] = False
    at.run()
    assert charts(at) == [] and tables(at) == []  # closed again: nothing sent


def test_an_opened_section_stays_open_when_its_label_changes_and_across_pages(monkeypatch, results):
    at = open_sections(app(monkeypatch, results, "overview"))
    run = load_results(results)
    assert len(charts(at)) == 3 and len(tables(at)) == 3
    at.selectbox(key="ov_metric").set_value("fmr").run()  # the Charts label names the metric: a new widget id
    assert "Charts: FMR per setting, PM and the capability-propensity plane" in expanders(at)
    assert charts(at) == ["ov_bars", "ov_pm", "ov_plane"] and len(tables(at)) == 3
    bars = {tr["meta"]: tr["y"][0] for tr in json.loads(at.get("plotly_chart")[0].proto.spec)["data"]}
    assert bars == pytest.approx({s: compute_metrics(run.by_setting(s)[1])["fmr"] for s in run.settings()})  # FMR now
    at.switch_page("../pages/thresholds.py").run()
    at.slider(key="thr_span_n").set_value(12).run()  # a threshold change, then back
    at.switch_page("../pages/overview.py").run()
    assert not at.exception, at.exception
    assert len(charts(at)) == 3 and len(tables(at)) == 3
    assert [e.proto.expanded for e in at.main.expander] == [False, True, True, True]  # glossary, then the three


def test_thresholds_first_screen_has_the_numbers_table_only_and_each_tab_its_own_charts(monkeypatch, results):
    at = app(monkeypatch, results, "thresholds")
    assert [t.label for t in at.tabs] == list(THRESHOLD_TABS)
    assert charts(at) == [] and tables(at) == ["metrics"]
    assert at.session_state["thr_view"] == "Numbers"
    expected = {"Numbers": ([], ["metrics"]), "Span-share curves": (["thr_curves"], []),
                "PM vs N": (["thr_pm_curve"], []), "Distributions": (["thr_span_dist", "thr_nv_dist"], []),
                "Plane": (["thr_plane_chart"], [])}
    for label in THRESHOLD_TABS:
        open_tab(at, label)
        assert (charts(at), tables(at)) == expected[label], label
        # the open tab holds them; every other tab is empty
        assert [bool(t.children) for t in at.tabs] == [t == label for t in THRESHOLD_TABS]
        assert ("Plane metric" in [s.label for s in at.selectbox]) == (label == "Plane")
    assert "Capability-propensity plane with bootstrap intervals" not in [c.label for c in at.checkbox]


def test_the_open_tab_survives_slider_moves_and_page_switches(monkeypatch, results):
    at = open_tab(app(monkeypatch, results, "thresholds"), "Span-share curves")
    for n in (10, 30):
        at.slider(key="thr_span_n").set_value(n).run()  # a fragment rerun
        assert not at.exception, at.exception
        assert at.session_state["thr_view"] == "Span-share curves" and charts(at) == ["thr_curves"]
        spec = at.get("plotly_chart")[0].proto.spec
        assert json.loads(spec)["layout"]["annotations"][0]["text"] == f"N = {n}"  # redrawn at the new N
    at.switch_page("../pages/overview.py").run()
    at.switch_page("../pages/thresholds.py").run()
    assert at.session_state["thr_view"] == "Span-share curves" and charts(at) == ["thr_curves"]


def test_pm_vs_n_tab_explains_itself_when_the_run_has_no_prefix_setting(monkeypatch, tmp_path):
    run = make_run()
    keep = [i for i, g in enumerate(run.generations) if g.key.setting != "prefix"]
    manifest = dataclasses.replace(run.manifest, settings=tuple(s for s in run.manifest.settings if s.name != "prefix"))
    folder = save_results(RunResults(None, manifest, tuple(run.generations[i] for i in keep),
                                     tuple(run.traces[i] for i in keep)), tmp_path / "no-prefix")
    at = open_tab(app(monkeypatch, folder, "thresholds"), "PM vs N")
    assert charts(at) == [] and tables(at) == []
    assert any("needs a prefix setting" in render.shown(i.value) for i in at.info)
    assert charts(open_tab(at, "Span-share curves")) == ["thr_curves"]  # the other views still draw


def test_explore_sends_its_completions_table_only_when_opened(monkeypatch, results):
    at = app(monkeypatch, results, "explore")
    assert "All matching completions" in expanders(at) and at.dataframe.len == 0
    at.session_state["ex_open_table"] = True
    at.run()
    assert not at.exception, at.exception
    run = load_results(results)
    (frame,) = [d.value for d in at.dataframe]
    assert len(frame) == len(run.traces)  # every traced completion matches the default filters


def test_the_sidebar_names_its_folder_and_draws_the_box_to_change_it_only_when_opened(monkeypatch, results, tmp_path):
    from app import state
    from tests.fixtures_app import shown_folder, type_folder

    at = app(monkeypatch, results, "overview")
    assert shown_folder(at) == str(results) and len(at.sidebar.text_input) == 0 and len(at.sidebar.button) == 0
    at.session_state[state.FOLDER_BOX] = True
    at.run()
    assert at.sidebar.text_input(key=state.FOLDER_INPUT).value == str(results)  # the box holds the folder in view
    assert [b.label for b in at.sidebar.button] == ["Clear cache"]
    other = write_run(tmp_path / "other")
    type_folder(at, str(other))
    assert shown_folder(at) == str(other) and not at.exception
    at.session_state[state.FOLDER_BOX] = False
    at.run()  # closed again: the folder stays, the box is gone
    assert shown_folder(at) == str(other) and len(at.sidebar.text_input) == 0
    at.switch_page("../pages/explore.py").run()
    assert shown_folder(at) == str(other) and not at.exception
