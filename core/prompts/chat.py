"""Prompt formats: a prompt sent as raw text, or wrapped in the tokenizer's chat template.

An instruction-tuned model given an everyday question as raw text often answers nothing at all (it
waits for its own turn markers), which would be scored as "no leakage". ``SettingConfig.prompt_format``:

* ``raw``: the prompt's tokens as they are (the paper's setting, and the prefix attack);
* ``chat``: the tokenizer's chat template with the prompt as the user turn, an optional system turn
  (``SettingConfig.system_prompt``) and the assistant turn opened
  (``apply_chat_template(..., add_generation_prompt=True)``);
* ``auto``: ``chat`` for settings whose prompts come from a file (generic, specific, your own) when the
  tokenizer has a chat template, else ``raw``. Prefix, unconditional and minimal-cue prompts are
  defined by their exact tokens and stay ``raw`` unless ``chat`` is asked for explicitly (then the user
  turn is the prefix text, the empty string, or the cue word).

The prompt's ``text`` stays what a reader wrote (the user turn); ``token_ids`` hold the rendered
template, so generation, the cache key and the manifest see exactly what the model saw.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from core.config import BUILT_IN_SETTINGS, SettingConfig
from core.errors import PromptSetError
from core.records import Prompt


def has_chat_template(tokenizer) -> bool:
    """Whether the tokenizer carries a chat template."""
    return bool(getattr(tokenizer, "chat_template", None))


def resolve_format(setting: SettingConfig, tokenizer) -> str:
    """``raw`` or ``chat`` for ``setting`` (``auto`` resolved); PromptSetError when ``chat`` is asked
    for and the tokenizer has no template."""
    if setting.prompt_format == "raw":
        return "raw"
    if setting.prompt_format == "chat":
        if not has_chat_template(tokenizer):
            raise PromptSetError(f"setting {setting.name!r}: prompt_format = \"chat\" but the model tokenizer has no "
                                 "chat template; use prompt_format = \"raw\" (or \"auto\")")
        return "chat"
    return "chat" if setting.name not in BUILT_IN_SETTINGS and has_chat_template(tokenizer) else "raw"


def chat_messages(user_text: str, system_prompt: str | None = None) -> list[dict[str, str]]:
    """The conversation sent to the template: an optional system turn, then the user turn.

    >>> chat_messages("Hi", "Be brief.")
    [{'role': 'system', 'content': 'Be brief.'}, {'role': 'user', 'content': 'Hi'}]
    """
    turns = [{"role": "system", "content": system_prompt}] if system_prompt is not None else []
    return turns + [{"role": "user", "content": user_text}]


def render_chat_ids(tokenizer, user_text: str, system_prompt: str | None = None) -> tuple[int, ...]:
    """Token ids of the chat template applied to one user turn, the assistant turn opened."""
    text = tokenizer.apply_chat_template(chat_messages(user_text, system_prompt), tokenize=False,
                                         add_generation_prompt=True)
    # the template already writes any start token: encode without adding special tokens again
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    return tuple(int(i) for i in ids)


def _user_text(prompt: Prompt) -> str:
    return "" if prompt.setting == "unconditional" else prompt.text


def apply_format(prompts: Sequence[Prompt], setting: SettingConfig, tokenizer) -> list[Prompt]:
    """``prompts`` with ``token_ids`` set to the chat rendering when ``setting`` resolves to ``chat``."""
    if resolve_format(setting, tokenizer) == "raw":
        return list(prompts)
    return [replace(p, token_ids=render_chat_ids(tokenizer, _user_text(p), setting.system_prompt)) for p in prompts]
