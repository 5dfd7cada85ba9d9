"""Match tier of a retrieved document window (SPEC section 4, step 5).

``exact_full_raw``: the raw completion string is a substring of the window text.
``exact_full_normalized`` (mixed mode only): it is after :func:`normalize_mixed` of both.
``partial``: anything else.
"""
from __future__ import annotations

import re
import unicodedata

_SPACES = re.compile(r"[ \t]{2,}|\t")  # the runs of spaces and tabs that are not already one space
_MANY_NEWLINES = re.compile(r"\n{3,}")


def normalize_mixed(text: str) -> str:
    """NFKC, CRLF/CR -> LF, spaces and tabs collapsed, spaces around newlines stripped, 3+ newlines
    to 2, outer whitespace stripped (as the authors' ``_normalize_mixed_text``).

    >>> normalize_mixed("def f():\\r\\n\\t  return 1  \\n\\n\\n\\nx")
    'def f():\\nreturn 1\\n\\nx'
    >>> normalize_mixed("ﬁ  x")
    'fi x'
    """
    norm = unicodedata.normalize("NFKC", text)
    if "\r" in norm:
        norm = norm.replace("\r\n", "\n").replace("\r", "\n")
    if "\t" in norm or "  " in norm:
        norm = _SPACES.sub(" ", norm)
    # runs are single spaces now, so " *\n *" -> "\n" is: drop one space before and one after a newline
    norm = norm.replace(" \n", "\n").replace("\n ", "\n")
    if "\n\n\n" in norm:
        norm = _MANY_NEWLINES.sub("\n\n", norm)
    return norm.strip()


def may_hold_normalized(normalized_completion: str, window_text: str) -> bool:
    """False only when ``normalized_completion`` cannot be a substring of ``normalize_mixed(window_text)``:
    for an ASCII window (NFKC leaves it alone) normalizing only rewrites whitespace and never joins two
    non-space characters, so each word of the completion must already be in the raw window.

    >>> may_hold_normalized("a b", "xa\t\tb"), may_hold_normalized("ab c", "a b c"), may_hold_normalized("fi", "\ufb01")
    (True, False, True)
    """
    if not window_text.isascii():
        return True
    words = normalized_completion.split()
    return not words or max(words, key=len) in window_text


def match_tier(completion: str, window_text: str, mode: str, normalized_completion: str | None = None) -> str:
    """Tier of one window for one completion; ``normalized_completion`` avoids re-normalizing.

    >>> match_tier("a  b", "xx a  b yy", "text"), match_tier("a  b", "a b", "text"), match_tier("a  b", "a b", "mixed")
    ('exact_full_raw', 'partial', 'exact_full_normalized')
    >>> match_tier("", "anything", "mixed")
    'partial'
    """
    if completion and completion in window_text:
        return "exact_full_raw"
    if mode == "mixed":
        norm = normalize_mixed(completion) if normalized_completion is None else normalized_completion
        if norm and may_hold_normalized(norm, window_text) and norm in normalize_mixed(window_text):
            return "exact_full_normalized"
    return "partial"
