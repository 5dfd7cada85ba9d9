"""core.generation.generate / core.generation.sampling against independent oracles: a no-cache argmax loop, transformers'
own logits processors, and runs of the same rows in other batch compositions."""
from __future__ import annotations

import dataclasses
import logging
import warnings

import pytest
import torch
from transformers.generation.logits_process import (
    RepetitionPenaltyLogitsProcessor,
    TopKLogitsWarper,
    TopPLogitsWarper,
)

from core.config import DecodingConfig
from core.errors import ConfigError, PromptSetError
from core.generation.generate import generate
from core.generation.sampling import apply_repetition_penalty, filter_top_k_top_p
from core.records import GenKey, Prompt
from tests import fixtures_model

tiny_model_dir, tiny_lm = fixtures_model.tiny_model_dir, fixtures_model.tiny_lm  # shared fixtures

TEXTS = ["The cat", "A memorization audit asks whether a model can", "Hello", "It was the best of times, it was",
         "x", "She sells sea", "Numbers like 12345 and", "def f(x): return"]
PROMPTS = [Prompt("generic", f"g{i}", t) for i, t in enumerate(TEXTS)]
SAMPLED = DecodingConfig(temperature=1.0, num_samples=2, max_new_tokens=8, batch_size=8, seed=7)


def _argmax_loop(lm, ids: list[int], n: int) -> list[int]:
    """Oracle: one prompt alone, no cache, no padding, full recompute each step."""
    seq = list(ids)
    with torch.no_grad():
        for _ in range(n):
            seq.append(int(lm.model(torch.tensor([seq])).logits[0, -1].argmax()))
    return seq[len(ids):]


def _ids(gens):
    return {g.key: g.completion_ids for g in gens}


def test_greedy_equals_no_cache_argmax_loop(tiny_lm):
    gens = generate(tiny_lm, PROMPTS[:4], DecodingConfig(max_new_tokens=10, batch_size=4))
    assert [g.key for g in gens] == [GenKey("generic", p.prompt_id, 0) for p in PROMPTS[:4]]
    for g, p in zip(gens, PROMPTS[:4]):
        want = _argmax_loop(tiny_lm, tiny_lm.tokenizer(p.text, add_special_tokens=False)["input_ids"], 10)
        assert list(g.completion_ids) == want
        assert g.completion == tiny_lm.tokenizer.decode(want, skip_special_tokens=True)
        assert g.finish_reason == "length" and len(g.completion_ids) == 10


@pytest.mark.parametrize("cfg", [DecodingConfig(max_new_tokens=16), SAMPLED], ids=["greedy", "sampled"])
def test_results_do_not_depend_on_batch_size(tiny_lm, cfg):
    runs = [_ids(generate(tiny_lm, PROMPTS, dataclasses.replace(cfg, batch_size=b))) for b in (1, 3, 8)]
    assert runs[0] == runs[1] == runs[2]
    assert len(runs[0]) == len(PROMPTS) * cfg.num_samples


def test_sampling_reproducible_per_prompt_and_sample(tiny_lm):
    full = _ids(generate(tiny_lm, PROMPTS, SAMPLED))
    assert full == _ids(generate(tiny_lm, PROMPTS, SAMPLED))  # same seed, same tokens
    alone = _ids(generate(tiny_lm, [PROMPTS[5]], dataclasses.replace(SAMPLED, batch_size=1)))
    assert all(full[k] == v for k, v in alone.items())  # independent of the other prompts in the batch
    other_seed = _ids(generate(tiny_lm, PROMPTS, dataclasses.replace(SAMPLED, seed=8)))
    assert other_seed != full
    samples = [full[GenKey("generic", "g1", s)] for s in range(2)]
    assert len(set(samples)) > 1  # samples of one prompt draw from different streams


def test_top_k_1_and_tiny_top_p_sampling_are_greedy(tiny_lm):
    greedy = _ids(generate(tiny_lm, PROMPTS, DecodingConfig(max_new_tokens=8)))
    for cfg in (DecodingConfig(temperature=1.5, top_k=1, max_new_tokens=8),
                DecodingConfig(temperature=1.5, top_p=1e-9, max_new_tokens=8)):
        assert _ids(generate(tiny_lm, PROMPTS, cfg)) == greedy


def test_stops_at_eos_without_including_it(tiny_lm):
    prompt = PROMPTS[1]
    ref = generate(tiny_lm, [prompt], DecodingConfig(max_new_tokens=10))[0].completion_ids
    stop_tok = next(t for t in ref if t != ref[0])  # a token greedy reaches after at least one other
    old = tiny_lm.model.generation_config.eos_token_id
    tiny_lm.model.generation_config.eos_token_id = [old, stop_tok]
    try:
        gens = generate(tiny_lm, [prompt, PROMPTS[0]], DecodingConfig(max_new_tokens=10, batch_size=2))
    finally:
        tiny_lm.model.generation_config.eos_token_id = old
    g = gens[0]
    assert g.finish_reason == "eos"
    assert list(g.completion_ids) == list(ref[:ref.index(stop_tok)])
    other = _argmax_loop(tiny_lm, tiny_lm.tokenizer(PROMPTS[0].text)["input_ids"], 10)
    if stop_tok not in other:  # the row still decoding after its batch-mate finished is unaffected
        assert list(gens[1].completion_ids) == other


def test_prompt_truncation_keeps_start_and_fits_context(tiny_lm):
    ids = tuple(range(5, 105))  # 100 tokens; the tiny model has 128 positions
    p = Prompt("prefix", "long", "", token_ids=ids)
    g = generate(tiny_lm, [p], DecodingConfig(max_new_tokens=6, max_prompt_tokens=40))[0]
    assert list(g.completion_ids) == _argmax_loop(tiny_lm, list(ids[:40]), 6)
    g = generate(tiny_lm, [p], DecodingConfig(max_new_tokens=100, max_prompt_tokens=256))[0]
    assert len(g.completion_ids) == 100  # greedy is prefix-consistent: the first tokens show the prompt used
    assert list(g.completion_ids[:8]) == _argmax_loop(tiny_lm, list(ids[:28]), 8)  # 28 + 100 = 128 positions
    with pytest.raises(ConfigError, match="max_new_tokens = 128 leaves no room .* <= 127"):
        generate(tiny_lm, [p], DecodingConfig(max_new_tokens=128))


def test_empty_or_out_of_vocabulary_prompt_is_an_error(tiny_lm):
    with pytest.raises(PromptSetError, match="'empty'"):
        generate(tiny_lm, [Prompt("generic", "empty", "")], DecodingConfig(max_new_tokens=2))
    with pytest.raises(PromptSetError, match=r"'big' \(prefix\) has token ids outside .*\[0, 320\)"):
        generate(tiny_lm, [Prompt("prefix", "big", "", token_ids=(1, 320))], DecodingConfig(max_new_tokens=2))


def test_skip_and_on_batch_allow_resuming(tiny_lm):
    full = _ids(generate(tiny_lm, PROMPTS, SAMPLED))
    done = set(list(full)[::2])
    batches = []
    rest = generate(tiny_lm, PROMPTS, dataclasses.replace(SAMPLED, batch_size=5), skip=done.__contains__,
                    on_batch=batches.append)
    assert {g.key for g in rest} == set(full) - done
    assert all(g.completion_ids == full[g.key] for g in rest)
    assert [len(b) for b in batches] == [5, 3]
    assert sorted(g.key for b in batches for g in b) == sorted(g.key for g in rest)


def test_progress_reports_generations_and_token_rate(tiny_lm):
    events = []
    generate(tiny_lm, PROMPTS, DecodingConfig(max_new_tokens=4, batch_size=3), progress=events.append)
    assert [e.done for e in events] == [0, 3, 6, 8] and all(e.total == 8 for e in events)
    assert events[0].rate is None and "first batch of 3 (with 1 more, interleaved)" in events[0].message  # before it
    assert events[-1].stage == "generate" and events[-1].rate > 0 and events[-1].eta_s == 0
    for e in events[1:]:  # rate in generations/s, the unit of done/total: rate and ETA agree
        assert e.eta_s == pytest.approx((e.total - e.done) / e.rate) and "tokens/s" in e.message


class _OOMOnce(torch.nn.Module):
    """Wraps a model; the first forward with more than one row raises CUDA out-of-memory."""

    def __init__(self, model):
        super().__init__()
        self.inner, self.config, self.generation_config = model, model.config, model.generation_config
        self.batch_sizes, self.raised = [], False

    def get_output_embeddings(self):
        return self.inner.get_output_embeddings()

    def forward(self, input_ids=None, **kw):
        self.batch_sizes.append(input_ids.shape[0])
        if not self.raised and input_ids.shape[0] > 4:
            self.raised = True
            raise torch.cuda.OutOfMemoryError("CUDA out of memory (injected)")
        return self.inner(input_ids=input_ids, **kw)


def test_out_of_memory_halves_the_batch_and_retries(tiny_lm, caplog):
    want = _ids(generate(tiny_lm, PROMPTS, DecodingConfig(max_new_tokens=5)))
    wrapped = _OOMOnce(tiny_lm.model)
    lm = dataclasses.replace(tiny_lm, model=wrapped)
    with caplog.at_level(logging.WARNING, logger="core.generation.generate"):
        got = _ids(generate(lm, PROMPTS, DecodingConfig(max_new_tokens=5, batch_size=8)))
    assert got == want
    assert wrapped.raised and wrapped.batch_sizes[0] == 8 and wrapped.batch_sizes[1] == 4
    assert "retrying with batch size 4" in caplog.text


class _EosThenOOM(_OOMOnce):
    """Wraps a model: a batch of 4 rows is told to stop (eos) at its first step; a batch of 3 rows runs
    out of memory once, at its third forward call, after the 4-row batch decoding beside it ended."""

    def __init__(self, model, eos: int):
        super().__init__(model)
        self.eos = eos

    def forward(self, input_ids=None, **kw):
        self.batch_sizes.append(input_ids.shape[0])
        if not self.raised and input_ids.shape[0] == 3 and self.batch_sizes.count(3) == 3:
            self.raised = True
            raise torch.cuda.OutOfMemoryError("CUDA out of memory (injected)")
        out = self.inner(input_ids=input_ids, **kw)
        if input_ids.shape[0] == 4:
            out.logits[..., self.eos] = out.logits.max() + 1
        return out


def test_out_of_memory_in_interleaved_batches_keeps_the_batch_that_ended(tiny_lm):
    prompts, eos = PROMPTS[:7], tiny_lm.tokenizer.eos_token_id
    cfg = DecodingConfig(max_new_tokens=5, batch_size=4)
    reference = _EosThenOOM(tiny_lm.model, eos)
    reference.raised = True  # no out-of-memory error in the reference run
    want = _ids(generate(dataclasses.replace(tiny_lm, model=reference), prompts, cfg, interleave=1))
    wrapped, batches = _EosThenOOM(tiny_lm.model, eos), []
    got = generate(dataclasses.replace(tiny_lm, model=wrapped), prompts, cfg, interleave=2, on_batch=batches.append)
    assert wrapped.raised and _ids(got) == want
    assert [len(b) for b in batches] == [4, 2, 1]  # the ended batch kept once; the other retried at batch size 2
    assert sum(g.finish_reason == "eos" and not g.completion_ids for g in got) == 4
    assert wrapped.batch_sizes.count(4) == 1  # the batch that ended was not decoded again


def test_repetition_penalty_matches_transformers():
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(4, 50, generator=g)
    ids = torch.randint(0, 50, (4, 7), generator=g)
    seen = torch.zeros(4, 50, dtype=torch.bool).scatter(1, ids, True)
    want = RepetitionPenaltyLogitsProcessor(1.3)(ids, logits.clone())
    assert torch.allclose(apply_repetition_penalty(logits, seen, 1.3), want)


@pytest.mark.parametrize("top_k,top_p", [(5, 1.0), (0, 0.9), (0, 0.3), (10, 0.5), (1, 1.0)])
def test_top_k_top_p_match_transformers(top_k, top_p):
    logits = torch.randn(6, 40, generator=torch.Generator().manual_seed(top_k + int(top_p * 10)))
    want = logits.clone()
    if top_k:
        want = TopKLogitsWarper(top_k)(None, want)
    if top_p < 1:
        want = TopPLogitsWarper(top_p)(None, want)
    got = filter_top_k_top_p(logits, top_k, top_p)
    assert torch.equal(got.isinf(), want.isinf())


def test_repetition_penalty_changes_greedy_choice(tiny_lm):
    """Repeating greedy loops are broken by a strong penalty (100, the config's upper limit): each generated
    token is the argmax of the penalized logits, recomputed without the KV cache."""
    plain = generate(tiny_lm, PROMPTS[:3], DecodingConfig(max_new_tokens=8))
    penal = generate(tiny_lm, PROMPTS[:3], DecodingConfig(max_new_tokens=8, repetition_penalty=100.0))
    assert any(len(set(g.completion_ids)) < len(g.completion_ids) for g in plain)
    for g in penal:
        prompt_ids = tiny_lm.tokenizer(g.prompt.text)["input_ids"]
        seq = list(prompt_ids) + list(g.completion_ids)
        assert _repeat_free_when_possible(tiny_lm, seq, len(prompt_ids))


def _repeat_free_when_possible(lm, seq, n_prompt) -> bool:
    """Oracle: each generated token is the argmax of penalized logits recomputed without cache."""
    seen = torch.zeros(1, lm.model.config.vocab_size, dtype=torch.bool)
    with torch.no_grad():
        for t in range(n_prompt, len(seq)):
            seen[0, seq[:t]] = True
            logits = lm.model(torch.tensor([seq[:t]])).logits[:, -1]
            if int(apply_repetition_penalty(logits, seen, 100.0).argmax()) != seq[t]:
                return False
    return True


def test_decoding_passes_no_deprecated_transformers_argument(tiny_lm):
    """transformers 5.x deprecates ``past_key_values`` in forward (removed in 5.40): the loop must use the
    supported cache argument, also through a wrapper whose forward only takes ``**kwargs``."""
    with warnings.catch_warnings():
        warnings.simplefilter("error", FutureWarning)
        warnings.filterwarnings("error", category=DeprecationWarning, module="transformers")
        want = _ids(generate(tiny_lm, PROMPTS[:4], DecodingConfig(max_new_tokens=4)))
        wrapped = dataclasses.replace(tiny_lm, model=_OOMOnce(tiny_lm.model))
        assert _ids(generate(wrapped, PROMPTS[:4], DecodingConfig(max_new_tokens=4, batch_size=4))) == want
    got = [want[GenKey(p.setting, p.prompt_id, 0)] for p in PROMPTS[:4]]
    assert got == [tuple(_argmax_loop(tiny_lm, tiny_lm.tokenizer(p.text)["input_ids"], 4)[:len(w)])
                   for p, w in zip(PROMPTS[:4], got)]
