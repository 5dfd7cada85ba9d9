"""Pure plotly figure builders: data in, ``go.Figure`` out, no ``st.*`` calls.

Every trace drawn for a setting carries ``meta = setting`` and that setting's colour from
:func:`core.reports.palette.setting_color` (the HTML report uses the same function), so a setting
looks the same in every chart of every page and of the report. A chance ``floor`` setting is drawn
as a grey dashed baseline. Intervals are anything with ``value``, ``lo`` and ``hi``
(``core.scoring.bootstrap.Interval``). Tested via ``fig.to_dict()`` in tests/test_charts.py.
"""
from __future__ import annotations

import html
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import plotly.graph_objects as go

from core.config import CAPABILITY
from core.reports.highlight import visible_controls
from core.reports.na import PM_NA
from core.reports.palette import FLOOR_COLOR, setting_color

# No template here: Streamlit applies its theme, and coercing a template costs ~10 ms per figure.
LAYOUT = {"margin": {"l": 50, "r": 20, "t": 50, "b": 45}, "height": 380}
FLOOR_NAME = "chance floor (texts never seen in training)"
PATTERNS = ("", "/", ".", "x", "\\", "+", "-", "|")  # one per run in grouped bars (colour = setting)


class IntervalLike(Protocol):
    value: float
    lo: float
    hi: float


@dataclass(frozen=True)
class PlanePoint:
    """One run (model, checkpoint) x natural setting in the capability-propensity plane."""

    label: str
    capability: IntervalLike  # the metric under the prefix setting
    propensity: IntervalLike  # the same metric under a natural setting
    setting: str | None = None  # the natural setting (decides the colour)


def color(setting: str) -> str:
    """The colour of a setting in every chart (see :mod:`core.reports.palette`)."""
    return setting_color(setting)


def _safe(label: str) -> str:
    """Plotly renders a pseudo-HTML subset (<a href>, <b>) in names and labels: escape untrusted ones,
    and show control/bidi characters as [U+XXXX] (as everywhere else in the app)."""
    return html.escape(visible_controls(str(label)), quote=True)


def _hlines(fig: go.Figure, lines: Sequence[tuple[float, str, str, str]], x_range: tuple[float, float] | None = None) -> None:
    """Horizontal reference lines: (y, text, colour, dash); across the plot area, or from ``x_range[0]`` to
    ``x_range[1]`` in data coordinates (a chart whose axes do not fill the paper, e.g. equal-scale axes)."""
    x0, x1, ref = (0, 1, "paper") if x_range is None else (*x_range, "x")
    fig.update_layout(
        shapes=[{"type": "line", "x0": x0, "x1": x1, "xref": ref, "y0": y, "y1": y,
                 "line": {"dash": dash, "color": c, "width": 2}} for y, _, c, dash in lines],
        annotations=[{"x": x1, "xref": ref, "y": y, "text": t, "showarrow": False, "xanchor": "right",
                      "yanchor": "bottom", "font": {"color": c}} for y, t, c, _ in lines if t])


def _errors(intervals: Sequence[IntervalLike]) -> tuple[list[float], list[float]]:
    plus = [max(0.0, iv.hi - iv.value) for iv in intervals]
    minus = [max(0.0, iv.value - iv.lo) for iv in intervals]
    return plus, minus


def _floor_line(floor: IntervalLike | float | None, unit: str = "") -> list[tuple[float, str, str, str]]:
    if floor is None:
        return []
    y = float(getattr(floor, "value", floor))
    return [(y, f"chance floor: {y:.3g}{unit}", FLOOR_COLOR, "dash")]


def metric_bars(values: Mapping[str, IntervalLike], metric_label: str, floor: IntervalLike | float | None = None,
                na: Sequence[str] = ()) -> go.Figure:
    """One bar per setting (its colour) with its interval; ``floor``: the chance baseline as a dashed line.
    Settings in ``na`` (metric does not apply) get no bar and an 'n/a' label."""
    fig = go.Figure()
    for s, v in values.items():
        if s in na or v is None or v.value is None:
            fig.add_trace(go.Bar(x=[_safe(s)], y=[0], name=_safe(s), meta=s, marker_color=color(s), text=["n/a"],
                                 textposition="outside", showlegend=False))
            continue
        (p,), (m,) = _errors([v])
        fig.add_trace(go.Bar(x=[_safe(s)], y=[v.value], name=_safe(s), meta=s, marker_color=color(s),
                             error_y={"type": "data", "array": [p], "arrayminus": [m], "visible": True},
                             showlegend=False))
    _hlines(fig, _floor_line(floor))
    fig.update_layout(title=f"{metric_label} per setting (95% interval)", xaxis_title="setting",
                      yaxis_title=metric_label, **LAYOUT)
    return fig


def pm_bars(pm_by_setting: Mapping[str, IntervalLike], metric_label: str, undefined: Sequence[str] = ()) -> go.Figure:
    """Propensity score PM per natural setting, 0..1 axis with the 0.5 'leaks as much' line; a setting in
    ``undefined`` (0 against 0) is written 'n/a' instead of drawn as a bar of 0."""
    fig = go.Figure()
    for s, iv in pm_by_setting.items():
        if s in undefined or getattr(iv, "undefined", False):  # PMResult's 0/0 flag
            fig.add_trace(go.Bar(x=[_safe(s)], y=[0], name=_safe(s), meta=s, marker_color=color(s),
                                 text=[PM_NA], textposition="outside",
                                 showlegend=False))
            continue
        (p,), (m,) = _errors([iv])
        fig.add_trace(go.Bar(x=[_safe(s)], y=[iv.value], name=_safe(s), meta=s, marker_color=color(s),
                             error_y={"type": "data", "array": [p], "arrayminus": [m], "visible": True},
                             showlegend=False))
    _hlines(fig, [(0.5, "0.5: ordinary use leaks as much as the attack", "gray", "dot")])
    fig.update_layout(title=f"Propensity score PM ({metric_label})", xaxis_title="natural setting",
                      yaxis_title="PM", yaxis_range=[0, 1], **LAYOUT)
    return fig


def capability_propensity(points: Sequence[PlanePoint], metric_label: str,
                          floor: IntervalLike | float | None = None) -> go.Figure:
    """The capability-propensity plane: x = metric under prefix, y = under a natural setting, equal axes;
    ``floor``: the chance baseline as a dashed horizontal line."""
    fig = go.Figure()
    for p in points:
        (xp,), (xm,) = _errors([p.capability])
        (yp,), (ym,) = _errors([p.propensity])
        extra = {"meta": p.setting, "marker": {"size": 12, "color": color(p.setting)}} if p.setting else \
            {"marker": {"size": 12}}
        fig.add_trace(go.Scatter(
            x=[p.capability.value], y=[p.propensity.value], mode="markers", name=_safe(p.label),
            error_x={"type": "data", "array": [xp], "arrayminus": [xm], "visible": True},
            error_y={"type": "data", "array": [yp], "arrayminus": [ym], "visible": True}, **extra))
    floor_y = float(getattr(floor, "value", floor)) if floor is not None else 0.0
    top = max([max(p.capability.hi, p.propensity.hi) for p in points] + [floor_y, 1e-9])
    fig.add_trace(go.Scatter(x=[0, top], y=[0, top], mode="lines", name="propensity = capability",
                             line={"dash": "dot", "color": "gray"}))
    top *= 1.05  # both axes: the same range and scale, so the diagonal is at 45 degrees
    _hlines(fig, _floor_line(floor), x_range=(0, top))  # inside the axes (their domain is narrower than the paper)
    fig.update_layout(title=f"Capability vs propensity ({metric_label})", **LAYOUT)
    fig.update_layout(xaxis={"title": f"capability: {metric_label} under prefix prompts", "range": [0, top],
                             "constrain": "domain"},
                      yaxis={"title": f"propensity: {metric_label} under natural prompts", "range": [0, top],
                             "scaleanchor": "x", "scaleratio": 1, "constrain": "domain"})
    return fig


def span_share_curves(curves: Mapping[str, Sequence[float]], threshold: int | None = None,
                      floors: Sequence[str] = ()) -> go.Figure:
    """Share of completions with a span >= n against n (n = 1..len), one line per setting (floor dashed)."""
    fig = go.Figure()
    for setting, shares in curves.items():
        floor = setting in floors
        fig.add_trace(go.Scatter(
            x=np.arange(1, len(shares) + 1), y=np.asarray(shares, dtype=float), mode="lines", meta=setting,
            name=_safe(f"{setting} ({FLOOR_NAME})" if floor else setting),
            line={"width": 3 if setting == CAPABILITY else 2, "color": color(setting),
                  "dash": "dash" if floor else "solid"}))
    if threshold is not None:  # a layout shape: add_vline costs ~25 ms per call
        fig.update_layout(shapes=[{"type": "line", "x0": threshold, "x1": threshold, "y0": 0, "y1": 1, "yref": "paper",
                                   "line": {"dash": "dot", "color": "gray"}}],
                          annotations=[{"x": threshold, "y": 1, "yref": "paper", "text": f"N = {threshold}",
                                        "showarrow": False, "yanchor": "bottom"}])
    fig.update_layout(title="Share of completions with a verbatim span of at least n tokens",
                      xaxis_title="n (tokens)", yaxis_title="share of completions", yaxis_range=[0, 1.02],
                      **LAYOUT)
    return fig


def pm_vs_threshold(curves: Mapping[str, Sequence[tuple[int, float]]],
                    remaining: Mapping[str, Sequence[tuple[int, int]]] | None = None) -> go.Figure:
    """PM of R_n against the span threshold n, one line per natural setting; ``remaining[s]``: (n, completions
    of the setting and of prefix with a span >= n) drawn dotted on a right-hand log axis, so a PM near 1 at
    large n reads as what it is: a handful of completions."""
    fig = go.Figure()
    for setting, pts in curves.items():
        left = dict(remaining.get(setting, ())) if remaining else {}
        fig.add_trace(go.Scatter(
            x=[n for n, _ in pts], y=[v for _, v in pts], mode="lines+markers", name=_safe(setting), meta=setting,
            line={"color": color(setting)}, marker={"color": color(setting), "size": 5},
            customdata=[left.get(n) for n, _ in pts],
            hovertemplate="n = %{x}: PM %{y:.2f} (%{customdata} completions left)<extra></extra>" if left else None))
        if left:
            xs = sorted(left)
            fig.add_trace(go.Scatter(x=xs, y=[left[n] for n in xs], mode="lines", yaxis="y2", meta=setting,
                                     name=_safe(f"{setting}: completions left (with prefix)"),
                                     line={"color": color(setting), "dash": "dot", "width": 1}))
    _hlines(fig, [(0.5, "", "gray", "dot")])
    fig.update_layout(title="PM of R_n against the span threshold n", xaxis_title="n (tokens)",
                      yaxis={"title": "PM", "range": [0, 1]}, **LAYOUT)
    if remaining:
        fig.update_layout(yaxis2={"title": "completions left (log)", "overlaying": "y", "side": "right",
                                  "type": "log", "showgrid": False},
                          legend={"orientation": "h", "y": -0.25}, margin={**LAYOUT["margin"], "r": 60})
    return fig


def distribution(values_by_setting: Mapping[str, Sequence[float]], title: str, x_title: str,
                 nbins: int = 30, log_y: bool = False) -> go.Figure:
    """Overlaid histograms of the NON-ZERO values per setting; each legend entry says what share was 0
    (a zero bin would dwarf everything else). ``log_y``: counts on a log axis."""
    fig = go.Figure()
    for setting, values in values_by_setting.items():
        arr = np.asarray(values, dtype=float)
        zero = float(np.mean(arr == 0)) if arr.size else 0.0
        fig.add_trace(go.Histogram(x=arr[arr != 0], meta=setting, opacity=0.6, nbinsx=nbins,
                                   name=_safe(f"{setting} ({zero:.0%} are 0, not drawn)" if zero else setting),
                                   marker_color=color(setting)))
    fig.update_layout(title=title, xaxis_title=x_title, yaxis_title="count (log)" if log_y else "count",
                      barmode="overlay", **LAYOUT)
    if log_y:
        fig.update_yaxes(type="log")
    return fig


def compare_bars(values: Mapping[str, Mapping[str, float]], metric_label: str) -> go.Figure:
    """Grouped bars: x = setting, one bar group per run; each bar in its setting's colour, runs told
    apart by a fill pattern."""
    fig = go.Figure()
    for i, (run_label, by_setting) in enumerate(values.items()):
        fig.add_trace(go.Bar(x=[_safe(s) for s in by_setting], y=list(by_setting.values()), name=_safe(run_label),
                             marker={"color": [color(s) for s in by_setting],
                                     "pattern": {"shape": PATTERNS[i % len(PATTERNS)]}},
                             meta=list(by_setting)))
    fig.update_layout(title=f"{metric_label} per setting and run", barmode="group", xaxis_title="setting",
                      yaxis_title=metric_label, **LAYOUT)
    return fig


def planted_extraction(copies: Sequence[int], series: Mapping[str, Sequence[float | None]]) -> go.Figure:
    """Extraction measures (0-1) of planted records against their duplication count (log2 axis)."""
    fig = go.Figure()
    for name, ys in series.items():
        fig.add_trace(go.Scatter(x=list(copies), y=[np.nan if y is None else y for y in ys], mode="lines+markers",
                                 name=_safe(name)))
    fig.update_layout(**LAYOUT, title="Planted records: extraction by duplication count",
                      xaxis={"title": "copies in the training corpus", "type": "log",
                             "tickvals": list(copies)},
                      yaxis={"title": "share / probability", "range": [-0.02, 1.02]})
    return fig
