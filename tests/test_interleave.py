"""core.generation.interleave: batches interleaved weight by weight, against the same jobs run one after the other.

The order is read from the modules themselves (a forward hook logs which job applied which module);
the results are compared bit for bit with each job run alone, on GPT-2 (Conv1D projections) and on a
Llama with grouped-query attention (SmolLM2's architecture), greedy and sampled, with rows finishing
early at eos."""
from __future__ import annotations

import collections
import dataclasses

import pytest
import torch
from transformers import LlamaConfig, LlamaForCausalLM

from core.config import DecodingConfig
from core.generation.generate import generate
from core.generation.interleave import handover_points, run_interleaved
from core.records import Prompt
from tests import fixtures_model

tiny_model_dir, tiny_lm = fixtures_model.tiny_model_dir, fixtures_model.tiny_lm  # shared fixtures

TEXTS = ["The cat", "A memorization audit asks whether a model can", "Hello", "It was the best of times, it was",
         "x", "She sells sea", "Numbers like 12345 and", "def f(x): return", "The quick brown fox jumps",
         "12345", "shells by the sea shore", "Hello world! The cat sat on"]
PROMPTS = [Prompt("generic", f"g{i}", t) for i, t in enumerate(TEXTS)]


class Stack(torch.nn.Module):
    """Three linear layers in a ModuleList, and a norm (no weight matrix: not a hand-over point)."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.layers = torch.nn.ModuleList(torch.nn.Linear(4, 4) for _ in range(3))
        self.norm = torch.nn.LayerNorm(4)

    def forward(self, x):
        for layer in self.layers:
            x = layer(x).relu()
        return self.norm(x)


def _log_applications(model, log):
    names = {m: n for n, m in model.named_modules()}
    return [m.register_forward_hook(lambda m, a, o: log.append((a[0].shape[0], names[m])))
            for m in handover_points(model)]


def test_jobs_apply_each_weight_in_turn_and_get_their_own_results():
    model = Stack()
    xs = [torch.randn(n, 4, generator=torch.Generator().manual_seed(n)) for n in (1, 2, 3)]
    alone = [model(x) for x in xs]
    log: list = []
    handles = _log_applications(model, log)
    got = run_interleaved(model, [lambda x=x: model(x) for x in xs])
    for h in handles:
        h.remove()
    # job k is told apart by its batch size k: layer 0 by every job, then layer 1 by every job, ...
    assert log == [(n, f"layers.{i}") for i in range(3) for n in (1, 2, 3)]
    assert all(torch.equal(a, b) for a, b in zip(got, alone))
    assert all(not m._forward_pre_hooks for m in model.modules())  # the hand-over hooks are gone after the run


def test_a_job_that_makes_more_calls_goes_on_alone():
    model = Stack()
    x = torch.ones(2, 4)
    got = run_interleaved(model, [lambda: model(model(x)), lambda: model(x[:1]), lambda: 7])
    assert torch.equal(got[0], model(model(x))) and torch.equal(got[1], model(x[:1])) and got[2] == 7


def test_on_done_hears_of_each_job_as_it_ends_while_the_others_go_on():
    model = Stack()
    log: list = []
    handles = _log_applications(model, log)
    x = torch.ones(2, 4)
    got = run_interleaved(model, [lambda: model(x[:1]), lambda: model(model(x))],
                          on_done=lambda i, result: log.append(("done", i)))
    for h in handles:
        h.remove()
    # job 0 (1 row) is done as soon as it applied the last layer; job 1 (2 rows) goes on with its second pass
    assert log == [(1, "layers.0"), (2, "layers.0"), (1, "layers.1"), (2, "layers.1"), (1, "layers.2"), ("done", 0),
                   (2, "layers.2"), (2, "layers.0"), (2, "layers.1"), (2, "layers.2"), ("done", 1)]
    assert torch.equal(got[1], model(model(x)))


def test_an_error_in_one_job_is_raised_and_the_others_are_unwound():
    model = Stack()
    unwound = []

    def waits():
        try:
            return model(torch.ones(1, 4))
        finally:
            unwound.append(True)

    def fails():
        model.layers[0](torch.ones(1, 4))  # reaches a hand-over point, then fails
        raise ValueError("job failed")

    with pytest.raises(ValueError, match="job failed"):
        run_interleaved(model, [waits, fails])
    assert unwound == [True]
    assert all(not m._forward_pre_hooks for m in model.modules())


def test_a_model_without_a_module_list_runs_its_jobs_one_after_the_other():
    model = torch.nn.Sequential(torch.nn.Linear(3, 3))
    assert handover_points(model) == []
    x = torch.ones(1, 3)
    assert all(torch.equal(y, model(x)) for y in run_interleaved(model, [lambda: model(x)] * 2))


def test_gpt2_handover_points_are_its_projections(tiny_lm):
    names = {m: n for n, m in tiny_lm.model.named_modules()}
    got = sorted(names[m] for m in handover_points(tiny_lm.model))
    want = sorted(f"transformer.h.{i}.{p}" for i in range(2)
                  for p in ("attn.c_attn", "attn.c_proj", "mlp.c_fc", "mlp.c_proj"))
    assert got == want


def _ids(gens):
    return {g.key: (g.completion_ids, g.finish_reason) for g in gens}


CONFIGS = [DecodingConfig(max_new_tokens=12, batch_size=3),
           DecodingConfig(temperature=1.0, num_samples=2, max_new_tokens=8, batch_size=4, seed=3)]


@pytest.mark.parametrize("cfg", CONFIGS, ids=["greedy", "sampled"])
def test_generation_in_turns_equals_one_batch_after_the_other(tiny_lm, cfg, monkeypatch):
    plain = generate(tiny_lm, PROMPTS, cfg, interleave=1)
    # a token some rows reach mid-way becomes an eos, so rows leave their batch early
    counts = collections.Counter(t for g in plain for t in g.completion_ids[2:])
    eos = tiny_lm.model.generation_config.eos_token_id
    monkeypatch.setattr(tiny_lm.model.generation_config, "eos_token_id", [eos, counts.most_common(1)[0][0]])
    one_by_one = _ids(generate(tiny_lm, PROMPTS, cfg, interleave=1))
    assert 0 < sum(r == "eos" for _, r in one_by_one.values()) < len(one_by_one)
    for k in (2, 3, 5):
        assert _ids(generate(tiny_lm, PROMPTS, cfg, interleave=k)) == one_by_one


def test_llama_with_grouped_query_attention_in_turns_equals_alone(tiny_lm):
    config = LlamaConfig(vocab_size=tiny_lm.tokenizer.vocab_size, hidden_size=64, intermediate_size=128,
                         num_hidden_layers=3, num_attention_heads=4, num_key_value_heads=2,
                         max_position_embeddings=128, bos_token_id=0, eos_token_id=0, tie_word_embeddings=True)
    lm = dataclasses.replace(tiny_lm, model=fixtures_model.make_tiny_model(
        config.vocab_size, model_cls=LlamaForCausalLM, config=config))
    assert len(handover_points(lm.model)) == 3 * 7  # q, k, v, o, gate, up, down in each layer
    cfg = DecodingConfig(max_new_tokens=10, batch_size=4)
    assert _ids(generate(lm, PROMPTS, cfg, interleave=3)) == _ids(generate(lm, PROMPTS, cfg, interleave=1))
