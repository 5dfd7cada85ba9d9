"""A self-contained HTML report to hand to stakeholders: tables, charts, highlighted examples.

Works offline: plotly.js is inlined from the installed plotly package (no CDN). All text from the
run (manifest values, prompts, completions, document windows, doc ids) is escaped: tables through
``DataFrame.to_html(escape=True)``, examples through :mod:`core.reports.highlight`, figure JSON by plotly
(which writes ``<`` as ``\\u003c`` inside its script).
"""
from __future__ import annotations

import datetime as dt
import html
from dataclasses import dataclass

import pandas as pd
import plotly.io as pio
from plotly.offline import get_plotlyjs

from core.records import Generation, TraceResult
from core.reports import highlight

STYLE = """
body { font-family: system-ui, -apple-system, 'Segoe UI', sans-serif; margin: 2rem auto; max-width: 1100px;
       color: #1d1d1f; line-height: 1.45; padding: 0 1rem; }
h1, h2, h3 { line-height: 1.2; } table { border-collapse: collapse; margin: 0.5rem 0 1.2rem; font-size: 0.9rem; }
th, td { border: 1px solid #ddd; padding: 0.25rem 0.5rem; text-align: left; vertical-align: top;
         overflow-wrap: anywhere; max-width: 40rem; }
th { background: #f4f4f6; } .example { border-top: 1px solid #ccc; padding-top: 0.8rem; margin-top: 1rem; }
.reading { background: #eef5ff; padding: 0.8rem 1rem; border-radius: 0.4rem; }
.propme-ctl { color: #b00; font-size: 0.75em; }
"""


@dataclass(frozen=True)
class ReportInput:
    """Everything a report shows; built by the app's Export page (or a script) from a run."""

    title: str
    reading: str  # the plain-language sentence
    run_rows: pd.DataFrame  # manifest as (field, value) rows
    tables: tuple[tuple[str, pd.DataFrame], ...]  # (heading, table) e.g. metrics with intervals, PM
    figures: tuple[object, ...]  # plotly figures (go.Figure or dict)
    examples: tuple[tuple[Generation, TraceResult], ...]  # highlighted completions


def _table(df: pd.DataFrame) -> str:
    return df.to_html(index=False, escape=True, border=0, na_rep="")


def _example(gen: Generation, trace: TraceResult) -> str:
    k = gen.key
    head = highlight.escape_text(f"{k.setting} / {k.prompt_id} / sample {k.sample_index}: longest span {trace.longest_span} "
                       f"tokens{', full match' if trace.full_match else ''}")
    parts = [f'<div class="example"><h3>{head}</h3><p><b>Prompt</b></p>{highlight.plain_html(gen.prompt.text)}']
    if gen.prompt.true_continuation is not None:
        parts.append(f"<p><b>True continuation</b></p>{highlight.plain_html(gen.prompt.true_continuation)}")
    parts.append(f"<p><b>Completion</b> (verbatim spans highlighted)</p>{highlight.highlight_html(gen.completion, trace.spans)}")
    for i, span in enumerate(trace.spans):
        for d in span.docs[:1]:
            parts.append(f"<p>Span {i}: document {highlight.escape_text(d.doc_id)}, tier {html.escape(d.tier)}, "
                         f"nv_recall {d.nv.recall:.3f}</p>{highlight.window_html(d)}")
    parts.append("</div>")
    return "".join(parts)


def build_report(inp: ReportInput) -> str:
    """The report as one HTML document (UTF-8 string) with plotly.js inlined.

    >>> doc = build_report(ReportInput("<t>", "r", pd.DataFrame({"a": ["<b>"]}), (), (), ()))
    >>> "&lt;t&gt;" in doc and "&lt;b&gt;" in doc and "<b>" not in doc.split("</script>")[-1]
    True
    """
    figures = "".join(
        pio.to_html(f, full_html=False, include_plotlyjs=False, default_height="380px", div_id=f"fig-{i}")
        for i, f in enumerate(inp.figures))
    tables = "".join(f"<h3>{html.escape(h)}</h3>{_table(df)}" for h, df in inp.tables)
    examples = "".join(_example(g, t) for g, t in inp.examples)
    made = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    return (
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        f"<title>{html.escape(inp.title)}</title><style>{STYLE}</style>"
        f"<script type=\"text/javascript\">{get_plotlyjs()}</script></head><body>"
        f"<h1>{html.escape(inp.title)}</h1><p>PropMe Explorer report, made {made}.</p>"
        f"<p class=\"reading\">{html.escape(inp.reading)}</p>"
        f"<h2>Run</h2>{_table(inp.run_rows)}<h2>Metrics</h2>{tables}<h2>Charts</h2>{figures}"
        f"<h2>Examples</h2>{highlight.legend_html('length')}{examples}</body></html>\n"
    )
