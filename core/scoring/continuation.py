"""Prefix prompts only: how close a completion is to the document's true continuation (SPEC 6).

- *Discoverable extraction* (Carlini et al.): the first N completion tokens equal the true next
  N tokens of the source document (N = ``MetricsConfig.discoverable_tokens``).
- *Approximate memorization* (HELM; Ippolito et al.): over the same first N tokens, the longest
  common prefix (tokens), the normalized edit similarity and the LCS ratio (LCS length / N),
  all computed with ``rapidfuzz.distance`` on model-tokenizer ids.

Only generations whose prompt carries ``true_continuation_ids`` are eligible; a completion
shorter than N tokens can score at most its own length. Means are over eligible generations
(0.0 when there are none).
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from rapidfuzz.distance import LCSseq, Levenshtein, Prefix

from core.records import Generation


@dataclass(frozen=True)
class ContinuationScore:
    lcp: int  # longest common prefix with the true continuation, in tokens
    edit_sim: float  # 1 - Levenshtein distance / max(len) over the first N tokens
    lcs_ratio: float  # longest common subsequence / N (N = true continuation tokens compared)
    discoverable: bool  # the first N tokens reproduce the true continuation exactly


def continuation_score(gen: Generation, n_tokens: int = 50) -> ContinuationScore | None:
    """Closeness of ``gen`` to its prompt's true continuation, or None when not eligible.

    >>> from core.records import GenKey, Generation, Prompt
    >>> p = Prompt("prefix", "0", "x", true_continuation_ids=(1, 2, 3, 4))
    >>> continuation_score(Generation(GenKey("prefix", "0"), p, "", completion_ids=(1, 2, 9, 4, 5)), 4)
    ContinuationScore(lcp=2, edit_sim=0.75, lcs_ratio=0.75, discoverable=False)
    """
    truth = gen.prompt.true_continuation_ids
    if not truth:
        return None
    ref = tuple(truth[:n_tokens])
    cand = tuple(gen.completion_ids[:n_tokens])
    lcp = int(Prefix.similarity(cand, ref))
    return ContinuationScore(
        lcp=lcp,
        edit_sim=float(Levenshtein.normalized_similarity(cand, ref)),
        lcs_ratio=LCSseq.similarity(cand, ref) / len(ref),
        discoverable=len(ref) == n_tokens and cand == ref,
    )


def continuation_metrics(generations: Sequence[Generation], n_tokens: int = 50) -> dict[str, float]:
    """Means over eligible generations: discoverable, approx_lcp, approx_edit_sim, approx_lcs.

    >>> from core.records import GenKey, Generation, Prompt
    >>> p = Prompt("prefix", "0", "x", true_continuation_ids=(1, 2, 3))
    >>> gs = [Generation(GenKey("prefix", "0", i), p, "", completion_ids=c) for i, c in enumerate([(1, 2, 3), (7, 8, 9)])]
    >>> continuation_metrics(gs, 3)
    {'discoverable': 0.5, 'approx_lcp': 1.5, 'approx_edit_sim': 0.5, 'approx_lcs': 0.5, 'n_continuation': 2}
    """
    scores = [s for s in (continuation_score(g, n_tokens) for g in generations) if s is not None]
    n = len(scores)
    if n == 0:
        return {"discoverable": 0.0, "approx_lcp": 0.0, "approx_edit_sim": 0.0, "approx_lcs": 0.0, "n_continuation": 0}
    return {
        "discoverable": sum(s.discoverable for s in scores) / n,
        "approx_lcp": sum(s.lcp for s in scores) / n,
        "approx_edit_sim": sum(s.edit_sim for s in scores) / n,
        "approx_lcs": sum(s.lcs_ratio for s in scores) / n,
        "n_continuation": n,
    }
