"""The chance floor (SPEC 6): texts known not to be in the corpus, standing in for completions.

A setting of ``kind = "floor"`` reads a JSONL prompt set (``text``, optional ``id`` and ``domain``)
and its texts become the setting's completions as they are: nothing is generated. Traced and scored
like any setting, they show what reaches the corpus by chance (common phrases of a few tokens), the
level a setting has to exceed before its spans say anything about memorization.
"""
from __future__ import annotations

import hashlib
from collections.abc import Iterable

from core.config import SettingConfig
from core.errors import PromptSetError
from core.records import Generation, GenKey, Prompt

FLOOR_KIND = "floor"  # SettingConfig.kind of a chance floor; a setting of this name counts as one too
FINISH_REASON = "floor"  # a floor "completion" was not generated


def floor_names(configs: Iterable[SettingConfig], present: Iterable[str] = ()) -> tuple[str, ...]:
    """Names of the chance-floor settings: those of kind ``floor`` among ``configs`` and a setting named
    "floor" among ``present`` (a run's settings).

    >>> floor_names([SettingConfig("prefix"), SettingConfig("held", prompts_path="h.jsonl", kind="floor")], ["floor"])
    ('held', 'floor')
    """
    found = [s.name for s in configs if s.kind == FLOOR_KIND] + [s for s in present if s == FLOOR_KIND]
    return tuple(dict.fromkeys(str(s) for s in found if s))


def floor_generations(setting: SettingConfig) -> list[Generation]:
    """One Generation per text of ``setting.prompts_path`` (the seeded subset when it holds more than
    ``n_prompts``), sample 0, with an empty prompt and the text as the completion."""
    from core.prompts.build import file_prompts

    if setting.kind != "floor":
        raise PromptSetError(f"setting {setting.name!r} is not of kind 'floor'")
    return [Generation(GenKey(setting.name, p.prompt_id, 0), Prompt(setting.name, p.prompt_id, "", domain=p.domain),
                       p.text, finish_reason=FINISH_REASON) for p in file_prompts(setting)]


def floor_key(gen: Generation) -> str:
    """Cache key of a floor text (it stands where a generation key would): hash of setting, id and text."""
    parts = ("floor", gen.key.setting, gen.key.prompt_id, gen.completion)
    return hashlib.sha256("\x00".join(parts).encode("utf-8")).hexdigest()
