"""Degenerate repetition loops (SPEC section 6): flag, and optionally drop before scoring.

A completion stuck in a loop (``"00000000..."``, ``"- - - - ..."``) compresses extremely well
and is mostly not letters. Such text can still match the corpus (tables, rulers) and inflate
span metrics, so it is flagged and, with ``MetricsConfig.exclude_degenerate``, left out.
"""
from __future__ import annotations

import zlib
from collections.abc import Sequence

from core.config import MetricsConfig
from core.records import TraceResult


def zlib_ratio(text: str) -> float:
    """Compressed / raw size of the UTF-8 text (1.0 for empty text).

    >>> zlib_ratio("ab" * 500) < 0.05, zlib_ratio("") == 1.0
    (True, True)
    """
    raw = text.encode("utf-8")
    return len(zlib.compress(raw)) / len(raw) if raw else 1.0


def letter_share(text: str) -> float:
    """Share of characters that are letters (``str.isalpha``); 0.0 for empty text.

    >>> letter_share("ab12")
    0.5
    """
    return sum(ch.isalpha() for ch in text) / len(text) if text else 0.0


def is_degenerate(text: str, cfg: MetricsConfig = MetricsConfig()) -> bool:
    """True when ``text`` is a repetition loop: zlib ratio < ``cfg.loop_zlib_ratio`` and letter
    share < ``cfg.loop_letter_share``. Short or empty texts never qualify (they do not compress).

    >>> is_degenerate("1, " * 400), is_degenerate("the cat " * 400), is_degenerate("1, 2")
    (True, False, False)
    """
    return bool(text) and zlib_ratio(text) < cfg.loop_zlib_ratio and letter_share(text) < cfg.loop_letter_share


def degenerate_share(traces: Sequence[TraceResult], cfg: MetricsConfig = MetricsConfig()) -> float:
    """Share of traces whose completion is degenerate (0.0 for none).

    >>> from core.records import GenKey, TraceResult
    >>> ts = [TraceResult(GenKey("prefix", str(i)), c, 0) for i, c in enumerate(["-" * 900, "Hello."])]
    >>> degenerate_share(ts)
    0.5
    """
    return sum(is_degenerate(t.completion, cfg) for t in traces) / len(traces) if traces else 0.0


def drop_degenerate(traces: Sequence[TraceResult], cfg: MetricsConfig = MetricsConfig()) -> list[TraceResult]:
    """The traces to score: all of them, or the non-degenerate ones when ``cfg.exclude_degenerate``."""
    if not cfg.exclude_degenerate:
        return list(traces)
    return [t for t in traces if not is_degenerate(t.completion, cfg)]
