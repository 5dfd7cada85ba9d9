"""Following a leak: retrieved windows grouped and ranked, leaked documents ranked, completions paired.

Pure functions of traced generations (no index, no Streamlit): the Explore documents panel groups
identical windows, the Leaked documents page ranks training documents by how much they leaked per
setting, and the Side by side page pairs a document's prefix attack with the natural completions
that reproduced text from it.
"""
from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace

from core.config import CAPABILITY  # the attack setting; every other setting is natural use
from core.records import MATCH_TIERS, DocMatch, Generation, GenKey, TraceResult

TIER_RANK = {t: i for i, t in enumerate(MATCH_TIERS)}  # full raw match first


@dataclass(frozen=True)
class WindowGroup:
    """Identical retrieved windows (same text, same matched region), one per document copy."""

    window: DocMatch  # the copy with the lowest doc_ix
    doc_ids: tuple[str, ...]  # every copy's id, by doc_ix
    doc_ixs: tuple[int, ...]
    tier: str  # best tier among the copies
    nv_recall: float  # highest nv_recall among the copies

    @property
    def copies(self) -> int:
        return len(self.doc_ixs)


def window_rank(g: WindowGroup) -> tuple:
    """Sort key of a group: full-match tier first, then nv_recall, then number of copies, then doc_ix."""
    return (TIER_RANK.get(g.tier, len(TIER_RANK)), -g.nv_recall, -g.copies, g.doc_ixs[0])


def group_windows(docs: Iterable[DocMatch]) -> list[WindowGroup]:
    """Retrieved windows grouped by (window text, matched region), ranked by :func:`window_rank`.

    A document retrieved twice (two occurrences in the same window) counts once per group.

    >>> from core.records import NVResult
    >>> d = lambda ix, text: DocMatch(ix, f"d{ix}", "partial", text, 0, 1, NVResult(0.5, 1, 2, 2))
    >>> [(g.doc_ids, g.copies) for g in group_windows([d(3, "ab"), d(1, "ab"), d(2, "xy")])]
    [(('d1', 'd3'), 2), (('d2',), 1)]
    """
    acc: dict[tuple[str, int, int], list[DocMatch]] = {}
    for d in docs:
        acc.setdefault((d.window_text, d.match_char_start, d.match_char_end), []).append(d)
    groups = []
    for members in acc.values():
        first: dict[int, DocMatch] = {}
        for m in sorted(members, key=lambda m: m.doc_ix):
            first.setdefault(m.doc_ix, m)
        ordered = list(first.values())
        groups.append(WindowGroup(ordered[0], tuple(m.doc_id for m in ordered), tuple(m.doc_ix for m in ordered),
                                  min((m.tier for m in members), key=lambda t: TIER_RANK.get(t, len(TIER_RANK))),
                                  max(m.nv.recall for m in members)))
    return sorted(groups, key=window_rank)


def trim_window(doc: DocMatch, before: int = 120, after: int = 600) -> DocMatch:
    """``doc`` with its window cut to ``before`` characters ahead of the match and ``after`` behind it,
    so the matched region sits near the top of its box; a cut end is marked with an ellipsis.

    >>> from core.records import NVResult
    >>> t = trim_window(DocMatch(0, "d", "partial", "0123456789MATCH0123", 10, 15, NVResult(0, 0, 0, 0)), 3, 2)
    >>> t.window_text, t.window_text[t.match_char_start:t.match_char_end]
    ('… 789MATCH01 …', 'MATCH')
    """
    text = doc.window_text
    start = max(0, min(doc.match_char_start, len(text)))
    end = max(start, min(doc.match_char_end, len(text)))
    lo, hi = max(0, start - before), min(len(text), end + after)
    head = "… " if lo > 0 else ""
    tail = " …" if hi < len(text) else ""
    return replace(doc, window_text=head + text[lo:hi] + tail, match_char_start=len(head) + start - lo,
                   match_char_end=len(head) + end - lo)


@dataclass(frozen=True)
class DocHit:
    """One completion that reproduced text from a document (or from any copy of it)."""

    key: GenKey
    span_ixs: tuple[int, ...]  # indexes of the completion's spans that retrieved the document
    longest_span: int  # longest of those spans, in tokens
    max_nv_recall: float  # best nv_recall of the document's windows for this completion
    full_match: bool  # a window holds the whole completion verbatim


def hit_rank(h: DocHit) -> tuple:
    return (-h.longest_span, -h.max_nv_recall, h.key)


def doc_hits(traces: Iterable[TraceResult], doc_ixs: Iterable[int]) -> list[DocHit]:
    """Completions whose traced spans retrieved any of ``doc_ixs``, longest span first.

    >>> from core.records import NVResult, Span
    >>> d = DocMatch(7, "d7", "partial", "w", 0, 1, NVResult(0.4, 1, 2, 2))
    >>> t = TraceResult(GenKey("generic", "p"), "c", 9, (Span(0, 2, "a", 0, 1, 1), Span(3, 8, "b", 2, 3, 1, (d,))))
    >>> doc_hits([t], [7])
    [DocHit(key=GenKey(setting='generic', prompt_id='p', sample_index=0), span_ixs=(1,), longest_span=5, max_nv_recall=0.4, full_match=False)]
    """
    wanted = set(doc_ixs)
    hits = []
    for t in traces:
        ixs = tuple(i for i, s in enumerate(t.spans) if any(d.doc_ix in wanted for d in s.docs))
        if not ixs:
            continue
        mine = [d for i in ixs for d in t.spans[i].docs if d.doc_ix in wanted]
        hits.append(DocHit(t.key, ixs, max(t.spans[i].length for i in ixs), max(d.nv.recall for d in mine),
                           any(d.tier == "exact_full_raw" for d in mine)))
    return sorted(hits, key=hit_rank)


@dataclass(frozen=True)
class SettingLeak:
    """How much of one document one setting reproduced."""

    completions: int  # completions with a span that retrieved it
    longest_span: int  # longest such span, in tokens
    max_nv_recall: float  # best nv_recall of its windows


@dataclass(frozen=True)
class LeakedDoc:
    """A training document (all its identical copies together) that some completion reproduced text from."""

    doc_ixs: tuple[int, ...]  # the copies retrieved, by doc_ix (the first names the document)
    doc_ids: tuple[str, ...]
    per_setting: tuple[tuple[str, SettingLeak], ...]  # settings that reproduced it, in the order given

    @property
    def doc_ix(self) -> int:
        return self.doc_ixs[0]

    @property
    def doc_id(self) -> str:
        return self.doc_ids[0]

    def leak(self, setting: str) -> SettingLeak | None:
        return dict(self.per_setting).get(setting)

    @property
    def longest_span(self) -> int:
        return max(s.longest_span for _, s in self.per_setting)

    @property
    def max_nv_recall(self) -> float:
        return max(s.max_nv_recall for _, s in self.per_setting)

    @property
    def completions(self) -> int:
        return sum(s.completions for _, s in self.per_setting)


def leak_rank(d: LeakedDoc) -> tuple:
    """Most leaked first: longest span, then best nv_recall, then completions, then doc_ix."""
    return (-d.longest_span, -d.max_nv_recall, -d.completions, d.doc_ix)


def leaked_documents(traces: Sequence[TraceResult], settings: Sequence[str],
                     same_text: Callable[[int], Hashable] | Mapping[int, Hashable] | None = None) -> list[LeakedDoc]:
    """Every retrieved training document with how much each setting reproduced of it, most leaked first.

    ``same_text`` maps a doc_ix to a key of its content (e.g. a hash of its tokens): documents with
    equal keys are copies of one text and count as one document. None: every doc_ix on its own.
    """
    key_of = (same_text.__getitem__ if isinstance(same_text, Mapping) else same_text) or (lambda ix: ix)
    members: dict[Hashable, dict[int, str]] = {}
    # per (document key, setting): completions, longest span, best nv_recall
    stats: dict[Hashable, dict[str, list]] = {}
    for t in traces:
        seen: set[Hashable] = set()
        for s in t.spans:
            for d in s.docs:
                k = key_of(d.doc_ix)
                members.setdefault(k, {})[d.doc_ix] = d.doc_id
                row = stats.setdefault(k, {}).setdefault(t.key.setting, [0, 0, 0.0])
                if k not in seen:
                    row[0] += 1
                row[1] = max(row[1], s.length)
                row[2] = max(row[2], d.nv.recall)
                seen.add(k)
    order = {s: i for i, s in enumerate(settings)}
    out = []
    for k, ids in members.items():
        per = sorted(stats[k].items(), key=lambda kv: (order.get(kv[0], len(order)), kv[0]))
        out.append(LeakedDoc(tuple(sorted(ids)), tuple(ids[i] for i in sorted(ids)),
                             tuple((s, SettingLeak(*v)) for s, v in per)))
    return sorted(out, key=leak_rank)


def rank_for(docs: Iterable[LeakedDoc], setting: str | None) -> list[LeakedDoc]:
    """``docs`` that ``setting`` reproduced, most leaked by that setting first (None: all, :func:`leak_rank`).

    >>> a = LeakedDoc((1,), ("a",), (("prefix", SettingLeak(1, 90, 0.9)), ("generic", SettingLeak(2, 10, 0.1))))
    >>> b = LeakedDoc((2,), ("b",), (("generic", SettingLeak(1, 30, 0.2)),))
    >>> [d.doc_id for d in rank_for([a, b], "generic")], [d.doc_id for d in rank_for([b, a], None)]
    (['b', 'a'], ['a', 'b'])
    """
    if setting is None:
        return sorted(docs, key=leak_rank)
    mine = [(d, d.leak(setting)) for d in docs if d.leak(setting) is not None]
    return [d for d, s in sorted(mine, key=lambda p: (-p[1].longest_span, -p[1].max_nv_recall,
                                                       -p[1].completions, p[0].doc_ix))]


@dataclass(frozen=True)
class DocumentPairing:
    """A leaked document's prefix attacks beside the natural completions that reproduced text from it."""

    doc: LeakedDoc
    attacks: tuple[GenKey, ...]  # prefix prompts cut from the document (any copy), then other prefix hits
    natural: tuple[DocHit, ...]  # natural-use completions that retrieved the document, longest span first


def pair_by_document(doc: LeakedDoc, generations: Iterable[Generation], traces: Sequence[TraceResult],
                     same_doc: Callable[[int], bool] | None = None) -> DocumentPairing:
    """The prefix attacks of ``doc`` and every natural completion that reproduced text from it.

    An attack is a prefix prompt whose source document is one of ``doc``'s copies (``same_doc``
    decides for doc_ixs outside ``doc.doc_ixs``: a copy nobody retrieved); prefix completions that
    merely retrieved the document follow them.
    """
    mine = set(doc.doc_ixs)
    is_copy = (lambda ix: ix in mine or bool(same_doc and same_doc(ix)))
    sources = sorted(g.key for g in generations if g.key.setting == CAPABILITY
                     and g.prompt.source_doc_ix is not None and is_copy(g.prompt.source_doc_ix))
    hits = doc_hits(traces, doc.doc_ixs)
    extra = [h.key for h in hits if h.key.setting == CAPABILITY and h.key not in set(sources)]
    return DocumentPairing(doc, tuple(sources) + tuple(extra),
                           tuple(h for h in hits if h.key.setting != CAPABILITY))


def best_completion(traces: Iterable[TraceResult], natural: bool) -> GenKey | None:
    """The completion with the longest span among prefix (``natural`` False) or natural completions
    (ties: higher nv_recall, then key order), or None when there is none."""
    pool = [t for t in traces if (t.key.setting != CAPABILITY) == natural]
    if not pool:
        return None
    return min(pool, key=lambda t: (-t.longest_span, -t.max_nv_recall, t.key)).key


def text_ranges(text: str, needles: Iterable[str]) -> list[tuple[int, int]]:
    """Every occurrence of every non-empty needle in ``text`` (overlapping ones too), as merged,
    sorted (start, end) character ranges.

    >>> text_ranges("abcabc xx", ["bc", "cab", "x", ""])
    [(1, 6), (7, 9)]
    """
    raw = []
    for n in dict.fromkeys(needles):
        if not n:
            continue
        at = text.find(n)
        while at >= 0:
            raw.append((at, at + len(n)))
            at = text.find(n, at + 1)
    merged: list[tuple[int, int]] = []
    for s, e in sorted(raw):
        if merged and s <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], e))
        else:
            merged.append((s, e))
    return merged


def doc_text_key(index, doc_ix: int) -> str:
    """A key of a document's content (hash of its tokens in ``index``): identical copies share it."""
    import hashlib

    import numpy as np

    return hashlib.sha1(np.asarray(index.doc_tokens(doc_ix), dtype=np.int64).tobytes()).hexdigest()
