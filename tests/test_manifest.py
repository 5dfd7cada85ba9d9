"""The typed manifest: written by the real writer, parsed once; wrong shapes refused, unknown keys warned;
the stored thresholds are what the app and the report show (R_30 for span_threshold = 30)."""
from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import re
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from app import paths, render
from core.config import AdaptiveParam, MetricsConfig, NVBlocksConfig
from core.errors import ResultsError
from core.reports.text import format_report, report_dict
from core.runs.manifest import FORMAT_VERSION, Manifest, parse, to_json
from core.runs.results import load_results, save_results
from core.scoring.registry import compute_metrics
from tests.fixtures_app import make_run, open_sections, write_run

ROOT = Path(__file__).resolve().parents[1]
FILLED = {"format", "format_version", "scores_sha256", "n_generations", "n_traces", "n_spans", "n_docs",
          "settings_present", "relative_paths"}


def _edit(folder: Path, change) -> None:
    path = folder / "manifest.json"
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data))


def test_round_trip_through_the_real_writer_and_reader(tmp_path):
    cfg = MetricsConfig(span_threshold=30, nv_threshold=0.25, nv_blocks=NVBlocksConfig(l1=AdaptiveParam(0.3, 2, 9)))
    run = make_run(n_per_setting=2, metrics=cfg)
    loaded = load_results(save_results(run, tmp_path / "r")).manifest
    assert isinstance(loaded, Manifest) and loaded.warnings == ()
    for f in dataclasses.fields(Manifest):
        if f.name not in FILLED:
            assert getattr(loaded, f.name) == getattr(run.manifest, f.name), f.name
    assert loaded.metrics == cfg and loaded.format_version == FORMAT_VERSION
    assert (loaded.n_generations, loaded.n_traces) == (len(run.generations), len(run.traces))
    assert loaded.settings_present == ("prefix", "generic", "specific")
    assert parse(to_json(loaded)) == loaded  # the JSON form parses back to the same record
    with pytest.raises(dataclasses.FrozenInstanceError):
        loaded.run_name = "x"


@pytest.mark.parametrize("change, message", [
    (lambda m: m.update(metrics=5), r"metrics = 5: expected a table"),
    (lambda m: m["metrics"].update(span_threshold="thirty"), r"span_threshold = 'thirty': expected int"),
    (lambda m: m.update(counts=[1, 2]), r"counts = \[1, 2\]: expected a table"),
    (lambda m: m["counts"].update(generated="many"), r"counts.generated = 'many': expected an integer"),
    (lambda m: m["decoding"].update(temperature=-1), r"decoding: temperature must be >= 0"),
    (lambda m: m.update(settings="prefix"), r"settings = 'prefix': expected a list"),
    (lambda m: m["index"].update(dirs="one"), r"index.dirs = 'one': expected a list of strings"),
    (lambda m: m.update(run_name=3), r"run_name = 3: expected a string"),
])
def test_a_wrong_shape_is_a_results_error(tmp_path, change, message):
    folder = save_results(make_run(n_per_setting=1), tmp_path / "r")
    _edit(folder, change)
    with pytest.raises(ResultsError, match=message):
        load_results(folder)


def test_unknown_keys_are_dropped_with_a_logged_warning(tmp_path, caplog):
    folder = save_results(make_run(n_per_setting=1), tmp_path / "r")
    _edit(folder, lambda m: (m.update(from_the_future={"x": 1}), m["metrics"].update(new_knob=2)))
    with caplog.at_level(logging.WARNING):
        manifest = load_results(folder).manifest
    assert len(manifest.warnings) == 2
    assert any("unknown key manifest.from_the_future" in w for w in manifest.warnings)
    assert any("unknown key metrics.new_knob" in w for w in manifest.warnings)
    assert all(w in caplog.text for w in manifest.warnings)


def test_the_old_nvr_key_loads_as_nv_blocks_with_a_deprecation_warning(tmp_path):
    blocks = NVBlocksConfig(l2=AdaptiveParam(0.5, 4, 90))
    folder = save_results(make_run(n_per_setting=1, metrics=MetricsConfig(nv_blocks=blocks)), tmp_path / "r")
    _edit(folder, lambda m: m["metrics"].update(nvr=m["metrics"].pop("nv_blocks")))
    manifest = load_results(folder).manifest
    assert manifest.metrics.nv_blocks == blocks
    assert len(manifest.warnings) == 1 and "metrics.nvr is deprecated" in manifest.warnings[0]
    _edit(folder, lambda m: m["metrics"].update(nv_blocks=m["metrics"]["nvr"]))  # both names: refused
    with pytest.raises(ResultsError, match="both 'nvr'"):
        load_results(folder)


def test_the_shipped_demo_manifest_parses_without_warnings():
    run = load_results(ROOT / "demo" / "results" / "demo")
    assert run.manifest.warnings == () and run.manifest.metrics == MetricsConfig()
    assert run.manifest.counts.generations == len(run.generations) == 300 + 23  # 3 x 100 prompts + 23 floor texts
    assert run.manifest.counts.generated + run.manifest.counts.generations_from_cache == 300  # floor texts: none


@pytest.fixture()
def r30(tmp_path) -> Path:
    """A run scored with span_threshold = 30 whose manifest carries one key this version does not know."""
    folder = write_run(tmp_path / "r30", n_per_setting=3, hostile=False, metrics=MetricsConfig(span_threshold=30))
    _edit(folder, lambda m: m.update(written_by="propme 9.9"))
    return folder


def test_span_threshold_30_shows_r_30_and_warns_in_the_app(monkeypatch, r30):
    monkeypatch.setenv(paths.RESULTS_ENV, str(r30))
    monkeypatch.delenv(paths.DATA_ROOT_ENV, raising=False)
    at = AppTest.from_file(str(ROOT / "app" / "streamlit_app.py"), default_timeout=60)
    at.run()
    assert not at.exception, at.exception
    assert any("unknown key manifest.written_by" in render.shown(w.value) for w in at.warning), [w.value for w in at.warning]
    table = next(d.value for d in open_sections(at, "ov_open_metrics").dataframe if "ALS" in d.value.columns)
    assert "R_30" in table.columns and "R_50" not in table.columns
    run = load_results(r30)
    for s in run.settings():  # the numbers under R_30 are R_30's
        want = compute_metrics(run.by_setting(s)[1], MetricsConfig(span_threshold=30))["r_n"]
        assert table.set_index("setting").loc[s, "R_30"] == pytest.approx(want)
    assert any(re.search(r"at least 30 tokens of training text", render.shown(m.value)) for m in at.markdown)
    assert render.shown(at.metric[0].label) == "≥ 30 tokens"  # the story's "Can it leak?" tile


def test_span_threshold_30_shows_r_30_and_warns_in_the_text_report(r30):
    run = load_results(r30)
    text = format_report(run)
    assert "R_30" in text and "R_50" not in text and "R_N" not in text
    assert "Warning: manifest: unknown key manifest.written_by" in text
    assert report_dict(run)["metrics"]["span_threshold"] == 30 and report_dict(run)["warnings"]


def test_the_app_shows_the_stored_scores_and_recomputes_for_other_thresholds(monkeypatch, tmp_path):
    folder = write_run(tmp_path / "r", n_per_setting=3, hostile=False)
    summary = json.loads((folder / "summary.json").read_text())
    summary["generic"]["metrics"]["als"] = 123.456  # a number only summary.json holds
    (folder / "summary.json").write_text(json.dumps(summary))
    manifest = json.loads((folder / "manifest.json").read_text())  # as if the run had written that number
    manifest["scores_sha256"]["summary.json"] = hashlib.sha256((folder / "summary.json").read_bytes()).hexdigest()
    (folder / "manifest.json").write_text(json.dumps(manifest))
    monkeypatch.setenv(paths.RESULTS_ENV, str(folder))
    monkeypatch.delenv(paths.DATA_ROOT_ENV, raising=False)
    at = AppTest.from_file(str(ROOT / "app" / "streamlit_app.py"), default_timeout=60)
    at.run()
    assert [m.value for m in at.metric if render.shown(m.label) == "ALS (generic)"] == ["123.5 tokens"]  # read, not recomputed
    at.switch_page("../pages/thresholds.py").run()
    at.slider(key="thr_span_n").set_value(7).run()
    assert not at.exception, at.exception
    run = load_results(folder)
    table = at.dataframe[0].value.set_index("setting")
    for s in run.settings():  # other thresholds: recomputed from the traces
        want = compute_metrics(run.by_setting(s)[1], MetricsConfig(span_threshold=7), run.by_setting(s)[0])
        assert table.loc[s, "ALS"] == pytest.approx(want["als"]) and table.loc[s, "R_7"] == pytest.approx(want["r_n"])


def test_an_experiment_toml_with_the_old_nvr_table_loads_with_a_deprecation_warning(tmp_path, caplog):
    from core.config.file import load_experiment
    from tests.test_experiment import GOOD

    old, new = tmp_path / "old.toml", tmp_path / "new.toml"
    old.write_text(GOOD + "[metrics]\nseed = 3\n[metrics.nvr]\nl1 = {frac = 0.3, lo = 2, hi = 9}\n")
    new.write_text(GOOD + "[metrics]\nseed = 3\n[metrics.nv_blocks]\nl1 = {frac = 0.3, lo = 2, hi = 9}\n")
    with caplog.at_level(logging.WARNING):
        cfg = load_experiment(old)
    assert cfg.metrics == load_experiment(new).metrics
    assert cfg.metrics.nv_blocks.l1 == AdaptiveParam(0.3, 2, 9) and cfg.metrics.seed == 3
    assert "metrics.nvr is deprecated: rename it to metrics.nv_blocks" in caplog.text and str(old) in caplog.text
