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

