"""A key/value cache that grows in place: transformers' ``DynamicCache`` without a copy per step.

``DynamicCache`` appends each step's keys and values with ``torch.cat``, which copies the whole
cache of every layer at every step (6 % of a SmolLM2-135M decode step at batch 8 here, and memory
traffic that pushes the weights out of the CPU cache). :func:`in_place_cache` writes each step into
a buffer allocated once for the whole completion and hands attention a view of its filled part:
the same values in the same layout (rows of ``head_dim`` floats), so attention reads exactly what it
read from the concatenated tensor and the logits are bit-identical (tests/test_kv_cache.py). Where
the cache is long it shows: decode steps of 16 rows at 250-290 cached positions ran 1.00-1.29x as fast
as with ``DynamicCache`` (``bench/bench_generate.py --steps``); on short caches, nothing measurable.
"""
from __future__ import annotations

import functools

import torch
from transformers import DynamicCache

try:
    from transformers.cache_utils import DynamicLayer
except ImportError:  # transformers before the per-layer cache API (< 4.56): the plain cache
    DynamicLayer = None


if DynamicLayer is not None:
    class InPlaceLayer(DynamicLayer):
        """One layer's keys and values in a buffer of ``capacity`` positions, grown (copied, at least
        doubled) only when a write would not fit; ``keys``/``values`` are views of the filled part."""

        def __init__(self, capacity: int, **kwargs):
            super().__init__(**kwargs)
            self.capacity = capacity
            self._k: torch.Tensor | None = None
            self._v: torch.Tensor | None = None

        def _holds_own_view(self, n: int) -> bool:
            """Whether ``keys`` is still the view of our buffer (a method of the parent class, e.g.
            ``crop``, may have replaced it) and the buffer has room for ``n`` positions."""
            return (self._k is not None and self.keys.dim() == 4 and self.keys.data_ptr() == self._k.data_ptr()
                    and self.keys.shape[0] == self._k.shape[0] and n <= self._k.shape[-2])

        def update(self, key_states: torch.Tensor, value_states: torch.Tensor, *args, **kwargs):
            if not self.is_initialized:
                self.lazy_initialization(key_states, value_states)
            t = self.get_seq_length()
            n = t + key_states.shape[-2]
            if not self._holds_own_view(n):
                size = max(n, self.capacity, 2 * (self._k.shape[-2] if self._k is not None else 0))  # doubling
                self._k = key_states.new_empty((*key_states.shape[:2], size, key_states.shape[-1]))
                self._v = value_states.new_empty((*value_states.shape[:2], size, value_states.shape[-1]))
                if t:
                    self._k[:, :, :t].copy_(self.keys)
                    self._v[:, :, :t].copy_(self.values)
            self._k[:, :, t:n].copy_(key_states)
            self._v[:, :, t:n].copy_(value_states)
            self.keys, self.values = self._k[:, :, :n], self._v[:, :, :n]
            return self.keys, self.values

        def batch_select_indices(self, indices: torch.Tensor) -> None:
            if self.get_seq_length() > 0:
                t = self.get_seq_length()
                self._k, self._v = self._k[indices], self._v[indices]
                self.keys, self.values = self._k[:, :, :t], self._v[:, :, :t]


def in_place_cache(capacity: int) -> DynamicCache:
    """An empty ``DynamicCache`` whose layers hold ``capacity`` positions in place (the prompt's width
    plus the new tokens); with a transformers too old for per-layer caches, a plain ``DynamicCache``."""
    cache = DynamicCache()
    if DynamicLayer is not None and getattr(cache, "layer_class_to_replicate", None) is DynamicLayer:
        cache.layer_class_to_replicate = functools.partial(InPlaceLayer, capacity)
    return cache
