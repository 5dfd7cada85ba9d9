import argparse
import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from core.cli import TextProgress, build_parser, main
from core.config import MetricsConfig
from core.progress import ProgressEvent
from core.records import Generation, GenKey, Prompt, TraceResult
from core.runs.manifest import Manifest, ModelInfo
from core.runs.results import RunResults, load_results, save_results

ROOT = Path(__file__).resolve().parents[1]


def _cli(*args, env_extra=None, timeout=300):
    env = {**os.environ, **(env_extra or {})}
    return subprocess.run([sys.executable, "-m", "core", *args], cwd=ROOT, capture_output=True, text=True, check=False,
                          timeout=timeout, env=env)


def _subparsers(parser: argparse.ArgumentParser):
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            helps = {a.dest: a.help for a in action._choices_actions}
            for name, sub in action.choices.items():
                yield name, helps.get(name), sub


def _walk(parser, path=()):
    yield path, parser
    for name, help_text, sub in _subparsers(parser):
        assert help_text, f"subcommand {' '.join(path + (name,))} has no help text"
        yield from _walk(sub, path + (name,))


def test_every_command_and_flag_has_help_text():
    seen = []
    for path, parser in _walk(build_parser()):
        seen.append(" ".join(path))
        for action in parser._actions:
            if isinstance(action, (argparse._HelpAction, argparse._SubParsersAction)):
                continue
            assert action.help, f"{' '.join(path) or 'python -m core'}: {action.option_strings or action.dest} lacks help"
    assert {"", "index", "index build", "run", "report", "cache", "serve", "demo"} <= set(seen)


@pytest.mark.parametrize("cmd", [[], ["index"], ["index", "build"], ["run"], ["report"], ["cache"], ["demo"]])
def test_help_runs_for_every_command(cmd):
    out = _cli(*cmd, "--help", timeout=60)
    assert out.returncode == 0, out.stderr
    assert "usage: python -m core" in out.stdout
    assert out.stdout.count("\n") > 3


def test_user_errors_are_one_line_and_exit_2(tmp_path):
    out = _cli("report", str(tmp_path / "missing"), timeout=60)
    assert out.returncode == 2
    assert out.stderr.strip().splitlines() == [(f"error: no results folder at {tmp_path / 'missing'}: run "
                                                "`python -m core run CONFIG.toml` to create one")]
    bad = tmp_path / "bad.toml"
    bad.write_text("name = 'x'\n[model]\nname_or_path = 'm'\n")
    out = _cli("run", str(bad), "--cache-dir", str(tmp_path / "c"), timeout=60)
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert out.stderr.startswith(f"error: {bad}: missing required key 'index_dirs'")
    out = _cli("index", "build", "--corpus", str(tmp_path / "none.jsonl"), "--tokenizer", "x", "--out",
               str(tmp_path / "i"), timeout=120)
    assert out.returncode == 2 and out.stderr.startswith("error: ") and "Traceback" not in out.stderr


def test_argparse_errors_exit_2():
    out = _cli("cache", "frobnicate", timeout=60)
    assert out.returncode == 2 and "invalid choice: 'frobnicate'" in out.stderr


def _tiny_results(folder):
    gens = [Generation(GenKey(s, f"p{i}", 0), Prompt(s, f"p{i}", "t"), "c") for s in ("prefix", "generic")
            for i in range(2)]
    run = RunResults(None, Manifest("tiny", metrics=MetricsConfig(confidence=0.95, span_threshold=50)),
                     tuple(gens), tuple(TraceResult(g.key, g.completion, 1) for g in gens),
                     {"prefix": {"n_generations": 2, "metrics": {"als": 24.75, "fmr": 0.08, "nvr": 0.0367},
                                 "intervals": {"als": {"value": 24.75, "lo": 20.0, "hi": 30.0, "method": "p"}}},
                      "generic": {"n_generations": 2, "metrics": {"als": 15.68, "fmr": 0.0, "nvr": 0.000857},
                                  "intervals": {}}},
                     {"generic": {"nvr": {"value": 0.0228, "lo": 0.01, "hi": 0.05, "method": "p"}}})
    return save_results(run, folder)


def test_report_text_and_json(tmp_path):
    folder = _tiny_results(tmp_path / "r")
    out = _cli("report", str(folder), timeout=60)
    assert out.returncode == 0, out.stderr
    assert "24.75 [20, 30]" in out.stdout and "15.68" in out.stdout and "0.000857" in out.stdout
    assert "0.0228 [0.01, 0.05]" in out.stdout
    out = _cli("report", str(folder), "--json", timeout=60)
    data = json.loads(out.stdout)
    assert data["run_name"] == "tiny" and data["summary"]["prefix"]["metrics"]["als"] == 24.75
    assert data["pm"]["generic"]["nvr"]["value"] == 0.0228 and data["n_generations"] == 4


def test_cache_show_and_clear(tmp_path, capsys):
    from core.runs.cache import ResultCache
    cache = ResultCache(tmp_path / "c")
    cache.put_summary("k", {"a": 1})
    assert main(["cache", "show", "--cache-dir", str(tmp_path / "c")]) == 0
    assert "summaries           1 entries" in capsys.readouterr().out
    assert main(["cache", "clear", "--cache-dir", str(tmp_path / "c")]) == 0
    assert "cleared 1 entries" in capsys.readouterr().out
    assert cache.get_summary("k") is None


def test_progress_bar_lines():
    import io
    stream = io.StringIO()
    bar = TextProgress(stream, width=4, min_interval_s=0)
    bar(ProgressEvent("generate", 1, 4, "generations"))
    bar(ProgressEvent("generate", 4, 4, "generations"))
    bar(ProgressEvent("trace", 2, 0, "completions"))
    assert stream.getvalue().splitlines() == ["generate     [#...]  1/4 generations",
                                              "generate     [####]  4/4 generations",
                                              "trace        [....]  2/? completions"]


def test_end_to_end_index_build_run_report(tmp_path):
    from tests.fixtures_runs import CORPUS, make_tiny_experiment

    toml = make_tiny_experiment(tmp_path, build_index=False)
    corpus = tmp_path / "corpus.jsonl"
    corpus.write_text("".join(json.dumps({"id": f"doc{i}", "text": t}) + "\n" for i, t in enumerate(CORPUS))
                      + "{broken json\n")
    out = _cli("index", "build", "--corpus", str(corpus), "--tokenizer", str(tmp_path / "model"),
               "--out", str(tmp_path / "index"), "--cpus", "1")
    assert out.returncode == 0, out.stderr
    # 8 documents read; by default a seeded sample (at most 20%: here 1) is held out as the chance floor
    assert "7 documents" in out.stdout and "1 held out as the chance floor" in out.stdout
    assert "skipped 1 bad row(s)" in out.stderr
    out = _cli("run", str(toml), "--cache-dir", str(tmp_path / "cache"))
    assert out.returncode == 0, out.stderr
    assert "generate     [" in out.stderr and "trace        [" in out.stderr  # the progress bar
    assert "10 generated, 0 from cache" in out.stdout
    run = load_results(tmp_path / "results" / "tiny")
    assert len(run.generations) == 11 and len(run.traces) == 11  # 10 generated + the held-out floor text
    assert run.manifest.index.num_docs == 7 and run.manifest.floor["kind"] == "holdout"
    assert "floor" in run.summary and "floor" not in run.pm
    assert (tmp_path / "results" / "tiny" / "config.toml").read_text() == toml.read_text()
    out = _cli("run", str(toml), "--cache-dir", str(tmp_path / "cache"))
    assert out.returncode == 0 and "0 generated, 10 from cache" in out.stdout
    out = _cli("report", str(tmp_path / "results" / "tiny"))
    assert out.returncode == 0 and "prefix" in out.stdout and "PM_ALS" in out.stdout


# -- hostile text, closed pipes, missing folders (issue 10, items 5 and 7) ----------------------------------
EVIL_NAME = "evil\x1b]0;pwned\x07\x1b[2J\x9b31m\r"
EVIL_SETTING = "gen\u202eeric\u200b"


def _hostile_results(folder, identity="m"):
    gens = [Generation(GenKey(s, "p0", 0), Prompt(s, "p0", "t"), "c") for s in ("prefix", EVIL_SETTING)]
    run = RunResults(None, Manifest(run_name=EVIL_NAME, model=ModelInfo(identity=identity)),
                     tuple(gens), tuple(TraceResult(g.key, g.completion, 1) for g in gens),
                     {s: {"n_generations": 1, "metrics": {"als": 1.0}, "intervals": {}} for s in ("prefix", EVIL_SETTING)},
                     {EVIL_SETTING: {"als": {"value": 0.5, "lo": 0.1, "hi": 0.9, "method": "p"}}})
    return save_results(run, folder)


def _no_raw_controls(text: str) -> bool:
    return not any(c in text for c in "\x1b\x07\x9b\r\u202e\u200b")


def test_report_shows_control_and_bidi_characters_visibly(tmp_path):
    folder = _hostile_results(tmp_path / "r")
    out = _cli("report", str(folder), timeout=60)
    assert out.returncode == 0, out.stderr
    assert _no_raw_controls(out.stdout)
    assert "evil\\x1b]0;pwned\\x07\\x1b[2J\\x9b31m\\x0d" in out.stdout and "gen[U+202E]eric[U+200B]" in out.stdout
    out = _cli("report", str(folder), "--json", timeout=60)
    assert out.returncode == 0 and _no_raw_controls(out.stdout)
    data = json.loads(out.stdout)  # escaped in the JSON text, exact once parsed
    assert data["run_name"] == EVIL_NAME and set(data["summary"]) == {"prefix", EVIL_SETTING}


def test_error_messages_and_paths_are_terminal_safe(tmp_path):
    out = _cli("report", str(tmp_path / "x\x1b[2Jy\u202e"), timeout=60)
    assert out.returncode == 2 and _no_raw_controls(out.stderr) and "x\\x1b[2Jy[U+202E]" in out.stderr
    assert out.stderr.count("\n") == 1


@pytest.mark.parametrize("extra", [["--json"], []])
def test_report_into_a_closed_pipe_ends_quietly(tmp_path, extra):
    folder = _hostile_results(tmp_path / "r", identity="m" * 400_000)  # far more than a pipe buffer holds
    proc = subprocess.Popen([sys.executable, "-m", "core", "report", str(folder), *extra], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stdout.read(10)  # like `| head -c 10`: read a little, then close the pipe
    proc.stdout.close()
    err = proc.stderr.read().decode()
    assert proc.wait(60) == 0, err
    assert err == ""  # no traceback, no "check free disk space"


def test_report_of_a_summary_of_the_wrong_shape_is_one_clear_error(tmp_path):
    folder = _tiny_results(tmp_path / "r")
    (folder / "summary.json").write_text(json.dumps({"prefix": [1, 2, 3], "generic": "x"}))
    manifest = json.loads((folder / "manifest.json").read_text())  # as if a run had written it (no tamper check)
    manifest["scores_sha256"]["summary.json"] = hashlib.sha256((folder / "summary.json").read_bytes()).hexdigest()
    (folder / "manifest.json").write_text(json.dumps(manifest))
    for extra in ([], ["--json"]):
        out = _cli("report", str(folder), *extra, timeout=60)
        assert out.returncode == 2 and "Traceback" not in out.stderr, out.stderr
        assert out.stderr.count("\n") == 1 and "wrong shape" in out.stderr


def test_cache_show_never_creates_a_missing_cache_folder(tmp_path, capsys):
    missing = tmp_path / "nonexistent" / "deep"
    for action in ("show", "clear"):
        assert main(["cache", action, "--cache-dir", str(missing)]) == 2
        err = capsys.readouterr().err
        assert err.startswith(f"error: --cache-dir {missing}: no such folder") and err.count("\n") == 1
    assert not (tmp_path / "nonexistent").exists()
    # the default cache not made yet: an empty report, nothing created
    out = _cli("cache", "show", env_extra={"PROPME_CACHE_DIR": str(missing)}, timeout=60)
    assert out.returncode == 0 and "empty (nothing cached yet)" in out.stdout
    assert not (tmp_path / "nonexistent").exists()


@pytest.mark.parametrize("name", ["a\\u0000b", "tab\\there", "esc\\u001b[2J", "../escaped", "", "."])
def test_bad_run_names_are_refused_before_any_work(tmp_path, name):
    toml = tmp_path / "exp.toml"
    toml.write_text(f'name = "{name}"\nindex_dirs = "idx"\n[model]\nname_or_path = "org/m"\n'
                    '[[settings]]\nname = "prefix"\n', encoding="utf-8")
    out = _cli("run", str(toml), "--cache-dir", str(tmp_path / "cache"), "--output-dir", str(tmp_path / "out"),
               timeout=60)
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert out.stderr.count("\n") == 1 and "name" in out.stderr and _no_raw_controls(out.stderr)
    assert not (tmp_path / "out").exists() and not (tmp_path / "cache").exists()
