import dataclasses
import json
import os

import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings

from core.errors import ResultsError
from core.records import Generation, GenKey, Prompt, TraceResult
from core.runs.manifest import Manifest
from core.runs.results import FORMAT_VERSION, RunResults, load_results, save_results
from tests.fixtures_runs import runs


def _same(a: RunResults, b: RunResults) -> None:
    assert b.generations == a.generations
    assert b.traces == a.traces
    filled = {"format_version", "n_generations", "n_traces", "n_spans", "n_docs", "settings_present", "relative_paths"}
    for f in dataclasses.fields(Manifest):
        if f.name not in filled:
            assert getattr(b.manifest, f.name) == getattr(a.manifest, f.name), f.name
    assert b.manifest.settings_present == tuple(a.settings()) and b.manifest.warnings == ()


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(run=runs())
def test_round_trip_is_exact(run, tmp_path):
    out = save_results(run, tmp_path / "r")
    loaded = load_results(out)
    _same(run, loaded)
    assert loaded.manifest.format_version == FORMAT_VERSION
    # flat tables agree with the records they flatten
    assert pq.read_metadata(out / "spans.parquet").num_rows == sum(len(t.spans) for t in run.traces)
    assert pq.read_metadata(out / "docs.parquet").num_rows == sum(len(t.docs) for t in run.traces)


def _gen(setting, pid, completion, i=0):
    return Generation(GenKey(setting, pid, i), Prompt(setting, pid, "prompt " + pid), completion, (1, 2))


def _tiny_run():
    gens = (_gen("prefix", "a", "same text"), _gen("generic", "b", "same text"), _gen("generic", "c", "x"))
    traces = tuple(TraceResult(g.key, g.completion, 2) for g in gens[:2])
    return RunResults(None, Manifest("t"), gens, traces)


def test_duplicate_completions_stay_separate_records(tmp_path):
    run = _tiny_run()
    loaded = load_results(save_results(run, tmp_path / "r"))
    assert len(loaded.generations) == 3
    assert loaded.settings() == ["prefix", "generic"]
    gens, traces = loaded.by_setting("generic")
    assert [g.key.prompt_id for g in gens] == ["b"] and traces[0].key == gens[0].key
    g, t = loaded.lookup(GenKey("generic", "c", 0))
    assert g.completion == "x" and t is None
    with pytest.raises(KeyError):
        loaded.lookup(GenKey("generic", "zzz", 0))


def test_duplicate_keys_are_rejected(tmp_path):
    g = _gen("prefix", "a", "t")
    with pytest.raises(ResultsError, match="duplicate generation key"):
        save_results(RunResults(None, Manifest("t"), (g, g), ()), tmp_path / "r")
    orphan = TraceResult(GenKey("prefix", "nope", 0), "t", 1)
    with pytest.raises(ResultsError, match="has no generation"):
        save_results(RunResults(None, Manifest("t"), (g,), (orphan,)), tmp_path / "r")
    assert not (tmp_path / "r").exists()


def test_overwrite_replaces_and_leaves_no_temp_folders(tmp_path):
    save_results(_tiny_run(), tmp_path / "r")
    run2 = RunResults(None, Manifest("second"), (_gen("prefix", "z", "q"),), ())
    save_results(run2, tmp_path / "r", config_text="name = 'x'\n")
    loaded = load_results(tmp_path / "r")
    assert loaded.manifest.run_name == "second" and len(loaded.generations) == 1
    assert (tmp_path / "r" / "config.toml").read_text() == "name = 'x'\n"
    assert sorted(os.listdir(tmp_path)) == ["r"]


def test_missing_folder_and_files(tmp_path):
    with pytest.raises(ResultsError, match="no results folder"):
        load_results(tmp_path / "nothing")
    out = save_results(_tiny_run(), tmp_path / "r")
    (out / "docs.parquet").unlink()
    with pytest.raises(ResultsError, match=r"incomplete \(missing docs.parquet\)"):
        load_results(out)


def test_version_and_row_count_checks(tmp_path):
    out = save_results(_tiny_run(), tmp_path / "r")
    m = json.loads((out / "manifest.json").read_text())
    (out / "manifest.json").write_text(json.dumps({**m, "format_version": 99}))
    with pytest.raises(ResultsError, match="format_version 99"):
        load_results(out)
    (out / "manifest.json").write_text(json.dumps({**m, "n_generations": 7}))
    with pytest.raises(ResultsError, match="n_generations=7 but the files hold 3"):
        load_results(out)
    (out / "manifest.json").write_text("{not json")
    with pytest.raises(ResultsError, match="manifest.json is unreadable"):
        load_results(out)


def test_truncated_parquet_is_reported(tmp_path):
    out = save_results(_tiny_run(), tmp_path / "r")
    data = (out / "generations.parquet").read_bytes()
    (out / "generations.parquet").write_bytes(data[: len(data) // 2])
    with pytest.raises(ResultsError, match="generations.parquet is unreadable"):
        load_results(out)


def test_failed_write_keeps_previous_folder(tmp_path, monkeypatch):
    save_results(_tiny_run(), tmp_path / "r")
    from core.runs import results

    def boom(*a, **k):
        raise OSError("disk full")

    monkeypatch.setattr(results, "_write_json", boom)
    with pytest.raises(OSError, match="disk full"):
        save_results(RunResults(None, Manifest("t"), (_gen("prefix", "n", "n"),), ()), tmp_path / "r")
    assert len(load_results(tmp_path / "r").generations) == 3
    assert sorted(os.listdir(tmp_path)) == ["r"]
