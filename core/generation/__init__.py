"""Completions from a causal LM: model loading, batched decoding, remote servers."""
