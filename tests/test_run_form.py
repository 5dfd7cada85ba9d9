"""The Run form (pages/run.py, app/setting_form.py): per-setting choices, checks as typed, the exported
experiment file read back by the project's own reader, the form kept across a reload, truthful stages."""
from __future__ import annotations

from pathlib import Path

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from streamlit.testing.v1 import AppTest

from app import form_store, paths, runner, setting_form
from core.config import (
    AdaptiveParam,
    DecodingConfig,
    ExperimentConfig,
    MetricsConfig,
    ModelConfig,
    NVBlocksConfig,
    SettingConfig,
    TraceConfig,
)
from core.config import file as config_file
from core.index.corpus_index import CorpusIndex
from core.progress import ProgressEvent
from core.runs import experiment_file, form_checks
from core.runs.demo import demo_index_dir

ROOT = Path(__file__).resolve().parents[1]


# -- the experiment file -------------------------------------------------------------------------------
def test_every_non_default_choice_survives_the_experiment_file(tmp_path):
    model = tmp_path / "model"
    model.mkdir()
    prompts = tmp_path / "mine.jsonl"
    prompts.write_text('{"text": "hello"}\n')
    cfg = ExperimentConfig(
        name="audit ü-1", model=ModelConfig(str(model), dtype="float32", device="cpu"),
        index_dirs=(str(tmp_path / "idx-a"), str(tmp_path / "idx-b")),
        settings=(SettingConfig("prefix", 17, prefix_tokens=32, min_doc_tokens=64, prompt_format="raw"),
                  SettingConfig("my set", 5, prompts_path=str(prompts), prompt_format="chat",
                                system_prompt="You are \"helpful\", ü", seed=7),
                  SettingConfig("floor-texts", 3, prompts_path=str(prompts), kind="floor"),
                  SettingConfig("minimal-cue", 2, cue_words=("The", "A"))),
        decoding=DecodingConfig(temperature=0.7, top_p=0.95, num_samples=3, max_new_tokens=64, seed=3),
        trace=TraceConfig(mode="text", rarity_fraction=0.1, docs_per_span=4),
        metrics=MetricsConfig(span_threshold=20, nv_blocks=NVBlocksConfig(l1=AdaptiveParam(0.2, 3, 30))),
        output_dir=str(tmp_path / "out"))
    path = tmp_path / "exported.toml"
    path.write_text(experiment_file.experiment_toml(cfg), encoding="utf-8")
    assert config_file.load_experiment(path) == cfg


def test_a_default_config_writes_only_the_required_keys(tmp_path):
    (tmp_path / "m").mkdir()
    cfg = ExperimentConfig("r", ModelConfig(str(tmp_path / "m")), (str(tmp_path / "i"),), (SettingConfig("prefix"),),
                           output_dir=str(tmp_path / "out"))
    text = experiment_file.experiment_toml(cfg)
    assert "[decoding]" not in text and "[trace]" not in text and "n_prompts" not in text
    (tmp_path / "x.toml").write_text(text)
    assert config_file.load_experiment(tmp_path / "x.toml") == cfg


# -- checks as typed --------------------------------------------------------------------------------------
@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(0, 300), max_size=60), st.integers(0, 300), st.integers(1, 80))
def test_prefix_capacity_counts_long_enough_documents(lengths, m, n):
    brute = sum(1 for x in lengths if x >= m)
    assert form_checks.prefix_capacity(np.array(lengths, dtype=np.int64), m) == brute
    problem = form_checks.prefix_count_problem(n, m, brute)
    assert (problem is None) == (n <= brute)
    if problem:
        assert problem.startswith(f"the corpus has {brute} document") and f"at most {brute} prefix prompts" in problem


def _run_page(monkeypatch, tmp_path, query: dict | None = None) -> AppTest:
    monkeypatch.delenv(paths.DATA_ROOT_ENV, raising=False)
    monkeypatch.setenv("PROPME_CACHE_DIR", str(tmp_path / "cache"))
    at = AppTest.from_file(str(ROOT / "app" / "streamlit_app.py"), default_timeout=60)
    at.run()
    at.switch_page("../pages/run.py")
    for k, v in (query or {}).items():
        at.query_params[k] = v
    at.run()
    assert not at.exception, at.exception
    return at


def _errors(at) -> list[str]:
    from app.render import shown

    return [shown(e.value) for e in at.error]


def test_prefix_count_is_checked_against_the_demo_corpus_as_typed(monkeypatch, tmp_path):
    index = CorpusIndex.open(str(demo_index_dir()))
    m = 100
    # independent count: every document's tokens read one by one
    capacity = sum(len(index.doc_tokens(i)) >= m for i in range(index.doc_cnt if hasattr(index, "doc_cnt")
                                                                else len(index.doc_lengths())))
    at = _run_page(monkeypatch, tmp_path)
    at.multiselect(key="run_settings").set_value(["prefix"]).run()
    at.number_input(key=setting_form.key("prefix", "min_doc_tokens")).set_value(m).run()
    at.number_input(key=setting_form.key("prefix", "n_prompts")).set_value(capacity + 1).run()
    want = f"the corpus has {capacity} documents of at least {m} tokens: at most {capacity} prefix prompts"
    assert any(e.startswith(want) for e in _errors(at)), _errors(at)
    assert at.button(key="run_start").disabled
    at.number_input(key=setting_form.key("prefix", "n_prompts")).set_value(capacity).run()
    assert not _errors(at) and not at.button(key="run_start").disabled


def test_missing_paths_are_named_as_typed(monkeypatch, tmp_path):
    at = _run_page(monkeypatch, tmp_path)
    at.text_input(key=setting_form.key("generic", "prompts_path")).input(str(tmp_path / "nope.jsonl")).run()
    at.radio(key="run_model_kind").set_value("local folder").run()
    at.text_input(key="run_model_path").input(str(tmp_path / "no-model")).run()
    errors = _errors(at)
    assert f"prompt file for generic: {str(tmp_path / 'nope.jsonl')!r} does not exist" in errors
    assert f"model folder: {str(tmp_path / 'no-model')!r} does not exist" in errors
    assert at.button(key="run_start").disabled


def test_per_setting_choices_and_a_custom_setting_reach_the_run_and_the_exported_file(monkeypatch, tmp_path):
    prompts = tmp_path / "mine.jsonl"
    prompts.write_text('{"text": "Tell me about licences."}\n{"text": "What is a warranty?"}\n')
    exported, planned = [], []
    real_toml = experiment_file.experiment_toml
    monkeypatch.setattr(experiment_file, "experiment_toml", lambda c: exported.append(c) or real_toml(c))

    def fake_start(cfg, work, first):  # the config the Run button would run, without running it
        planned.append(work.args[0])
        raise RuntimeError("stop here")
    monkeypatch.setattr(runner, "start_job", fake_start)
    at = _run_page(monkeypatch, tmp_path)
    at.text_input(key="run_custom_name").input("my prompts").run()
    at.button(key="run_custom_add").click().run()
    assert "my prompts" in at.multiselect(key="run_settings").value
    at.text_input(key=setting_form.key("my prompts", "prompts_path")).input(str(prompts)).run()
    at.number_input(key=setting_form.key("my prompts", "n_prompts")).set_value(2).run()
    at.selectbox(key=setting_form.key("my prompts", "prompt_format")).set_value("chat").run()
    at.text_input(key=setting_form.key("my prompts", "system_prompt")).input("Be brief.").run()
    at.number_input(key=setting_form.key("prefix", "n_prompts")).set_value(7).run()
    at.number_input(key=setting_form.key("prefix", "prefix_tokens")).set_value(20).run()
    at.number_input(key=setting_form.key("generic", "n_prompts")).set_value(3).run()
    at.text_input(key="run_out").input(str(tmp_path / "out")).run()
    assert not _errors(at), _errors(at)
    cfg = exported[-1]
    by = {s.name: s for s in cfg.settings}
    assert (by["prefix"].n_prompts, by["prefix"].prefix_tokens, by["generic"].n_prompts) == (7, 20, 3)
    mine = by["my prompts"]
    assert (mine.n_prompts, mine.prompt_format, mine.system_prompt, mine.prompts_path) == (2, "chat", "Be brief.",
                                                                                          str(prompts))
    path = tmp_path / "exported.toml"
    path.write_text(real_toml(cfg), encoding="utf-8")
    assert config_file.load_experiment(path) == cfg  # the project's reader gives back the form's config
    at.button(key="run_start").click().run()
    assert planned and planned[-1].settings == cfg.settings and planned[-1].decoding == cfg.decoding


def test_a_reload_finds_the_form_as_it_was(monkeypatch, tmp_path):
    at = _run_page(monkeypatch, tmp_path)
    at.number_input(key=setting_form.key("prefix", "n_prompts")).set_value(9).run()
    at.text_input(key="run_name").input("reload-me").run()
    token = at.query_params["form"]
    token = token[0] if isinstance(token, list) else token
    assert form_store.is_token(token)
    fresh = _run_page(monkeypatch, tmp_path, {"form": token})  # a new session: what a browser reload makes
    assert fresh.number_input(key=setting_form.key("prefix", "n_prompts")).value == 9
    assert fresh.text_input(key="run_name").value == "reload-me"
    other = _run_page(monkeypatch, tmp_path)  # another URL: the defaults
    assert other.text_input(key="run_name").value == "app-run"


def test_stage_lines_say_done_for_finished_stages_and_time_for_model_loading():
    job = form_store.new_token()
    stages = (ProgressEvent("open", 1, 1, "indexes"), ProgressEvent("load-model", 0, 1, "models", message="/m"))
    lines = runner.stage_lines(job, stages, active=True)
    assert lines[0] == (1.0, "loading tokenizer and index: done")
    assert lines[1][0] == 0.0 and lines[1][1].startswith("loading model: 0 s so far, reading the weights")
    gen = ProgressEvent("generate", 4, 8, "generations")
    lines = runner.stage_lines(job, (*stages, gen), active=True)
    assert lines[1] == (1.0, "loading model: done") and lines[2] == (0.5, runner.describe(gen))
    done = runner.stage_lines(job, (*stages, ProgressEvent("score", 3, 3, "settings")), active=False)
    assert [t for _, t in done][-1] == "scoring: done (3 settings)" and all(f == 1.0 for f, _ in done)
