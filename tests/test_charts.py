"""Plotly builders (app/charts.py) checked through fig.to_dict(): trace types, values, error bars."""
from __future__ import annotations

from app import charts
from core.scoring.bootstrap import Interval


def iv(v, lo, hi):
    return Interval(v, lo, hi, "percentile-bootstrap")


def test_metric_bars_values_and_asymmetric_errors():
    fig = charts.metric_bars({"prefix": iv(10.0, 8.0, 13.0), "generic": iv(2.0, 1.5, 2.2)}, "ALS").to_dict()
    bars = fig["data"]  # one trace per setting, in its colour
    assert [b["type"] for b in bars] == ["bar", "bar"] and [b["x"][0] for b in bars] == ["prefix", "generic"]
    assert [b["y"][0] for b in bars] == [10.0, 2.0]
    assert [b["error_y"]["array"][0] for b in bars] == [3.0, 0.20000000000000018]
    assert [b["error_y"]["arrayminus"][0] for b in bars] == [2.0, 0.5]
    assert [b["marker"]["color"] for b in bars] == [charts.color("prefix"), charts.color("generic")]
    assert charts.color("prefix") != charts.color("generic")
    assert "ALS" in fig["layout"]["title"]["text"]


def test_pm_bars_axis_is_0_to_1_with_half_line():
    fig = charts.pm_bars({"generic": iv(0.2, 0.1, 0.3)}, "NVR").to_dict()
    assert list(fig["layout"]["yaxis"]["range"]) == [0, 1]
    assert fig["layout"]["shapes"][0]["y0"] == 0.5


def test_capability_propensity_one_point_per_run_with_intervals():
    pts = [charts.PlanePoint("m1 / generic", iv(0.9, 0.8, 1.0), iv(0.1, 0.05, 0.2)),
           charts.PlanePoint("m2 / generic", iv(0.5, 0.4, 0.6), iv(0.3, 0.2, 0.4))]
    data = charts.capability_propensity(pts, "NVR").to_dict()["data"]
    points = [d for d in data if d["mode"] == "markers"]
    assert [(p["x"][0], p["y"][0]) for p in points] == [(0.9, 0.1), (0.5, 0.3)]
    assert points[0]["error_x"]["arrayminus"][0] == 0.9 - 0.8 and points[0]["error_y"]["array"][0] == 0.2 - 0.1
    diag = data[-1]
    assert list(diag["x"]) == [0, 1.0] and list(diag["y"]) == [0, 1.0]


def test_span_share_curves_x_runs_from_1_and_marks_threshold():
    figure = charts.span_share_curves({"prefix": [1.0, 0.5, 0.25], "generic": [0.5, 0.0, 0.0]}, threshold=2)
    assert [list(d.x) for d in figure.data] == [[1, 2, 3], [1, 2, 3]]  # numpy arrays (plotly encodes them)
    assert list(figure.data[0].y) == [1.0, 0.5, 0.25]
    fig = figure.to_dict()
    assert fig["layout"]["shapes"][0]["x0"] == 2 and fig["layout"]["annotations"][0]["text"] == "N = 2"


def test_pm_vs_threshold_and_distributions_and_compare():
    fig = charts.pm_vs_threshold({"generic": [(1, 0.4), (2, 0.0)]}).to_dict()
    assert list(fig["data"][0]["x"]) == [1, 2] and list(fig["data"][0]["y"]) == [0.4, 0.0]
    hist = charts.distribution({"prefix": [1, 2, 2], "generic": [3]}, "t", "x")
    assert [d.type for d in hist.data] == ["histogram", "histogram"] and list(hist.data[0].x) == [1, 2, 2]
    cmp = charts.compare_bars({"run a": {"prefix": 1.0}, "run b": {"prefix": 2.0}}, "ALS").to_dict()
    assert [d["name"] for d in cmp["data"]] == ["run a", "run b"] and cmp["layout"]["barmode"] == "group"


def test_untrusted_labels_are_escaped_for_plotly_pseudo_html():
    fig = charts.compare_bars({'<a href="javascript:alert(1)">x</a>': {"<b>s</b>": 1.0}}, "ALS").to_dict()
    assert fig["data"][0]["name"] == "&lt;a href=&quot;javascript:alert(1)&quot;&gt;x&lt;/a&gt;"
    assert list(fig["data"][0]["x"]) == ["&lt;b&gt;s&lt;/b&gt;"]


def test_planted_extraction_one_line_per_measure_on_a_log_axis():
    fig = charts.planted_extraction([1, 2, 4], {"greedy rest share": [0.0, 0.5, 1.0], "P(rest)": [0.0, None, 0.9]}).to_dict()
    assert [t["name"] for t in fig["data"]] == ["greedy rest share", "P(rest)"]
    assert list(fig["data"][0]["x"]) == [1, 2, 4] and list(fig["data"][0]["y"]) == [0.0, 0.5, 1.0]
    assert fig["data"][1]["y"][1] != fig["data"][1]["y"][1]  # a missing value is a gap (NaN), not 0
    assert fig["layout"]["xaxis"]["type"] == "log" and list(fig["layout"]["xaxis"]["tickvals"]) == [1, 2, 4]
