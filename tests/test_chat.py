"""Prompt formats (raw | chat | auto) and the empty-completion flag.

The chat rendering is checked against the tokenizer's own ``apply_chat_template`` (here a ChatML
template set on the tiny test tokenizer; tests/test_real_model.py checks SmolLM2's real one).
"""
from __future__ import annotations

import dataclasses
import json

import pytest

from core.config import MetricsConfig, SettingConfig
from core.errors import ConfigError, PromptSetError
from core.prompts.build import build_prompts
from core.prompts.chat import chat_messages, render_chat_ids, resolve_format
from core.records import Generation, GenKey, Prompt, TraceResult
from core.runs.manifest import Manifest
from core.runs.results import RunResults
from tests.fixtures_model import make_tiny_tokenizer

CHATML = ("{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
          "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")


@pytest.fixture(scope="module")
def chat_tok():
    tok = make_tiny_tokenizer()
    tok.add_special_tokens({"additional_special_tokens": ["<|im_start|>", "<|im_end|>"]})
    tok.chat_template = CHATML
    return tok


def _template_ids(tok, messages) -> list[int]:
    out = tok.apply_chat_template(messages, tokenize=True, add_generation_prompt=True)
    return list(out["input_ids"] if hasattr(out, "keys") else out)


@pytest.mark.parametrize("system", [None, "You are terse.", ""])
@pytest.mark.parametrize("text", ["What is a licence?", "", "line one\nline <two> {{ not jinja }}"])
def test_rendered_prompt_equals_apply_chat_template(chat_tok, text, system):
    ids = render_chat_ids(chat_tok, text, system)
    assert list(ids) == _template_ids(chat_tok, chat_messages(text, system))
    rendered = chat_tok.decode(list(ids))
    assert rendered.endswith("<|im_start|>assistant\n") and text in rendered
    assert ("<|im_start|>system" in rendered) == (system is not None)


def test_auto_is_chat_for_prompt_files_only_and_raw_without_a_template(chat_tok):
    plain = make_tiny_tokenizer()
    for name, want in (("generic", "chat"), ("my-questions", "chat"), ("prefix", "raw"), ("unconditional", "raw"),
                       ("minimal-cue", "raw")):
        assert resolve_format(SettingConfig(name), chat_tok) == want
        assert resolve_format(SettingConfig(name), plain) == "raw"
        assert resolve_format(SettingConfig(name, prompt_format="raw"), chat_tok) == "raw"
        assert resolve_format(SettingConfig(name, prompt_format="chat"), chat_tok) == "chat"
    with pytest.raises(PromptSetError, match="no chat template"):
        resolve_format(SettingConfig("generic", prompt_format="chat"), plain)
    with pytest.raises(ConfigError, match="prompt_format must be one of"):
        SettingConfig("generic", prompt_format="chatml")


def test_file_prompts_carry_the_template_and_keep_the_users_text(chat_tok, tmp_path):
    questions = ["How do I bake bread?", "Name three rivers."]
    path = tmp_path / "q.jsonl"
    path.write_text("".join(json.dumps({"text": q}) + "\n" for q in questions))
    chat = build_prompts(SettingConfig("generic", prompts_path=str(path), system_prompt="Be kind."), chat_tok)
    raw = build_prompts(SettingConfig("generic", prompts_path=str(path), prompt_format="raw"), chat_tok)
    assert [p.text for p in chat] == [p.text for p in raw] == questions
    assert all(p.token_ids is None for p in raw)
    for p in chat:
        assert list(p.token_ids) == _template_ids(chat_tok, [{"role": "system", "content": "Be kind."},
                                                             {"role": "user", "content": p.text}])
    cue = build_prompts(SettingConfig("minimal-cue", cue_words=("The",), prompt_format="chat"), chat_tok)
    assert list(cue[0].token_ids) == _template_ids(chat_tok, [{"role": "user", "content": "The"}])
    unc = build_prompts(SettingConfig("unconditional"), chat_tok)  # auto: raw, the start token alone
    assert unc[0].token_ids == (chat_tok.bos_token_id,)


def test_experiment_records_the_resolved_format(tmp_path):
    from core.config.file import load_experiment
    from core.runs.experiment import run_experiment
    from tests.fixtures_runs import make_tiny_experiment

    toml = make_tiny_experiment(tmp_path, extra='\n[[settings]]\nname = "unconditional"\nprompt_format = "raw"\n')
    run = run_experiment(load_experiment(toml))
    assert dict(run.manifest.prompt_formats) == {"prefix": "raw", "generic": "raw", "unconditional": "raw"}
    assert [s.prompt_format for s in run.manifest.settings] == ["auto", "auto", "raw"]


def _run_with_completions(completions: dict[str, list[str]]) -> RunResults:
    gens, traces = [], []
    for setting, texts in completions.items():
        for i, text in enumerate(texts):
            key = GenKey(setting, f"{setting}-{i}")
            gens.append(Generation(key, Prompt(setting, key.prompt_id, "a question"), text, (), "eos"))
            traces.append(TraceResult(key, text, len(text.split())))
    manifest = Manifest(run_name="empties", prompt_formats={"generic": "raw", "specific": "chat"})
    return RunResults(None, manifest, tuple(gens), tuple(traces))


def test_empty_completions_are_counted_per_setting_and_flagged():
    from core.reports.text import format_report, report_dict
    from core.scoring.summary import summarize

    completions = {"generic": ["", "  \n", "An answer.", "", "\t"], "specific": ["Yes.", "No."]}
    run = _run_with_completions(completions)
    summary, _ = summarize(run, MetricsConfig(bootstrap_samples=50))
    brute = {s: sum(not t.strip() for t in texts) for s, texts in completions.items()}
    assert {s: summary[s]["counts"]["empty_completions"] for s in completions} == brute == {"generic": 4,
                                                                                          "specific": 0}
    run = dataclasses.replace(run, summary=summary)
    text = format_report(run)
    assert "generic: 4 of 5 completions are EMPTY" in text and 'prompt_format = "chat"' in text
    assert "specific:" not in text.split("Warnings")[1]
    assert report_dict(run)["warnings"] == [ln[4:] for ln in text.splitlines() if ln.startswith("  ! ")]
