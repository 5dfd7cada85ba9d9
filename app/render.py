"""Showing untrusted text in Streamlit: only escaped HTML (core/reports/highlight.py) reaches ``st.html``.

``st.html`` is used instead of ``st.markdown(unsafe_allow_html=True)`` so no markdown parsing runs
over completion text (``**``, ``[x](javascript:...)`` stay literal), and every piece of text in the
HTML comes from :func:`core.reports.highlight.escape_text`.
"""
from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import streamlit as st

from app.cached import Unavailable
from core.errors import PropMeError
from core.records import DocMatch, Span
from core.reports import highlight


@contextmanager
def page_boundary() -> Iterator[None]:
    """The one place a page turns core errors into words: PropMeError -> st.error, missing module -> st.info."""
    try:
        yield
    except Unavailable as e:
        st.info(str(e))
        st.stop()
    except PropMeError as e:
        st.error(str(e))
        st.stop()


def completion(text: str, spans: Sequence[Span], color_by: str = "length") -> None:
    st.html(highlight.highlight_html(text, spans, color_by))


def legend(color_by: str = "length") -> None:
    st.html(highlight.legend_html(color_by))


def window(doc: DocMatch) -> None:
    st.html(highlight.window_html(doc))


def plain(text: str) -> None:
    st.html(highlight.plain_html(text))


def caption(text: str) -> None:
    """A caption holding untrusted text (doc ids, prompt ids): markdown-escaped first."""
    st.caption(highlight.escape_markdown(text))
