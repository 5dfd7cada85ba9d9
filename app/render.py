"""The one way untrusted text reaches Streamlit: shown literally, never obeyed.

Untrusted: anything from a results folder, manifest, corpus, upload or form (run names, setting
names, prompt and document ids, completions, error messages that quote them).

- Long text (completions, documents, windows) goes to ``st.html`` as HTML escaped by
  :mod:`core.reports.highlight` (no markdown parser runs over it).
- Short text inside markdown-rendering calls (``st.subheader``, ``st.info``, ``st.caption``, metric
  and widget labels, ...) goes through :func:`md_literal` first. tests/test_render_safety.py fails
  when such a call receives anything but a string literal or :func:`md_literal`'s output.
"""
from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import streamlit as st

from core.errors import PropMeError
from core.records import DocMatch, Span
from core.reports import highlight

_ASCII_PUNCT = re.compile(r"([!-/:-@\[-`{-~])")  # every ASCII punctuation character
# GFM autolink literals (http://, www., mailto:, a@b.c) are found in the parsed text, after escapes:
# a word joiner (invisible; one in the input is already shown as [U+2060]) breaks each trigger.
_AUTOLINK = re.compile(r"(?i)(?:(?<=https)|(?<=mailto)|(?<=http)|(?<=xmpp))(?=:)|(?<=www)(?=\.)|(?=@)")
WORD_JOINER = "\u2060"
_LINE_INDENT = re.compile(r"^[ \t]+", re.MULTILINE)
_ESCAPED = re.compile(r"\\([!-/:-@\[-`{-~])")


def md_literal(text: object) -> str:
    """``text`` as markdown that Streamlit shows character for character.

    Control, bidi and zero-width characters become visible ``[U+XXXX]`` (as in the ``st.html``
    boxes) and line indentation is dropped (a paragraph would drop it too), then every ASCII
    punctuation character is backslash-escaped. CommonMark shows an escaped punctuation character as itself, so no emphasis, link, image, HTML tag, entity,
    ``$`` LaTeX or ``:red[...]`` / ``:material/x:`` directive can start; an emoji shortcode cannot
    either (Streamlit looks for ``:word:``, and a backslash now stands before every colon). GFM's
    autolink literals are matched after parsing, so a word joiner (U+2060, invisible) goes before
    ``://`` of ``http``, after ``www`` and before ``@``.

    >>> print(md_literal("![x](h/i) :red[a] $x$ <b>&#x27;"))
    \\!\\[x\\]\\(h\\/i\\) \\:red\\[a\\] \\$x\\$ \\<b\\>\\&\\#x27\\;
    >>> md_literal("http://a www.b c@d").count(WORD_JOINER)
    3
    >>> md_literal("a\\u202eb")
    'a\\\\[U\\\\+202E\\\\]b'
    """
    flat = _LINE_INDENT.sub("", highlight.visible_controls(str(text)))  # no indented code block
    return _ASCII_PUNCT.sub(r"\\\1", _AUTOLINK.sub(WORD_JOINER, flat))


def shown(markdown: str) -> str:
    """What the reader sees of :func:`md_literal`'s output (escapes and word joiners removed); for tests.

    >>> shown(md_literal("R_3 (prefix) **x**"))
    'R_3 (prefix) **x**'
    """
    return _ESCAPED.sub(r"\1", markdown).replace(WORD_JOINER, "")


def option(text: object) -> str:
    """An option of a selectbox or multiselect (plain text there, not markdown): controls made visible.

    >>> option("a\u202eb*")
    'a[U+202E]b*'
    """
    return highlight.visible_controls(str(text))


# The app's own CSS (fixed, trusted): Streamlit draws captions in its text colour at 60% opacity (#777779 on
# white, 4.46:1; 4.3:1 on the sidebar's #f4f4f6), under WCAG AA's 4.5:1: a solid darker grey instead. Text
# boxes (core/reports/highlight.py) are focusable for keyboard scrolling: they show where the focus is.
APP_CSS = """<style>
[data-testid="stCaptionContainer"], [data-testid="stCaptionContainer"] p { color: #55555a; opacity: 1; }
[data-testid="stWidgetLabel"] [data-testid="stCaptionContainer"] { color: #55555a; }
.propme-text:focus-visible { outline: 2px solid #1d4ed8; outline-offset: 2px; }
mark[data-span-ix]:focus-visible { outline: 2px solid #1d4ed8; outline-offset: 1px; }
</style>"""


def app_style() -> None:
    """Once per page run, from the entry script: :data:`APP_CSS` (no layout space: style-only HTML)."""
    st.html(APP_CSS)


@contextmanager
def page_boundary() -> Iterator[None]:
    """The one place a page turns core errors into words: PropMeError -> st.error, then stop."""
    try:
        yield
    except PropMeError as e:
        st.error(md_literal(e))
        st.stop()


def completion(text: str, spans: Sequence[Span], color_by: str = "length",
               label: str = "completion with verbatim spans highlighted", other: frozenset[int] = frozenset()) -> None:
    """A completion with its spans marked; spans in ``other`` (traced to other documents) only outlined."""
    st.html(highlight.highlight_html(text, spans, color_by, label, other))


def legend(color_by: str = "length") -> None:
    st.html(highlight.legend_html(color_by))


def window(doc: DocMatch, label: str | None = None) -> None:
    st.html(highlight.window_html(doc, label))


def plain(text: str, label: str = "text") -> None:
    """Untrusted text in a box; ``label`` names the box for screen readers (it scrolls: the keyboard reaches it)."""
    st.html(highlight.plain_html(text, label))


def caption(text: str) -> None:
    """A caption holding untrusted text (doc ids, prompt ids), shown literally."""
    st.caption(md_literal(text))
