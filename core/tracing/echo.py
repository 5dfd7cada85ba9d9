"""Prompt echo: final spans of a completion that also occur in its own prompt.

A model that repeats its prompt ("You asked: <the question> ...") produces spans that are in the
corpus only because the prompt is (a prefix prompt IS corpus text; a common question may be too).
Such a span says nothing about what the model memorized: its source is the prompt. Tracing marks it
``Span.echo = True`` when the span's text occurs verbatim in the prompt's text (the user's words,
not a chat template around them); ``MetricsConfig.count_echo`` decides whether scoring counts it
(default False, see :func:`drop_echo`), and the app shows it in its own colour either way.

Marking is a pure function of (prompt text, traced spans), so it runs on traces from the cache too.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace

from core.records import GenKey, TraceResult


def is_echo(span_text: str, prompt_text: str) -> bool:
    """Whether a (non-blank) span text occurs verbatim in the prompt text.

    >>> is_echo("General Public License", "Explain the GNU General Public License."), is_echo(" ", "a b")
    (True, False)
    """
    return bool(span_text.strip()) and span_text in prompt_text


def mark_echo(trace: TraceResult, prompt_text: str | None) -> TraceResult:
    """``trace`` with each span's ``echo`` set from :func:`is_echo` (unchanged when there is no prompt text)."""
    if not prompt_text or not trace.spans:
        return trace
    spans = tuple(replace(s, echo=is_echo(s.text, prompt_text)) if s.echo != is_echo(s.text, prompt_text) else s
                  for s in trace.spans)
    return trace if spans == trace.spans else replace(trace, spans=spans)


def mark_echoes(traces: Sequence[TraceResult], prompt_texts: Mapping[GenKey, str | None]) -> list[TraceResult]:
    """:func:`mark_echo` of every trace, with the prompt text of its key."""
    return [mark_echo(t, prompt_texts.get(t.key)) for t in traces]


def echo_spans(traces: Sequence[TraceResult]) -> int:
    """Number of final spans marked as prompt echo.

    >>> from core.records import Span
    >>> t = TraceResult(GenKey("generic", "0"), "x", 9, (Span(0, 3, "a", 0, 1, 1, echo=True), Span(4, 6, "b", 2, 3, 1)))
    >>> echo_spans([t])
    1
    """
    return sum(s.echo for t in traces for s in t.spans)


def drop_echo(traces: Sequence[TraceResult]) -> list[TraceResult]:
    """Traces without their echo spans; a completion whose whole-text span is an echo also loses its
    full-document frequency (k-eidetic), since the match came from the prompt.

    >>> from core.records import Span
    >>> t = TraceResult(GenKey("generic", "0"), "x", 6, (Span(0, 6, "a", 0, 1, 1, echo=True),), full_doc_frequency=2)
    >>> drop_echo([t])[0].spans, drop_echo([t])[0].full_doc_frequency
    ((), 0)
    """
    out = []
    for t in traces:
        if not any(s.echo for s in t.spans):
            out.append(t)
            continue
        whole_echo = any(s.echo and s.start == 0 and s.end >= t.n_tokens for s in t.spans)
        out.append(replace(t, spans=tuple(s for s in t.spans if not s.echo),
                           full_doc_frequency=0 if whole_echo else t.full_doc_frequency))
    return out
