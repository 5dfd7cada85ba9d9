"""Safe HTML for untrusted text: completions with their verbatim spans marked, document windows.

Corpus documents and model completions are untrusted: they may hold ``<script>``, event-handler
attributes, ``javascript:`` links, markdown, bidi override characters or 10k-character tokens.
Every piece of text that reaches the HTML here goes through :func:`escape_text` (``html.escape``
plus visible control characters), or :func:`escape_attr` inside an attribute value; the only
markup is the fixed tags written in this module.
Used by the app (``app/render.py``) and the offline HTML report (``core/reports/html.py``).
"""
from __future__ import annotations

import html
import re
from collections.abc import Sequence
from dataclasses import dataclass

from core.records import DocMatch, Span

SPAN_CLASS = "propme-span"  # every highlighted verbatim span: <mark class="propme-span" data-span-ix=...>
DOC_MATCH_CLASS = "propme-doc-match"  # the matched region inside a document window
ECHO_CLASS = "propme-echo"  # a span that also occurs in the completion's own prompt (Span.echo): grey, dashed
ECHO_STYLE = "background-color: rgba(150, 150, 150, 0.35); border-bottom: 2px dashed rgba(110, 110, 110, 0.9);"
OTHER_CLASS = "propme-other-doc"  # a span traced to other documents than the one in view (Side by side): outlined
OTHER_STYLE = "background-color: transparent; outline: 1px dashed rgba(90, 90, 90, 0.9); outline-offset: -1px;"
COLOR_BY = ("length", "count")

# Bidi embeddings/overrides/isolates and marks, C0/C1 controls except \n and \t, zero-width chars:
# shown as a visible code point so they cannot reorder or hide the text around them.
_INVISIBLE = re.compile("[\u0000-\u0008\u000b-\u001f\u007f-\u009f\u200b-\u200f\u202a-\u202e\u2060-\u2069\ufeff]")

# Layout that survives 10k-character unbroken tokens and keeps bidi text isolated.
TEXT_STYLE = (
    "white-space: pre-wrap; overflow-wrap: anywhere; word-break: break-word; unicode-bidi: isolate; "
    "max-width: 100%; max-height: 32rem; overflow-y: auto; font-family: ui-monospace, SFMono-Regular, Menlo, monospace; font-size: 0.9rem; "
    "line-height: 1.5; padding: 0.5rem; border: 1px solid rgba(128,128,128,0.35); border-radius: 0.3rem;"
)
# Every text box scrolls (max-height): the keyboard reaches it (tabindex 0) and a screen reader names it.
BOX_ATTRS = 'class="propme-text" tabindex="0" role="region" aria-label="{label}" style="{style}"'
MARK_COLOR = "255, 165, 0"  # orange; intensity is the alpha channel
DOC_MARK_STYLE = "background-color: rgba(80, 160, 255, 0.45); padding: 0 1px;"


@dataclass(frozen=True)
class Level:
    """One legend level: values >= lo get this opacity."""

    lo: int
    label: str
    alpha: float


LEVELS: dict[str, tuple[Level, ...]] = {
    "length": (Level(1, "1-10 tokens", 0.25), Level(11, "11-20 tokens", 0.45),
               Level(21, "21-50 tokens", 0.65), Level(51, "51+ tokens", 0.9)),
    "count": (Level(1, "1 occurrence", 0.25), Level(2, "2-10 occurrences", 0.45),
              Level(11, "11-100 occurrences", 0.65), Level(101, "101+ occurrences", 0.9)),
}


def escape_text(text: str) -> str:
    """HTML-escape ``text`` (quotes too) and make control/bidi/zero-width characters visible.

    >>> escape_text('<img src=x onerror="alert(1)">\\u202e')
    '&lt;img src=x onerror=&quot;alert(1)&quot;&gt;<span class="propme-ctl">[U+202E]</span>'
    """
    escaped = html.escape(text, quote=True)
    return _INVISIBLE.sub(lambda m: f'<span class="propme-ctl">[U+{ord(m.group()):04X}]</span>', escaped)


def escape_attr(text: str) -> str:
    """``text`` for a double-quoted attribute value: control/bidi/zero-width characters written as
    ``[U+XXXX]`` text (markup would end the attribute), then HTML-escaped, quotes too.

    >>> escape_attr('doc "a"\u202e<b>')
    'doc &quot;a&quot;[U+202E]&lt;b&gt;'
    """
    return html.escape(visible_controls(text), quote=True)


def visible_controls(text: str) -> str:
    """Control, bidi and zero-width characters written as ``[U+XXXX]`` text (no markup): the plain-text
    form of what :func:`escape_text` shows, used inside attributes and by the app's markdown escaping.

    >>> visible_controls("abc\\u202edcba\\x00")
    'abc[U+202E]dcba[U+0000]'
    """
    return _INVISIBLE.sub(lambda m: f"[U+{ord(m.group()):04X}]", text)


def level_for(value: int, color_by: str) -> Level:
    """The legend level of a span length or corpus count.

    >>> level_for(25, "length").label, level_for(1, "count").alpha
    ('21-50 tokens', 0.25)
    """
    if color_by not in LEVELS:
        raise ValueError(f"color_by must be one of {COLOR_BY}, got {color_by!r}")
    chosen = LEVELS[color_by][0]
    for level in LEVELS[color_by]:
        if value >= level.lo:
            chosen = level
    return chosen


def span_title(span: Span, max_doc_ids: int = 5) -> str:
    """Hover text of a span: length, index count and source document ids (unescaped)."""
    ids = list(dict.fromkeys(d.doc_id for d in span.docs))
    shown = ", ".join(ids[:max_doc_ids]) + (f" (+{len(ids) - max_doc_ids} more)" if len(ids) > max_doc_ids else "")
    echo = "; PROMPT ECHO: this text is also in the prompt" if span.echo else ""
    return f"{span.length} tokens; {span.count} occurrences in the index; docs: {shown or 'none retrieved'}{echo}"


def clipped_ranges(text_len: int, spans: Sequence[Span]) -> list[tuple[int, int, int]]:
    """(span index, char start, char end) in text order, clipped to the text and to earlier spans.

    Spans from ``merge="none"`` may overlap; the later one is shown from the earlier one's end.

    >>> s = [Span(0, 2, "ab", 0, 2, 1), Span(1, 3, "bc", 1, 3, 1), Span(9, 9, "", 50, 60, 1)]
    >>> clipped_ranges(4, s)
    [(0, 0, 2), (1, 2, 3)]
    """
    out: list[tuple[int, int, int]] = []
    pos = 0
    for ix in sorted(range(len(spans)), key=lambda i: (spans[i].char_start, spans[i].char_end)):
        start = max(pos, min(spans[ix].char_start, text_len))
        end = min(spans[ix].char_end, text_len)
        if end > start:
            out.append((ix, start, end))
            pos = end
    return out


def _box(label: str) -> str:
    """The opening tag of a text box named ``label`` (for screen readers) that the keyboard can scroll."""
    return f"<div {BOX_ATTRS.format(label=escape_attr(label), style=TEXT_STYLE)}>"


def highlight_html(text: str, spans: Sequence[Span], color_by: str = "length",
                   label: str = "completion with verbatim spans highlighted", other: frozenset[int] = frozenset()) -> str:
    """The completion as an HTML block with each verbatim span in ``<mark class="propme-span">``.

    Each mark carries ``data-span-ix`` (index into ``spans``), a ``title`` with length, count and
    source document ids, and an opacity from :data:`LEVELS`. A prompt-echo span (``Span.echo``) is
    grey with a dashed underline and also has class ``propme-echo``. A span whose index is in ``other`` (it
    traces to other documents than the one in view) is only outlined, with class ``propme-other-doc``.

    >>> highlight_html("a <b> c", [Span(0, 1, "<b>", 2, 5, 3)]).count('<mark class="propme-span"')
    1
    """
    parts = [_box(label)]
    pos = 0
    for ix, start, end in clipped_ranges(len(text), spans):
        span = spans[ix]
        level = level_for(span.length if color_by == "length" else span.count, color_by)
        parts.append(escape_text(text[pos:start]))
        cls, look = ((f"{SPAN_CLASS} {ECHO_CLASS}", ECHO_STYLE) if span.echo else
                     (f"{SPAN_CLASS} {OTHER_CLASS}", OTHER_STYLE) if ix in other else
                     (SPAN_CLASS, f"background-color: rgba({MARK_COLOR}, {level.alpha});"))
        parts.append(
            f'<mark class="{cls}" data-span-ix="{ix}" '
            f'style="{look} color: inherit; padding: 0 1px;" '
            f'title="{escape_attr(span_title(span) + ("; traced to other documents" if ix in other else ""))}">'
            f'{escape_text(text[start:end])}</mark>'
        )
        pos = end
    parts.append(escape_text(text[pos:]))
    parts.append("</div>")
    return "".join(parts)


def window_html(doc: DocMatch, label: str | None = None) -> str:
    """A retrieved document window with the matched region in ``<mark class="propme-doc-match">``."""
    text = doc.window_text
    start = max(0, min(doc.match_char_start, len(text)))
    end = max(start, min(doc.match_char_end, len(text)))
    return (
        f"{_box(label or f'training document {doc.doc_id}')}{escape_text(text[:start])}"
        f'<mark class="{DOC_MATCH_CLASS}" style="{DOC_MARK_STYLE}">{escape_text(text[start:end])}</mark>'
        f"{escape_text(text[end:])}</div>"
    )


def plain_html(text: str, label: str = "text") -> str:
    """Untrusted text as an escaped, wrapping HTML block (prefixes, true continuations)."""
    return f"{_box(label)}{escape_text(text)}</div>"


def legend_html(color_by: str = "length") -> str:
    """A small legend of the highlight opacities for ``color_by``."""
    items = "".join(
        f'<span style="background-color: rgba({MARK_COLOR}, {lv.alpha}); padding: 0 0.4rem; margin-right: 0.4rem;">'
        f"{html.escape(lv.label)}</span>"
        for lv in LEVELS[color_by]
    )
    what = "span length" if color_by == "length" else "corpus count of the span"
    echo = f'<span class="{ECHO_CLASS}" style="{ECHO_STYLE} padding: 0 0.4rem;">prompt echo (also in the prompt)</span>'
    return f'<div class="propme-legend" style="font-size: 0.85rem;">Highlight intensity by {what}: {items}{echo}</div>'
