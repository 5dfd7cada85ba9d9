"""Pure plotly figure builders: data in, ``go.Figure`` out, no ``st.*`` calls.

Intervals are anything with ``value``, ``lo`` and ``hi`` (``core.scoring.bootstrap.Interval``). Tested via
``fig.to_dict()`` in tests/test_charts.py; also used by the HTML report.
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

# No template here: Streamlit applies its theme, and coercing a template costs ~10 ms per figure.
LAYOUT = {"margin": {"l": 50, "r": 20, "t": 50, "b": 45}, "height": 380}


class IntervalLike(Protocol):
    value: float
    lo: float
    hi: float


@dataclass(frozen=True)
class PlanePoint:
    """One run (model, checkpoint) in the capability-propensity plane."""

    label: str
    capability: IntervalLike  # the metric under the prefix setting
    propensity: IntervalLike  # the same metric under a natural setting


def _safe(label: str) -> str:
    """Plotly renders a pseudo-HTML subset (<a href>, <b>) in names and labels: escape untrusted ones,
    and show control/bidi characters as [U+XXXX] (as everywhere else in the app)."""
    return html.escape(visible_controls(str(label)), quote=True)


def _hline(fig: go.Figure, y: float, text: str) -> None:
    fig.update_layout(shapes=[{"type": "line", "x0": 0, "x1": 1, "xref": "paper", "y0": y, "y1": y,
                                   "line": {"dash": "dot", "color": "gray"}}],
                      annotations=[{"x": 1, "xref": "paper", "y": y, "text": text, "showarrow": False, "xanchor": "right",
                                        "yanchor": "bottom"}] if text else [])


def _errors(intervals: Sequence[IntervalLike]) -> tuple[list[float], list[float]]:
    plus = [max(0.0, iv.hi - iv.value) for iv in intervals]
    minus = [max(0.0, iv.value - iv.lo) for iv in intervals]
    return plus, minus


def metric_bars(values: Mapping[str, IntervalLike], metric_label: str) -> go.Figure:
    """One bar per setting with its interval as an error bar."""
    settings = list(values)
    plus, minus = _errors([values[s] for s in settings])
    fig = go.Figure(go.Bar(
        x=[_safe(s) for s in settings], y=[values[s].value for s in settings], name=metric_label,
        error_y={"type": "data", "array": plus, "arrayminus": minus, "visible": True},
        marker_color=["#d62728" if s == CAPABILITY else "#1f77b4" for s in settings],
    ))
    fig.update_layout(title=f"{metric_label} per setting (95% interval)", xaxis_title="setting",
                      yaxis_title=metric_label, **LAYOUT)
    return fig


def pm_bars(pm_by_setting: Mapping[str, IntervalLike], metric_label: str) -> go.Figure:
    """Propensity score PM per natural setting, 0..1 axis with the 0.5 'leaks as much' line."""
    settings = list(pm_by_setting)
    plus, minus = _errors([pm_by_setting[s] for s in settings])
    fig = go.Figure(go.Bar(x=[_safe(s) for s in settings], y=[pm_by_setting[s].value for s in settings], name="PM",
                           error_y={"type": "data", "array": plus, "arrayminus": minus, "visible": True}))
    _hline(fig, 0.5, "0.5: ordinary use leaks as much as the attack")
    fig.update_layout(title=f"Propensity score PM ({metric_label})", xaxis_title="natural setting",
                      yaxis_title="PM", yaxis_range=[0, 1], **LAYOUT)
    return fig


def capability_propensity(points: Sequence[PlanePoint], metric_label: str) -> go.Figure:
    """The capability-propensity plane: x = metric under prefix, y = under a natural setting."""
    fig = go.Figure()
    for p in points:
        (xp,), (xm,) = _errors([p.capability])
        (yp,), (ym,) = _errors([p.propensity])
        fig.add_trace(go.Scatter(
            x=[p.capability.value], y=[p.propensity.value], mode="markers", name=_safe(p.label),
            marker={"size": 11},  # named in the legend: labels on the points overlap their error bars
            error_x={"type": "data", "array": [xp], "arrayminus": [xm], "visible": True},
            error_y={"type": "data", "array": [yp], "arrayminus": [ym], "visible": True},
        ))
    top = max([max(p.capability.hi, p.propensity.hi) for p in points] + [1e-9])
    fig.add_trace(go.Scatter(x=[0, top], y=[0, top], mode="lines", name="propensity = capability",
                             line={"dash": "dot", "color": "gray"}))
    fig.update_layout(title=f"Capability vs propensity ({metric_label})",
                      xaxis_title=f"capability: {metric_label} under prefix prompts",
                      yaxis_title=f"propensity: {metric_label} under natural prompts", **LAYOUT)
    return fig


def span_share_curves(curves: Mapping[str, Sequence[float]], threshold: int | None = None) -> go.Figure:
    """Share of completions with a span >= n against n (n = 1..len), one line per setting."""
    fig = go.Figure()
    for setting, shares in curves.items():
        fig.add_trace(go.Scatter(x=np.arange(1, len(shares) + 1), y=np.asarray(shares, dtype=float), mode="lines",
                                 name=_safe(setting), line={"width": 3 if setting == CAPABILITY else 2}))
    if threshold is not None:  # a layout shape: add_vline costs ~25 ms per call
        fig.update_layout(shapes=[{"type": "line", "x0": threshold, "x1": threshold, "y0": 0, "y1": 1, "yref": "paper",
                                       "line": {"dash": "dot", "color": "gray"}}],
                          annotations=[{"x": threshold, "y": 1, "yref": "paper", "text": f"N = {threshold}",
                                            "showarrow": False, "yanchor": "bottom"}])
    fig.update_layout(title="Share of completions with a verbatim span of at least n tokens",
                      xaxis_title="n (tokens)", yaxis_title="share of completions", yaxis_range=[0, 1.02],
                      **LAYOUT)
    return fig


def pm_vs_threshold(curves: Mapping[str, Sequence[tuple[int, float]]]) -> go.Figure:
    """PM of R_n against the span threshold n, one line per natural setting."""
    fig = go.Figure()
    for setting, pts in curves.items():
        fig.add_trace(go.Scatter(x=[n for n, _ in pts], y=[v for _, v in pts], mode="lines+markers",
                                 name=_safe(setting)))
    _hline(fig, 0.5, "")
    fig.update_layout(title="PM of R_n against the span threshold n", xaxis_title="n (tokens)",
                      yaxis_title="PM", yaxis_range=[0, 1], **LAYOUT)
    return fig


def distribution(values_by_setting: Mapping[str, Sequence[float]], title: str, x_title: str,
                 nbins: int = 30) -> go.Figure:
    """Overlaid histograms (span lengths, nv_recall values), one per setting."""
    fig = go.Figure()
    for setting, values in values_by_setting.items():
        fig.add_trace(go.Histogram(x=np.asarray(values, dtype=float), name=_safe(setting), opacity=0.6, nbinsx=nbins))
    fig.update_layout(title=title, xaxis_title=x_title, yaxis_title="count", barmode="overlay", **LAYOUT)
    return fig


def compare_bars(values: Mapping[str, Mapping[str, float]], metric_label: str) -> go.Figure:
    """Grouped bars: x = setting, one bar group per run."""
    fig = go.Figure()
    for run_label, by_setting in values.items():
        fig.add_trace(go.Bar(x=[_safe(s) for s in by_setting], y=list(by_setting.values()),
                             name=_safe(run_label)))
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
