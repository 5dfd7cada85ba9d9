"""Highlight HTML (core/reports/highlight.py, shown by app/render.py): hostile text stays text.

The oracle is Python's own HTML parser: whatever text and spans go in, the parsed output holds
only our fixed tags and attributes, and its text content is exactly the input text.
"""
from __future__ import annotations

import re
from html.parser import HTMLParser

from hypothesis import given, settings
from hypothesis import strategies as st

from core.records import DocMatch, NVResult, Span
from core.reports import highlight
from tests.fixtures_app import HOSTILE

ALLOWED_TAGS = {"div", "mark", "span"}
ALLOWED_ATTRS = {"tabindex", "role", "aria-label", "class", "style", "title", "data-span-ix"}
HOSTILE_STRINGS = [
    "<script>window.__pwned=1</script>",
    '<img src=x onerror="window.__pwned=1">',
    '<a href="javascript:alert(1)">x</a>',
    "[click](javascript:alert(1)) **bold** __u__ `code` # head",
    "abc\u202edcba\u202c \u2066iso\u2069 zero\u200bwidth \x00\x07\x1b[31m",
    '"><svg/onload=alert(1)>',
    "&lt;already-escaped&gt; &amp; &#x3C;script&#x3E;",
    HOSTILE,
]


class Collector(HTMLParser):
    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict]] = []
        self.text: list[str] = []
        self.marks: list[str] = []  # text of each propme-span mark
        self.mark_ixs: list[int] = []  # data-span-ix of each propme-span mark
        self._in_mark = False
        self._in_ctl = False

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        self.tags.append((tag, a))
        if tag == "mark" and a.get("class") == "propme-span":
            self._in_mark = True
            self.marks.append("")
            self.mark_ixs.append(int(a["data-span-ix"]))
        self._in_ctl = tag == "span" and a.get("class") == "propme-ctl"

    def handle_endtag(self, tag):
        if tag == "mark":
            self._in_mark = False
        if tag == "span":
            self._in_ctl = False

    def handle_data(self, data):
        self.text.append(data)
        if self._in_mark:
            self.marks[-1] += data


def parse(html_text: str) -> Collector:
    c = Collector()
    c.feed(html_text)
    c.close()
    return c


def visible(text: str) -> str:
    """The text as rendered: invisible/bidi/control characters shown as [U+XXXX]."""
    return highlight._INVISIBLE.sub(lambda m: f"[U+{ord(m.group()):04X}]", text)


def expected_marks(text: str, spans) -> list[tuple[int, str]]:
    """Brute-force oracle of what a highlight shows: (span index, visible mark text) in text order.

    Every character is drawn once; a character inside several spans belongs to the first of them in
    (char_start, char_end) order (core keeps strictly overlapping spans apart when their union does
    not occur in the index, so a later span is shown from where the earlier one ends).
    """
    order = sorted(range(len(spans)), key=lambda i: (spans[i].char_start, spans[i].char_end))
    owner = [next((i for i in order if spans[i].char_start <= c < spans[i].char_end), None) for c in range(len(text))]
    out: list[tuple[int, str]] = []
    for c, ix in enumerate(owner):
        if ix is None:
            continue
        if c > 0 and owner[c - 1] == ix:
            out[-1] = (ix, out[-1][1] + text[c])
        else:
            out.append((ix, text[c]))
    return [(ix, visible(t)) for ix, t in out]


def _span(text: str, a: int, b: int, count: int = 3, doc_id: str = "d1") -> Span:
    doc = DocMatch(0, doc_id, "partial", text, a, b, NVResult(0.5, 1, 2, 2))
    return Span(a, b, text[a:b], a, b, count, (doc,))


def _check_safe(out: str, text: str) -> Collector:
    c = parse(out)
    assert {t for t, _ in c.tags} <= ALLOWED_TAGS
    assert all(set(a) <= ALLOWED_ATTRS for _, a in c.tags)
    assert "".join(c.text) == visible(text)
    for bad in ("\u202e", "\u202c", "\u2066", "\x00"):
        assert bad not in out
    return c


def test_hostile_strings_stay_text():
    for s in HOSTILE_STRINGS:
        c = _check_safe(highlight.highlight_html(s, [_span(s, 0, min(len(s), 12))]), s)
        assert c.marks == [visible(s[:12])]
        _check_safe(highlight.plain_html(s), s)


def test_hostile_doc_ids_and_windows_are_escaped():
    s = HOSTILE_STRINGS[1]
    span = _span(s, 1, 4, doc_id='"><script>alert(1)</script>')
    c = _check_safe(highlight.highlight_html(s, [span]), s)
    title = next(a["title"] for t, a in c.tags if t == "mark")
    assert '"><script>alert(1)</script>' in title  # the attribute value holds it as text, unbroken
    doc = DocMatch(0, "x", "partial", HOSTILE, 0, 57, NVResult(0.0, 0, 0, 0))
    w = parse(highlight.window_html(doc))
    assert {t for t, _ in w.tags} <= ALLOWED_TAGS and "".join(w.text) == visible(HOSTILE)


def test_no_markup_or_scheme_survives_in_the_raw_html():
    for s in HOSTILE_STRINGS:
        out = highlight.highlight_html(s, [_span(s, 0, 5)])
        assert "<script" not in out and "<img" not in out and "<svg" not in out and "<a " not in out
        assert "href" not in out


def test_long_unbroken_tokens_wrap():
    out = highlight.highlight_html("A" * 10_000, [_span("A" * 10_000, 0, 10_000)])
    style = parse(out).tags[0][1]["style"]
    assert "overflow-wrap: anywhere" in style and "word-break: break-word" in style
    assert "unicode-bidi: isolate" in style


@st.composite
def text_and_spans(draw):
    text = draw(st.text(max_size=60))
    cuts = sorted(draw(st.lists(st.integers(0, len(text)), max_size=6)))
    pairs = [(cuts[i], cuts[i + 1]) for i in range(0, len(cuts) - 1, 2) if cuts[i] < cuts[i + 1]]
    return text, [_span(text, a, b, draw(st.integers(1, 500))) for a, b in pairs]


@st.composite
def text_and_overlapping_spans(draw):
    """Spans as core emits them: in position order, each may start inside the one before (merge kept apart)."""
    text = draw(st.text(min_size=1, max_size=60))
    spans, start = [], 0
    for _ in range(draw(st.integers(0, 5))):
        if start >= len(text):
            break
        a = draw(st.integers(start, len(text) - 1))
        b = draw(st.integers(a + 1, len(text)))
        spans.append(_span(text, a, b, draw(st.integers(1, 500))))
        start = draw(st.integers(a + 1, b)) if draw(st.booleans()) else b
    return text, spans


@settings(max_examples=200, deadline=None)
@given(text_and_spans(), st.sampled_from(highlight.COLOR_BY))
def test_marks_hold_exactly_the_span_texts(ts, color_by):
    text, spans = ts
    c = _check_safe(highlight.highlight_html(text, spans, color_by), text)
    assert c.marks == [visible(s.text) for s in spans]
    assert c.mark_ixs == list(range(len(spans)))


@settings(max_examples=200, deadline=None)
@given(text_and_overlapping_spans())
def test_overlapping_spans_mark_every_covered_character_once(ts):
    text, spans = ts
    c = _check_safe(highlight.highlight_html(text, spans), text)
    assert list(zip(c.mark_ixs, c.marks)) == expected_marks(text, spans)
    covered = {i for s in spans for i in range(s.char_start, s.char_end)}
    assert "".join(c.marks) == "".join(visible(text[i]) for i in sorted(covered))  # the union, each char once
    for ix, m in zip(c.mark_ixs, c.marks):
        assert visible(spans[ix].text).endswith(m)  # a later span is shown from the earlier one's end


def test_a_span_starting_inside_the_previous_one_is_shown_from_its_end():
    text = "the remainder of the remainder of the License"
    spans = [_span(text, 0, 20), _span(text, 17, 37), _span(text, 34, 45)]
    c = parse(highlight.highlight_html(text, spans))
    assert c.marks == ["the remainder of the", " remainder of the", " License"]
    assert "".join(c.marks) == text


@settings(max_examples=100, deadline=None)
@given(st.text(max_size=40), st.lists(st.tuples(st.integers(-5, 50), st.integers(-5, 50)), max_size=5))
def test_out_of_range_or_overlapping_offsets_never_break_the_text(text, offsets):
    spans = [Span(0, 1, "", a, b, 1) for a, b in offsets]
    _check_safe(highlight.highlight_html(text, spans), text)


def test_title_gives_length_count_and_doc_ids():
    span = Span(3, 10, "abc", 0, 3, 42, tuple(DocMatch(i, f"doc-{i}", "partial", "abc", 0, 3, NVResult(0, 0, 0, 0))
                                               for i in range(7)))
    title = highlight.span_title(span)
    assert title.startswith("7 tokens; 42 occurrences")
    assert "doc-0, doc-1, doc-2, doc-3, doc-4 (+2 more)" in title


def test_intensity_levels_follow_span_length_and_count():
    text = "x" * 200
    out = highlight.highlight_html(text, [_span(text, 0, 5), _span(text, 10, 70)], "length")
    alphas = [float(m) for m in re.findall(r"rgba\(255, 165, 0, ([0-9.]+)\)", out)]
    assert alphas == [highlight.level_for(5, "length").alpha, highlight.level_for(60, "length").alpha]
    assert alphas[0] < alphas[1]
    assert [lv.lo for lv in highlight.LEVELS["count"]] == sorted(lv.lo for lv in highlight.LEVELS["count"])


def test_md_literal_neutralises_links_and_emphasis():  # the full oracle: tests/test_render_safety.py
    from app.render import md_literal, shown

    out = md_literal("[x](javascript:alert(1)) **b** <i>")
    assert "](" not in out and "**" not in out and "<i>" not in out
    assert shown(out) == "[x](javascript:alert(1)) **b** <i>"  # HTML escaped once (by the markdown renderer)
