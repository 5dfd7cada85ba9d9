"""app/run_worker.py and the Run page: background runs, status at once, Cancel with what was kept, form defaults."""
from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
import tomllib
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from app import paths, render, run_worker, runner, setting_form
from core.errors import ConfigError
from core.progress import ProgressEvent
from core.runs.demo import demo_experiment_path
from core.runs.results import load_results
from tests.fixtures_app import shown_folder

ROOT = Path(__file__).resolve().parents[1]


def _fake_work(gate: threading.Semaphore, events: list[ProgressEvent], fail: Exception | None = None):
    """Work that sends ``events``, each once the test releases ``gate`` once more."""
    def work(progress):
        for e in events:
            assert gate.acquire(timeout=10)
            progress(e)
        if fail is not None:
            raise fail
        return run_worker.JobResult("/tmp/out/run", 7, ("a warning",))
    return work


def _until(job: str, stage: str, done: int) -> None:
    deadline = time.monotonic() + 10
    while not any(e.stage == stage and e.done == done for e in run_worker.job_status(job).stages):
        assert time.monotonic() < deadline
        time.sleep(0.01)


def test_a_job_shows_its_first_event_at_once_and_its_result_when_done():
    gate = threading.Semaphore(0)
    job = run_worker.start(_fake_work(gate, [ProgressEvent("generate", 2, 8, "generations")]),
                           ProgressEvent("starting", 0, 0, "steps", message="loading model"))
    s = run_worker.job_status(job)
    assert s.active and [e.stage for e in s.stages] == ["starting"]  # before the work sent anything
    run_worker.shown(job)  # what the page says once it drew the status: the work starts
    gate.release()
    s = run_worker.wait(job, 10)
    assert s.state == run_worker.DONE and s.message == "Done: 7 completions in /tmp/out/run."
    assert [e.stage for e in s.stages] == ["starting", "generate"] and s.result.warnings == ("a warning",)
    assert run_worker.job_status("no-such-job") is None and run_worker.job_status(None) is None


def test_cancel_stops_at_the_next_event_and_says_what_the_cache_kept():
    gate = threading.Semaphore(0)
    events = [ProgressEvent("cache", 20, 300, "generations"), ProgressEvent("generate", 0, 280, "generations"),
              ProgressEvent("generate", 32, 280, "generations"), ProgressEvent("trace", 0, 300, "completions")]
    job = run_worker.start(_fake_work(gate, events), ProgressEvent("starting", 0, 0, "steps"))
    run_worker.shown(job)
    gate.release(3)
    _until(job, "generate", 32)
    assert run_worker.cancel(job)
    assert run_worker.job_status(job).state == run_worker.CANCELLING
    gate.release()
    s = run_worker.wait(job, 10)
    assert s.state == run_worker.CANCELLED
    # 20 found in the cache + 32 generated and persisted before the cancel; no trace chunk finished
    assert "cancelled during trace at 0/300 completions; kept in the result cache: 52 of 300 completions, traces " \
           "of 0." in s.message
    assert not run_worker.cancel(job)  # no longer running


def test_a_failing_run_is_reported_with_its_message():
    job = run_worker.start(_fake_work(threading.Semaphore(0), [], ConfigError("bad things")),
                           ProgressEvent("starting", 0, 0, "steps"))
    s = run_worker.wait(job, 10)  # starts on its own after SHOW_WAIT_S when no page draws it
    assert s.state == run_worker.FAILED and s.message == "bad things"


def test_describe_names_the_stage_its_eta_and_what_follows():
    e = ProgressEvent("trace", 10, 40, "completions", 5.0, 6.0)
    assert runner.describe(e) == "tracing: 10/40 completions, about 6 s left for this stage at the measured rate, " \
                                 "scoring follows"
    assert runner.describe(ProgressEvent("starting", 0, 0, "steps", message="loading model")) == "starting (loading model)"


# -- the Run page -----------------------------------------------------------------------------------------
def _run_page(monkeypatch, tmp_path) -> AppTest:
    monkeypatch.delenv(paths.DATA_ROOT_ENV, raising=False)
    monkeypatch.setenv("PROPME_CACHE_DIR", str(tmp_path / "cache"))
    at = AppTest.from_file(str(ROOT / "app" / "streamlit_app.py"), default_timeout=60).run()
    at.switch_page("../pages/run.py").run()
    assert not at.exception, at.exception
    return at


def _form(at: AppTest) -> dict:
    return {"settings": at.multiselect(key="run_settings").value, "n_prompts": [at.number_input(key=setting_form.key(n, "n_prompts")).value
                                                                       for n in at.multiselect(key="run_settings").value],
            "prompt_seed": at.number_input(key="run_prompt_seed").value,
            "temperature": at.number_input(key="run_temp").value, "top_p": at.number_input(key="run_top_p").value,
            "num_samples": at.number_input(key="run_samples").value,
            "max_new_tokens": at.number_input(key="run_max_new").value, "seed": at.number_input(key="run_seed").value,
            "mode": at.selectbox(key="run_trace_mode").value, "rarity_fraction": at.slider(key="run_trace_rarity").value,
            "docs_per_span": at.number_input(key="run_trace_docs").value}


def _expected(settings: list[dict], decoding: dict, trace: dict) -> dict:
    return {"settings": [s["name"] for s in settings], "n_prompts": [s.get("n_prompts", 100) for s in settings],
            "prompt_seed": settings[0]["seed"], **{k: decoding[k] for k in (
                "temperature", "top_p", "num_samples", "max_new_tokens", "seed")},
            **{k: trace[k] for k in ("mode", "rarity_fraction", "docs_per_span")}}


def test_run_page_defaults_equal_the_demo_experiment_then_the_cli_example(monkeypatch, tmp_path):
    at = _run_page(monkeypatch, tmp_path)
    demo = tomllib.loads(demo_experiment_path().read_text())  # the file itself, not our reader of it
    cli_defaults = lambda t: {"temperature": 0.0, "top_p": 1.0, "num_samples": 1, "max_new_tokens": 256, "seed": 42,
                                 "mode": "mixed", "rarity_fraction": 0.05, "docs_per_span": 10, **t}
    assert _form(at) == _expected(demo["settings"], cli_defaults(demo["decoding"]), cli_defaults(demo["trace"]))
    assert at.text_input(key=setting_form.key("generic", "prompts_path")).value == str(demo_experiment_path().parent / "prompts/generic.jsonl")
    floors = [s["name"] for s in demo["settings"] if s.get("kind") == "floor"]
    assert floors and floors[0] in at.multiselect(key="run_settings").options  # the demo's chance floor is offered
    assert at.text_input(key=setting_form.key(floors[0], "prompts_path")).value == str(demo_experiment_path().parent / "prompts/floor.jsonl")
    # another corpus: the CLI's defaults, as `python -m core config --example` prints them
    example = subprocess.run([sys.executable, "-m", "core", "config", "--example"], cwd=ROOT, capture_output=True,
                             text=True, check=True).stdout
    cli = tomllib.loads(example)
    at.radio(key="run_corpus_kind").set_value("existing index folder").run()
    assert _form(at) == _expected(cli["settings"], cli["decoding"], cli["trace"])


def test_run_page_keeps_its_values_across_pages_and_a_changed_value_across_defaults(monkeypatch, tmp_path):
    at = _run_page(monkeypatch, tmp_path)
    at.number_input(key="run_max_new").set_value(12).run()
    at.selectbox(key="run_trace_mode").set_value("text").run()
    at.text_input(key="run_name").input("kept-name").run()
    at.radio(key="run_corpus_kind").set_value("corpus file path").run()  # CLI defaults, but not over the user's values
    assert at.number_input(key="run_max_new").value == 12 and at.selectbox(key="run_trace_mode").value == "text"
    assert at.multiselect(key="run_settings").value == ["prefix"]
    at.switch_page("../pages/compare.py").run()
    at.switch_page("../pages/run.py").run()
    assert not at.exception, at.exception  # restored without a default/session-state clash
    assert (at.number_input(key="run_max_new").value, at.selectbox(key="run_trace_mode").value,
            at.text_input(key="run_name").value, at.radio(key="run_corpus_kind").value) == (
        12, "text", "kept-name", "corpus file path")


def _tiny_inputs(tmp_path: Path) -> tuple[Path, Path, Path]:
    from tests.fixtures_model import make_tiny_model_dir

    model = make_tiny_model_dir(tmp_path / "model")
    words = ["the", "river", "carried", "stones", "past", "the", "mill", "while", "the", "old", "miller", "counted"]
    corpus = tmp_path / "corpus.jsonl"
    corpus.write_text("".join(json.dumps({"id": f"d{i}", "text": " ".join(words[i:] + words[:i]) * 6}) + "\n"
                              for i in range(8)), encoding="utf-8")
    prompts = tmp_path / "generic.jsonl"
    prompts.write_text("".join(json.dumps({"text": t}) + "\n" for t in ("Tell me a story.", "What is a mill?")),
                       encoding="utf-8")
    return model, corpus, prompts


@pytest.mark.slow  # a real run in a worker process, driven through the app
def test_run_page_shows_status_at_once_runs_in_the_background_and_opens_overview(monkeypatch, tmp_path):
    model, corpus, prompts = _tiny_inputs(tmp_path)
    at = _run_page(monkeypatch, tmp_path)
    at.radio(key="run_model_kind").set_value("local folder").run()
    at.text_input(key="run_model_path").input(str(model)).run()
    at.radio(key="run_corpus_kind").set_value("corpus file path").run()
    at.text_input(key="run_corpus_path").input(str(corpus)).run()
    at.multiselect(key="run_settings").set_value(["prefix", "generic"]).run()
    at.text_input(key=setting_form.key("generic", "prompts_path")).input(str(prompts)).run()
    for setting in ("prefix", "generic"):
        at.number_input(key=setting_form.key(setting, "n_prompts")).set_value(2).run()
    at.number_input(key="run_max_new").set_value(8).run()
    at.text_input(key="run_out").input(str(tmp_path / "out")).run()
    at.button(key="run_start").click().run()
    assert not at.exception, at.exception
    job = at.session_state[run_worker.JOB_KEY]
    # the same script run that started the job shows its status (the worker thread may be anywhere by now)
    assert at.get("progress") and any("Running" in m.value for m in at.main.markdown)
    assert at.button(key="run_start").disabled
    done = run_worker.wait(job, 300)
    assert done.state == run_worker.DONE, done.message
    at.run()
    run = load_results(tmp_path / "out" / "app-run")
    counts = {s: len(run.by_setting(s)[0]) for s in run.settings()}
    # the two settings asked for, 2 prompts each; the chance floor from held-out documents, when the index has one
    assert {s: n for s, n in counts.items() if s != "floor"} == {"prefix": 2, "generic": 2}, counts
    assert len(run.traces) == len(run.generations) == sum(counts.values())
    assert at.success and f"Done: {len(run.generations)} completions in" in render.shown(at.success[0].value)
    at.button(key="run_open_new").click().run()
    assert not at.exception, at.exception
    assert shown_folder(at) == str(tmp_path / "out" / "app-run")
    assert at.title[0].value != "Run an experiment"  # switched to the Overview page


def test_cancel_asks_first_then_stops_and_says_what_was_kept(monkeypatch, tmp_path):
    gate = threading.Semaphore(0)
    events = [ProgressEvent("cache", 0, 10, "generations"), ProgressEvent("generate", 4, 10, "generations"),
              ProgressEvent("generate", 8, 10, "generations")]
    at = _run_page(monkeypatch, tmp_path)
    job = run_worker.start(_fake_work(gate, events), ProgressEvent("starting", 0, 0, "steps"))
    gate.release(2)
    _until(job, "generate", 4)
    at.session_state[run_worker.JOB_KEY] = job
    at.run()
    at.button(key="run_cancel").click().run()
    assert any("Stop this run?" in w.value for w in at.warning)
    at.button(key="run_cancel_no").click().run()
    assert run_worker.job_status(at.session_state[run_worker.JOB_KEY]).state == run_worker.RUNNING
    at.button(key="run_cancel").click().run()
    at.button(key="run_cancel_yes").click().run()
    gate.release()
    s = run_worker.wait(at.session_state[run_worker.JOB_KEY], 10)
    assert s.state == run_worker.CANCELLED
    at.run()
    shown = [render.shown(w.value) for w in at.warning]  # md_literal-escaped on the page
    # the event that met the cancel reports a batch already persisted: 8 kept
    assert any("kept in the result cache: 8 of 10 completions, traces of 0." in w for w in shown), shown


def test_a_reloaded_run_page_finds_its_job_from_the_url_and_ignores_unknown_ids(monkeypatch, tmp_path):
    gate = threading.Semaphore(1)
    job = run_worker.start(_fake_work(gate, [ProgressEvent("generate", 8, 8, "generations")]),
                           ProgressEvent("starting", 0, 0, "steps"))
    run_worker.shown(job)
    assert run_worker.wait(job, 10).state == run_worker.DONE
    assert run_worker.is_job_id(job) and not run_worker.is_job_id("../etc") and not run_worker.is_job_id(job.upper())
    for named, shown in ((job, True), ("0" * 32, False), ("<b>x</b>", False)):
        at = _run_page(monkeypatch, tmp_path)  # a new session (as after a reload): no job in its state
        at.query_params["job"] = named
        at.run()
        assert not at.exception, at.exception
        done = [s.value for s in at.success if "Done: 7 completions" in render.shown(s.value)]
        assert bool(done) == shown, (named, [s.value for s in at.success])
        assert (at.session_state[run_worker.JOB_KEY] == job) if shown else run_worker.JOB_KEY not in at.session_state
