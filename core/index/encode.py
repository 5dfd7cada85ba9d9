"""Text to index token ids: the one tokenize step of every index build (local, sharded, Ray).

:func:`core.index.build.tokenized_corpus` and the Ray build's tokenize tasks
(:mod:`core.cluster.build`) both call :func:`encode_batch`, so a faster tokenizer path added here
speeds up both and keeps their ids identical.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def encode_batch(tokenizer, texts: Sequence[str]) -> list[np.ndarray]:
    """Token ids (no special tokens) of each text, as int64 arrays."""
    if not texts:
        return []
    enc = tokenizer(list(texts), add_special_tokens=False, return_attention_mask=False)
    return [np.asarray(ids, dtype=np.int64) for ids in enc["input_ids"]]
