"""core.generation.kv_cache against transformers' own DynamicCache: bit-identical logits at every step
(prompt pass with left padding, decode steps, rows leaving the batch, a buffer that must grow), and
the cache's own invariants (keys are views of one buffer; crop, then update, stays consistent)."""
from __future__ import annotations

import pytest
import torch
from transformers import DynamicCache, LlamaConfig, LlamaForCausalLM

from core.generation.kv_cache import in_place_cache
from tests import fixtures_model

VOCAB = 300


def _llama():
    config = LlamaConfig(vocab_size=VOCAB, hidden_size=64, intermediate_size=128, num_hidden_layers=3,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=128)
    return fixtures_model.make_tiny_model(VOCAB, model_cls=LlamaForCausalLM, config=config)


def _decode(model, cache, steps: int, drop_at: int | None):
    """Left-padded prompt pass, then greedy decode steps; rows 1 and 3 leave at ``drop_at``. Returns
    every step's logits."""
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(1, VOCAB, (5, 9), generator=g)
    mask = torch.ones(5, 9 + steps, dtype=torch.long)
    mask[0, :3] = mask[2, :5] = 0  # padded rows
    pos = (mask[:, :9].cumsum(-1) - 1).clamp(min=0)
    out, length = [], 9
    with torch.inference_mode():
        for step in range(steps):
            logits = model(input_ids=ids, attention_mask=mask[:, :length], position_ids=pos, cache=cache,
                           use_cache=True).logits[:, -1]
            out.append(logits.clone())
            nxt = logits.argmax(-1)
            if step == drop_at:
                keep = torch.tensor([0, 2, 4])
                cache.batch_select_indices(keep)
                mask, nxt, pos = mask[keep], nxt[keep], pos[keep]
            ids, pos, length = nxt[:, None], pos[:, -1:] + 1, length + 1
    return out


@pytest.mark.parametrize("make", [_llama, lambda: fixtures_model.make_tiny_model(VOCAB)], ids=["llama-gqa", "gpt2"])
@pytest.mark.parametrize("capacity,drop_at", [(9 + 12, 4), (9 + 12, None), (10, 6)],
                         ids=["drop-rows", "all-rows", "grows"])
def test_logits_are_bit_identical_to_dynamic_cache(make, capacity, drop_at):
    model = make()
    want = _decode(model, DynamicCache(), 12, drop_at)
    got = _decode(model, in_place_cache(capacity), 12, drop_at)
    assert all(torch.equal(a, b) for a, b in zip(got, want))


def test_keys_are_views_of_one_buffer_and_crop_stays_consistent():
    cache = in_place_cache(8)
    k = torch.arange(2 * 1 * 3 * 4, dtype=torch.float32).reshape(2, 1, 3, 4)
    keys, _ = cache.update(k, k + 100, 0)
    buffer = keys.data_ptr()
    keys, values = cache.update(k[:, :, :1] + 1000, k[:, :, :1], 0)
    assert keys.data_ptr() == buffer and keys.shape == (2, 1, 4, 4)  # written in place, no new tensor
    assert torch.equal(keys, torch.cat([k, k[:, :, :1] + 1000], dim=-2))
    assert torch.equal(values, torch.cat([k + 100, k[:, :, :1]], dim=-2))
    cache.crop(-2)  # transformers' own crop slices the view
    keys, _ = cache.update(k[:, :, :1] - 1, k[:, :, :1], 0)
    assert torch.equal(keys, torch.cat([k[:, :, :2], k[:, :, :1] - 1], dim=-2)) and cache.get_seq_length() == 3
