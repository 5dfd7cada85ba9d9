"""Trust in what a run reads and writes (issue 21, items 2-6 and 9-12): hostile cases kept as tests.

Each test is one row of docs/hardening.md. CLI contracts are checked on real ``python -m core``
processes (exit code 2 and one ``error:`` line, never a traceback).
"""
from __future__ import annotations

import json
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
    at.text_area(key="cmp_root").input(str(root)).run()
    assert not at.exception, at.exception
    labels = [render.shown(e.label) for e in at.expander]
    assert any("2 folder(s) that cannot be read" in label for label in labels), labels


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


# -- 4 and 12: the data root is airtight; relative app paths resolve inside it ------------------------
def test_a_symlinked_app_folder_inside_the_data_root_is_refused(tmp_path):
    from app.paths import work_dir
    from app.runner import corpus_choice
    from core.errors import OutsideRoot

    root, outside = tmp_path / "root", tmp_path / "outside"
    root.mkdir()
    outside.mkdir()
    (root / ".propme-app").symlink_to(outside)
    with pytest.raises(OutsideRoot, match=r"\.propme-app is a symbolic link"):
        corpus_choice("upload a corpus file", None, None, ("c.jsonl", b'{"text": "hello"}\n'), root)
    with pytest.raises(OutsideRoot):
        work_dir(root, "app-indexes")
    assert list(outside.iterdir()) == []  # nothing landed outside the root
    (root / ".propme-app").unlink()
    (root / ".propme-app").mkdir()
    (root / ".propme-app" / "uploads").symlink_to(outside)  # a link deeper down: refused too
    with pytest.raises(OutsideRoot, match=r"uploads is a symbolic link"):
        corpus_choice("upload a corpus file", None, None, ("c.jsonl", b'{"text": "hello"}\n'), root)
    assert list(outside.iterdir()) == []
    (root / ".propme-app" / "uploads").unlink()
    choice, _ = corpus_choice("upload a corpus file", None, None, ("c.jsonl", b'{"text": "hello"}\n'), root)
    assert Path(choice.path).resolve().is_relative_to((root / ".propme-app" / "uploads").resolve())


def test_an_app_index_folder_that_is_a_link_is_not_written_through(tmp_path):
    from app.runner import index_for_corpus
    from tests.fixtures_model import make_tiny_model_dir

    model = make_tiny_model_dir(tmp_path / "model")
    corpus = tmp_path / "c.jsonl"
    corpus.write_text('{"id": "a", "text": "hello world, this is a document"}\n')
    indexes, outside = tmp_path / "indexes", tmp_path / "outside"
    indexes.mkdir()
    outside.mkdir()
    folder, _ = index_for_corpus(str(corpus), str(model), None, indexes)  # find the key the build uses
    import shutil

    shutil.rmtree(folder)
    folder.symlink_to(outside)
    with pytest.raises(PropMeError, match="is a symbolic link"):
        index_for_corpus(str(corpus), str(model), None, indexes)
    assert list(outside.iterdir()) == []


def test_relative_paths_typed_in_the_app_resolve_inside_the_data_root(tmp_path, monkeypatch):
    from app import paths as app_paths
    from app.runner import check_output

    root, elsewhere = tmp_path / "root", tmp_path / "cwd"
    root.mkdir()
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)  # the server's working folder
    assert app_paths.confine("escape/res", root) == (root / "escape" / "res").resolve()
    assert check_output("run1", "escape/res", root) == (root / "escape" / "res" / "run1").resolve()
    with pytest.raises(PropMeError, match="outside the data root"):
        app_paths.confine("../escape", root)


def test_the_apps_result_cache_lives_inside_the_data_root(tmp_path):
    from app.runner import checked_config
    from core.config import ExperimentConfig, ModelConfig, SettingConfig

    root = tmp_path / "root"
    (root / "model").mkdir(parents=True)
    cfg = ExperimentConfig("ok", ModelConfig(str(root / "model")), (str(root / "index"),), (SettingConfig("prefix"),),
                           output_dir=str(root / "results"))
    assert checked_config(cfg, root).cache_dir == str((root / ".propme-app" / "cache").resolve())
    with pytest.raises(PropMeError, match="cache folder .* is outside the data root"):
        checked_config(cfg.__class__(**{**cfg.__dict__, "cache_dir": str(tmp_path / "elsewhere")}), root)
    assert checked_config(cfg, None).cache_dir is None  # no root: the usual $PROPME_CACHE_DIR / ~/.cache/propme


def test_the_run_page_checks_max_tokens_against_the_models_context(tmp_path):
    from app.runner import checked_config
    from core.config import DecodingConfig, ExperimentConfig, ModelConfig, SettingConfig
    from core.errors import ConfigError
    from tests.fixtures_model import make_tiny_model_dir

    model = make_tiny_model_dir(tmp_path / "model")  # 128 positions
    cfg = ExperimentConfig("ok", ModelConfig(str(model)), (str(tmp_path / "index"),), (SettingConfig("prefix"),),
                           DecodingConfig(max_new_tokens=500))
    with pytest.raises(ConfigError, match=r"max_new_tokens = 500 is above its limit of 127: the model's context"):
        checked_config(cfg, None)


def test_a_rejected_upload_is_removed_and_named_as_uploaded(tmp_path):
    from app.runner import corpus_choice, corpus_index
    from tests.fixtures_model import make_tiny_model_dir

    model = make_tiny_model_dir(tmp_path / "model")
    root = tmp_path / "root"
    choice, _ = corpus_choice("upload a corpus file", None, None, ("my corpus.jsonl", b"\x00\x01binary" * 50), root)
    stored = Path(choice.path)
    assert stored.exists()
    with pytest.raises(PropMeError) as e:
        corpus_index(choice, str(model), None, root)
    assert "the uploaded file 'my corpus.jsonl'" in str(e.value) and str(stored) not in str(e.value)
    assert not stored.exists()


# -- 5: every config value has an upper bound, checked when the file is read ------------------------
def test_every_numeric_config_field_has_an_upper_bound():
    import dataclasses
    import typing

    from core import config
    from core.errors import ConfigError

    classes = [config.DecodingConfig, config.TraceConfig, config.MetricsConfig, config.CorpusConfig,
               config.AdaptiveParam]
    checked = 0
    for cls in classes:
        hints = typing.get_type_hints(cls)
        bases = {"AdaptiveParam": config.AdaptiveParam(0.1, 1, 2), "CorpusConfig": config.CorpusConfig("x")}
        base = bases[cls.__name__] if cls.__name__ in bases else cls()
        for f in dataclasses.fields(cls):
            if hints[f.name] not in (int, float, int | None) and "tuple[int" not in str(hints[f.name]):
                continue
            huge = (10 ** 20,) if "tuple" in str(hints[f.name]) else 10 ** 20
            with pytest.raises(ConfigError, match=rf"{cls.__name__}\.{f.name} = .* is above its limit of [\d,.]+: "):
                kw = {x.name: getattr(base, x.name) for x in dataclasses.fields(cls)}
                kw[f.name] = huge
                if cls is config.AdaptiveParam and f.name == "lo":
                    kw["hi"] = huge
                cls(**kw)
            checked += 1
    assert checked >= 25


HUGE = {
    "bootstrap": ({"bootstrap_samples = 200": "bootstrap_samples = 1000000000"},
                  r"MetricsConfig\.bootstrap_samples = 1000000000 is above its limit of 1,000,000: "),
    "samples": ({"batch_size = 2": "batch_size = 2\ntemperature = 0.7\nnum_samples = 1000000000"},
                r"DecodingConfig\.num_samples = 1000000000 is above its limit of 1,000: "),
    "bootstrap x prompts": ({"bootstrap_samples = 200": "bootstrap_samples = 1000000",
                             "n_prompts = 6": "n_prompts = 1000"},
                            (r"bootstrap_samples x prompts of a setting = 1,000,000 x 1,000 = 1,000,000,000 is above "
                             r"its limit of 250,000,000: .*GiB here")),
    "prompts x samples": ({"batch_size = 2": "batch_size = 2\ntemperature = 0.7\nnum_samples = 1000",
                           "n_prompts = 6": "n_prompts = 1000000"},
                          r"prompts x decoding\.num_samples = .* generations is above its limit of 5,000,000"),
    "max tokens vs context": ({"max_new_tokens = 12": "max_new_tokens = 5000"},
                              (r"max_new_tokens = 5000 is above its limit of 127: the model's context holds 128 "
                               r"tokens \(config\.json n_positions\)")),
    "workers": ({'mode = "text"': 'mode = "text"\nworkers = 100000'},
                r"TraceConfig\.workers = 100000 is above its limit of 1,024: "),
    "batch": ({"batch_size = 2": "batch_size = 100000"}, r"DecodingConfig\.batch_size = 100000 is above its limit"),
    "batch tokens": ({"batch_size = 2": "batch_size = 4096\nmax_prompt_tokens = 100000"},
                     r"batch_size x \(max_prompt_tokens \+ max_new_tokens\) = .* tokens is above its limit"),
    "overlong run name": ({'name = "tiny"': 'name = "' + "n" * 300 + '"'},
                          r"run name is too long \(300 characters, 300 bytes\): at most 100 characters"),
}


@pytest.mark.parametrize("case", list(HUGE))
def test_a_huge_config_value_is_refused_when_the_file_is_read(exp, case):
    replace, pattern = HUGE[case]
    text = (exp / "tiny.toml").read_text()
    for old, new in replace.items():
        assert old in text
        text = text.replace(old, new, 1)
    toml = exp / ("huge-" + re.sub(r"\W", "_", case) + ".toml")
    toml.write_text(text)
    t = time.monotonic()
    proc = cli("run", toml, timeout=120)
    line = one_error_line(proc)
    assert re.search(pattern, line), line
    assert "loading" not in proc.stderr.split("error:")[0]  # refused before anything loads
    assert len(line) < 400 and time.monotonic() - t < 60


# -- 9: errors name the real cause, early -----------------------------------------------------------
@pytest.mark.parametrize("name", ["./no-such-model", "models/none/x.gguf", "missing.gguf", "~/no-such-dir-xyz"])
def test_a_model_path_that_does_not_exist_is_named_before_anything_loads(exp, name):
    text = (exp / "tiny.toml").read_text().replace('name_or_path = "model"', f'name_or_path = "{name}"')
    toml = exp / "nomodel.toml"
    toml.write_text(text)
    line = one_error_line(cli("run", toml, timeout=120))
    assert "no such file or folder" in line and Path(name.replace("~", "")).name in line, line
    assert "Repo id" not in line and "hub id" in line


def test_form_validators_name_missing_model_and_corpus_paths(tmp_path):
    from core.errors import ConfigError
    from core.paths import check_corpus_path, check_exists, model_source

    with pytest.raises(ConfigError, match=r"no such file or folder .*nowhere/m\.gguf"):
        check_exists(str(tmp_path / "nowhere" / "m.gguf"))
    check_exists("EleutherAI/pythia-70m")  # a hub id is not a path
    with pytest.raises(ConfigError, match=r"model: no such file or folder .*gone"):
        model_source(str(tmp_path / "gone"), None)
    with pytest.raises(ConfigError, match=r"corpus: no such file or folder .*c\.jsonl"):
        check_corpus_path(str(tmp_path / "c.jsonl"))
    (tmp_path / "c.jsonl").write_text("{}\n")
    assert check_corpus_path(str(tmp_path / "c.jsonl")) == (tmp_path / "c.jsonl").resolve()  # fixed: no message
    assert check_corpus_path("hf:wikitext") is None


def test_skipped_prompt_rows_are_shown_in_full_in_report_and_html(exp, tmp_path):
    import shutil

    from core.reports.html import ReportInput, build_report
    from core.reports.text import skipped_notes
    from core.runs.results import load_results

    work = tmp_path / "skip"
    shutil.copytree(exp, work, ignore=shutil.ignore_patterns("results", "cache"))
    lines = [json.dumps({"id": f"g{i}", "text": f"Prompt number {i}?"}) for i in range(3)]
    bad = ['{"id": "x1", "text": ' + "1" * 10, '{"id": "x2"}', '["a list, not an object with a long reason"]']
    (work / "generic.jsonl").write_text("\n".join([lines[0], *bad, *lines[1:]]) + "\n")
    proc = cli("run", work / "tiny.toml")
    assert proc.returncode == 0, proc.stderr[-2000:]
    report = cli("report", work / "results" / "tiny")
    assert "generic: 3 prompt row(s) of" in report.stdout
    assert "line 2: invalid JSON" in report.stdout and "line 3: missing field 'text'" in report.stdout
    assert "line 4: expected a JSON object per line, got a list" in report.stdout
    data = json.loads(cli("report", "--json", work / "results" / "tiny").stdout)
    assert data["skipped_rows"]["generic"]["count"] == 3 and len(data["skipped_rows"]["generic"]["reasons"]) == 3
    run = load_results(work / "results" / "tiny")
    notes = skipped_notes(run.manifest)
    import pandas as pd

    doc = build_report(ReportInput("t", "r", pd.DataFrame(), (), (), (), method_notes=tuple(notes)))
    appendix = doc.split("Appendix: methods and configuration", 1)[1]
    assert "3 prompt row(s)" in appendix and "line 4: expected a JSON object per line" in appendix


def test_a_full_disk_names_the_file_it_could_not_write(tmp_path):
    """The file system refuses to grow a file (RLIMIT_FSIZE: what a full disk or quota does to a writer)."""
    script = textwrap.dedent(f"""
        import resource, signal, sys
        sys.path.insert(0, {str(ROOT)!r})
        from tests.fixtures_app import make_run
        from core.runs.results import save_results
        from core.errors import PropMeError
        run = make_run(score=True)
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (3000, 3000))
        try:
            save_results(run, {str(tmp_path / "out" / "full")!r})
        except PropMeError as e:
            print("ERROR", e)
    """)
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=240, cwd=ROOT,
                          check=False)
    assert "Traceback" not in proc.stderr, proc.stderr[-2000:]
    out = proc.stdout.strip()
    assert re.match(r"ERROR cannot write .*/out/\.full\.tmp-\d+-[0-9a-f]+/\S+ \(File too large\): the results folder "
                    r".*/out/full was not written", out), out
    assert not (tmp_path / "out" / "full").exists() and not list((tmp_path / "out").glob(".full.tmp-*"))


def test_a_really_full_disk_names_the_file_it_could_not_write(tmp_path):
    """The same on a real, tiny file system (a 64 KiB tmpfs), where mounting one is allowed."""
    disk = tmp_path / "disk"
    disk.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(disk)], capture_output=True,
                      check=False).returncode != 0:
        pytest.skip("mounting a tmpfs is not allowed here")
    try:
        from core.runs.results import save_results
        from tests.fixtures_app import make_run

        (disk / "filler").write_bytes(b"\0" * 40_000)
        with pytest.raises(ResultsError, match=r"cannot write .*/disk/\.full\.tmp-.* \(No space left on device\)"):
            save_results(make_run(score=True, n_per_setting=30), disk / "full")
    finally:
        subprocess.run(["umount", str(disk)], check=False)


# -- 10: bounded input --------------------------------------------------------------------------------
def _zst(path: Path, chunks) -> Path:
    import zstandard

    with path.open("wb") as raw, zstandard.ZstdCompressor(level=3).stream_writer(raw) as w:
        for c in chunks:
            w.write(c)
    return path


LIMITS = {"PROPME_MAX_CORPUS_BYTES": str(8 << 20), "PROPME_MAX_LINE_BYTES": str(1 << 20),
          "PROPME_MAX_DOC_BYTES": str(1 << 20), "PROPME_MAX_CSV_COLUMNS": "1000"}


def _bomb_cases(folder: Path) -> dict[str, tuple[Path, str]]:
    line = b'{"id": "a", "text": "' + b"x" * (3 << 20) + b'"}\n'
    (folder / "one-long-line.jsonl").write_bytes(line)
    (folder / "many-columns.csv").write_text(",".join(f"c{i}" for i in range(5000)) + ",text\n" + "1," * 5000 + "x\n")
    _zst(folder / "one-line-bomb.jsonl.zst", [b'{"text": "'] + [b"a" * (1 << 20)] * 64)  # 64 MiB of one line
    _zst(folder / "many-lines-bomb.jsonl.zst", [b'{"text": "hello world"}\n' * 50_000] * 40)  # ~48 MB of lines
    return {"one-long-line.jsonl": (folder / "one-long-line.jsonl", r"line 1 is over the limit of 1 MiB \(max_line_bytes\)"),
            "many-columns.csv": (folder / "many-columns.csv",
                                 r"the header's 5,001 columns is over the limit of 1,000 columns \(max_csv_columns\)"),
            "one-line-bomb.jsonl.zst": (folder / "one-line-bomb.jsonl.zst",
                                        r"line 1 is over the limit of 1 MiB \(max_line_bytes\)"),
            "many-lines-bomb.jsonl.zst": (folder / "many-lines-bomb.jsonl.zst",
                                          r"the file once unpacked is over the limit of 8 MiB \(max_unpacked_bytes\)")}


def test_oversized_corpus_files_stop_with_one_line_naming_the_file_and_the_limit(tmp_path):
    from tests.fixtures_model import make_tiny_model_dir

    model = make_tiny_model_dir(tmp_path / "model")
    for name, (path, pattern) in _bomb_cases(tmp_path).items():
        t = time.monotonic()
        proc = cli("index", "build", "--corpus", path, "--tokenizer", model, "--out", tmp_path / f"idx-{name}",
                   env=LIMITS, timeout=120)
        line = one_error_line(proc)
        assert re.search(re.escape(str(path)) + ": " + pattern, line), (name, line)
        assert time.monotonic() - t < 60, name


def test_bounded_input_defaults_and_the_document_cap(tmp_path):
    from core.config import CorpusConfig
    from core.corpus.limits import InputLimits
    from core.corpus.load import load_corpus
    from core.errors import ConfigError, CorpusError

    d = InputLimits()
    assert (d.max_unpacked_bytes, d.max_line_bytes, d.max_doc_bytes, d.max_csv_columns) == (1 << 30, 16 << 20,
                                                                                             16 << 20, 10_000)
    assert InputLimits.from_env({"PROPME_MAX_DOC_BYTES": "100"}).max_doc_bytes == 100
    with pytest.raises(ConfigError):
        InputLimits.from_env({"PROPME_MAX_DOC_BYTES": "lots"})
    folder = tmp_path / "txt"
    folder.mkdir()
    (folder / "a.txt").write_text("small")
    (folder / "b.txt").write_text("y" * 5000)
    with pytest.raises(CorpusError, match=r"b\.txt: the document \(5,000 bytes\) is over the limit of 4 KiB \(max_doc_bytes\)"):
        load_corpus(CorpusConfig(str(folder)), limits=InputLimits(max_doc_bytes=4096))
    (tmp_path / "d.jsonl").write_text(json.dumps({"text": "é" * 3000}) + "\n")
    with pytest.raises(CorpusError, match=r"the document of line 1 \(6,000 bytes\) is over the limit"):
        load_corpus(CorpusConfig(str(tmp_path / "d.jsonl")), limits=InputLimits(max_doc_bytes=4096))
    assert len(load_corpus(CorpusConfig(str(tmp_path / "d.jsonl"))).documents) == 1  # within the defaults


def test_an_upload_over_a_limit_is_named_as_uploaded(tmp_path, monkeypatch):
    from app.runner import corpus_choice, corpus_index
    from tests.fixtures_model import make_tiny_model_dir

    model = make_tiny_model_dir(tmp_path / "model")
    monkeypatch.setenv("PROPME_MAX_LINE_BYTES", str(1 << 20))
    choice, _ = corpus_choice("upload a corpus file", None, None,
                              ("big.jsonl", b'{"text": "' + b"x" * (2 << 20) + b'"}\n'), tmp_path / "root")
    with pytest.raises(PropMeError, match=r"^the uploaded file 'big\.jsonl': line 1 is over the limit of 1 MiB"):
        corpus_index(choice, str(model), None, tmp_path / "root")
    assert not Path(choice.path).exists()


def test_a_worker_killed_for_memory_is_reported_as_such():
    from core.runs.process_exit import describe_exit

    assert "ran out of memory" in describe_exit(-9) and "SIGKILL" in describe_exit(-9)
    assert "SIGTERM" in describe_exit(-15) and "exit code 3" in describe_exit(3)
