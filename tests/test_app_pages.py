"""Every page through the real entrypoint (AppTest), on synthetic results folders with hostile text.

Numbers on screen are checked against core computed independently in the test.
"""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from app import paths, render, runner
from app.views import manifest, planted_records, tables
from core.config import AdaptiveParam, MetricsConfig, NVBlocksConfig
from core.errors import ConfigError
from core.records import GenKey
from core.reports import na
from core.runs.results import load_results
from core.scoring.propensity import pm
from core.scoring.registry import compute_metrics
from core.tracing.nvrecall import rescore
from tests.fixtures_app import HOSTILE_SPAN_TEXT, open_sections, shown_folder, type_folder, write_run
from tests.test_render import expected_marks, parse, visible

ROOT = Path(__file__).resolve().parents[1]
PAGES = ["overview", "run", "explore", "thresholds", "compare", "leaked", "side_by_side", "corpus", "export"]
TIMEOUT = 60


@pytest.fixture(scope="module")
def results(tmp_path_factory) -> Path:
    return write_run(tmp_path_factory.mktemp("app") / "run-a")


@pytest.fixture(scope="module")
def results_b(tmp_path_factory) -> Path:
    return write_run(tmp_path_factory.mktemp("app") / "run-b", seed=11, name="other")


def app(monkeypatch, folder: Path, page: str | None = None, query: dict | None = None) -> AppTest:
    monkeypatch.setenv(paths.RESULTS_ENV, str(folder))
    monkeypatch.delenv(paths.DATA_ROOT_ENV, raising=False)
    at = AppTest.from_file(str(ROOT / "app" / "streamlit_app.py"), default_timeout=TIMEOUT)
    for k, v in (query or {}).items():
        at.query_params[k] = v
    at.run()
    if page:
        at.switch_page(f"../pages/{page}.py").run()
    assert not at.exception, at.exception
    return at


def marks(at: AppTest) -> list[list[str]]:
    """Texts of the propme-span marks of every st.html block and clickable span view on screen."""
    return [[text for _, text in block] for block in indexed_marks(at)]


def indexed_marks(at: AppTest) -> list[list[tuple[int, str]]]:
    """(data-span-ix, text) of the propme-span marks of every st.html block on screen, then of every
    clickable span view (app/span_view.py: read from the data it is given, which its script sets
    with textContent; tests/test_browser_leak.py checks what the browser draws)."""
    blocks = [parse(h.proto.body) for h in at.get("html") if "propme-span" in h.proto.body]
    views_ = [json.loads(el.proto.json) for el in at.get("bidi_component")]
    return [list(zip(c.mark_ixs, c.marks)) for c in blocks] + [
        [(p["ix"], "".join(r[0] for r in p["runs"])) for p in v["pieces"] if p["ix"] >= 0]
        for v in views_ if v.get("mark_class") == "propme-span"]


def metric_value(at: AppTest, label: str) -> str:
    found = [m.value for m in at.metric if render.shown(m.label) == label]  # labels arrive md_literal-escaped
    assert found, f"no metric {label!r}; have {[m.label for m in at.metric]}"
    return found[0]


@pytest.mark.parametrize("page", PAGES)
def test_every_page_renders_on_a_results_folder(monkeypatch, results, page):
    at = app(monkeypatch, results, page)
    assert not at.error, [e.value for e in at.error]


def test_overview_shows_core_metrics_and_a_reading(monkeypatch, results):
    at = app(monkeypatch, results, "overview")
    run = load_results(results)
    for s in run.settings():
        expected = compute_metrics(run.by_setting(s)[1], MetricsConfig())["als"]
        assert metric_value(at, f"ALS ({s})") == f"{expected:.1f} tokens"
    assert any("PM of ALS" in render.shown(i.value) for i in at.info)
    assert len(open_sections(at, "ov_open_charts").get("plotly_chart")) >= 2


def test_span_threshold_slider_drives_r_n(monkeypatch, results):
    at = app(monkeypatch, results, "thresholds")
    run = load_results(results)
    shown = {}
    for n in (10, 40):
        at.slider(key="thr_span_n").set_value(n).run()
        assert not at.exception
        r = {s: compute_metrics(run.by_setting(s)[1], MetricsConfig(span_threshold=n))["r_n"] for s in run.settings()}
        for s in run.settings():
            assert metric_value(at, f"R_{n} ({s})") == na.fmt(r[s])
        assert metric_value(at, f"PM of R_{n} (generic)") == f"{pm(r['generic'], r['prefix']):.3f}"
        shown[n] = r
    assert shown[10] != shown[40]  # the fixture's spans make the two thresholds differ


def test_nvr_block_threshold_rescores_without_retracing(monkeypatch, results):
    at = app(monkeypatch, results, "thresholds")
    at.slider(key="thr_l1").set_value(0.45).run()
    assert not at.exception
    run = load_results(results)
    nvr = NVBlocksConfig(l1=AdaptiveParam(0.45, NVBlocksConfig().l1.lo, NVBlocksConfig().l1.hi))
    table = at.dataframe[0].value.set_index("setting")
    changed = []
    for s in run.settings():
        expected = compute_metrics(rescore(run.by_setting(s)[1], nvr), MetricsConfig())["nvr"]
        default = compute_metrics(run.by_setting(s)[1], MetricsConfig())["nvr"]
        assert table.loc[s, "NVR"] == pytest.approx(expected)
        changed.append(expected != pytest.approx(default))
    assert any(changed)  # the slider really changed a number


def test_explore_highlights_the_spans_core_found(monkeypatch, results):
    at = app(monkeypatch, results, "explore")
    _assert_top_example_marked(at, load_results(results))
    assert at.selectbox(key="ex_pick").index == 0


def _assert_top_example_marked(at: AppTest, run) -> None:
    """The first screen shows a completion with the longest span, its spans (as core found them) marked."""
    label = at.selectbox(key="ex_pick").format_func(at.selectbox(key="ex_pick").value)
    setting, prompt_id, sample = label.split(":")[0].split(" / ")
    gen, trace = run.lookup(GenKey(setting, prompt_id, int(sample.removeprefix("sample "))))
    assert trace.longest_span == max(t.longest_span for t in run.traces)
    # spans core kept apart may overlap (the demo's looping licence text): each character is marked once
    assert indexed_marks(at) == [expected_marks(gen.completion, trace.spans)]
    assert all(gen.completion[s.char_start:s.char_end] == s.text for s in trace.spans)


def test_explore_deep_link_opens_the_hostile_example_as_text(monkeypatch, results):
    at = app(monkeypatch, results, "explore", {"setting": "generic", "prompt": "generic-hostile", "sample": "0"})
    assert marks(at) == [[visible(HOSTILE_SPAN_TEXT)]]
    bodies = "".join(h.proto.body for h in at.get("html"))
    assert "<script" not in bodies and "<img" not in bodies and "&lt;script&gt;" in bodies
    at.selectbox(key="ex_span").set_value(0).run()
    doc_marks = [parse(h.proto.body) for h in at.get("html") if "propme-doc-match" in h.proto.body]
    assert doc_marks and HOSTILE_SPAN_TEXT in "".join(doc_marks[0].text)


def test_explore_filters_narrow_and_sort(monkeypatch, results):
    at = app(monkeypatch, results, "explore")
    at.sidebar.selectbox(key="ex_setting").set_value("specific").run()
    at.sidebar.slider(key="ex_min_span").set_value(10).run()
    labels = at.selectbox(key="ex_pick").options
    run = load_results(results)
    expected = sorted((t for t in run.by_setting("specific")[1] if t.longest_span >= 10),
                      key=lambda t: -t.longest_span)
    assert len(labels) == len(expected) > 0
    assert all(lb.startswith("specific / ") for lb in labels)
    assert [int(lb.split("longest span ")[1].split(",")[0]) for lb in labels] == [t.longest_span for t in expected]


def test_compare_two_runs_gives_model_vs_model_pm(monkeypatch, results, results_b, tmp_path):
    import dataclasses

    from core.runs.manifest import ModelInfo
    from core.runs.results import save_results
    from tests.fixtures_app import make_run

    # the same prompts, index, trace and decoding as run-a; only the model differs: comparable
    base = make_run(score=True)
    other_model = save_results(dataclasses.replace(base, manifest=dataclasses.replace(
        base.manifest, run_name="other-model", model=ModelInfo("another-model"))), tmp_path / "runs" / "other-model")
    at = app(monkeypatch, results, "compare")
    assert at.text_area(key="cmp_root").value == str(results.parent)  # the folder holding the run in view
    at.text_area(key="cmp_root").input(str(results.parent.parent)).run()  # holds run-a's and run-b's parents
    listed = at.multiselect(key="cmp_runs").options
    assert {str(results), str(results_b)} <= {o.rsplit(" | ", 1)[1] for o in listed}
    at.multiselect(key="cmp_runs").set_value([str(results), str(results_b)]).run()
    assert not at.exception, at.exception
    warned = [render.shown(w.value) for w in at.warning]
    # the verdict names each run by its letter; what differs is a table row (each folder named once, above)
    assert any("run B against the reference (run A): NOT comparable" in w for w in warned), warned
    diffs = [f.value for f in at.dataframe if "what differs" in f.value.columns]
    assert diffs and any(row["what differs"] == "prefix prompt texts" and row["effect"] == "not comparable"
                         for row in diffs[0].to_dict("records")), diffs
    assert not any("PM" in f.value.columns for f in at.dataframe)  # no PM between runs that are not comparable
    at.checkbox(key="cmp_show_all").check().run()
    pm_table = at.dataframe[-1].value
    assert sorted(pm_table["setting"]) == ["generic", "prefix", "specific"]
    assert ((pm_table["lo"] <= pm_table["PM"]) & (pm_table["PM"] <= pm_table["hi"])).all()
    assert all(v.startswith("not comparable: ") for v in pm_table["comparable"])
    # a comparable pair (same prompts, index, trace, decoding; another model): PM shown at once, marked comparable
    same = save_results(base, tmp_path / "runs" / "a")
    at.checkbox(key="cmp_show_all").uncheck().run()
    at.text_area(key="cmp_root").input(str(tmp_path / "runs")).run()
    at.multiselect(key="cmp_runs").set_value([str(same), str(other_model)]).run()
    assert not at.exception, at.exception
    assert any("against the reference (run A): comparable: same index" in render.shown(s.value) for s in at.success)
    pm_table = at.dataframe[-1].value
    assert sorted(pm_table["setting"]) == ["generic", "prefix", "specific"] and set(pm_table["comparable"]) == {"yes"}


def test_export_builds_the_html_report(monkeypatch, results):
    at = app(monkeypatch, results, "export")
    at.button(key="exp_build").click().run()
    assert not at.exception
    assert [b.proto.label for b in at.get("download_button")] == [
        "Completions as CSV", "Completions as JSON", "Spans as CSV", "Spans as JSON", "Data dictionary (CSV)",
        "Download the HTML report", "Summary as CSV", "Summary as JSON", "Data dictionary (CSV)"]


def test_missing_results_folder_is_an_error_not_a_crash(monkeypatch, tmp_path):
    at = app(monkeypatch, tmp_path / "nope", "explore")
    assert at.error and "no results folder" in at.error[0].value


def test_data_root_refuses_paths_outside_it(monkeypatch, results, tmp_path):
    at = app(monkeypatch, results, "overview")
    monkeypatch.setenv(paths.DATA_ROOT_ENV, str(tmp_path))
    type_folder(at, str(results.parent / ".." / "elsewhere"))
    assert not at.exception
    assert any("outside the data root" in e.value for e in at.sidebar.error)
    assert any("No results folder is open" in i.value for i in at.info)


def test_confine_follows_symlinks_and_dotdot(tmp_path):
    root = tmp_path / "root"
    (root / "ok").mkdir(parents=True)
    (root / "link").symlink_to(tmp_path)
    assert paths.confine(str(root / "ok"), root.resolve()) == (root / "ok").resolve()
    for bad in (str(root / ".." / "x"), str(root / "link" / "x"), "/etc"):
        with pytest.raises(ConfigError, match="outside the data root"):
            paths.confine(bad, root.resolve())
    with pytest.raises(ConfigError, match="no path given"):
        paths.confine("  ", None)


def test_two_sessions_keep_their_own_runs(monkeypatch, results, results_b):
    a = app(monkeypatch, results, "overview")
    b = app(monkeypatch, results_b, "overview")
    a.run()
    assert "run *fixture*" in render.shown(a.markdown[0].value) and "run *other*" in render.shown(b.markdown[0].value)


def test_run_page_opens_a_cli_results_folder(monkeypatch, results, results_b):
    at = app(monkeypatch, results, "run")
    at.text_input(key="run_open_path").input(str(results_b)).run()
    at.button(key="run_open").click().run()
    assert not at.exception
    assert shown_folder(at) == str(results_b)


def test_corpus_page_counts_a_phrase_like_a_brute_force_scan(monkeypatch, tmp_path):
    from core.index.tokenizer import load_tokenizer
    from core.runs.demo import demo_model_dir, ensure_demo_index

    index = ensure_demo_index()
    tok = load_tokenizer(str(demo_model_dir()))
    folder = write_run(tmp_path / "run", index={"dirs": [str(d) for d in index.dirs], "tokenizer": str(demo_model_dir())})
    docs = [index.doc_tokens(i) for i in range(index.num_docs)]
    phrase = tok.decode(docs[3][5:11])
    # the phrase is searched as typed and with a leading space added or removed (core/index/phrase.py)
    spellings = {tuple(tok(v, add_special_tokens=False)["input_ids"])
                 for v in (phrase, phrase[1:] if phrase.startswith(" ") else " " + phrase)}
    brute = sum(1 for ids in spellings for d in docs for i in range(len(d) - len(ids) + 1)
                if tuple(d[i:i + len(ids)]) == ids)
    at = app(monkeypatch, folder, "corpus")
    assert metric_value(at, "Documents") == f"{index.num_docs:,}"
    at.text_input(key="corpus_phrase").input(phrase).run()
    assert not at.exception, at.exception
    assert brute >= 1 and metric_value(at, "Occurrences in the index") == f"{brute:,}"
    hits = [parse(h.proto.body) for h in at.get("html") if "propme-doc-match" in h.proto.body]
    assert hits and phrase.strip() in "".join(hits[0].text)


# the Run page's end-to-end run (a background job): tests/test_run_worker.py


def _demo_results() -> Path:
    from core.runs.demo import demo_results_dir

    folder = demo_results_dir()
    assert (folder / "manifest.json").is_file(), f"the shipped demo results are tracked in git: {folder}"
    return folder


@pytest.mark.parametrize("page", PAGES)
def test_every_page_renders_on_the_demo_results_by_default(monkeypatch, page):
    folder = _demo_results()
    monkeypatch.delenv(paths.RESULTS_ENV, raising=False)
    monkeypatch.delenv(paths.DATA_ROOT_ENV, raising=False)
    at = AppTest.from_file(str(ROOT / "app" / "streamlit_app.py"), default_timeout=120).run()
    assert shown_folder(at) == str(folder)  # no set-up: the demo opens
    if page != "overview":
        at.switch_page(f"../pages/{page}.py").run()
    assert not at.exception, at.exception
    assert not at.error, [e.value for e in at.error]
    if page == "explore":
        _assert_top_example_marked(at, load_results(folder))
    if page == "overview":
        _assert_reading_and_labels_match_core(at, load_results(folder))


def _assert_reading_and_labels_match_core(at: AppTest, run) -> None:
    """Each PM sentence quotes core's PM of ALS for its natural setting (the floor has none); columns spell
    out N and t."""
    from core.reports.story import floor_settings

    cfg = run.manifest.metrics
    als = {s: compute_metrics(run.by_setting(s)[1], cfg)["als"] for s in run.settings()}
    floors = floor_settings(run.manifest, als)
    natural = [s for s in als if s != "prefix" and s not in floors]
    infos = [render.shown(i.value) for i in at.info]
    assert natural and floors  # the demo holds a chance floor
    for s in natural:
        reading = next(i for i in infos if i.startswith(f"Ordinary prompts ({s}) leak"))
        assert f"PM of ALS = {pm(als[s], als['prefix']):.2f} " in reading
        assert f"text never seen in training reaches {als[floors[0]]:.1f}" in reading
    assert not any(f"({f})" in i for f in floors for i in infos if i.startswith("Ordinary prompts"))
    table = next(d.value for d in open_sections(at, "ov_open_metrics").dataframe if "ALS" in d.value.columns)
    assert f"R_{cfg.span_threshold}" in table.columns and f"NV > {cfg.nv_threshold:g}" in table.columns
    assert "R_N" not in table.columns and "NV > thr" not in table.columns


def test_retrace_button_traces_again_with_the_new_parameters(monkeypatch, tmp_path):
    from core.config import TraceConfig
    from core.index.tokenizer import load_tokenizer
    from core.runs.demo import demo_model_dir, ensure_demo_index
    from core.tracing.trace import trace_many

    index = ensure_demo_index()
    folder = write_run(tmp_path / "run", n_per_setting=2, hostile=False,
                       index={"dirs": [str(d) for d in index.dirs], "tokenizer": str(demo_model_dir())})
    run = load_results(folder)
    at = app(monkeypatch, folder, "thresholds")
    at.selectbox(key="thr_trace_mode").set_value("mixed").run()
    at.slider(key="thr_span_n").set_value(3).run()
    at.button(key="thr_retrace").click().run(timeout=300)
    assert not at.exception, at.exception
    assert at.success and "re-traced" in at.success[0].value
    tcfg = TraceConfig(mode="mixed")
    traces = trace_many(index, load_tokenizer(str(demo_model_dir())), [(g.key, g.completion) for g in run.generations],
                        tcfg)
    for s in run.settings():
        mine = [t for t in traces if t.key.setting == s]
        assert metric_value(at, f"R_3 ({s})") == na.fmt(compute_metrics(mine, MetricsConfig(span_threshold=3))["r_n"])


def test_uploads_are_stored_by_content(tmp_path):
    a = runner.save_upload("corpus.jsonl.zst", b"abc", tmp_path)
    assert a.name.endswith(".jsonl.zst") and a.read_bytes() == b"abc"
    assert runner.save_upload("other-name.jsonl.zst", b"abc", tmp_path) == a
    assert runner.save_upload("../../evil", b"x", tmp_path).parent == tmp_path
    assert runner.save_upload("x.<b>;rm", b"y", tmp_path).suffix == ".brm"


def test_view_model_doctests():
    import doctest

    from app.views import explore, reading

    for module in (explore, manifest, planted_records, reading, tables):
        assert doctest.testmod(module).failed == 0, module.__name__


def test_overview_shows_the_planted_extraction_beside_the_demo_run(monkeypatch):
    """The demo's planted_extraction.json: the table's greedy counts and P(rest) equal what the file's
    per-record attempts give (counted here, not read from its own summary table)."""
    import json

    folder = _demo_results()
    data = json.loads((folder.parent / planted_records.PLANTED_FILE).read_text())
    at = open_sections(app(monkeypatch, folder, "overview"), "ov_open_planted")
    table = next(d.value for d in at.dataframe if "greedy rest" in d.value.columns)
    attempts = [a for a in data["attempts"] if a["variant"] == "email"]
    for _, row in table.iterrows():
        mine = [a for a in attempts if a["dup_count"] == row["copies"]]
        assert row["greedy rest"] == f"{sum(a['rest_ok'] for a in mine)}/{len(mine)}"
        assert row["greedy e-mail"] == f"{sum(a['email_ok'] for a in mine)}/{len(mine)}"
        assert row["P(rest)"] == pytest.approx(sum(a["rest_prob"] for a in mine) / len(mine), abs=1e-4)
    assert sorted(table["copies"]) == sorted({a["dup_count"] for a in attempts})
    assert any("Planted records" in render.shown(e.label) for e in at.expander)
    assert len(at.get("plotly_chart")) == 1  # the panel's chart (no other section is open)


@pytest.mark.parametrize("content", [None, "{not json", "[1, 2]",
                                     '{"table": [{"variant": "email", "dup_count": "two", "records": 6}]}'])
def test_overview_planted_panel_is_optional_and_a_broken_file_only_warns(monkeypatch, tmp_path, content):
    folder = write_run(tmp_path / "run")
    if content is not None:
        (tmp_path / planted_records.PLANTED_FILE).write_text(content)
    at = open_sections(app(monkeypatch, folder, "overview"))
    assert not any("Planted records" in render.shown(e.label) for e in at.expander)
    assert len([w for w in at.warning if planted_records.PLANTED_FILE in render.shown(w.value)]) == (content is not None)  # named, once
    assert metric_value(at, "ALS (prefix)").endswith("tokens")  # the rest of the overview is there
