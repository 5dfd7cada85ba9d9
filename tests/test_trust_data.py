"""Trust in what a run reads and writes (issue 21, items 2-6 and 9-12): hostile cases kept as tests.

Each test is one row of docs/hardening.md. CLI contracts are checked on real ``python -m core``
processes (exit code 2 and one ``error:`` line, never a traceback).
"""
from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core.errors import DamagedFile, DamagedResults, PropMeError, ResultsError
from core.jsonio import parse_json, read_json
from core.reports import csv_safe, exports
from tests.fixtures_runs import make_tiny_experiment

ROOT = Path(__file__).resolve().parents[1]
NESTED = "[" * 100_000  # a JSON file nested deeper than Python's parser can recurse


def cli(*args, timeout=240, env=None, cwd=ROOT) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "core", *map(str, args)], cwd=cwd, capture_output=True, text=True,
                          check=False, timeout=timeout,
                          env={**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(ROOT), **(env or {})})


def one_error_line(proc: subprocess.CompletedProcess) -> str:
    """The CLI's user-error contract: exit 2, no traceback, exactly one line starting ``error: ``."""
    assert proc.returncode == 2, (proc.returncode, proc.stderr[-2000:])
    assert "Traceback" not in proc.stderr, proc.stderr[-3000:]
    lines = [x for x in proc.stderr.splitlines() if x.startswith("error: ")]
    assert len(lines) == 1, proc.stderr[-2000:]
    return lines[0]


@pytest.fixture(scope="module")
def exp(tmp_path_factory) -> Path:
    """A tiny experiment folder (model, index, prompts, tiny.toml), run once: results/tiny exists."""
    folder = tmp_path_factory.mktemp("trust")
    make_tiny_experiment(folder)
    proc = cli("run", folder / "tiny.toml")
    assert proc.returncode == 0, proc.stderr[-2000:]
    return folder


# -- 2: nothing the user put in a results folder is deleted ---------------------------------------------
def test_rerun_keeps_the_users_files_in_the_results_folder(exp):
    folder = exp / "results" / "tiny"
    (folder / "NOTES.md").write_text("my notes\n")
    (folder / "my_analysis").mkdir()
    (folder / "my_analysis" / "plot.py").write_text("print(1)\n")
    proc = cli("run", exp / "tiny.toml")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert (folder / "NOTES.md").read_text() == "my notes\n"
    assert (folder / "my_analysis" / "plot.py").read_text() == "print(1)\n"
    assert not list(folder.parent.glob(".tiny.old-*")), "the replaced folder is gone once the user's files moved"
    assert cli("report", folder).returncode == 0  # still a results folder


def test_replacing_keeps_a_name_clash_in_the_old_folder(tmp_path):
    """A user entry that cannot move (its name is taken in the new folder) is kept where it was, never deleted."""
    from core.runs.folders import keep_user_files

    old, new = tmp_path / ".r.old-1-abcdef01", tmp_path / "r"
    old.mkdir()
    new.mkdir()
    (old / "summary.json").write_text("{}")  # ours: removed
    (old / "mine.txt").write_text("keep")
    (new / "mine.txt").write_text("taken")
    (old / "data").mkdir()
    keep_user_files(old, new)
    assert (old / "mine.txt").read_text() == "keep" and (new / "data").is_dir()


# -- 3: CSV exports are safe to open in a spreadsheet ------------------------------------------------
FORMULA = tuple(csv_safe.FORMULA_START)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.text(min_size=0, max_size=12), min_size=1, max_size=6))
def test_any_text_round_trips_through_the_guarded_csv(cells):
    import pandas as pd

    frame = pd.DataFrame({"Completion": cells, "Prompt id": [c[::-1] for c in cells]})
    text = csv_safe.to_csv(frame)
    back = csv_safe.read_csv(text)
    assert back["Completion"].tolist() == cells
    assert back["Prompt id"].tolist() == [c[::-1] for c in cells]
    raw = pd.read_csv(__import__("io").StringIO(text), dtype=str, keep_default_na=False)  # as a spreadsheet reads it
    for col in raw.columns:
        assert not str(col).startswith(FORMULA)
        assert not any(v.startswith(FORMULA) for v in raw[col]), raw[col].tolist()


HOSTILE_CELLS = ["=HYPERLINK(\"http://x\",\"y\")", "+1+1", "-2+3", "@SUM(A1)", "\t=1", "\r=1", "'=quoted"]


def test_export_csvs_guard_completions_prompt_and_document_ids():
    import pandas as pd

    from core.records import DocMatch, Generation, GenKey, NVResult, Prompt, Span, TraceResult

    gens, traces = [], []
    for i, bad in enumerate(HOSTILE_CELLS):
        key = GenKey("generic", bad + str(i), 0)
        gens.append(Generation(key, Prompt("generic", key.prompt_id, bad), bad, ()))
        doc = DocMatch(0, bad, "partial", bad, 0, 1, NVResult(0.5, 1, 2, 2))
        traces.append(TraceResult(key, bad, 3, (Span(0, 3, bad, 0, len(bad), 1, (doc,)),)))
    for frame in (exports.completions_frame(gens, traces), exports.spans_frame(traces)):
        text = csv_safe.to_csv(frame)
        raw = pd.read_csv(__import__("io").StringIO(text), dtype=str, keep_default_na=False)
        cells = [v for col in raw.columns for v in raw[col]]
        assert not [c for c in cells if c.startswith(FORMULA)]
        back = csv_safe.read_csv(text)
        assert set(HOSTILE_CELLS) <= set(back["Completion" if "Completion" in back else "Span text"])
    dictionary = exports.data_dictionary()
    assert csv_safe.GUARD_NOTE in dictionary["meaning"].tolist()


def test_every_csv_the_app_writes_goes_through_the_guard():
    """No module writes CSV itself: every ``to_csv(`` call outside core/reports/csv_safe.py is the guarded one."""
    offenders = []
    for path in [*ROOT.glob("core/**/*.py"), *ROOT.glob("app/**/*.py"), *ROOT.glob("pages/*.py")]:
        if path.name == "csv_safe.py":
            continue
        for n, line in enumerate(path.read_text().splitlines(), 1):
            if re.search(r"(?<!csv_safe)\.to_csv\(|csv\.writer\(|csv\.DictWriter\(", line):
                offenders.append(f"{path.relative_to(ROOT)}:{n}")
    assert offenders == []
    config = (ROOT / ".streamlit" / "config.toml").read_text()
    assert re.search(r"^disableDataExport = true", config, re.MULTILINE)  # tables' own unguarded CSV download is off


# -- 6: damaged JSON is one line, everywhere ------------------------------------------------------
def test_the_json_reader_turns_every_failure_into_one_line(tmp_path):
    cases = {"nested.json": NESTED, "cut.json": '{"a": [1, 2', "latin1.json": b"{\"a\": \"\xff\"}",
             "bigint.json": "1" * 5000, "empty.json": ""}
    for name, content in cases.items():
        path = tmp_path / name
        path.write_bytes(content if isinstance(content, bytes) else content.encode())
        with pytest.raises(DamagedFile) as e:
            read_json(path)
        assert str(e.value).startswith(f"damaged {path}: ") and "\n" not in str(e.value), str(e.value)
    with pytest.raises(DamagedResults):
        parse_json(NESTED, name="x", error=DamagedResults)
    big = tmp_path / "big.json"
    big.write_text("[" + "1," * 100 + "1]")
    with pytest.raises(DamagedFile, match="more than the 50 a JSON file may hold"):
        read_json(big, max_bytes=50)


def test_report_of_a_deeply_nested_manifest_is_one_line(exp, tmp_path):
    import shutil

    folder = tmp_path / "nested-run"
    shutil.copytree(exp / "results" / "tiny", folder)
    (folder / "manifest.json").write_text(NESTED)
    line = one_error_line(cli("report", folder))
    assert f"damaged {folder}/manifest.json" in line


def test_compare_lists_a_damaged_manifest_under_cannot_be_read(exp, tmp_path, monkeypatch):
    import shutil

    from app import render
    from core.runs.catalog import list_runs
    from tests.fixtures_app import open_app

    root = tmp_path / "runs"
    shutil.copytree(exp / "results" / "tiny", root / "good")
    shutil.copytree(exp / "results" / "tiny", root / "bad")
    (root / "bad" / "manifest.json").write_text(NESTED)
    (root / "deep" / "x").mkdir(parents=True)
    (root / "deep" / "x" / "manifest.json").write_text(NESTED)  # the same file anywhere under the root
    catalog = list_runs(root)
    assert [Path(r.path).name for r in catalog.runs] == ["good"]
    assert sorted(Path(p.split(":")[0]).name for p in catalog.problems) == ["bad", "x"]
    assert all("damaged" in p for p in catalog.problems)
    at = open_app(monkeypatch, root / "good")
    at.switch_page("../pages/compare.py").run()
    at.text_input(key="cmp_root").input(str(root)).run()
    assert not at.exception, at.exception
    labels = [render.shown(e.label) for e in at.expander]
    assert any("2 folder(s) that look like a run but cannot be read" in label for label in labels), labels


def test_a_prompt_file_line_nested_too_deep_is_a_reported_skip(tmp_path):
    from core.prompts.sets import load_prompt_set

    path = tmp_path / "p.jsonl"
    path.write_text('{"text": "hello there"}\n' + NESTED + "\n")
    loaded = load_prompt_set(str(path), "generic")
    assert len(loaded.prompts) == 1 and len(loaded.problems) == 1
    assert "nested too deeply" in loaded.problems[0].reason


# -- 11: one writer per results folder ---------------------------------------------------------------
HOLD = textwrap.dedent("""
    import sys, time
    from core.runs.lock import results_lock
    with results_lock(sys.argv[1], "holder-run"):
        print("held", flush=True)
        time.sleep(120)
""")


def test_a_second_run_on_a_locked_results_folder_is_refused(exp):
    folder = exp / "results" / "tiny"
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(folder)], cwd=ROOT, stdout=subprocess.PIPE, text=True,
                              env={**os.environ, "PYTHONPATH": str(ROOT)})
    try:
        assert holder.stdout.readline().strip() == "held"
        t = time.monotonic()
        line = one_error_line(cli("run", exp / "tiny.toml"))
        assert "is being written by run 'holder-run' (pid " + str(holder.pid) in line, line
        assert time.monotonic() - t < 60
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    assert (folder.parent / ".tiny.lock").exists()  # a dead run's lock file: taken over
    proc = cli("run", exp / "tiny.toml")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert not (folder.parent / ".tiny.lock").exists()


def test_the_app_refuses_to_start_a_run_on_a_locked_folder(tmp_path):
    from app.runner import check_output
    from core.runs.lock import RunInProgress, results_lock

    with results_lock(tmp_path / "clash", "first"):
        with pytest.raises(RunInProgress, match=r"is being written by run 'first' \(pid \d+"):
            check_output("clash", str(tmp_path), None)
        with pytest.raises(RunInProgress), results_lock(tmp_path / "clash", "second"):
            pass
    check_output("clash", str(tmp_path), None)  # released
    assert isinstance(RunInProgress("x"), ResultsError) and issubclass(DamagedFile, PropMeError)
