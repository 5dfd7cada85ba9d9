"""Per-row logits processing and token choice: repetition penalty, temperature, top-k, top-p.

Every operation is row-wise (no statistic is shared across the batch) and each row draws from its
own ``torch.Generator``, so a row's token depends only on its own logits and its own seed: the
result does not depend on which other prompts share the batch.
"""
from __future__ import annotations

import torch

from core.config import DecodingConfig


def apply_repetition_penalty(logits: torch.Tensor, seen: torch.Tensor | None, penalty: float) -> torch.Tensor:
    """CTRL-style penalty (as transformers): seen tokens' logits divided by penalty if > 0, else multiplied.

    ``logits`` float [B, V]; ``seen`` bool [B, V] (prompt and generated tokens of each row; may be
    None when ``penalty`` is 1.0, i.e. off).

    >>> apply_repetition_penalty(torch.tensor([[2.0, -2.0, 1.0]]), torch.tensor([[True, True, False]]), 2.0)
    tensor([[ 1., -4.,  1.]])
    """
    if penalty == 1.0:
        return logits
    penalized = torch.where(logits > 0, logits / penalty, logits * penalty)
    return torch.where(seen, penalized, logits)


def filter_top_k_top_p(logits: torch.Tensor, top_k: int, top_p: float) -> torch.Tensor:
    """Set logits outside each row's top-k and nucleus (smallest set with mass >= top_p) to -inf.

    The most likely token always survives.

    >>> filter_top_k_top_p(torch.log(torch.tensor([[0.5, 0.3, 0.15, 0.05]])), 0, 0.8).isinf().tolist()
    [[False, False, True, True]]
    >>> filter_top_k_top_p(torch.tensor([[1.0, 3.0, 2.0]]), 1, 1.0).isinf().tolist()
    [[True, False, True]]
    """
    if top_k and top_k < logits.shape[-1]:
        kth = torch.topk(logits, top_k, dim=-1).values[..., -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if top_p < 1.0:
        sorted_logits, order = torch.sort(logits, descending=True, dim=-1)
        cum = torch.softmax(sorted_logits, dim=-1).cumsum(dim=-1)
        drop_sorted = (cum - torch.softmax(sorted_logits, dim=-1)) >= top_p  # mass before this token
        drop_sorted[..., 0] = False
        drop = torch.zeros_like(drop_sorted).scatter(-1, order, drop_sorted)
        logits = logits.masked_fill(drop, float("-inf"))
    return logits


def choose_tokens(logits: torch.Tensor, seen: torch.Tensor | None, cfg: DecodingConfig,
                  generators: list[torch.Generator]) -> torch.Tensor:
    """Next token per row (long [B]): argmax when greedy, else a seeded draw per row."""
    logits = apply_repetition_penalty(logits.float(), seen, cfg.repetition_penalty)
    if cfg.greedy:
        return logits.argmax(dim=-1)
    logits = filter_top_k_top_p(logits / cfg.temperature, cfg.top_k, cfg.top_p)
    probs = torch.softmax(logits, dim=-1)
    return torch.cat([torch.multinomial(probs[i], 1, generator=g) for i, g in enumerate(generators)])
