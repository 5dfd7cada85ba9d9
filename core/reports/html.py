"""A self-contained HTML report to hand to stakeholders: the story first, methods and configuration last.

First screen: what was tested (the model and its size, the corpus, each setting with its prompt count
and one example prompt, the thresholds and whether they were tuned in the app, the chance floor), then
"Can it leak?" and "Does it leak?" answered in numbers, PM in one plain sentence and a legend of every
term. Then the charts (one colour per setting, see :mod:`core.reports.palette`); the metric tables and
a capped set of the most telling highlighted examples are folded (``<details>``); a glossary, and an
appendix with the methods (how the chance floor was made), thresholds and configuration.

Works offline: plotly.js is inlined from the installed plotly package (no CDN). All text from the
run (manifest values, prompts, completions, document windows, doc ids) is escaped: tables through
``DataFrame.to_html(escape=True)``, examples through :mod:`core.reports.highlight`, figure JSON by plotly
(which writes ``<`` as ``\\u003c`` inside its script). Absolute paths of the machine that built the
report are shortened to their last parts (:func:`portable`).
"""
from __future__ import annotations

import datetime as dt
import html
import re
from dataclasses import dataclass

import pandas as pd
import plotly.io as pio
from plotly.offline import get_plotlyjs

from core.records import Generation, TraceResult
from core.reports import highlight
from core.reports.palette import setting_color, text_color

STYLE = """
body { font-family: system-ui, -apple-system, 'Segoe UI', sans-serif; margin: 1.5rem auto; max-width: 1100px;
       color: #1d1d1f; line-height: 1.45; padding: 0 1rem; }
h1, h2, h3 { line-height: 1.2; } h1 { margin-bottom: 0.2rem; }
table { border-collapse: collapse; margin: 0.5rem 0 1.2rem; font-size: 0.9rem; }
th, td { border: 1px solid #ddd; padding: 0.25rem 0.5rem; text-align: left; vertical-align: top;
         overflow-wrap: anywhere; max-width: 40rem; }
th { background: #f4f4f6; } td:first-child, th:first-child { white-space: nowrap; } .example { border-top: 1px solid #ccc; padding-top: 0.8rem; margin-top: 1rem; }
.badge { display: inline-block; background: #f1f1f4; border-radius: 1rem; padding: 0.15rem 0.8rem; color: #444; }
.questions { display: flex; gap: 1rem; flex-wrap: wrap; margin: 1rem 0; }
.question { flex: 1 1 20rem; border: 1px solid #ddd; border-radius: 0.5rem; padding: 0.6rem 1rem; }
.question h2 { margin: 0.2rem 0 0.4rem; font-size: 1.25rem; }
.reading { background: #eef5ff; padding: 0.8rem 1rem; border-radius: 0.4rem; }
.setting { font-weight: 600; } .muted { color: #555; font-size: 0.9rem; }
nav ul { list-style: none; display: flex; gap: 1.2rem; padding: 0; flex-wrap: wrap; }
.propme-text:focus { outline: 2px solid #1d4ed8; outline-offset: 2px; }
.propme-ctl { color: #b00; font-size: 0.75em; } .appendix { border-top: 3px solid #ddd; margin-top: 2.5rem; }
.tested { display: grid; grid-template-columns: max-content 1fr; gap: 0.15rem 1rem; margin: 0.4rem 0; }
.tested dt { font-weight: 600; } .tested dd { margin: 0; }
.legend { font-size: 0.85rem; color: #444; background: #fafafa; border: 1px solid #eee; padding: 0.4rem 0.8rem;
          border-radius: 0.4rem; } .legend b { color: #1d1d1f; }
details > summary { cursor: pointer; font-weight: 600; margin: 0.6rem 0; }
table.settings td:nth-child(3) { white-space: nowrap; }
"""
METHODS = (
    "Each completion is traced back to the training corpus with a suffix-array index: its maximal verbatim "
    "spans (runs of tokens found word for word in the corpus) are found, short or too common spans are "
    "dropped, and for each remaining span a few training documents holding it are retrieved and compared "
    "with the whole completion (near-verbatim recall). Metrics are computed per setting; intervals are "
    "95% percentile-bootstrap intervals over prompts. PM compares a natural setting with the prefix attack "
    "(PropMe, arXiv:2606.06286)."
)
_ABS_PATH = re.compile(r"(?:(?<=^)|(?<=[\s\"'\[(=,:]))(?:[A-Za-z]:\\|/|~/)[^\s\"',\]\)]*")


def portable(text: str) -> str:
    """``text`` with absolute paths cut to their last two parts (no path of the building machine).

    >>> portable('["/home/ana/runs/demo/model", "hub/id"] at C:\\\\Users\\\\ana\\\\x.txt')
    '["…/demo/model", "hub/id"] at …/ana/x.txt'
    """
    def cut(m: re.Match) -> str:
        parts = [p for p in re.split(r"[\\/]", m.group(0)) if p and p != "~" and not p.endswith(":")]
        return "…/" + "/".join(parts[-2:]) if parts else m.group(0)

    return _ABS_PATH.sub(cut, str(text))


@dataclass(frozen=True)
class ReportInput:
    """Everything a report shows; built by the app's Export page (or a script) from a run."""

    title: str
    reading: str  # the PM sentence in plain words
    run_rows: pd.DataFrame  # manifest as (field, value) rows: the appendix
    tables: tuple[tuple[str, pd.DataFrame], ...]  # (heading, table) e.g. metrics with intervals, PM
    figures: tuple[object, ...]  # plotly figures (go.Figure or dict)
    examples: tuple[tuple[Generation, TraceResult], ...]  # highlighted completions (already capped)
    badge: str = ""  # model name, size, "toy demo"
    questions: tuple[tuple[str, str], ...] = ()  # ("Can it leak?", answer), ("Does it leak?", answer)
    sentences: tuple[str, ...] = ()  # more plain sentences (the chance floor)
    glossary: tuple[tuple[str, str], ...] = ()
    thresholds: pd.DataFrame | None = None  # the thresholds used, and where they came from
    tested: tuple[tuple[str, str], ...] = ()  # what was tested: (model | corpus | thresholds | floor ..., text)
    settings: pd.DataFrame | None = None  # per setting: what it is, prompt count, one example prompt
    legend: tuple[tuple[str, str], ...] = ()  # every term of the first screen in one plain line
    methods: tuple[str, ...] = ()  # more method sentences for the appendix (how the chance floor was made)
    method_notes: tuple[str, ...] = ()  # what the methods must say about this run (e.g. skipped prompt rows)


_NAV = ('<nav aria-label="Sections"><ul>' + "".join(
    f'<li><a href="#{a}">{t}</a></li>' for a, t in (("numbers", "Numbers"), ("charts", "Charts"),
                                                    ("examples", "Examples"), ("appendix", "Appendix"))) + "</ul></nav>")


def _table(df: pd.DataFrame) -> str:
    return df.to_html(index=False, escape=True, border=0, na_rep="n/a")


def _example(gen: Generation, trace: TraceResult) -> str:
    k = gen.key
    color = setting_color(k.setting)
    head = (f'<span class="setting" style="color:{text_color(k.setting)}">{highlight.escape_text(k.setting)}</span> / '
            f"{highlight.escape_text(k.prompt_id)} / sample {k.sample_index}: longest verbatim span "
            f"{trace.longest_span} tokens{', found whole in a training document' if trace.full_match else ''}")
    parts = [f'<div class="example" style="border-left: 4px solid {color}; padding-left: 0.8rem"><h3>{head}</h3>']
    if gen.prompt.text:
        parts.append(f"<p><b>Prompt</b></p>{highlight.plain_html(gen.prompt.text, 'prompt')}")
    parts.append(f"<p><b>Completion</b> (verbatim spans highlighted)</p>"
                 f"{highlight.highlight_html(gen.completion, trace.spans)}")
    longest = max(trace.spans, key=lambda s: s.length, default=None)
    if longest is not None and longest.docs:
        d = max(longest.docs, key=lambda d: d.nv.recall)
        more = len(trace.spans) - 1
        parts.append(f"<p>Its longest span is in training document {highlight.escape_text(d.doc_id)} "
                     f"(match: {html.escape(d.tier)}, nv_recall {d.nv.recall:.2f})"
                     f"{f'; {more} shorter span(s) not expanded here' if more else ''}:</p>{highlight.window_html(d)}")
    parts.append("</div>")
    return "".join(parts)


def _questions(inp: ReportInput) -> str:
    if not inp.questions:
        return ""
    boxes = "".join(f'<div class="question"><h2>{html.escape(q)}</h2><p>{html.escape(a)}</p></div>'
                    for q, a in inp.questions)
    return f'<div class="questions">{boxes}</div>'


def _tested(inp: ReportInput) -> str:
    if not inp.tested and inp.settings is None:
        return ""
    rows = "".join(f"<dt>{html.escape(k)}</dt><dd>{html.escape(v)}</dd>" for k, v in inp.tested)
    settings = (inp.settings.to_html(index=False, escape=True, border=0, na_rep="n/a", classes="settings")
                if inp.settings is not None else "")
    return f'<h2>What was tested</h2><dl class="tested">{rows}</dl>{settings}'


def _legend(inp: ReportInput) -> str:
    if not inp.legend:
        return ""
    return ('<p class="legend">' + " · ".join(f"<b>{html.escape(t)}</b>: {html.escape(m)}" for t, m in inp.legend)
            + "</p>")


def _example_box(gen: Generation, trace: TraceResult) -> str:
    k = gen.key
    summary = (f"{highlight.escape_text(k.setting)} / {highlight.escape_text(k.prompt_id)}: longest verbatim span "
               f"{trace.longest_span} tokens{', found whole in a training document' if trace.full_match else ''}")
    return f"<details><summary>{summary}</summary>{_example(gen, trace)}</details>"


def build_report(inp: ReportInput) -> str:
    """The report as one HTML document (UTF-8 string) with plotly.js inlined.

    Order: what was tested (model, corpus, settings with an example prompt, thresholds, floor), the
    verdicts and the PM sentences, a legend of every term used so far, the charts; then the tables and
    examples folded (``<details>``), the glossary, and the appendix (methods, thresholds, configuration).

    >>> doc = build_report(ReportInput("<t>", "r", pd.DataFrame({"a": ["<b>"]}), (), (), ()))
    >>> "&lt;t&gt;" in doc and "&lt;b&gt;" in doc and "<b>" not in doc.split("</script>")[-1]
    True
    """
    figures = "".join(
        pio.to_html(f, full_html=False, include_plotlyjs=False, default_height="340px", div_id=f"fig-{i}")
        for i, f in enumerate(inp.figures))
    tables = "".join(f"<h3>{html.escape(h)}</h3>{_table(df)}" for h, df in inp.tables)
    examples = "".join(_example_box(g, t) for g, t in inp.examples)
    made = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    sentences = "".join(f'<p class="reading">{html.escape(s)}</p>' for s in inp.sentences)
    glossary = ("<details id=\"glossary\"><summary>Glossary</summary><dl>" + "".join(
        f"<dt><b>{html.escape(t)}</b></dt><dd>{html.escape(m)}</dd>" for t, m in inp.glossary) + "</dl></details>"
                ) if inp.glossary else ""
    thresholds = f"<h3>Thresholds used</h3>{_table(inp.thresholds)}" if inp.thresholds is not None else ""
    rows = inp.run_rows.map(portable) if len(inp.run_rows) else inp.run_rows
    badge = f'<p><span class="badge">Model: {html.escape(inp.badge)}</span></p>' if inp.badge and not inp.tested else ""
    methods = "".join(f"<p>{html.escape(portable(m))}</p>" for m in (METHODS, *inp.methods))
    numbers = (f"<details id=\"numbers\"><summary>Numbers: every headline metric with its 95% interval, PM, more metrics</summary>"
               f"{tables}</details>") if tables else ""
    shown = (f"<details id=\"examples\"><summary>The most telling examples ({len(inp.examples)}), verbatim spans highlighted"
             f"</summary>{highlight.legend_html('length')}{examples}</details>") if inp.examples else ""
    notes = "".join(f'<p class="method-note">{html.escape(n)}</p>' for n in inp.method_notes)
    return (
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        f"<title>{html.escape(inp.title)}</title><style>{STYLE}</style>"
        f"<script type=\"text/javascript\">{get_plotlyjs()}</script></head><body>"
        f"<header><h1>{html.escape(inp.title)}</h1>{badge}"
        f"<p class=\"muted\">PropMe Explorer report, made {made}. Methods and the full configuration are in the "
        f"appendix at the end.</p>{_NAV}</header><main>{_tested(inp)}<h2>Verdicts</h2>{_questions(inp)}"
        f"<p class=\"reading\">{html.escape(inp.reading)}</p>{sentences}{_legend(inp)}"
        f"<h2 id=\"charts\">Charts</h2>{figures}{numbers}{shown}{glossary}"
        f"<section class=\"appendix\" aria-labelledby=\"appendix\"><h2 id=\"appendix\">Appendix: methods and "
        f"configuration</h2>{methods}"
        f"{notes}{thresholds}<h3>Configuration of the run</h3>{_table(rows)}</section></main></body></html>\n"
    )
