"""Batched generation with a manual KV-cache decoding loop and per-(prompt, sample) random streams.

Guarantees (tested in tests/test_generate.py):

* **Seeds.** Row (prompt, sample) draws from its own ``torch.Generator`` seeded with
  ``row_seed(cfg.seed, prompt_id, sample_index)``, and all logits processing is row-wise
  (:mod:`core.generation.sampling`). Given the same logits, a sampled completion therefore does not depend on
  batch size, batch composition, order, skipped keys or resumption from a cache.
* **Padding.** Prompts are LEFT-padded; pad positions are masked and every row gets its own
  ``position_ids`` (0 at its first real token), so a padded row sees exactly what it would see alone.
  On CPU in float32 the tiny test model gives bit-identical greedy results at batch sizes 1, 3 and 8.
  Caveat: on GPUs, and in bfloat16/float16 anywhere, kernels may pick different reduction orders
  for different batch shapes, so logits can differ in their last bits and a near-tie argmax (greedy)
  or a draw at a probability boundary (sampling) can flip; runs are reproducible for a fixed batch
  size and device, and the cache keeps whatever was generated first.
* Prompts are truncated to ``cfg.max_prompt_tokens`` keeping their START, and further (logged) so
  that prompt + ``max_new_tokens`` fits the model's positions. A row stops at an eos token
  (``finish_reason="eos"``, eos not included) or after ``max_new_tokens`` (``"length"``).
* A CUDA out-of-memory error halves the batch size and retries the same prompts.
* Speed: rows are sorted by prompt length before batching (length buckets: little padding), rows
  that finish leave the batch and its cache, the cache grows in place (:mod:`core.generation.kv_cache`)
  and goes in through the installed transformers' own argument (``cache``; ``past_key_values`` is
  deprecated and removed in 5.40).
  On a CPU two batches decode interleaved, weight by weight (:mod:`core.generation.interleave`): each makes
  the same forward calls as alone, so its tokens are the same, and each weight is read from memory
  once for both.
"""
from __future__ import annotations

import functools
import inspect
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch

from core.config import DecodingConfig
from core.errors import ConfigError, GenerationError, PromptSetError
from core.generation.interleave import run_interleaved
from core.generation.kv_cache import in_place_cache
from core.generation.model import LoadedModel, context_length
from core.generation.sampling import choose_tokens
from core.generation.seeds import row_seed
from core.progress import ProgressEvent, ProgressFn, rated_event
from core.records import Generation, GenKey, Prompt

log = logging.getLogger(__name__)

CPU_BATCHES_INTERLEAVED = 2  # batches decoded interleaved on a CPU (each holds its own cache)


@dataclass(frozen=True)
class _Row:
    order: int  # position in the returned list
    prompt: Prompt
    sample_index: int
    ids: tuple[int, ...]  # truncated prompt token ids

    @property
    def key(self) -> GenKey:
        return GenKey(self.prompt.setting, self.prompt.prompt_id, self.sample_index)


def prompt_token_ids(prompt: Prompt, tokenizer) -> list[int]:
    """The prompt's model token ids: ``token_ids`` as given, else its text tokenized without special tokens."""
    if prompt.token_ids is not None:
        ids = list(prompt.token_ids)
    else:
        ids = list(tokenizer(prompt.text, add_special_tokens=False)["input_ids"])
    if not ids:
        raise PromptSetError(f"prompt {prompt.prompt_id!r} ({prompt.setting}) is empty after tokenization; "
                             "give it some text or token_ids")
    return ids


def prompt_limit(model, cfg: DecodingConfig) -> int:
    """Most prompt tokens allowed: max_prompt_tokens, capped so prompt + max_new_tokens fits the context."""
    n_ctx = context_length(model)
    if n_ctx is None:
        return cfg.max_prompt_tokens
    if cfg.max_new_tokens >= n_ctx:
        raise ConfigError(f"max_new_tokens = {cfg.max_new_tokens} leaves no room for a prompt in the model's "
                          f"context of {n_ctx} positions; use max_new_tokens <= {n_ctx - 1}")
    return min(cfg.max_prompt_tokens, n_ctx - cfg.max_new_tokens)


def _plan(prompts: Sequence[Prompt], cfg: DecodingConfig, lm: LoadedModel,
          skip: Callable[[GenKey], bool] | None) -> list[_Row]:
    limit = prompt_limit(lm.model, cfg)
    vocab = lm.model.get_output_embeddings().weight.shape[0]
    todo_by_prompt = []
    for prompt in prompts:
        keys = [GenKey(prompt.setting, prompt.prompt_id, s) for s in range(cfg.num_samples)]
        todo = [k for k in keys if skip is None or not skip(k)]
        if todo:
            todo_by_prompt.append((prompt, todo))
    # prompt texts are tokenized in one call (the same ids as one call each, without the per-call overhead)
    texts = [p.text for p, _ in todo_by_prompt if p.token_ids is None]
    encoded = iter(lm.tokenizer(texts, add_special_tokens=False)["input_ids"] if texts else [])
    rows, cut = [], 0
    for prompt, todo in todo_by_prompt:
        ids = list(prompt.token_ids) if prompt.token_ids is not None else list(next(encoded))
        if not ids:
            raise PromptSetError(f"prompt {prompt.prompt_id!r} ({prompt.setting}) is empty after tokenization; "
                                 "give it some text or token_ids")
        if not all(0 <= t < vocab for t in ids):
            raise PromptSetError(f"prompt {prompt.prompt_id!r} ({prompt.setting}) has token ids outside the model's "
                                 f"vocabulary [0, {vocab}): was it built with another tokenizer?")
        if len(ids) > limit:
            cut += limit < cfg.max_prompt_tokens  # cut by the context, not only by max_prompt_tokens
            ids = ids[:limit]
        rows.extend(_Row(len(rows), prompt, k.sample_index, tuple(ids)) for k in todo)
    if cut:
        log.warning("%d prompt(s) cut to %d tokens so prompt + max_new_tokens (%d) fits the model context",
                    cut, limit, cfg.max_new_tokens)
    return rows


def _eos_ids(lm: LoadedModel) -> set[int]:
    ids = {lm.tokenizer.eos_token_id}
    gen_eos = getattr(getattr(lm.model, "generation_config", None), "eos_token_id", None)
    ids.update(gen_eos if isinstance(gen_eos, (list, tuple)) else [gen_eos])
    return {i for i in ids if i is not None}


def _library_cache_arg() -> str:
    """The cache argument of the installed transformers' models: ``cache`` since it renamed
    ``past_key_values`` (deprecated in 5.x, removed in 5.40), else ``past_key_values``."""
    from transformers import GenerationMixin

    params = inspect.signature(GenerationMixin.prepare_inputs_for_generation).parameters
    return "cache" if "cache" in params else "past_key_values"


def _forward_kwargs(model) -> tuple[str, dict]:
    """The cache argument's name and ``logits_to_keep=1`` when supported (saves a [B, L, V] logits
    tensor on the prompt pass). A forward that names neither cache argument (a wrapper taking
    ``**kwargs``) gets the installed transformers' name."""
    params = inspect.signature(model.forward).parameters
    if "cache" in params:
        cache_arg = "cache"
    elif "past_key_values" in params:
        cache_arg = "past_key_values"
    else:
        cache_arg = _library_cache_arg()
    return cache_arg, ({"logits_to_keep": 1} if "logits_to_keep" in params else {})


@torch.inference_mode()
def _generate_batch(lm: LoadedModel, rows: Sequence[_Row], cfg: DecodingConfig, eos: set[int],
                    fwd: tuple[str, dict]) -> tuple[list[Generation], int]:
    """Decode one left-padded batch; returns generations (row order) and tokens generated.

    Rows that finish leave the batch and the cache; the attention mask is allocated once for the
    whole completion; the seen-token table exists only for a repetition penalty."""
    device = torch.device(lm.device)
    n, width = len(rows), max(len(r.ids) for r in rows)
    vocab = lm.model.get_output_embeddings().weight.shape[0]
    input_ids = torch.full((n, width), lm.tokenizer.pad_token_id, dtype=torch.long)
    attn_full = torch.zeros((n, width + cfg.max_new_tokens), dtype=torch.long)
    attn_full[:, width:] = 1
    penalize = cfg.repetition_penalty != 1.0
    seen = torch.zeros((n, vocab), dtype=torch.bool) if penalize else None
    for i, r in enumerate(rows):
        input_ids[i, width - len(r.ids):] = torch.tensor(r.ids)
        attn_full[i, width - len(r.ids):width] = 1
        if penalize:
            seen[i, list(r.ids)] = True
    input_ids, attn_full = input_ids.to(device), attn_full.to(device)
    seen = seen.to(device) if penalize else None
    positions = (attn_full[:, :width].cumsum(-1) - 1).clamp(min=0)
    generators = [] if cfg.greedy else [
        torch.Generator(device=device).manual_seed(row_seed(cfg.seed, r.prompt.prompt_id, r.sample_index))
        for r in rows]
    alive = list(range(n))  # original row numbers of the rows still decoding
    out: list[list[int]] = [[] for _ in rows]
    reason = ["length"] * n
    past, cur, length = in_place_cache(width + cfg.max_new_tokens), input_ids, width
    for step in range(cfg.max_new_tokens):
        result = lm.model(input_ids=cur, attention_mask=attn_full[:, :length], position_ids=positions,
                          use_cache=True, **{fwd[0]: past}, **fwd[1])  # the cache is filled in place
        nxt = choose_tokens(result.logits[:, -1, :], seen, cfg, [generators[i] for i in alive] if generators else [])
        keep = []
        for j, (row, tok) in enumerate(zip(alive, nxt.tolist())):
            if tok in eos:
                reason[row] = "eos"
            else:
                out[row].append(tok)
                keep.append(j)
        if not keep or step == cfg.max_new_tokens - 1:
            break
        if len(keep) < len(alive):  # drop finished rows from the batch and the cache
            idx = torch.tensor(keep, device=device)
            past.batch_select_indices(idx)
            attn_full, nxt, positions = attn_full[idx], nxt[idx], positions[idx]
            seen = seen[idx] if penalize else None
            alive = [alive[j] for j in keep]
        if penalize:
            seen[torch.arange(len(alive), device=device), nxt] = True
        length += 1
        positions = positions[:, -1:] + 1
        cur = nxt[:, None]
    gens = []
    for i, r in enumerate(rows):
        ids = out[i]
        text = lm.tokenizer.decode(ids, skip_special_tokens=True)
        gens.append(Generation(r.key, r.prompt, text, tuple(ids), reason[i]))
    return gens, sum(len(o) for o in out)


def generation_progress(done: int, total: int, tokens: int, elapsed: float, batch_size: int) -> ProgressEvent:
    """The progress event after ``done`` of ``total`` generations: rate in generations/s (the unit of
    done/total), ETA = remaining / rate; tokens/s in the message.

    >>> e = generation_progress(16, 60, 800, 4.0, 16)
    >>> e.rate, e.eta_s, e.message
    (4.0, 11.0, '200 tokens/s, batch size 16')
    """
    tok_s = tokens / elapsed if elapsed > 0 else 0.0
    return rated_event("generate", done, total, "generations", elapsed, f"{tok_s:.0f} tokens/s, batch size {batch_size}")


def generate(model: LoadedModel, prompts: Sequence[Prompt], cfg: DecodingConfig, *,
             progress: ProgressFn | None = None, skip: Callable[[GenKey], bool] | None = None,
             on_batch: Callable[[list[Generation]], None] | None = None,
             interleave: int | None = None) -> list[Generation]:
    """Generate ``cfg.num_samples`` completions per prompt; returns the non-skipped ones in prompt order.

    ``skip(key)`` True leaves that (prompt, sample) out (e.g. cached). ``on_batch`` gets each finished
    batch (for atomic persistence). ``progress`` gets ProgressEvent("generate", done, total generations,
    rate = generations/s, eta_s = remaining / rate), once before the first batch and after each; it
    may raise :class:`core.progress.Cancelled` to stop. ``interleave``: how many batches of
    ``cfg.batch_size`` decode interleaved (:mod:`core.generation.interleave`; the same tokens as one by one);
    default :data:`CPU_BATCHES_INTERLEAVED` on a CPU, 1 elsewhere.
    """
    rows = _plan(prompts, cfg, model, skip)
    rows_by_len = sorted(rows, key=lambda r: -len(r.ids))  # less padding; results do not depend on it
    eos, fwd = _eos_ids(model), _forward_kwargs(model.model)
    if interleave is None:
        interleave = CPU_BATCHES_INTERLEAVED if torch.device(model.device).type == "cpu" else 1
    results: list[Generation | None] = [None] * len(rows)
    batch_size, pending, done, tokens, t0 = cfg.batch_size, rows_by_len, 0, 0, time.perf_counter()
    if progress is not None and rows:  # before the first (slowest) batch: say what is coming
        together = min(interleave, -(-len(rows) // batch_size))
        progress(ProgressEvent("generate", 0, len(rows), "generations", None, None,
                               f"first batch of {min(batch_size, len(rows))}"
                               + (f" (with {together - 1} more, interleaved)" if together > 1 else "")
                               + f", up to {cfg.max_new_tokens} tokens each"))

    def finished(group: list[list[_Row]], i: int, result: tuple[list[Generation], int]) -> None:
        """Batch ``group[i]`` ended: its generations are kept, passed on and counted at once."""
        nonlocal done, tokens
        gens, n_tok = result
        done, tokens = done + len(gens), tokens + n_tok
        for r, g in zip(group[i], gens):
            results[r.order] = g
        if on_batch is not None:
            on_batch(gens)
        if progress is not None:
            progress(generation_progress(done, len(rows), tokens, time.perf_counter() - t0, batch_size))

    while pending:
        group = [pending[i:i + batch_size] for i in range(0, min(len(pending), interleave * batch_size), batch_size)]
        try:
            run_interleaved(model.model, [functools.partial(_generate_batch, model, chunk, cfg, eos, fwd)
                                          for chunk in group], on_done=functools.partial(finished, group))
        except torch.cuda.OutOfMemoryError:
            if torch.cuda.is_available():
                torch.cuda.empty_cache()
            if batch_size == 1:
                raise GenerationError(
                    f"out of GPU memory at batch size 1 (prompt of {len(group[0][0].ids)} tokens + "
                    f"{cfg.max_new_tokens} new tokens); lower max_prompt_tokens/max_new_tokens, use a smaller "
                    "dtype, or a bigger GPU") from None
            batch_size = max(1, batch_size // 2)
            log.warning("CUDA out of memory: retrying with batch size %d", batch_size)
            pending = [r for r in pending if results[r.order] is None]  # batches that finished are kept
            continue
        pending = pending[sum(map(len, group)):]
    return [g for g in results if g is not None]
