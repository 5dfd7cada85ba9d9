"""Tracing's faster helpers equal the plain definitions they replace (hypothesis property tests).

Each oracle below is the straightforward version the helper had before it was made faster: the three
regular expressions of ``normalize_mixed``, normalizing every window before the tier check, the
position sets of ``text_rule_loss`` and sorting every anchor candidate by its full key.
"""
from __future__ import annotations

import math
import re
import unicodedata

from hypothesis import given, settings
from hypothesis import strategies as st

from core.tracing.admissibility import mixed_admissible, text_admissible, text_rule_loss, word_boundaries
from core.tracing.tiers import match_tier, may_hold_normalized, normalize_mixed
from core.tracing.trace import anchor_spans, non_maximal_suppression

TEXT = st.lists(st.sampled_from(list("ab. \t\r\n\x0b") + ["\u00e9", "\ufb01", "e\u0301", "\u3000", "\u2003"]),
                max_size=40).map("".join)


def normalize_reference(text: str) -> str:
    norm = unicodedata.normalize("NFKC", text)
    norm = norm.replace("\r\n", "\n").replace("\r", "\n")
    norm = re.sub(r"[ \t]+", " ", norm)
    norm = re.sub(r" *\n *", "\n", norm)
    norm = re.sub(r"\n{3,}", "\n\n", norm)
    return norm.strip()


def tier_reference(completion: str, window: str, mode: str) -> str:
    if completion and completion in window:
        return "exact_full_raw"
    if mode == "mixed":
        norm = normalize_reference(completion)
        if norm and norm in normalize_reference(window):
            return "exact_full_normalized"
    return "partial"


@settings(max_examples=400, deadline=None)
@given(TEXT)
def test_normalize_mixed_equals_the_three_regexes(text):
    assert normalize_mixed(text) == normalize_reference(text)


@settings(max_examples=400, deadline=None)
@given(TEXT, TEXT, st.sampled_from(["mixed", "text"]))
def test_match_tier_equals_normalizing_every_window(completion, window, mode):
    assert match_tier(completion, window, mode) == tier_reference(completion, window, mode)
    norm = normalize_mixed(completion)
    if norm and not may_hold_normalized(norm, window):  # the pre-check never rejects a real match
        assert norm not in normalize_mixed(window)


@settings(max_examples=100, deadline=None)
@given(st.lists(st.sampled_from(["one", "two", ".", " ", "\n", "a", "b."]), min_size=2, max_size=14), st.data())
def test_text_rule_loss_equals_position_sets(pieces, data):
    text = "".join(pieces)
    bounds = [0]
    for p in pieces:
        bounds.append(bounds[-1] + len(p))
    n = len(pieces)
    raw = []
    for s in range(n - 1):
        if data.draw(st.booleans()):
            raw.append((s, data.draw(st.integers(s + 1, n))))
    is_b = word_boundaries(text, bounds)
    span_text = lambda s, e: text[bounds[s]:bounds[e]]
    mixed = [(s, e) for s, e in raw if mixed_admissible(span_text(s, e), s, e, n, 2)]
    prose = {(s, e) for s, e in raw if text_admissible(span_text(s, e), s, e, n, is_b)}
    want = (0, 0)
    if mixed:
        kept = non_maximal_suppression(mixed)
        covered = {p for s, e in mixed for p in range(s, e)} - {p for s, e in prose for p in range(s, e)}
        want = (sum(se not in prose for se in kept), len(covered))
    assert text_rule_loss(raw, text, bounds, 2) == want


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 20), st.integers(1, 12)), max_size=25),
       st.lists(st.sampled_from([-1.0, -2.5, -0.1, -7.25, -3.0]), min_size=33, max_size=33),
       st.integers(1, 6), st.integers(1, 5))
def test_anchor_spans_equal_sorting_every_candidate(starts, log_probs, n, min_tokens):
    raw = [(s, s + k) for s, k in starts]
    cands = sorted({(s, e) for s, e in raw if e - s >= min_tokens},
                   key=lambda se: (-(se[1] - se[0]), math.fsum(log_probs[se[0]:se[1]]), se[0]))
    assert anchor_spans(raw, log_probs, n, min_tokens) == cands[:n]
