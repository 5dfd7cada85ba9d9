"""The one path policy (core/paths.py) and every place it guards, each reproduced as a user hit it (issue 10).

- run names: only one safe folder name; a folder that is not ours is never replaced (CLI, exit 2);
- the data root: the Run page's run name, hub-id box and remote-code checkbox, the Corpus page's index
  named in a manifest, uploads and outputs;
- corpora: a .txt folder never follows a symlink; duplicate ids keep their text, renamed, and every
  skipped row is listed beside the index.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from app import paths as app_paths
from app import runner
from core.cli import main
from core.config import (
    CorpusConfig,
    DecodingConfig,
    ExperimentConfig,
    ModelConfig,
    SettingConfig,
    TraceConfig,
)
from core.corpus.load import load_corpus
from core.errors import ConfigError, OutsideRoot, ResultsError
from core.paths import confine, model_source, safe_name
from core.runs.folders import results_folder
from core.runs.results import load_results, save_results
from tests.fixtures_app import make_run, open_app, shown_errors, write_run
from tests.fixtures_runs import CORPUS, make_tiny_experiment

ROOT = Path(__file__).resolve().parents[1]
BAD_NAMES = ["", " ", ".", "..", "../escaped", "/abs/path", "a/b", "a\\b", "x\0y", "\x1b]0;owned\x07",
             "bidi\u202eexe.txt", ".hidden", " padded", "c:evil", "x" * 101, "\U0001f600" * 60]


def tree(folder: Path) -> dict[str, str]:
    """Every file under ``folder`` (relative path -> sha256), folders as ``/``: a snapshot to compare."""
    out = {}
    for p in sorted(folder.rglob("*")):
        rel = p.relative_to(folder).as_posix()
        out[rel] = "/" if p.is_dir() else hashlib.sha256(p.read_bytes()).hexdigest()
    return out


# -- run names -----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", BAD_NAMES)
def test_unsafe_run_names_are_refused_saying_what_is_allowed(name, tmp_path):
    with pytest.raises(ConfigError, match=r"run name (.* is refused: .*a run name is one folder name|is too long "
                                          r"\(\d+ characters, \d+ bytes\): at most 100 characters and 200 bytes)"):
        safe_name(name)  # an overlong name in one short line (issue 21)
    with pytest.raises(ConfigError, match="run name"):
        results_folder(tmp_path / "out", name)
    assert not (tmp_path / "out").exists() or list((tmp_path / "out").iterdir()) == []


@settings(max_examples=300, deadline=None)
@given(name=st.one_of(st.text(max_size=120), st.sampled_from(BAD_NAMES + ["ok", "run 1", "pythia-70m_greedy.v2"])))
def test_an_accepted_name_is_exactly_one_folder_inside_the_output_folder(name):
    base = "/srv/out"
    try:
        accepted = safe_name(name)
    except ConfigError:
        return
    joined = os.path.normpath(os.path.join(base, accepted))  # independent: plain string path arithmetic
    assert os.path.dirname(joined) == base and os.path.basename(joined) == accepted == name
    assert "\0" not in name and not name.startswith(".") and len(name.encode("utf-8")) <= 200


def test_confine_follows_links_and_dotdot_and_names_path_and_root(tmp_path):
    root = tmp_path / "root"
    (root / "in").mkdir(parents=True)
    (root / "out-link").symlink_to(tmp_path)
    assert confine(root / "in" / ".." / "in", root) == (root / "in").resolve()
    assert confine(str(root), root) == root.resolve()  # the root itself is inside
    for bad in (root / ".." / "x", root / "out-link" / "x", "/etc/passwd"):
        with pytest.raises(OutsideRoot, match=r"is outside the data root .*PROPME_DATA_ROOT") as info:
            confine(bad, root)
        assert info.value.root == root.resolve() and not info.value.path.is_relative_to(root.resolve())
    for bad, pattern in (("a\0b", "NUL character"), ("", "no path given"), (42, "must be a path")):
        with pytest.raises(ConfigError, match=pattern):
            confine(bad, root)


def test_a_hub_id_that_names_a_local_folder_is_confined_like_a_folder(tmp_path, monkeypatch):
    root = tmp_path / "root"
    root.mkdir()
    (tmp_path / "org" / "evil").mkdir(parents=True)  # a relative "hub id" that is a folder in the working dir
    monkeypatch.chdir(tmp_path)
    assert model_source("EleutherAI/pythia-70m", root) == "EleutherAI/pythia-70m"  # a real hub id stays one
    for typed in ("org/evil", str(tmp_path / "org" / "evil"), "../x", "~/model"):
        with pytest.raises(OutsideRoot, match="outside the data root"):
            model_source(typed, root)
    with pytest.raises(ConfigError, match="neither a folder inside the data root nor a hub id"):
        model_source("not a hub id!", root)
    assert model_source("org/evil", None) == str((tmp_path / "org" / "evil").resolve())  # no root: a path
    (root / "m").mkdir()
    monkeypatch.chdir(root)
    assert model_source("m", root) == str((root / "m").resolve())


def test_runner_refuses_remote_code_and_outside_paths_with_a_data_root(tmp_path):
    root = tmp_path / "root"
    (root / "model").mkdir(parents=True)
    choices = ExperimentConfig("ok", ModelConfig(str(root / "model")), (str(root / "index"),),
                               (SettingConfig("prefix"),), DecodingConfig(), TraceConfig(),
                               output_dir=str(root / "results"))
    cfg = runner.checked_config(choices, root)
    assert cfg.output_dir == str((root / "results").resolve()) and cfg.name == "ok"
    bad = [({"model": ModelConfig(str(root / "model"), trust_remote_code=True)}, "Trust remote code cannot be enabled"),
           ({"name": "../../x"}, "run name"),
           ({"output_dir": str(tmp_path / "elsewhere")}, "output folder .* outside the data root"),
           ({"index_dirs": (str(tmp_path / "ix"),)}, "index folder .* outside the data root"),
           ({"model": ModelConfig(str(tmp_path))}, "model .* outside the data root")]
    from dataclasses import replace

    for change, pattern in bad:
        with pytest.raises(ConfigError, match=pattern):
            runner.checked_config(replace(choices, **change), root)
    assert runner.checked_config(replace(choices, model=ModelConfig(str(root / "model"), trust_remote_code=True)),
                                 None).model.trust_remote_code  # without a data root it stays the user's choice


# -- results folders: never replace what is not ours -------------------------------------------------------
def _victim(folder: Path) -> dict[str, str]:
    (folder / "sub").mkdir(parents=True)
    (folder / "thesis.tex").write_text("years of work")
    (folder / "sub" / "data.csv").write_text("a,b\n1,2\n")
    return tree(folder)


def test_save_results_never_replaces_a_folder_that_is_not_a_results_folder(tmp_path):
    before = _victim(tmp_path / "victim")
    with pytest.raises(ResultsError, match=r"victim already exists and is not a results folder.*left untouched"):
        save_results(make_run(n_per_setting=1, hostile=False), tmp_path / "victim")
    assert tree(tmp_path / "victim") == before
    (tmp_path / "afile").write_text("x")
    with pytest.raises(ResultsError, match="is a file"):
        save_results(make_run(n_per_setting=1, hostile=False), tmp_path / "afile")
    (tmp_path / "link").symlink_to(tmp_path / "victim")
    with pytest.raises(ResultsError, match="symbolic link"):
        save_results(make_run(n_per_setting=1, hostile=False), tmp_path / "link")
    assert tree(tmp_path / "victim") == before and (tmp_path / "afile").read_text() == "x"
    (tmp_path / "empty").mkdir()  # an empty folder loses nothing: it is written
    assert load_results(save_results(make_run(n_per_setting=1, hostile=False), tmp_path / "empty")).generations
    again = save_results(make_run(n_per_setting=2, hostile=False), tmp_path / "empty")  # ours: replaced
    assert len(load_results(again).generations) == 6


@pytest.fixture(scope="module")
def exp(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("paths")
    make_tiny_experiment(folder, name="victim")
    return folder


def test_cli_run_named_like_a_foreign_folder_exits_2_and_keeps_it(exp):
    before = _victim(exp / "results" / "victim")
    out = subprocess.run([sys.executable, "-m", "core", "run", str(exp / "victim.toml"), "--cache-dir",
                          str(exp / "cache")], cwd=ROOT, capture_output=True, text=True, timeout=300, check=False)
    assert out.returncode == 2, out.stderr
    assert "Traceback" not in out.stderr
    errors = [line for line in out.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and re.search(r"results/victim already exists and is not a results folder", errors[0])
    assert tree(exp / "results" / "victim") == before


@pytest.mark.parametrize("name", ["", ".", "../escaped", "/abs/elsewhere", "a\0b"])
def test_cli_run_refuses_names_that_are_not_one_folder(exp, tmp_path, capsys, name):
    text = (exp / "victim.toml").read_text().replace('name = "victim"', f"name = {json.dumps(name)}")
    text = text.replace('output_dir = "results"', f"output_dir = {json.dumps(str(tmp_path / 'out'))}")
    text = text.replace('index_dirs = ["index"]', f"index_dirs = [{json.dumps(str(exp / 'index'))}]")
    text = text.replace('name_or_path = "model"', f"name_or_path = {json.dumps(str(exp / 'model'))}")
    (tmp_path / "t.toml").write_text(text)
    rc = main(["run", str(tmp_path / "t.toml"), "--cache-dir", str(tmp_path / "cache")])
    err = capsys.readouterr().err
    assert rc == 2 and "Traceback" not in err and re.search(r"error: .*name", err), err
    assert not (tmp_path / "escaped").exists() and not Path("/abs/elsewhere").exists()
    assert not (tmp_path / "out").exists() or list((tmp_path / "out").iterdir()) == []


# -- the app with a data root --------------------------------------------------------------------------------



def test_run_page_with_a_data_root_refuses_run_name_dotdot(monkeypatch, tmp_path):
    root = tmp_path / "root"
    root.mkdir()
    (tmp_path / "x").mkdir()
    (tmp_path / "x" / "keep.txt").write_text("keep me")
    monkeypatch.setenv("PROPME_CACHE_DIR", str(root / "cache"))
    at = open_app(monkeypatch, write_run(root / "start"), root)
    at.switch_page("../pages/run.py").run()
    assert at.text_input(key="run_out").value == str(root.resolve() / "results")  # the default is inside the root
    at.radio(key="run_model_kind").set_value("local folder").run()
    (root / "model").mkdir()
    at.text_input(key="run_model_path").input(str(root / "model")).run()
    at.radio(key="run_corpus_kind").set_value("existing index folder").run()
    at.text_input(key="run_index_path").input(str(root / "index")).run()
    at.multiselect(key="run_settings").set_value(["prefix"]).run()
    at.text_input(key="run_name").input("../../x").run()
    # refused as typed, under the field; Run stays disabled while the form has a problem (the run would refuse again)
    assert not at.exception, at.exception
    assert any(re.search(r"run name '\.\./\.\./x' is refused", e) for e in shown_errors(at)), shown_errors(at)
    assert at.button(key="run_start").disabled  # AppTest, like a browser, cannot press a disabled button
    assert tree(tmp_path / "x") == {"keep.txt": hashlib.sha256(b"keep me").hexdigest()} and not at.success


def test_run_page_hub_id_box_refuses_a_local_folder_outside_the_root_and_remote_code_is_off(monkeypatch, tmp_path):
    root = tmp_path / "root"
    root.mkdir()
    outside = tmp_path / "evil-model"
    outside.mkdir()
    at = open_app(monkeypatch, write_run(root / "start"), root)
    at.switch_page("../pages/run.py").run()
    assert at.checkbox(key="run_trust").disabled and not at.checkbox(key="run_trust").value
    at.session_state["run_trust"] = True  # a crafted client may still send True: it is ignored
    at.run()
    assert not any("Trust remote code is ON" in w.value for w in at.warning)
    at.radio(key="run_model_kind").set_value("hub id").run()
    at.text_input(key="run_model_hub").input(str(outside)).run()
    assert not at.exception, at.exception
    assert any(re.search(r"model \(hub id box\) .*evil-model is outside the data root", e) for e in shown_errors(at))
    monkeypatch.chdir(tmp_path)  # the same folder typed as a relative "hub id"
    at.text_input(key="run_model_hub").input("evil-model").run()
    assert any(re.search(r"evil-model is outside the data root", e) for e in shown_errors(at)), shown_errors(at)


@pytest.mark.parametrize("how", ["absolute", "relative"])
def test_corpus_page_refuses_an_index_named_outside_the_root(monkeypatch, tmp_path, how):
    from core.runs.demo import demo_model_dir, ensure_demo_index

    index = ensure_demo_index()  # lies in the checkout: outside the data root below
    root = tmp_path / "root"
    run = write_run(root / "run", index={"dirs": [str(d) for d in index.dirs], "tokenizer": str(demo_model_dir())})
    if how == "relative":  # a hand-edited manifest: ../ out of the results folder, listed as a relative path
        m = json.loads((run / "manifest.json").read_text())
        m["index"]["dirs"] = [os.path.relpath(index.dirs[0], run)]
        m["relative_paths"] = ["index/dirs/0"]
        (run / "manifest.json").write_text(json.dumps(m))
        assert load_results(run).manifest.index.dirs == (str(index.dirs[0]),)
    at = open_app(monkeypatch, run, root)
    at.switch_page("../pages/corpus.py").run()
    assert not at.exception, at.exception
    assert any(re.search(r"index folder named in the run's manifest .* is outside the data root", e)
               for e in shown_errors(at)), shown_errors(at)
    assert not [m for m in at.metric if m.label == "Documents"]  # nothing from the index is shown
    at = open_app(monkeypatch, run, None)  # without a data root the same run opens its index
    at.switch_page("../pages/corpus.py").run()
    assert [m.value for m in at.metric if m.label == "Documents"] == [f"{index.num_docs:,}"]


def test_uploads_and_app_indexes_go_inside_the_data_root(tmp_path):
    root = tmp_path / "root"
    assert app_paths.work_dir(root).is_relative_to(root) and app_paths.work_dir(None) == app_paths.BUILD
    saved = runner.save_upload("../../evil.jsonl", b'{"text": "x"}\n', app_paths.work_dir(root) / "uploads")
    assert saved.resolve().is_relative_to(root.resolve()) and saved.suffix == ".jsonl"


# -- corpora -------------------------------------------------------------------------------------------------
def test_txt_folder_does_not_follow_symlinks_and_reports_them(tmp_path):
    secret = tmp_path / "secret"
    secret.mkdir()
    (secret / "passwd").write_text("root:x:0:0:SECRET-LINE:/root:/bin/bash\n")
    (secret / "inner.txt").write_text("SECRET-INNER document\n")
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "a.txt").write_text("an ordinary document\n")
    (corpus / "passwd.txt").symlink_to(secret / "passwd")
    (corpus / "linked-dir").symlink_to(secret)
    out = load_corpus(CorpusConfig(path=str(corpus)))
    assert [(d.doc_id, d.text) for d in out.documents] == [("a.txt", "an ordinary document\n")]
    assert sorted(Path(p.source).name for p in out.problems) == ["linked-dir", "passwd.txt"]
    assert all("symbolic link" in p.reason and "not followed" in p.reason for p in out.problems)
    assert not any("SECRET" in d.text for d in out.documents)


def test_duplicate_ids_are_kept_renamed_and_skipped_rows_listed_beside_the_index(tmp_path, capsys):
    from core.index.corpus_index import CorpusIndex
    from core.index.tokenizer import load_tokenizer
    from tests.fixtures_index import train_tiny_tokenizer

    train_tiny_tokenizer(CORPUS, 300, tmp_path / "tok")
    lines = [json.dumps({"id": "d0", "text": CORPUS[0]}), json.dumps({"id": "d1", "text": CORPUS[1]}),
             json.dumps({"id": "d0", "text": CORPUS[2]}), json.dumps({"id": "d0", "text": CORPUS[3]})]
    lines += ["{broken"] * 12  # more bad rows than any message lists
    (tmp_path / "c.jsonl").write_text("\n".join(lines) + "\n")
    rc = main(["index", "build", "--corpus", str(tmp_path / "c.jsonl"), "--tokenizer", str(tmp_path / "tok"),
               "--out", str(tmp_path / "ix"), "--cpus", "1"])
    err = capsys.readouterr().err
    assert rc == 0, err
    assert f"skipped 12 bad row(s) of 16; all listed in {tmp_path / 'ix' / 'skipped_rows.jsonl'}" in err
    assert "c.jsonl line 9: invalid JSON" in err and "line 10:" not in err  # the first 5 only
    assert "kept 2 row(s) whose id repeats an earlier row under a new id" in err
    assert "line 3: id 'd0' -> 'd0#2'" in err and "line 4: id 'd0' -> 'd0#3'" in err
    skipped = [json.loads(x) for x in (tmp_path / "ix" / "skipped_rows.jsonl").read_text().splitlines()]
    assert [s["line"] for s in skipped] == list(range(5, 17)) and all("invalid JSON" in s["reason"] for s in skipped)
    renamed = [json.loads(x) for x in (tmp_path / "ix" / "renamed_ids.jsonl").read_text().splitlines()]
    assert [(r["line"], r["id"], r["new_id"]) for r in renamed] == [(3, "d0", "d0#2"), (4, "d0", "d0#3")]
    manifest = json.loads((tmp_path / "ix" / "manifest.json").read_text())
    assert manifest["corpus_report"] | {"source": None} == {"source": None, "rows_read": 16, "skipped_rows": 12,
                                                           "renamed_ids": 2,
                                                           "files": ["renamed_ids.jsonl", "skipped_rows.jsonl"]}
    index = CorpusIndex.open(tmp_path / "ix")
    tok = load_tokenizer(str(tmp_path / "tok"))
    assert [index.doc_id(i) for i in range(index.num_docs)] == ["d0", "d1", "d0#2", "d0#3"]
    for i, text in enumerate(CORPUS[:4]):  # every text of a repeated id is in the index, traceable
        count, occs = index.search(text.strip(), tokenizer=tok)
        assert count >= 1 and i in {o.doc_ix for o in occs}


def test_planted_extraction_beside_a_run_is_read_only_when_it_is_a_plain_file(tmp_path):
    """The Overview's planted-records panel reads RUN/../planted_extraction.json: never through a link."""
    from app.views.planted_records import PLANTED_FILE, planted_path

    run = tmp_path / "results" / "demo"
    run.mkdir(parents=True)
    assert planted_path(str(run)) is None
    secret = tmp_path / "elsewhere.json"
    secret.write_text('{"table": []}')
    (run.parent / PLANTED_FILE).symlink_to(secret)
    assert planted_path(str(run)) is None  # a link is not followed
    (run.parent / PLANTED_FILE).unlink()
    (run.parent / PLANTED_FILE).write_text('{"table": []}')
    assert planted_path(str(run)) == run.parent / PLANTED_FILE
