"""Compare across folders (issue 23, item 4): runs from several folders, differences as a table (aspect, run A,
run B) naming each folder once, non-comparable runs marked in the charts, unreadable folders listed."""
from __future__ import annotations

import dataclasses

from app.render import shown
from core.config import DecodingConfig, TraceConfig
from core.runs.catalog import list_runs_in
from core.runs.compare import comparability, difference_rows
from core.runs.results import save_results
from tests.fixtures_app import make_run, open_app


def _variant(run, **manifest_changes):
    return dataclasses.replace(run, manifest=dataclasses.replace(run.manifest, **manifest_changes))


def test_difference_rows_hold_each_value_once_and_no_run_names():
    a = make_run(seed=7, name="smol")
    b = _variant(a, trace=TraceConfig(mode="text"), decoding=DecodingConfig(max_new_tokens=64))
    c = comparability(a.manifest, b.manifest, labels=("/very/long/path/run-a", "/very/long/path/run-b"))
    rows = difference_rows(c)
    assert {(r["what differs"], r["a"], r["b"]) for r in rows} == {("trace mode", "mixed", "text"),
                                                                    ("decoding max new tokens", "256", "64")}
    assert all("/very/long/path" not in v for r in rows for v in r.values())


def test_runs_from_two_folders_are_listed_once_and_bad_folders_are_problems(tmp_path):
    a = save_results(make_run(seed=7, name="a"), tmp_path / "one" / "run-a")
    b = save_results(make_run(seed=8, name="b"), tmp_path / "two" / "deep" / "run-b")
    (tmp_path / "a-file").write_text("x")
    cat = list_runs_in([str(tmp_path / "one"), str(b), str(tmp_path / "two"), str(tmp_path / "missing"),
                        str(tmp_path / "a-file"), ""])
    assert sorted(r.path for r in cat.runs) == sorted([str(a), str(b)])  # run-b found twice, listed once
    assert len(cat.problems) == 2 and any("missing" in p for p in cat.problems) and any("a-file" in p for p in cat.problems)


def test_compare_page_compares_runs_of_two_folders_with_a_difference_table(monkeypatch, tmp_path):
    base = make_run(seed=7, name="smol")
    a = save_results(base, tmp_path / "lab" / "run-a")
    b = save_results(_variant(base, trace=TraceConfig(mode="text")), tmp_path / "elsewhere" / "run-b")
    at = open_app(monkeypatch, a)
    at.switch_page("../pages/compare.py").run()
    at.text_area(key="cmp_root").input(f"{tmp_path / 'lab'}\n{tmp_path / 'elsewhere'}\n{tmp_path / 'nope'}").run()
    assert not at.exception, at.exception
    at.multiselect(key="cmp_runs").set_value([str(a), str(b)]).run()
    assert not at.exception, at.exception
    frames = [d.value for d in at.dataframe]
    names = next(f for f in frames if list(f.columns) == ["run", "name", "folder"])
    assert list(names["folder"]) == [str(a), str(b)] and list(names["run"]) == ["run A", "run B"]
    diff = next(f for f in frames if "what differs" in f.columns)
    assert list(diff.columns) == ["aspect", "what differs", "run B", "run A", "effect"]
    assert diff.iloc[0].tolist() == ["trace", "trace mode", "text", "mixed", "not comparable"]
    assert any("NOT comparable" in shown(w.value) for w in at.warning)
    assert any("nope" in shown(c.value) for c in at.caption)  # the missing folder is listed, not raised
    table = next(f for f in frames if "prefix" in f.columns and "run" in f.columns)  # the chart's numbers
    assert any("run B (NOT comparable)" in str(c) for c in list(table.columns) + list(table.iloc[:, 0]))
