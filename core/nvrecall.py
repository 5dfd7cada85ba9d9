"""Near-verbatim recall (SPEC section 5): how much of a generation a retrieved document holds.

Word level, reference = the generation, candidate = the document window. The matcher
(:class:`difflib.SequenceMatcher`, default autojunk) runs once per pair in :func:`nv_blocks`;
its blocks are stored in :class:`core.records.NVResult`, so :func:`score_blocks` and
:func:`rescore` apply new thresholds (:class:`core.config.NVRConfig`) without re-matching.

Reproduces the authors' published vectors (``conformance/propme_release``) exactly: see
``tests/test_conformance.py``.
"""
from __future__ import annotations

import re
import unicodedata
from dataclasses import replace
from decimal import ROUND_HALF_UP, Decimal
from difflib import SequenceMatcher
from typing import Sequence

from core.config import NVRConfig
from core.records import NVResult, Span, TraceResult

Block = tuple[int, int, int]  # (ref_start, cand_start, size) of one difflib matching block

_TRANSLATE = str.maketrans({
    "\u2018": "'", "\u2019": "'", "\u201a": "'", "\u201b": "'",  # curly and low single quotes
    "\u201c": '"', "\u201d": '"', "\u201e": '"', "\u201f": '"',  # curly and low double quotes
    "\u00ab": '"', "\u00bb": '"',  # guillemets
    "\u2013": "\u2014", "\u2015": "\u2014", "\u2212": "\u2014",  # en dash, horizontal bar, minus
    "\u2026": "...",  # ellipsis character
})
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
    norm = unicodedata.normalize("NFKC", text).translate(_TRANSLATE)
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


def nv_blocks(reference: str, candidate: str) -> tuple[tuple[Block, ...], int, int]:
    """Matching blocks of the two word lists, plus (n_ref, n_cand) word counts.

    Blocks are those of ``SequenceMatcher(a=ref_words, b=cand_words)`` (default autojunk), the
    zero-size sentinel dropped.

    >>> nv_blocks("a b c d", "x a b y d")
    (((0, 1, 2), (3, 4, 1)), 4, 5)
    """
    ref = normalize_words(reference)
    cand = normalize_words(candidate)
    if not ref:
        return (), 0, len(cand)
    matcher = SequenceMatcher(a=ref, b=cand)
    blocks = tuple((m.a, m.b, m.size) for m in matcher.get_matching_blocks() if m.size > 0)
    return blocks, len(ref), len(cand)


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


def matched_words(blocks: Sequence[Block], n_ref: int, cfg: NVRConfig = NVRConfig()) -> int:
    """Matched reference words after the two merge-and-filter passes with thresholds for ``n_ref``.

    >>> matched_words([(0, 0, 3), (4, 4, 3)], 8)   # gap of 1 word merged; 6 >= l2 = 4
    6
    """
    if n_ref <= 0:
        return 0
    work = [[a, b, a + s, b + s, s] for a, b, s in blocks]
    work = _merge(work, cfg.gap1(n_ref), cfg.align1(n_ref))
    l1 = cfg.l1(n_ref)
    work = [blk for blk in work if blk[4] >= l1]
    work = _merge(work, cfg.gap2(n_ref), cfg.align2(n_ref))
    l2 = cfg.l2(n_ref)
    return sum(blk[4] for blk in work if blk[4] >= l2)


def score_blocks(blocks: Sequence[Block], n_ref: int, n_cand: int, cfg: NVRConfig = NVRConfig()) -> NVResult:
    """Score stored blocks under thresholds ``cfg`` (no re-matching).

    >>> r = score_blocks(((0, 10, 7),), 7, 40)
    >>> r.recall, r.matched, r.missing, r.additional
    (1.0, 7, 0, 33)
    """
    blocks = tuple(tuple(b) for b in blocks)
    matched = matched_words(blocks, n_ref, cfg)
    recall = round_half_up(matched / n_ref) if n_ref > 0 else 0.0
    return NVResult(recall=recall, matched=matched, reference=n_ref, candidate=n_cand, blocks=blocks)


def nv_recall(reference: str, candidate: str, cfg: NVRConfig = NVRConfig()) -> NVResult:
    """Near-verbatim recall of ``reference`` (a generation) inside ``candidate`` (a document window).

    >>> nv_recall("the cat sat on the mat today", "yesterday THE cat sat on the mat today!").recall
    0.857142857
    >>> nv_recall("", "anything").recall, nv_recall("three words only", "three words only").recall
    (0.0, 0.0)
    """
    blocks, n_ref, n_cand = nv_blocks(reference, candidate)
    return score_blocks(blocks, n_ref, n_cand, cfg)


def _rescore_span(span: Span, cfg: NVRConfig) -> Span:
    docs = tuple(
        replace(d, nv=score_blocks(d.nv.blocks, d.nv.reference, d.nv.candidate, cfg)) for d in span.docs
    )
    return replace(span, docs=docs)


def rescore(traces: Sequence[TraceResult], cfg: NVRConfig) -> list[TraceResult]:
    """New TraceResults whose documents' NVResults are re-scored from their stored blocks."""
    return [replace(t, spans=tuple(_rescore_span(s, cfg) for s in t.spans)) for t in traces]
