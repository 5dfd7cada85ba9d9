import dataclasses
import json
import os
import re

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
    filled = {"format", "format_version", "scores_sha256", "n_generations", "n_traces", "n_spans", "n_docs",
              "settings_present", "relative_paths"}
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
    with pytest.raises(ResultsError, match=r"damaged .*manifest\.json: not valid JSON"):
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
    with pytest.raises(ResultsError, match=r"cannot write .*manifest\.json \(disk full\)"):  # names the file
        save_results(RunResults(None, Manifest("t"), (_gen("prefix", "n", "n"),), ()), tmp_path / "r")
    assert len(load_results(tmp_path / "r").generations) == 3
    assert sorted(os.listdir(tmp_path)) == ["r"]


# -- issue 10: killed writes leave nothing behind for long; garbage flat tables are refused ------------------
_KILLED_WRITE = """
import os, signal, sys
from core.runs import results
from tests.fixtures_app import make_run

def die(path, *a, **k):  # killed just before the manifest that completes the folder
    os.kill(os.getpid(), signal.SIGKILL)

results._write_json = die
results.save_results(make_run(n_per_setting=1, hostile=False), sys.argv[1])
"""


def test_temp_folders_of_a_killed_write_are_cleaned_by_the_next_write(tmp_path):
    import signal
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    out = subprocess.run([sys.executable, "-c", _KILLED_WRITE, str(tmp_path / "crash")], cwd=root, check=False,
                         capture_output=True, timeout=120)
    assert out.returncode == -signal.SIGKILL, out.stderr
    left = [p.name for p in tmp_path.iterdir()]
    assert len(left) == 1 and left[0].startswith(".crash.tmp-"), left  # what the killed write left
    assert (tmp_path / left[0] / "generations.parquet").is_file()
    lookalike = tmp_path / ".notes.tmp-1-deadbeef"  # named like ours, but holds a file we never write
    lookalike.mkdir()
    (lookalike / "notes.txt").write_text("mine")
    live = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        busy = tmp_path / f".other.tmp-{live.pid}-0123abcd"  # a write still in progress in a live process
        busy.mkdir()
        (busy / "spans.parquet").write_bytes(b"partial")
        save_results(_tiny_run(), tmp_path / "next")
        assert sorted(p.name for p in tmp_path.iterdir()) == sorted([".notes.tmp-1-deadbeef", busy.name, "next"])
    finally:
        live.kill()
        live.wait()
    save_results(_tiny_run(), tmp_path / "next")  # its writer is gone now: stale
    assert sorted(p.name for p in tmp_path.iterdir()) == [".notes.tmp-1-deadbeef", "next"]
    assert (lookalike / "notes.txt").read_text() == "mine"


def _rewrite(path, table):
    import pyarrow.parquet as pq

    pq.write_table(table, path)


@pytest.mark.parametrize("damage", ["garbage bytes", "foreign table", "wrong column type", "row dropped",
                                    "row duplicated", "row of an unknown generation"])
@pytest.mark.parametrize("name", ["spans.parquet", "docs.parquet"])
def test_damaged_spans_or_docs_parquet_is_a_results_error_naming_it(tmp_path, name, damage):
    import pyarrow as pa
    import pyarrow.compute as pc

    from tests.fixtures_app import make_run

    out = save_results(make_run(n_per_setting=2, hostile=False), tmp_path / "r")
    path = out / name
    table = pq.read_table(path)
    assert table.num_rows > 2
    if damage == "garbage bytes":
        path.write_bytes(b"PAR1 this is not parquet at all PAR1")
    elif damage == "foreign table":
        _rewrite(path, pa.table({"x": [1, 2, 3]}))
    elif damage == "wrong column type":
        _rewrite(path, table.set_column(table.schema.get_field_index("span_ix"), "span_ix",
                                        pc.cast(table["span_ix"], pa.string())))
    else:
        if damage == "row dropped":
            table = table.slice(0, table.num_rows - 1)
        elif damage == "row duplicated":
            table = pa.concat_tables([table, table.slice(0, 1)])
        else:
            col = table.schema.get_field_index("prompt_id")
            table = table.set_column(col, "prompt_id", pa.array(["ghost"] + table["prompt_id"].to_pylist()[1:]))
        _rewrite(path, table)
        m = json.loads((out / "manifest.json").read_text())  # the counts edited too: only a cross-check sees it
        (out / "manifest.json").write_text(json.dumps({**m, f"n_{name.split('.')[0]}": table.num_rows}))
    with pytest.raises(ResultsError, match=re.escape(str(path))):
        load_results(out)


def test_generation_row_whose_span_count_disagrees_with_its_trace_is_refused(tmp_path):
    import pyarrow as pa

    from tests.fixtures_app import make_run

    out = save_results(make_run(n_per_setting=2, hostile=False), tmp_path / "r")
    table = pq.read_table(out / "generations.parquet")
    n = table["n_spans"].to_pylist()
    i = next(i for i, v in enumerate(n) if v)
    n[i] += 1
    _rewrite(out / "generations.parquet", table.set_column(table.schema.get_field_index("n_spans"), "n_spans",
                                                          pa.array(n, pa.int64())))
    with pytest.raises(ResultsError, match="generations.parquet"):
        load_results(out)


def test_edited_summary_or_pm_is_refused_so_report_and_app_agree(tmp_path, capsys):
    from core.cli import main
    from tests.fixtures_app import make_run

    out = save_results(make_run(n_per_setting=2, hostile=False), tmp_path / "r")
    assert main(["report", str(out)]) == 0
    capsys.readouterr()
    for name in ("summary.json", "pm.json"):
        original = (out / name).read_text()
        data = json.loads(original)
        data["forged"] = {"metrics": {"nvr": 0.0}}
        (out / name).write_text(json.dumps(data))
        with pytest.raises(ResultsError, match=re.escape(f"{out / name} was changed after the run wrote it")):
            load_results(out)
        assert main(["report", str(out)]) == 2
        assert "was changed after the run wrote it" in capsys.readouterr().err
        (out / name).write_text(original)
    assert load_results(out).summary == json.loads((out / "summary.json").read_text())
