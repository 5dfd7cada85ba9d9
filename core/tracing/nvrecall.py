"""Near-verbatim recall (SPEC section 5): how much of a generation a retrieved document holds.

Word level, reference = the generation, candidate = the document window. The matcher
(:class:`difflib.SequenceMatcher`, default autojunk) runs once per pair in :func:`nv_blocks`;
its blocks are stored in :class:`core.records.NVResult`, so :func:`score_blocks` and
:func:`rescore` apply new thresholds (:class:`core.config.NVBlocksConfig`) without re-matching.

The matcher is ``cydifflib.SequenceMatcher`` when installed (a C port of difflib with identical
blocks, checked on the conformance set and by a hypothesis property test), else difflib's.

Reproduces the authors' published vectors (``conformance/propme_release``) exactly: see
``tests/test_conformance.py``.
"""
from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence
from dataclasses import replace
from decimal import ROUND_HALF_UP, Decimal
from difflib import SequenceMatcher
from functools import lru_cache

try:  # C port of difflib by the rapidfuzz author: identical blocks (tests/test_nvrecall.py), ~4x faster
    from cydifflib import SequenceMatcher as _FastMatcher
except ImportError:  # plain difflib gives the same results, slower
    _FastMatcher = None

from core.config import NVBlocksConfig
from core.records import NVResult, Span, TraceResult

Block = tuple[int, int, int]  # (ref_start, cand_start, size) of one difflib matching block

_REPLACEMENTS = (  # str.replace per character is far faster than str.translate with a dict
    ("\u2018", "'"), ("\u2019", "'"), ("\u201a", "'"), ("\u201b", "'"),  # curly and low single quotes
    ("\u201c", '"'), ("\u201d", '"'), ("\u201e", '"'), ("\u201f", '"'),  # curly and low double quotes
    ("\u00ab", '"'), ("\u00bb", '"'),  # guillemets
    ("\u2013", "\u2014"), ("\u2015", "\u2014"), ("\u2212", "\u2014"),  # en dash, horizontal bar, minus
    ("\u2026", "..."),  # ellipsis character
)
_SPACED_ELLIPSIS = re.compile(r"\.\s+\.\s+\.")
_GLUED_ELLIPSIS = re.compile(r"\.\.\.(?=[0-9A-Za-z])")
_EMPHASIS = re.compile(r"_([^_]+)_")


def round_half_up(value: float, places: int = 9) -> float:
    """Round half-up to ``places`` decimals via Decimal of ``str(value)`` (the authors' rule).

    >>> round_half_up(0.1234567885), round(0.1234567885, 9)
    (0.123456789, 0.123456788)
    >>> round_half_up(4 / 7)
    0.571428571
    """
    quant = Decimal(1).scaleb(-places)
    rounded = float(Decimal(str(float(value))).quantize(quant, rounding=ROUND_HALF_UP))
    return rounded if rounded != 0.0 else 0.0  # no -0.0


def normalize_text(text: str) -> str:
    """The normalized text before word splitting (NFKC, quotes, dashes, ellipses, emphasis, case).

    >>> normalize_text("\u201cWait\u2026\u201d \u2013 _she_ said. . .Then")
    '"wait..." \u2014 she said... then'
    """
    norm = unicodedata.normalize("NFKC", text)
    for src, dst in _REPLACEMENTS:
        if src in norm:
            norm = norm.replace(src, dst)
    norm = _SPACED_ELLIPSIS.sub("...", norm)
    norm = _GLUED_ELLIPSIS.sub("... ", norm)
    norm = _EMPHASIS.sub(r"\1", norm)
    return norm.lower()


def normalize_words(text: str) -> list[str]:
    """Words of ``text`` after :func:`normalize_text` (whitespace split).

    >>> normalize_words("D\u00f8de...alias  lus...var")
    ['d\u00f8de...', 'alias', 'lus...', 'var']
    """
    return normalize_text(text).split()


@lru_cache(maxsize=2048)
def _words(text: str) -> tuple[str, ...]:
    """Cached :func:`normalize_words` (a generation is compared with ~30 windows)."""
    return tuple(normalize_text(text).split())


def nv_blocks(reference: str, candidate: str) -> tuple[tuple[Block, ...], int, int]:
    """Matching blocks of the two word lists, plus (n_ref, n_cand) word counts.

    Blocks are those of ``SequenceMatcher(a=ref_words, b=cand_words)`` (default autojunk), the
    zero-size sentinel dropped.

    >>> nv_blocks("a b c d", "x a b y d")
    (((0, 1, 2), (3, 4, 1)), 4, 5)
    """
    ref = _words(reference)
    cand = _words(candidate)
    if not ref:
        return (), 0, len(cand)
    return matching_blocks(ref, cand), len(ref), len(cand)


def matching_blocks(ref: Sequence[str], cand: Sequence[str], fast: bool = True) -> tuple[Block, ...]:
    """``SequenceMatcher(a=ref, b=cand).get_matching_blocks()`` without the zero-size sentinel.

    ``fast`` uses cydifflib when installed (same blocks); ``fast=False`` forces plain difflib.

    >>> matching_blocks(["a", "b", "c"], ["b", "c"]) == matching_blocks(["a", "b", "c"], ["b", "c"], fast=False)
    True
    """
    matcher_cls = _FastMatcher if fast and _FastMatcher is not None else SequenceMatcher
    return tuple((m[0], m[1], m[2]) for m in matcher_cls(a=ref, b=cand).get_matching_blocks() if m[2] > 0)


def _merge(blocks: list[list[int]], gap: int, align: int) -> list[list[int]]:
    """One merge pass over [ref_start, cand_start, ref_end, cand_end, matched] blocks."""
    if not blocks:
        return []
    merged = [list(blocks[0])]
    for nxt in blocks[1:]:
        cur = merged[-1]
        gap_ref, gap_cand = nxt[0] - cur[2], nxt[1] - cur[3]
        if max(gap_ref, gap_cand) <= gap and abs(gap_ref - gap_cand) <= align:
            cur[2], cur[3] = nxt[2], nxt[3]
            cur[4] += nxt[4]  # gap words do not count as matched
        else:
            merged.append(list(nxt))
    return merged


@lru_cache(maxsize=4096)
def _thresholds(cfg: NVBlocksConfig, n: int) -> tuple[int, int, int, int, int, int]:
    return cfg.gap1(n), cfg.align1(n), cfg.l1(n), cfg.gap2(n), cfg.align2(n), cfg.l2(n)


def matched_words(blocks: Sequence[Block], n_ref: int, cfg: NVBlocksConfig = NVBlocksConfig()) -> int:
    """Matched reference words after the two merge-and-filter passes with thresholds for ``n_ref``.

    >>> matched_words([(0, 0, 3), (4, 4, 3)], 8)   # gap of 1 word merged; 6 >= l2 = 4
    6
    """
    if n_ref <= 0 or not blocks:
        return 0
    gap1, align1, l1, gap2, align2, l2 = _thresholds(cfg, n_ref)
    work = _merge([[a, b, a + s, b + s, s] for a, b, s in blocks], gap1, align1)
    work = _merge([blk for blk in work if blk[4] >= l1], gap2, align2)
    return sum(blk[4] for blk in work if blk[4] >= l2)


def score_blocks(blocks: Sequence[Block], n_ref: int, n_cand: int, cfg: NVBlocksConfig = NVBlocksConfig()) -> NVResult:
    """Score stored blocks under thresholds ``cfg`` (no re-matching).

    >>> r = score_blocks(((0, 10, 7),), 7, 40)
    >>> r.recall, r.matched, r.missing, r.additional
    (1.0, 7, 0, 33)
    """
    if not isinstance(blocks, tuple) or (blocks and not isinstance(blocks[0], tuple)):
        blocks = tuple(tuple(b) for b in blocks)  # e.g. lists read back from JSON
    matched = matched_words(blocks, n_ref, cfg)
    recall = round_half_up(matched / n_ref) if n_ref > 0 else 0.0
    return NVResult(recall=recall, matched=matched, reference=n_ref, candidate=n_cand, blocks=blocks)


def nv_recall(reference: str, candidate: str, cfg: NVBlocksConfig = NVBlocksConfig()) -> NVResult:
    """Near-verbatim recall of ``reference`` (a generation) inside ``candidate`` (a document window).

    >>> nv_recall("the cat sat on the mat today", "yesterday THE cat sat on the mat today!").recall
    0.857142857
    >>> nv_recall("", "anything").recall, nv_recall("three words only", "three words only").recall
    (0.0, 0.0)
    """
    blocks, n_ref, n_cand = nv_blocks(reference, candidate)
    return score_blocks(blocks, n_ref, n_cand, cfg)


def _rescore_span(span: Span, cfg: NVBlocksConfig) -> Span:
    docs = tuple(
        replace(d, nv=score_blocks(d.nv.blocks, d.nv.reference, d.nv.candidate, cfg)) for d in span.docs
    )
    return replace(span, docs=docs)


def rescore(traces: Sequence[TraceResult], cfg: NVBlocksConfig) -> list[TraceResult]:
    """New TraceResults whose documents' NVResults are re-scored from their stored blocks."""
    return [replace(t, spans=tuple(_rescore_span(s, cfg) for s in t.spans)) for t in traces]
