"""Which maximal spans may be traced (SPEC section 4, step 2), decided on the completion's text.

Spans are token ranges [start, end) of the completion in index tokens. Their text is read from the
completion itself through the tokenizer's character offsets, so the rules work for any tokenizer
(SentencePiece, byte-level BPE, WordPiece), not only for the Llama-2 ``▁`` marker the authors tested.

**Word boundary.** Token position ``p`` (0 <= p <= L) is a word boundary when ``p == 0``, ``p == L``,
or a whitespace character touches the boundary: with ``b`` the character offset where token ``p``
starts, ``text[b - 1]`` or ``text[b]`` is whitespace. This is what the authors' ``▁``-prefix test
means for SentencePiece tokens (a token that carries a leading space), extended to tokenizers whose
offsets trim the space, and to any whitespace (a span may start right after a newline). Punctuation
alone is not a boundary: a span ending before ``,`` is dropped, as in the authors' release.

A token that starts inside the same character as the token before it (byte-level pieces of one
multi-byte character, e.g. a combining mark) is never a boundary, except at character 0: a token
that starts at the text's first character follows only a phantom prefix (SentencePiece's dummy
``▁``, offsets (0, 1)) or pieces of that character, and counts as the start of the text.

**Inadmissible spans are dropped, not shrunk.** The maximal span of a start either passes the filter
or that start contributes nothing; a shorter prefix of it is never substituted (the authors'
``_keep_span`` filters the maximal spans, and SPEC says admissibility filters spans).
"""
from __future__ import annotations

from collections.abc import Sequence

SENTENCE_END_CHARS = frozenset("!.?\n")
MIXED_MIN_TOKENS = 4  # the authors' MIXED_MIN_SPAN_TOKENS


def boundary_offsets(offsets: Sequence[tuple[int, int]], text_len: int) -> list[int]:
    """Character offset of each token boundary 0..L (L + 1 values, non-decreasing).

    >>> boundary_offsets([(0, 3), (3, 7), (7, 9)], 9)
    [0, 3, 7, 9]
    """
    n = len(offsets)
    out = [0] * (n + 1)
    for p in range(1, n):
        out[p] = max(out[p - 1], offsets[p][0])
    if n:
        out[n] = max(out[n - 1], text_len)
    return out


def word_boundaries(text: str, bounds: Sequence[int]) -> list[bool]:
    """For each token boundary 0..L: is it a word boundary (see module docstring)?

    >>> word_boundaries("ab cd", [0, 1, 2, 5])
    [True, False, True, True]
    >>> word_boundaries("ab cd", [0, 1, 3, 5])
    [True, False, True, True]
    >>> word_boundaries("a \u0308x", [0, 2, 2, 3, 4])  # two byte pieces of the combining mark
    [True, True, False, False, True]
    """
    n = len(bounds) - 1
    out = []
    for p, b in enumerate(bounds):
        if p == 0 or p == n:
            out.append(True)
            continue
        if b == 0:  # only a phantom prefix (SentencePiece's dummy "▁") or the first character before it
            out.append(True)
            continue
        if b == bounds[p - 1]:  # shares its first character with the previous token
            out.append(False)
            continue
        before = b > 0 and text[b - 1].isspace()
        at = b < len(text) and text[b].isspace()
        out.append(before or at)
    return out


def crosses_sentence_end(span_text: str) -> bool:
    """True when the span text, minus its last character, holds one of ``! . ? \\n``.

    >>> crosses_sentence_end("som er fastsat i kontrakten."), crosses_sentence_end("Krig. Jlden")
    (False, True)
    """
    return any(ch in SENTENCE_END_CHARS for ch in span_text[:-1])


def text_admissible(span_text: str, start: int, end: int, n_tokens: int, is_boundary: Sequence[bool]) -> bool:
    """Prose rule: no sentence end inside, starts at a word boundary, ends at one unless end == L."""
    if end <= start or crosses_sentence_end(span_text):
        return False
    if not is_boundary[start]:
        return False
    return end == n_tokens or is_boundary[end]


def mixed_admissible(span_text: str, start: int, end: int, n_tokens: int, min_tokens: int = MIXED_MIN_TOKENS) -> bool:
    """Code/mixed rule: the whole generation is always kept; else >= min_tokens and a non-space char.

    >>> mixed_admissible("   ", 0, 3, 3), mixed_admissible("a b", 2, 5, 9), mixed_admissible("x = 1", 0, 4, 9)
    (True, False, True)
    """
    if end <= start:
        return False
    if start == 0 and end == n_tokens:
        return True
    return end - start >= min_tokens and any(not ch.isspace() for ch in span_text)


def text_rule_loss(raw: Sequence[tuple[int, int]], text: str, bounds: Sequence[int],
                   min_tokens: int = MIXED_MIN_TOKENS) -> tuple[int, int]:
    """(spans, tokens) that the paper's text rule rejects although the mixed rule keeps them.

    ``raw`` are the maximal spans (one per start). Spans: the mixed-admissible spans left after
    non-maximal suppression that fail :func:`text_admissible`. Tokens: completion tokens covered by a
    mixed-admissible span and by no text-admissible one. A verbatim copy of a line-wrapped licence
    scores (1, L) here: mixed mode keeps it whole, text mode cuts it at every line end.

    >>> text_rule_loss([(0, 6), (1, 6)], "one.\\ntwo three four", [0, 3, 4, 5, 8, 14, 19])  # the whole text
    (1, 6)
    >>> text_rule_loss([(3, 6)], "one.\\ntwo three four", [0, 3, 4, 5, 8, 14, 19])  # "two three four": 3 tokens
    (0, 0)
    """
    n = len(bounds) - 1
    is_b = word_boundaries(text, bounds)
    span_text = lambda s, e: text[bounds[s]:bounds[e]]
    mixed = [(s, e) for s, e in raw if mixed_admissible(span_text(s, e), s, e, n, min_tokens)]
    prose = [(s, e) for s, e in raw if text_admissible(span_text(s, e), s, e, n, is_b)]
    return rule_loss(mixed, prose, n)


def rule_loss(mixed: Sequence[tuple[int, int]], prose: Sequence[tuple[int, int]], n: int) -> tuple[int, int]:
    """:func:`text_rule_loss` from the mixed- and text-admissible maximal spans of ``n`` tokens."""
    if not mixed:
        return 0, 0
    prose_set = set(prose)
    kept, max_end = [], -1
    for s, e in sorted(mixed):  # non-maximal suppression (as core.tracing.trace)
        if e > max_end:
            kept.append((s, e))
            max_end = e
    covered_mixed, covered_text = bytearray(n + 1), bytearray(n + 1)
    for s, e in mixed:
        covered_mixed[s:e] = b"\1" * (e - s)
    for s, e in prose:
        covered_text[s:e] = b"\1" * (e - s)
    only_mixed = sum(m and not t for m, t in zip(covered_mixed, covered_text))
    return sum(se not in prose_set for se in kept), only_mixed
