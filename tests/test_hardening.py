"""Hardening: bad input at every entry point gives a clear error or a reported skip, never a traceback.

Complements the per-area tests (test_corpus, test_prompt_sets, test_cache, test_index, test_model,
test_experiment, test_app_pages ...) with what only shows end to end: the CLI (in-process through
``core.cli.main`` for most cases, a few real ``python -m core`` processes to prove there is no
traceback), the app through AppTest, and tracing arbitrary unicode against a real index.
The tally of what is tried here is in docs/hardening.md.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from streamlit.testing.v1 import AppTest

from app import paths, run_worker, setting_form
from core.cli import main
from core.config import NVBlocksConfig, TraceConfig
from core.config.file import load_experiment
from core.errors import ConfigError
from core.index.corpus_index import CorpusIndex
from core.index.tokenizer import load_tokenizer
from core.records import GenKey
from core.runs.manifest import SkippedRows
from core.runs.results import load_results
from core.tracing.nvrecall import normalize_words, nv_blocks, nv_recall, score_blocks
from core.tracing.trace import trace_completion
from tests.fixtures_app import open_app, shown_errors, type_folder, write_run
from tests.fixtures_index import build_tiny_index, train_tiny_tokenizer
from tests.fixtures_runs import CORPUS, make_tiny_experiment
from tests.test_nvrecall import _oracle

ROOT = Path(__file__).resolve().parents[1]


# -- shared fixtures: one tiny experiment (model + index), an index of another tokenizer -------------
@pytest.fixture(scope="module")
def exp(tmp_path_factory) -> Path:
    """Folder with model/, index/ (model tokenizer), other_tok/ + index_other/ (another tokenizer),
    index_cut/ (manifest missing: an interrupted build), ok.jsonl (the corpus) and tiny.toml."""
    folder = tmp_path_factory.mktemp("hard")
    make_tiny_experiment(folder)
    build_tiny_index(CORPUS, folder / "index_other", tokenizer=train_tiny_tokenizer(CORPUS, 280, folder / "other_tok"))
    shutil.copytree(folder / "index", folder / "index_cut")
    (folder / "index_cut" / "manifest.json").unlink()
    (folder / "ok.jsonl").write_text("".join(json.dumps({"id": f"d{i}", "text": t}) + "\n"
                                             for i, t in enumerate(CORPUS)), encoding="utf-8")
    return folder


def _variant(exp: Path, name: str, **replace: str) -> Path:
    text = (exp / "tiny.toml").read_text()
    for old, new in replace.items():
        assert old in text, old
        text = text.replace(old, new)
    path = exp / f"{name}.toml"
    path.write_bytes(text.encode("utf-8", "surrogateescape"))  # lets a test plant non-UTF-8 bytes
    return path


def _main(argv, capsys) -> tuple[int, str, str]:
    rc = main([str(a) for a in argv])
    out = capsys.readouterr()
    return rc, out.out, out.err


def _one_error_line(rc: int, err: str) -> str:
    """The CLI's contract for a user error: exit 2 and exactly one line ``error: ...`` (+ its detail lines)."""
    assert rc == 2, err
    assert "Traceback" not in err
    lines = [x for x in err.splitlines() if x.startswith("error: ")]
    assert len(lines) == 1, err
    return err[err.index("error: "):]


def _cli(*args, timeout=240) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "core", *map(str, args)], cwd=ROOT, capture_output=True, text=True,
                          check=False, timeout=timeout, env={**os.environ, "HF_HUB_OFFLINE": "1"})


# -- experiment configs through `run` -----------------------------------------------------------------
MODEL = 'name_or_path = "model"'
INDEX = 'index_dirs = ["index"]'
GENERIC = 'prompts_path = "generic.jsonl"'
BAD_CONFIGS = {
    # name: (replacements in tiny.toml, files to write, pattern the error must match)
    "wrong type": ({"max_new_tokens = 12": 'max_new_tokens = "twelve"'}, {},
                   r"experiment\.decoding\.max_new_tokens = 'twelve': expected int"),
    "wrong type bool": ({'mode = "text"': 'mode = "text"\nrarity_fraction = true'}, {},
                        r"experiment\.trace\.rarity_fraction = True: expected float"),
    "wrong type setting": ({"n_prompts = 6": "n_prompts = [6]"}, {},
                           r"experiment\.settings\[0\]\.n_prompts = \[6\]: expected int"),
    "scalar for a table": ({"bootstrap_samples = 200": "bootstrap_samples = 200\nnv_blocks = 3"}, {},
                           r"experiment\.metrics\.nv_blocks = 3: expected a table of fields \['align1'"),
    "unknown key": ({'mode = "text"': 'mode = "text"\nmerge_policy = "x"'}, {},
                    r"TraceConfig: unknown field\(s\) \['merge_policy'\]; valid fields"),
    "out of range": ({"max_new_tokens = 12": "max_new_tokens = 0"}, {}, r"max_new_tokens .* must be at least 1"),
    "not TOML": ({"[model]": "[model"}, {}, r"not valid TOML"),
    "non-UTF-8 TOML": ({'name = "tiny"': 'name = "tiny\udcff"'}, {}, r"cannot read experiment config .*utf-8"),
    "missing model folder": ({MODEL: 'name_or_path = "./no-such-model"'}, {},
                             r"\[model\] name_or_path: no such file or folder .*no-such-model"),
    "model folder with config only": ({MODEL: 'name_or_path = "cfgonly"'}, {"cfgonly/config.json": "model"},
                                      r"No tokenizer files in .*cfgonly"),
    "missing index_tokenizer folder": ({INDEX: INDEX + '\nindex_tokenizer = "./no-tok"'}, {},
                                       r"index_tokenizer: no such file or folder .*no-tok"),
    "missing index folder": ({INDEX: 'index_dirs = ["nope"]'}, {}, r"No index at .*nope: the folder does not exist"),
    "interrupted index build": ({INDEX: 'index_dirs = ["index_cut"]'}, {},
                                r"No finished index at .*index_cut \(manifest\.json is missing\); build it with"),
    "index of another tokenizer": ({INDEX: 'index_dirs = ["index_other"]'}, {},
                                   (r"index at .*index_other was built with tokenizer '.*other_tok'.*but the "
                                   r"tokenizer in use is '.*model'.*rebuild the index")),
    "empty prompt set": ({GENERIC: 'prompts_path = "empty.jsonl"'}, {"empty.jsonl": ""},
                         r"prompt set .*empty\.jsonl: the file is empty; write one JSON object per line"),
    "prompt set of bad lines only": ({GENERIC: 'prompts_path = "bad.jsonl"'},
                                     {"bad.jsonl": '{oops\n{"prompt": "x"}\n["a"]\n'},
                                     (r"(?s)bad\.jsonl holds no valid prompt.*line 1: invalid JSON.*line 2: missing "
                                     r"field 'text'.*line 3: .*list")),
    "binary prompt set": ({GENERIC: 'prompts_path = "bin.jsonl"'}, {"bin.jsonl": b"\x00\x01\x02" * 100},
                          r"prompt set .*bin\.jsonl: .*looks binary"),
    "missing prompt set": ({GENERIC: 'prompts_path = "gone.jsonl"'}, {}, r"prompt set .*gone\.jsonl.*does not exist"),
    "duplicate setting": ({'name = "prefix"': 'name = "generic"'}, {}, r"setting names must be unique"),
}


@pytest.mark.parametrize("case", list(BAD_CONFIGS))
def test_bad_experiment_input_is_one_clear_error(exp, capsys, case):
    replace, files, pattern = BAD_CONFIGS[case]
    for rel, content in files.items():
        (exp / rel).parent.mkdir(parents=True, exist_ok=True)
        (exp / rel).write_bytes(content if isinstance(content, bytes) else content.encode())
    toml = _variant(exp, re.sub(r"\W", "_", case), **replace)
    rc, _out, err = _main(["run", toml, "--cache-dir", exp / "cache-bad"], capsys)
    message = _one_error_line(rc, err)
    assert re.search(pattern, message), message


def test_partial_model_folder_is_refused_before_generating(exp, capsys):
    partial = exp / "partial"
    partial.mkdir(exist_ok=True)
    for f in (exp / "model").iterdir():
        if f.suffix != ".safetensors":
            shutil.copy(f, partial / f.name)
    toml = _variant(exp, "partial", **{MODEL: 'name_or_path = "partial"'})
    rc, _out, err = _main(["run", toml, "--cache-dir", exp / "cache-partial"], capsys)
    assert re.search(r"partial: no weights \(model\.safetensors.*save_pretrained", _one_error_line(rc, err))


def test_index_tokenizer_is_resolved_next_to_the_toml(exp):
    cfg = load_experiment(_variant(exp, "itok", **{INDEX: INDEX + '\nindex_tokenizer = "other_tok"'}))
    assert cfg.index_tokenizer == str(exp / "other_tok")
    assert load_experiment(_variant(exp, "hub", **{MODEL: 'name_or_path = "org/some-model"'})).model.name_or_path == \
        "org/some-model"  # a hub id is not mistaken for a missing folder
    with pytest.raises(ConfigError, match="no such file or folder"):
        load_experiment(_variant(exp, "abs", **{MODEL: f'name_or_path = "{exp / "nowhere" / "m"}"'}))


# -- `index build` -------------------------------------------------------------------------------------
INDEX_INPUTS = {
    # name: (corpus file content, extra flags, pattern of the error)
    "binary file": (bytes(range(256)) * 8, [], r"bin\.jsonl looks binary \(NUL bytes"),
    "empty file": (b"", [], r"e\.jsonl is empty"),
    "no text field": (b'{"id": "a", "body": "x"}\n{"id": "b", "body": "y"}\n', [],
                      (r"(?s)no valid documents in 2 row\(s\).*line 1: missing text field 'text' \(fields present: "
                      r"\['body', 'id'\]\)")),
    "unknown extension": (b"\x89PNG\r\n\x1a\n" + bytes(range(256)), [], r"cannot tell the format of .*img\.png"),
    "sample of 0": (None, ["--sample", "0"], r"sample_size must be at least 1"),
    "missing tokenizer folder": (None, ["--tokenizer", "{exp}/no_tok"], r"--tokenizer .*no_tok: no such folder"),
    "tokenizer is a file": (None, ["--tokenizer", "{exp}/model/config.json"], r"config\.json is a file"),
    "tokenizer folder without tokenizer": (None, ["--tokenizer", "{exp}/index"], r"No tokenizer files in"),
    "--out is a file": (None, ["--out", "{exp}/ok.jsonl"], r"--out .*ok\.jsonl is a file"),
}
_NAMES = {"binary file": "bin.jsonl", "empty file": "e.jsonl", "no text field": "nt.jsonl",
          "unknown extension": "img.png"}


@pytest.mark.parametrize("case", list(INDEX_INPUTS))
def test_bad_index_build_input_is_one_clear_error(exp, capsys, case):
    content, flags, pattern = INDEX_INPUTS[case]
    corpus = exp / "ok.jsonl"
    if content is not None:
        corpus = exp / _NAMES[case]
        corpus.write_bytes(content)
    argv = {"--corpus": str(corpus), "--tokenizer": str(exp / "model"), "--out": str(exp / "ix-bad"), "--cpus": "1"}
    it = iter(flags)
    argv.update({k: v.format(exp=exp) for k, v in zip(it, it)})
    before = (exp / "ok.jsonl").read_bytes()
    rc, _out, err = _main(["index", "build", *[x for kv in argv.items() for x in kv]], capsys)
    assert re.search(pattern, _one_error_line(rc, err)), err
    assert not (exp / "ix-bad" / "manifest.json").exists()
    assert (exp / "ok.jsonl").read_bytes() == before  # the corpus is never overwritten


def test_bad_rows_are_counted_and_shown_and_the_index_is_built(exp, capsys):
    rows = (exp / "ok.jsonl").read_bytes().splitlines(keepends=True)
    corpus = exp / "mixed.jsonl"
    corpus.write_bytes(b"".join(rows) + b'{"id": "u", "text": "caf\xe9"}\n{broken\n{"id": "m"}\n\n')
    rc, out, err = _main(["index", "build", "--corpus", corpus, "--tokenizer", exp / "model", "--out",
                          exp / "ix-mixed", "--cpus", "1"], capsys)
    assert rc == 0, err
    assert f"skipped 3 bad row(s) of {len(rows) + 3}" in err
    assert re.search(r"mixed\.jsonl line 9: not valid UTF-8", err) and "line 10: invalid JSON" in err
    assert "line 11: missing text field 'text'" in err
    # every good row is kept: in the index, or held out of it as the chance floor (the build's default since
    # the chance-floor holdout; the CLI line says how many)
    index = CorpusIndex.open(exp / "ix-mixed")
    held = (index.manifest.get("holdout") or {}).get("docs", 0)
    assert f"{len(CORPUS) - held} documents" in out and f"{held} held out as the chance floor" in out
    assert index.num_docs + held == len(CORPUS)


# -- the cache and the report ----------------------------------------------------------------------------
def test_cache_dir_pointing_at_a_user_file_leaves_it_alone(exp, capsys):
    victim = exp / "ok.jsonl"
    before = victim.read_bytes()
    for argv in (["cache", "show", "--cache-dir", victim], ["cache", "clear", "--cache-dir", victim],
                 ["run", exp / "tiny.toml", "--cache-dir", victim]):
        rc, _out, err = _main(argv, capsys)
        assert re.search(r"ok\.jsonl is a file that is not a cache database", _one_error_line(rc, err))
    assert victim.read_bytes() == before and not list(exp.glob("ok.jsonl.corrupt-*"))


def test_report_of_a_folder_that_is_not_a_results_folder(exp, capsys):
    rc, _out, err = _main(["report", exp], capsys)
    assert re.search(r"results folder .* is incomplete \(missing manifest\.json", _one_error_line(rc, err))
    rc, _out, err = _main(["report", exp / "ok.jsonl"], capsys)
    assert "no results folder at" in _one_error_line(rc, err)


# -- real processes: no traceback, warnings and skips visible --------------------------------------------
@pytest.mark.slow  # real `python -m core` processes
def test_real_cli_run_with_bad_rows_long_prompt_and_trust_remote_code(exp):
    """A run that completes: bad prompt rows skipped and counted, an over-long prompt cut to the context
    (logged), trust_remote_code warned about; then two user errors from real processes."""
    long_prompt = " ".join(["the quick brown fox"] * 200)  # ~800 tokens, the tiny model has 128 positions
    (exp / "messy.jsonl").write_bytes(
        b'{"text": "Tell me about the sea."}\n{oops\n\xff\xfe\n{"text": ""}\n'
        + json.dumps({"id": "long", "text": long_prompt}).encode() + b"\n")
    toml = _variant(exp, "messy", **{
        "[[settings]]\nname = \"prefix\"\nn_prompts = 6\nprefix_tokens = 8\nmin_doc_tokens = 16\n\n": "",
        GENERIC: 'prompts_path = "messy.jsonl"', 'dtype = "float32"': 'dtype = "float32"\ntrust_remote_code = true',
        'name = "tiny"': 'name = "messy"'})
    out = _cli("run", toml, "--cache-dir", exp / "cache-messy")
    assert out.returncode == 0, out.stderr[-3000:]
    assert "Traceback" not in out.stderr
    assert "trust_remote_code is on" in out.stderr
    assert re.search(r"messy\.jsonl: 3 bad row\(s\) skipped \(first: line 2, invalid JSON", out.stderr)
    assert re.search(r"1 prompt\(s\) cut to \d+ tokens so prompt \+ max_new_tokens \(12\) fits", out.stderr)
    run = load_results(exp / "results" / "messy")
    assert [g.key.prompt_id for g in run.generations] == ["generic-0001", "long"]
    assert len(run.traces) == 2
    first = "line 2: invalid JSON at column 2: Expecting property name enclosed in double quotes"
    skipped = run.manifest.skipped_rows["generic"]
    assert skipped == SkippedRows(3, str(exp / "messy.jsonl"), first, skipped.reasons)
    assert skipped.reasons[0] == first and len(skipped.reasons) == 3  # the first reasons, in full (issue 21)

    out = _cli("index", "build", "--corpus", exp / "ok.jsonl", "--tokenizer", exp / "model", "--out",
               exp / "tiny.toml", "--trust-remote-code")
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert "--trust-remote-code is on" in out.stderr and "tiny.toml is a file" in out.stderr
    out = _cli("run", _variant(exp, "mismatch", **{INDEX: 'index_dirs = ["index_other"]'}))
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert out.stderr.strip().splitlines()[-1].startswith("error: The index at ")


def test_os_errors_are_one_line_not_a_traceback(exp, capsys, monkeypatch):
    import core.runs.results

    def refuse(folder):  # what a read-only or vanished disk does (tests run as root: chmod cannot show it)
        raise PermissionError(13, "Permission denied", str(exp / "out"))

    monkeypatch.setattr(core.runs.results, "load_results", refuse)
    rc, _out, err = _main(["report", exp / "out"], capsys)
    assert re.search(r"cannot read or write .*out: Permission denied; check the path", _one_error_line(rc, err))


# -- tracing: empty, whitespace and arbitrary unicode completions against a real index ----------------------
@pytest.fixture(scope="module")
def traced_index(exp):
    return CorpusIndex.open(exp / "index"), load_tokenizer(str(exp / "model"))


@pytest.mark.parametrize("completion", ["", " ", "\n\t  \n", "\u0301", "\x00", "\ufeff"])
def test_degenerate_completions_trace_to_no_span(traced_index, completion):
    index, tok = traced_index
    tr = trace_completion(index, tok, GenKey("g", "empty"), completion)
    assert tr.completion == completion
    assert tr.n_tokens == len(tok(completion, add_special_tokens=False)["input_ids"])
    if tr.n_tokens < 2:  # nothing to trace: a result with no span, still counted as one generation
        assert tr.spans == () and tr.full_doc_frequency == 0
    if completion == "":
        assert tr.n_tokens == 0
    for s in tr.spans:  # whitespace-only text may match the corpus's whitespace (SPEC's text rule allows it)
        assert completion[s.char_start:s.char_end] == s.text and s.count >= 1


_piece = st.sampled_from(CORPUS).flatmap(lambda d: st.integers(0, len(d)).flatmap(
    lambda i: st.integers(i, len(d)).map(lambda j: d[i:j])))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                  HealthCheck.function_scoped_fixture])
@given(parts=st.lists(st.one_of(st.text(max_size=20), _piece, st.sampled_from(["\u0301", "\u200d", "\n", " ", "日本"])),
                      max_size=5),
       mode=st.sampled_from(["text", "mixed"]))
def test_any_unicode_completion_traces_with_offsets_that_slice_to_the_span(traced_index, parts, mode):
    index, tok = traced_index
    completion = "".join(parts)
    tr = trace_completion(index, tok, GenKey("g", "h"), completion, TraceConfig(mode=mode, docs_per_span=3))
    assert tr.completion == completion
    assert tr.n_tokens == len(tok(completion, add_special_tokens=False)["input_ids"])
    for s in tr.spans:
        assert 0 <= s.start < s.end <= tr.n_tokens
        assert 0 <= s.char_start <= s.char_end <= len(completion)
        assert completion[s.char_start:s.char_end] == s.text
        assert all(0 <= d.doc_ix < index.num_docs for d in s.docs)
        # a span's tokens occur in the index, except the whole-completion span that mixed mode attaches
        # from anchor documents (SPEC 4): there the completion's text occurs (raw or normalized) inside
        # each document window, though its token ids may not (e.g. "e qui" inside "The quick")
        anchored = mode == "mixed" and (s.start, s.end) == (0, tr.n_tokens) and s.docs
        assert s.count >= 1 or anchored


@settings(max_examples=150, deadline=None)
@given(st.text(max_size=120), st.text(max_size=120))
def test_nv_recall_of_any_unicode_is_bounded_and_matches_the_oracle(reference, candidate):
    """Random unicode (combining marks, RTL marks, NUL, emoji, lone surrogates): no crash, a recall in
    [0, 1], and the matched words of the independent oracle in tests/test_nvrecall.py."""
    r = nv_recall(reference, candidate)
    ref, cand = normalize_words(reference), normalize_words(candidate)
    assert 0.0 <= r.recall <= 1.0 and 0 <= r.matched <= r.reference == len(ref)
    assert r.matched == _oracle(ref, cand, NVBlocksConfig())
    blocks, n_ref, n_cand = nv_blocks(reference, candidate)
    assert all(0 <= i and 0 <= j and i + n <= n_ref and j + n <= n_cand for i, j, n in blocks)
    assert score_blocks(blocks, n_ref, n_cand) == r


# -- the app ---------------------------------------------------------------------------------------------------



@pytest.mark.parametrize("what", ["not a results folder", "a file", "outside the data root"])
def test_app_refuses_bad_results_paths_with_an_error(monkeypatch, exp, tmp_path, what):
    good = write_run(tmp_path / "run")
    at = open_app(monkeypatch, good, data_root=tmp_path)
    target = {"not a results folder": exp / "index", "a file": exp / "ok.jsonl",
              "outside the data root": exp / "results"}[what]
    if what != "outside the data root":
        monkeypatch.delenv(paths.DATA_ROOT_ENV)
    type_folder(at, str(target))
    for page in ("overview", "explore"):
        at.switch_page(f"../pages/{page}.py").run()
        assert not at.exception, at.exception
        errors = shown_errors(at)
        expected = {"not a results folder": r"results folder .*index is incomplete",
                    "a file": r"no results folder at .*ok\.jsonl",
                    "outside the data root": r"is outside the data root"}[what]
        assert any(re.search(expected, e) for e in errors), errors


def _run_page(monkeypatch, exp, tmp_path) -> AppTest:
    monkeypatch.setenv("PROPME_CACHE_DIR", str(tmp_path / "cache"))
    at = open_app(monkeypatch, write_run(tmp_path / "start"))
    at.switch_page("../pages/run.py").run()
    at.radio(key="run_model_kind").set_value("local folder").run()
    at.text_input(key="run_model_path").input(str(exp / "model")).run()
    at.number_input(key="run_max_new").set_value(12).run()  # within the tiny model's 128 positions (checked at start)
    at.multiselect(key="run_settings").set_value(["generic"]).run()
    at.text_input(key=setting_form.key("generic", "prompts_path")).input(str(exp / "generic.jsonl")).run()
    at.text_input(key="run_out").input(str(tmp_path / "out")).run()
    return at


@pytest.mark.parametrize("what", ["interrupted index", "index of another tokenizer", "binary upload",
                                  "empty prompt set", "model outside the data root"])
def test_run_page_shows_bad_input_as_an_error(monkeypatch, exp, tmp_path, what):
    at = _run_page(monkeypatch, exp, tmp_path)
    if what in ("interrupted index", "index of another tokenizer"):
        at.radio(key="run_corpus_kind").set_value("existing index folder").run()
        folder = "index_cut" if what == "interrupted index" else "index_other"
        at.text_input(key="run_index_path").input(str(exp / folder)).run()
    elif what == "binary upload":
        at.radio(key="run_corpus_kind").set_value("upload a corpus file").run()
        at.get("file_uploader")[0].set_value(("corpus.jsonl", bytes(range(256)) * 64, "application/json")).run()
    else:
        at.radio(key="run_corpus_kind").set_value("existing index folder").run()
        at.text_input(key="run_index_path").input(str(exp / "index")).run()
        if what == "empty prompt set":
            (tmp_path / "empty.jsonl").write_bytes(b"")
            at.text_input(key=setting_form.key("generic", "prompts_path")).input(str(tmp_path / "empty.jsonl")).run()
        else:
            monkeypatch.setenv(paths.DATA_ROOT_ENV, str(tmp_path))
    at.button(key="run_start").click().run(timeout=300)
    assert not at.exception, at.exception
    job = at.session_state[run_worker.JOB_KEY] if run_worker.JOB_KEY in at.session_state else None  # noqa: SIM401 (AppTest's session state has no .get)
    if job is not None:  # refused only by the run itself (in the background): its error shows once it ended
        assert run_worker.wait(job, 300).state == run_worker.FAILED
        at.run()
    expected = {"interrupted index": r"No finished index at .*index_cut",
                "index of another tokenizer": r"was built with tokenizer .*other_tok",
                "binary upload": r"looks binary \(NUL bytes",
                "empty prompt set": r"prompt set .*empty\.jsonl: the file is empty",
                "model outside the data root": r"model.* is outside the data root"}[what]
    assert any(re.search(expected, e) for e in shown_errors(at)), shown_errors(at)
    assert not at.success and not (tmp_path / "out").exists()


def test_run_page_trust_remote_code_shows_a_warning(monkeypatch, exp, tmp_path):
    at = _run_page(monkeypatch, exp, tmp_path)
    assert not any("Trust remote code is ON" in w.value for w in at.warning)
    at.checkbox(key="run_trust").check().run()
    assert any("Trust remote code is ON" in w.value for w in at.warning)


# -- what is loaded and how the server listens ----------------------------------------------------------------
def test_no_unpickling_and_safe_defaults_in_the_code():
    sources = {p: p.read_text(encoding="utf-8") for d in ("core", "app", "pages") for p in (ROOT / d).rglob("*.py")}
    # The one exception: parallel tracing talks to the worker processes it spawned itself over their own
    # stdin/stdout pipes (what multiprocessing does internally); nothing read from a file or socket is unpickled.
    pipes = ROOT / "core" / "tracing" / "parallel.py"
    assert set(re.findall(r"pickle\.load\(([^)]*)\)", sources[pipes])) == {"stdin", "self.proc.stdout"}
    for path, text in sources.items():
        if path == pipes:
            text = re.sub(r"pickle\.load\((stdin|self\.proc\.stdout)\)", "", text)
        assert not re.search(r"\bpickle\.loads?\(|\bjoblib\.load\(|\bnp\.load\([^)]*allow_pickle=True", text), path
        for call in re.findall(r"torch\.load\([^)]*\)", text):
            assert "weights_only=True" in call, (path, call)
        assert not re.search(r"trust_remote_code\s*=\s*True\s*[,)]", text), path  # never hard-wired on
    from core.config import ModelConfig

    assert ModelConfig("x").trust_remote_code is False
    server = tomllib.loads((ROOT / ".streamlit" / "config.toml").read_text())["server"]
    assert server["address"] == "localhost" and 0 < server["maxUploadSize"] <= 200
    assert server["enableXsrfProtection"] is True
