"""A text with its verbatim spans marked, where one click (or Tab + Enter) selects a span.

A Streamlit ``st.components.v2`` component mounted in the app's own DOM (``isolate_styles=False``),
so the marks are ordinary ``mark.propme-span`` elements like those of ``st.html``. Its HTML, CSS and
JavaScript below are fixed, trusted code; the completion or document text arrives as DATA and is
set with ``textContent`` (never ``innerHTML``), so nothing in it can become markup. Control, bidi
and zero-width characters are written as visible ``[U+XXXX]`` runs, as core/reports/highlight.py does.

:func:`pieces` (pure, tested) turns a text and its spans into the runs the component draws.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence

import streamlit as st

from core.records import Span
from core.reports import highlight

TEXT_STYLE = highlight.TEXT_STYLE
SELECTED_CLASS = "propme-selected"
MARK_CLASSES = (highlight.SPAN_CLASS, highlight.DOC_MATCH_CLASS)

_JS = r"""
export default function (component) {
  const { data, parentElement, setTriggerValue } = component;
  const allowed = ["propme-span", "propme-doc-match"];
  let box = parentElement.querySelector(":scope > div.propme-span-view");
  if (!box) {
    box = document.createElement("div");
    parentElement.appendChild(box);
  }
  box.className = "propme-text propme-span-view";
  box.setAttribute("style", data.style);
  box.setAttribute("role", "region");
  box.setAttribute("aria-label", String(data.label));
  if (data.clickable) box.removeAttribute("tabindex"); else box.tabIndex = 0;  // marks or the box: reachable
  // Keep the keyboard focus on the span it was on (or the one just picked) across the redraw a pick causes.
  const active = document.activeElement;
  const held = active && box.contains(active) && active.dataset ? active.dataset.spanIx : undefined;
  const picked = box.dataset.picked;  // set by a pick, kept until the redraw with that span selected
  const refocus = picked !== undefined ? picked : held;
  box.replaceChildren();
  const markClass = allowed.includes(data.mark_class) ? data.mark_class : "propme-span";
  let focus = null;
  for (const piece of data.pieces) {
    let holder = box;
    if (piece.ix >= 0) {
      const mark = document.createElement("mark");
      mark.className = markClass;
      mark.dataset.spanIx = String(piece.ix);
      mark.title = String(piece.title);
      mark.style.backgroundColor = "rgba(" + data.color + ", " + Number(piece.alpha) + ")";
      mark.style.color = "inherit";
      mark.style.padding = "0 1px";
      if (piece.echo) {  // prompt echo: the prompt, not the corpus, may be its source
        mark.classList.add("propme-echo");
        mark.style.backgroundColor = "rgba(150, 150, 150, 0.35)";
        mark.style.borderBottom = "2px dashed rgb(110, 110, 110)";
      }
      if (data.clickable) {
        mark.tabIndex = 0;
        mark.setAttribute("role", "button");
        const selected = piece.ix === data.selected;
        mark.setAttribute("aria-pressed", selected ? "true" : "false");
        mark.style.cursor = "pointer";
        if (selected) {
          mark.classList.add("propme-selected");
          mark.style.textDecoration = "underline";
          mark.style.textDecorationColor = "rgb(200, 40, 40)";
          mark.style.textDecorationThickness = "3px";
          mark.style.textUnderlineOffset = "3px";
        }
        const pick = () => { box.dataset.picked = String(piece.ix); setTriggerValue("select", piece.ix); };
        mark.addEventListener("click", pick);
        mark.addEventListener("keydown", (e) => {
          if (e.key === "Enter" || e.key === " ") { e.preventDefault(); pick(); }
        });
      }
      if (focus === null && (piece.ix === data.selected || data.selected < 0)) focus = mark;
      box.appendChild(mark);
      holder = mark;
    }
    for (const run of piece.runs) {
      if (run[1]) {
        const ctl = document.createElement("span");
        ctl.className = "propme-ctl";
        ctl.textContent = String(run[0]);
        holder.appendChild(ctl);
      } else {
        holder.appendChild(document.createTextNode(String(run[0])));
      }
    }
  }
  if (refocus !== undefined) {
    const again = box.querySelector('mark[data-span-ix="' + Number(refocus) + '"]');
    if (again) again.focus({ preventScroll: true });
    if (picked !== undefined && Number(picked) === data.selected) delete box.dataset.picked;  // its redraw came
  }
  if (focus !== null && data.scroll) {
    const place = () => {
      const b = box.getBoundingClientRect(), m = focus.getBoundingClientRect();
      box.scrollTop += m.top - b.top - 24;
    };
    requestAnimationFrame(place);
  }
}
"""

_COMPONENT = st.components.v2.component("propme_span_view", js=_JS, isolate_styles=False)


def runs(text: str) -> list[list]:
    """``text`` as [text, is_control] runs: each control/bidi/zero-width character becomes its own
    visible ``[U+XXXX]`` run.

    >>> runs("a\\u202eb")
    [['a', False], ['[U+202E]', True], ['b', False]]
    """
    out: list[list] = []
    pos = 0
    for m in highlight._INVISIBLE.finditer(text):
        if m.start() > pos:
            out.append([text[pos:m.start()], False])
        out.append([f"[U+{ord(m.group()):04X}]", True])
        pos = m.end()
    if pos < len(text):
        out.append([text[pos:], False])
    return out


def pieces(text: str, ranges: Sequence[tuple[int, int, int]], alpha: Callable[[int], float],
           title: Callable[[int], str], echo: Callable[[int], bool] = lambda ix: False) -> list[dict]:
    """The text cut at ``ranges`` ((mark id, start, end), sorted, disjoint): unmarked pieces get
    ``ix`` -1, marked ones their id, opacity, hover title and whether they echo the prompt."""
    out: list[dict] = []
    pos = 0
    for ix, start, end in ranges:
        if start > pos:
            out.append({"ix": -1, "alpha": 0, "title": "", "runs": runs(text[pos:start])})
        out.append({"ix": ix, "alpha": alpha(ix), "title": title(ix), "echo": bool(echo(ix)),
                    "runs": runs(text[start:end])})
        pos = end
    if pos < len(text):
        out.append({"ix": -1, "alpha": 0, "title": "", "runs": runs(text[pos:])})
    return out


def span_pieces(text: str, spans: Sequence[Span], color_by: str = "length") -> list[dict]:
    """:func:`pieces` of a completion: every character marked once, as :func:`highlight.highlight_html` does."""
    def alpha(ix: int) -> float:
        s = spans[ix]
        return highlight.level_for(s.length if color_by == "length" else s.count, color_by).alpha

    return pieces(text, highlight.clipped_ranges(len(text), spans), alpha,
                  lambda ix: highlight.span_title(spans[ix]), lambda ix: spans[ix].echo)


def completion(text: str, spans: Sequence[Span], selected: int, key: str, color_by: str = "length",
               on_select: Callable[[], None] | None = None,
               label: str = "completion: Tab to a highlighted span, Enter selects it") -> None:
    """The completion with clickable spans; ``selected`` is outlined and scrolled into view in its box.
    A click calls ``on_select`` (before the rerun); read the clicked index with :func:`clicked`."""
    _COMPONENT(key=key, data={"pieces": span_pieces(text, spans, color_by), "selected": int(selected),
                              "clickable": True, "scroll": True, "style": TEXT_STYLE,
                              "color": highlight.MARK_COLOR, "mark_class": highlight.SPAN_CLASS, "label": label},
               on_select_change=on_select or (lambda: None))


def clicked(key: str) -> int | None:
    """The span index the last click on component ``key`` chose (inside its ``on_select`` callback)."""
    state = st.session_state.get(key)
    value = state.get("select") if state is not None and hasattr(state, "get") else None
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def marked_text(text: str, ranges: Sequence[tuple[int, int]], key: str, title: str = "",
                max_height: str = "32rem", label: str = "document") -> None:
    """A document with ``ranges`` marked like a matched region (not clickable); the first mark is
    scrolled into view inside its box."""
    ordered = [(i, s, e) for i, (s, e) in enumerate(sorted(ranges))]
    style = TEXT_STYLE.replace("max-height: 32rem", f"max-height: {max_height}")
    _COMPONENT(key=key, data={"pieces": pieces(text, ordered, lambda ix: 0.45, lambda ix: title),
                              "selected": -1, "clickable": False, "scroll": True, "style": style,
                              "color": "80, 160, 255", "mark_class": highlight.DOC_MATCH_CLASS, "label": label})
