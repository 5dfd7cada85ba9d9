"""Prompt sets for each setting (SPEC section 2): prefix attacks from the index, natural prompts from files.

Prompt ids are stable and readable: ``prefix-<doc_id>``, the file's ids for prompt sets,
``unconditional``, ``cue-<word>``. Every sample is seeded by ``SettingConfig.seed``.
"""
from __future__ import annotations

import logging

import numpy as np

from core.config import SettingConfig
from core.errors import IndexMismatch, PromptSetError
from core.prompts.chat import apply_format
from core.records import Prompt

log = logging.getLogger(__name__)

CONTINUATION_TOKENS = 256  # prefix prompts record up to this many true next tokens (model tokenizer)


def start_token_id(tokenizer) -> int:
    """The start-of-document token: bos, else eos; PromptSetError when the tokenizer has neither."""
    for tid in (tokenizer.bos_token_id, tokenizer.eos_token_id):
        if tid is not None:
            return int(tid)
    raise PromptSetError("the model tokenizer has neither a bos nor an eos token, so unconditional and "
                         "minimal-cue prompts have no start token; set bos_token in tokenizer_config.json")


def build_prompts(setting: SettingConfig, tokenizer, index=None, *, index_tokenizer=None) -> list[Prompt]:
    """Prompts for ``setting``: ``prefix`` from ``index``; ``unconditional``; ``minimal-cue``; else a file.

    ``tokenizer`` is the MODEL tokenizer. ``index_tokenizer`` decodes index tokens when the index was
    built with another tokenizer (default: ``tokenizer``, which must then match the index).
    ``setting.prompt_format`` decides raw text or the chat template (:mod:`core.prompts.chat`).
    """
    return apply_format(_build_raw(setting, tokenizer, index, index_tokenizer), setting, tokenizer)


def _build_raw(setting: SettingConfig, tokenizer, index, index_tokenizer) -> list[Prompt]:
    if setting.name == "prefix":
        if index is None:
            raise PromptSetError("setting 'prefix' samples training documents: it needs a corpus index")
        return prefix_prompts(setting, tokenizer, index, index_tokenizer=index_tokenizer)
    if setting.name == "unconditional":
        start = start_token_id(tokenizer)
        return [Prompt("unconditional", "unconditional", tokenizer.decode([start]), token_ids=(start,))]
    if setting.name == "minimal-cue":
        return cue_prompts(setting, tokenizer)
    return file_prompts(setting)


def _same_tokenizer(index, tokenizer) -> bool:
    try:
        index.check_tokenizer(tokenizer)
    except IndexMismatch:
        return False
    return True


def prefix_prompts(setting: SettingConfig, tokenizer, index, *, index_tokenizer=None) -> list[Prompt]:
    """First P model tokens of seeded documents with >= M tokens, with their true continuation.

    Documents with >= M index tokens are shuffled by ``numpy.random.default_rng(seed)`` and taken in
    that order; one with fewer than M MODEL tokens (after decoding and re-tokenizing) is skipped and
    the next one drawn, and so is one whose first P tokens equal an earlier prompt's (a duplicated
    document would only repeat the same attack). With the model's own tokenizer the index token ids
    are used as they are.
    """
    p, m, n = setting.prefix_tokens, setting.min_doc_tokens, setting.n_prompts
    if p < 1 or m < p:
        raise PromptSetError(f"prefix needs 1 <= prefix_tokens <= min_doc_tokens, got P={p}, M={m}")
    same = index_tokenizer is None and _same_tokenizer(index, tokenizer)
    if index_tokenizer is None and not same:
        raise PromptSetError("the index was built with another tokenizer than the model's: pass index_tokenizer "
                             "so prefix documents can be decoded and re-tokenized with the model tokenizer")
    lengths = index.doc_lengths()
    eligible = np.flatnonzero(lengths >= m)
    order = np.random.default_rng(setting.seed).permutation(eligible)
    prompts, short, repeated, used, heads = [], 0, 0, set(), set()
    for ix in order.tolist():
        if len(prompts) == n:
            break
        if same:
            ids = index.doc_tokens(ix, 0, p + CONTINUATION_TOKENS)
        else:
            text = index_tokenizer.decode(index.doc_tokens(ix))
            ids = tokenizer(text, add_special_tokens=False)["input_ids"]
            if len(ids) < m:
                short += 1
                continue
        head, cont = tuple(ids[:p]), tuple(ids[p:p + CONTINUATION_TOKENS])
        if head in heads:
            repeated += 1
            continue
        heads.add(head)
        pid = f"prefix-{index.doc_id(ix)}"
        pid = pid if pid not in used else f"{pid}@{ix}"  # duplicate corpus ids stay distinct prompts
        used.add(pid)
        prompts.append(Prompt(
            setting=setting.name, prompt_id=pid, text=tokenizer.decode(head),
            token_ids=head, source_doc_id=index.doc_id(ix), source_doc_ix=ix,
            true_continuation=tokenizer.decode(cont), true_continuation_ids=cont))
    if len(prompts) < n:
        raise PromptSetError(
            f"setting {setting.name!r} asks for {n} prefix prompts, but the corpus has {len(eligible)} of "
            f"{len(lengths)} document(s) of at least {m} tokens (min_doc_tokens): at most {len(eligible)} prefix "
            "prompts" + (f" ({short} fell under {m} tokens in the model tokenizer)" if short else "")
            + (f" ({repeated} repeated an earlier document's first P tokens)" if repeated else "")
            + "; lower the prompt count (n_prompts) or min_doc_tokens, or index a bigger corpus")
    return prompts


def cue_prompts(setting: SettingConfig, tokenizer) -> list[Prompt]:
    """Start token + one cue word per prompt (the word tokenized without special tokens)."""
    start = start_token_id(tokenizer)
    if not setting.cue_words:
        raise PromptSetError("minimal-cue needs at least one word in cue_words")
    prompts = []
    for word in setting.cue_words[:setting.n_prompts]:
        ids = tokenizer(word, add_special_tokens=False)["input_ids"]
        if not ids:
            raise PromptSetError(f"cue word {word!r} gives no tokens; use a non-empty word")
        prompts.append(Prompt("minimal-cue", f"cue-{word}", word, token_ids=(start, *ids)))
    return prompts


def file_prompts(setting: SettingConfig) -> list[Prompt]:
    """Prompts of ``setting.prompts_path``: all when the file holds <= n_prompts, else a seeded subset
    in file order."""
    from core.prompts.sets import load_prompt_set

    if not setting.prompts_path:
        raise PromptSetError(f"setting {setting.name!r} reads its prompts from a JSONL file: set prompts_path")
    loaded = load_prompt_set(setting.prompts_path, setting.name)
    if loaded.problems:
        log.warning("prompt set %s: %d bad row(s) skipped (first: line %d, %s)", setting.prompts_path,
                    len(loaded.problems), loaded.problems[0].line, loaded.problems[0].reason)
    prompts = list(loaded.prompts)
    if len(prompts) <= setting.n_prompts:
        return prompts
    keep = np.sort(np.random.default_rng(setting.seed).choice(len(prompts), setting.n_prompts, replace=False))
    return [prompts[i] for i in keep.tolist()]
