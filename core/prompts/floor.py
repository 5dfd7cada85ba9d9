"""The chance floor (SPEC 6): texts known not to be in the corpus, standing in for completions.

A setting of ``kind = "floor"`` reads a JSONL prompt set (``text``, optional ``id`` and ``domain``)
and its texts become the setting's completions as they are: nothing is generated. Traced and scored
like any setting, they show what reaches the corpus by chance (common phrases of a few tokens), the
level a setting has to exceed before its spans say anything about memorization.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Iterable, Sequence
from pathlib import Path

from core.config import ExperimentConfig, SettingConfig
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


def floor_setting_from_texts(texts: Sequence[str], folder: str | Path, name: str = FLOOR_KIND) -> SettingConfig:
    """A setting of kind floor holding ``texts`` (given by the user as known not to be in the corpus, e.g.
    written after the training cut-off): written as JSONL under ``folder`` with a name from their content
    (the same texts give the same file), one text per row. Blank texts are dropped; none left: PromptSetError."""
    kept = [t.strip() for t in texts if t and t.strip()]
    if not kept:
        raise PromptSetError("floor texts: give at least one non-empty text known not to be in the corpus")
    body = "".join(json.dumps({"id": f"floor-{i}", "text": t}, ensure_ascii=False) + "\n" for i, t in enumerate(kept))
    path = Path(folder) / f"floor-{hashlib.sha256(body.encode('utf-8')).hexdigest()[:16]}.jsonl"
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.exists():
        path.write_text(body, encoding="utf-8")
    return SettingConfig(name, n_prompts=len(kept), prompts_path=str(path), kind=FLOOR_KIND)


def with_floor(cfg: ExperimentConfig, fallback: SettingConfig | None) -> ExperimentConfig:
    """``cfg`` with ``fallback`` (a floor setting) added when it has no floor of its own and its index holds
    no documents held out as one (:mod:`core.index.holdout`): every run from the Run page gets a floor."""
    from core.index.holdout import holdout_of

    if fallback is None or floor_names(cfg.settings, [s.name for s in cfg.settings]):
        return cfg
    if cfg.floor.holdout and any(holdout_of(d) is not None for d in cfg.index_dirs):
        return cfg
    return dataclasses.replace(cfg, settings=(*cfg.settings, fallback))
