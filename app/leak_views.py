"""Pure view models of the leak pages: tables, labels and deep links (no Streamlit here).

The Leaked documents table, the Corpus page's "completions that reproduced this document" list,
the Side by side page's query parameters and the picker labels.
"""
from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import pandas as pd

from core.records import GenKey, Span
from core.reports.leaks import DocHit, LeakedDoc, WindowGroup


def ids_text(ids: Sequence[str], shown: int = 6) -> str:
    """'a, b, c (+2 more)'.

    >>> ids_text(["a", "b", "c"], 2)
    'a, b (+1 more)'
    """
    return ", ".join(ids[:shown]) + (f" (+{len(ids) - shown} more)" if len(ids) > shown else "")


def group_heading(g: WindowGroup) -> str:
    """'8 copies: ids ...; tier partial, nv_recall 0.000'."""
    copies = f"{g.copies} identical copies" if g.copies > 1 else "1 document"
    return f"{copies}: {ids_text(g.doc_ids)}; tier {g.tier}, nv_recall {g.nv_recall:.3f}"


def metadata_text(meta: Mapping[str, object]) -> str:
    """'source: x; licence: y; kind: z; ...' with source, licence and kind first."""
    first = [k for k in ("source", "licence", "license", "kind") if k in meta]
    keys = first + sorted(k for k in meta if k not in first)
    return "; ".join(f"{k}: {meta[k]}" for k in keys) or "no metadata stored"


def leaked_frame(docs: Sequence[LeakedDoc], settings: Sequence[str]) -> pd.DataFrame:
    """One row per leaked document (copies together), per setting: completions, longest span, max nv_recall."""
    rows = []
    for d in docs:
        row: dict = {"document": d.doc_id, "doc_ix": d.doc_ix, "copies retrieved": len(d.doc_ixs),
                     "longest span": d.longest_span, "max nv_recall": round(d.max_nv_recall, 4)}
        for s in settings:
            leak = d.leak(s)
            row[f"{s}: completions"] = leak.completions if leak else 0
            row[f"{s}: longest span"] = leak.longest_span if leak else 0
            row[f"{s}: max nv_recall"] = round(leak.max_nv_recall, 4) if leak else 0.0
        rows.append(row)
    return pd.DataFrame(rows)


def hits_frame(hits: Sequence[DocHit]) -> pd.DataFrame:
    """Completions that reproduced text from a document, one row each."""
    return pd.DataFrame([{"setting": h.key.setting, "prompt": h.key.prompt_id, "sample": h.key.sample_index,
                          "longest span": h.longest_span, "max nv_recall": round(h.max_nv_recall, 4),
                          "full match": h.full_match, "spans": len(h.span_ixs)} for h in hits],
                        columns=["setting", "prompt", "sample", "longest span", "max nv_recall", "full match", "spans"])


def doc_label(d: LeakedDoc) -> str:
    settings = ", ".join(s for s, _ in d.per_setting)
    return (f"{d.doc_id} ({len(d.doc_ixs)} cop{'y' if len(d.doc_ixs) == 1 else 'ies'} retrieved): longest span "
            f"{d.longest_span}, nv_recall {d.max_nv_recall:.2f}, in {settings}")


def key_label(key: GenKey, longest: int, nv: float) -> str:
    return f"{key.setting} / {key.prompt_id} / sample {key.sample_index}: longest span {longest}, nv_recall {nv:.2f}"


def longest_ix(spans: Sequence[Span]) -> int:
    """Index of the longest span (the first of equals); 0 when there is none.

    >>> longest_ix([Span(0, 4, "a", 0, 1, 1), Span(5, 9, "b", 2, 3, 1), Span(9, 12, "c", 4, 5, 1)])
    0
    """
    return max(range(len(spans)), key=lambda i: (spans[i].length, -i)) if spans else 0


SIDES = ("left", "right")


def pane_key(params: Mapping[str, str], side: str) -> GenKey | None:
    """The completion a deep link names for one pane (``left_setting``, ``left_prompt``, ``left_sample``).

    >>> pane_key({"left_setting": "prefix", "left_prompt": "p-1", "left_sample": "2"}, "left")
    GenKey(setting='prefix', prompt_id='p-1', sample_index=2)
    >>> pane_key({"left_setting": "prefix", "left_prompt": "p-1", "left_sample": "x"}, "left") is None
    True
    """
    s, p = params.get(f"{side}_setting"), params.get(f"{side}_prompt")
    if s is None or p is None:
        return None
    try:
        return GenKey(s, p, int(params.get(f"{side}_sample", "0")))
    except ValueError:
        return None


def pane_params(keys: Mapping[str, GenKey]) -> dict[str, str]:
    """Query parameters naming both panes (inverse of :func:`pane_key`)."""
    out = {"view": "pair"}
    for side, k in keys.items():
        out.update({f"{side}_setting": k.setting, f"{side}_prompt": k.prompt_id, f"{side}_sample": str(k.sample_index)})
    return out


def int_param(params: Mapping[str, str], name: str) -> int | None:
    """``params[name]`` as a non-negative int, or None.

    >>> int_param({"doc": "12"}, "doc"), int_param({"doc": "-1"}, "doc"), int_param({}, "doc")
    (12, None, None)
    """
    try:
        v = int(params[name])
    except (KeyError, ValueError):
        return None
    return v if v >= 0 else None


def variant_label(phrase: str, spelling: str) -> str:
    """How a searched spelling relates to the phrase typed.

    >>> variant_label("GNU", "GNU"), variant_label("GNU", " GNU"), variant_label(" GNU", "GNU")
    ('as typed', 'with a leading space', 'without the leading space')
    """
    if spelling == phrase:
        return "as typed"
    return "with a leading space" if spelling.startswith(" ") else "without the leading space"


def spans_of_doc(spans: Sequence[Span], of_doc: Callable[[int], bool]) -> list[int]:
    """Indexes of ``spans`` that trace to the document ``of_doc`` accepts (one of its retrieved documents is it,
    or a copy): the spans the Leaked documents table counts for it (core.reports.leaks.leaked_documents).

    >>> from core.records import DocMatch, NVResult
    >>> d = lambda ix: DocMatch(ix, str(ix), "partial", "w", 0, 1, NVResult(0, 0, 0, 0))
    >>> spans = [Span(0, 4, "a", 4, 1, 1, (d(1),)), Span(5, 9, "b", 4, 1, 1, (d(2), d(3)))]
    >>> spans_of_doc(spans, lambda ix: ix == 3)
    [1]
    """
    return [i for i, s in enumerate(spans) if any(of_doc(d.doc_ix) for d in s.docs)]
