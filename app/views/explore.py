"""The Explore page's view model: which completions pass the filters, their labels, tables and deep links.

No Streamlit here (tested without a browser).
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import pandas as pd

from core.records import DocMatch, Generation, GenKey, NVResult, TraceResult
from core.tracing.windows import decode_window


@dataclass(frozen=True)
class ExploreFilter:
    """What the Explore page shows; every field narrows the list."""

    setting: str | None = None  # None: all settings
    domain: str | None = None  # None: all domains
    min_span: int = 0  # longest final span at least this many tokens
    min_nv: float = 0.0  # best nv_recall of a retrieved document at least this
    full_match_only: bool = False  # only completions found verbatim in full in a document
    search: str = ""  # case-insensitive substring of the completion


@dataclass(frozen=True)
class ExampleRow:
    key: GenKey
    domain: str | None
    longest_span: int
    max_nv: float
    full_match: bool
    n_spans: int
    completion: str


def example_rows(generations: Sequence[Generation], traces: Sequence[TraceResult]) -> list[ExampleRow]:
    """One row per traced generation."""
    by_key = {t.key: t for t in traces}
    rows = []
    for g in generations:
        t = by_key.get(g.key)
        if t is None:
            continue
        rows.append(ExampleRow(g.key, g.prompt.domain, t.longest_span,
                               t.max_nv_recall, t.full_match, len(t.spans),
                               g.completion))
    return rows


def filter_examples(rows: Sequence[ExampleRow], f: ExploreFilter) -> list[ExampleRow]:
    """Rows passing ``f``, longest span first (ties: higher nv_recall, then key order)."""
    needle = f.search.casefold()
    kept = [r for r in rows
            if (f.setting is None or r.key.setting == f.setting)
            and (f.domain is None or r.domain == f.domain)
            and r.longest_span >= f.min_span and r.max_nv >= f.min_nv
            and (r.full_match or not f.full_match_only)
            and (not needle or needle in r.completion.casefold())]
    return sorted(kept, key=lambda r: (-r.longest_span, -r.max_nv, r.key))


def _n(count: int, noun: str) -> str:
    return f"{count:,} {noun}{'' if count == 1 else 's'}"


def span_label(i: int, span) -> str:
    """Picker label of a final span.

    >>> from core.records import Span
    >>> span_label(0, Span(0, 213, "x", 0, 1, 1))
    'span 0: 213 tokens, 1 occurrence in the index, 0 documents retrieved'
    """
    return (f"span {i}: {_n(span.length, 'token')}, {_n(span.count, 'occurrence')} in the index, "
            f"{_n(len(span.docs), 'document')} retrieved")


def example_label(r: ExampleRow) -> str:
    return (f"{r.key.setting} / {r.key.prompt_id} / sample {r.key.sample_index}: longest span "
            f"{r.longest_span}, nv_recall {r.max_nv:.2f}{', full match' if r.full_match else ''}")


def examples_frame(rows: Sequence[ExampleRow]) -> pd.DataFrame:
    return pd.DataFrame([{"setting": r.key.setting, "prompt": r.key.prompt_id, "sample": r.key.sample_index,
                          "domain": r.domain, "longest span": r.longest_span, "max nv_recall": r.max_nv,
                          "full match": r.full_match, "spans": r.n_spans,
                          "completion": r.completion[:160]} for r in rows])


def key_from_params(params: Mapping[str, str]) -> GenKey | None:
    """The example a deep link names (``?setting=..&prompt=..&sample=..``), or None."""
    if "setting" not in params or "prompt" not in params:
        return None
    try:
        sample = int(params.get("sample", "0"))
    except ValueError:
        return None
    return GenKey(params["setting"], params["prompt"], sample)


def params_for(key: GenKey) -> dict[str, str]:
    return {"setting": key.setting, "prompt": key.prompt_id, "sample": str(key.sample_index)}


def decoded_window(tok, ids: Sequence[int], offset: int, match_len: int) -> tuple[str, int, int]:
    """Decode a document window; (text, char start, char end) of the match inside it (as tracing does)."""
    return decode_window(tok, ids, offset, match_len)


def window_match(occ, text: str, start: int, end: int):
    """A DocMatch-shaped value for showing a phrase-search hit with :func:`core.reports.highlight.window_html`."""
    return DocMatch(occ.doc_ix, occ.doc_id, "partial", text, start, end, NVResult(0.0, 0, 0, 0))
