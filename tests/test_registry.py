"""The metric registry: every entry complete, computations equal their bootstrap breakdowns, labels,
n/a outside the settings a metric applies to, thresholds read (the app's cache keys), and PM's 0/0 flag."""
from __future__ import annotations

import dataclasses
import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from app.views import tables as views
from core.config import CAPABILITY, AdaptiveParam, MetricsConfig, NVBlocksConfig
from core.records import Generation, GenKey, Prompt
from core.reports.text import format_report
from core.runs.results import RunResults
from core.scoring import bootstrap, metrics, registry
from core.scoring.propensity import pm_curve, run_pm
from core.scoring.registry import METRICS, check_entry, compute_metrics, inputs, metric_spec
from core.tracing.nvrecall import rescore
from tests.fixtures_app import make_run
from tests.test_metrics import build, raw_run


def test_every_entry_has_every_part():
    assert len(METRICS) >= 30
    for name, spec in METRICS.items():
        assert check_entry(spec) == [], name
        assert spec.name == name and metric_spec(name) is spec


@pytest.mark.parametrize("part", ["label", "meaning", "compute", "breakdown", "kind"])
def test_an_entry_lacking_a_part_fails_the_check(part):
    broken = dataclasses.replace(METRICS["als"], **{part: None if part in ("compute", "breakdown") else ""})
    assert check_entry(broken), part


def test_a_label_field_must_be_a_threshold_the_metric_reads():
    assert check_entry(dataclasses.replace(METRICS["r_n"], thresholds=()))  # R_{span_threshold} without reading it
    assert check_entry(dataclasses.replace(METRICS["als"], thresholds=("no_such_threshold",)))


def _aggregate(spec, x):
    """The value of ``spec`` from its per-generation breakdown alone (the bootstrap's view of it)."""
    b = spec.breakdown
    rows = [b.row(it, x.cfg) for it in x.items(b.source)]
    if b.mode == "max":
        return max(rows, default=0.0)
    if b.mode == "distinct":
        return len(set().union(*rows))
    num, den = sum(r[0] for r in rows), sum(r[1] for r in rows)
    return num if b.mode == "count" else (num / den if den else 0.0)


@settings(max_examples=80, deadline=None)
@given(raw_run, st.booleans(), st.integers(1, 120), st.sampled_from([0.0, 0.5, 0.9]))
def test_every_computation_equals_its_breakdown(raw, exclude, span_threshold, nv_threshold):
    cfg = MetricsConfig(exclude_degenerate=exclude, span_threshold=span_threshold, nv_threshold=nv_threshold,
                        k_values=(1, 3, 10))
    traces = build(raw)
    x = inputs(traces, cfg, None)
    for spec in registry.metrics_for(cfg):
        assert spec.compute(x) == pytest.approx(_aggregate(spec, x), abs=1e-12), spec.name


def test_continuation_breakdown_equals_its_computation():
    prompt = Prompt("prefix", "p", "x", true_continuation_ids=(1, 2, 3, 4))
    gens = [Generation(GenKey("prefix", "p", i), prompt, "", completion_ids=c)
            for i, c in enumerate([(1, 2, 3, 4), (1, 2, 9, 9), (7, 7, 7, 7)])]
    cfg = MetricsConfig(discoverable_tokens=4)
    x = inputs([], cfg, gens)
    got = compute_metrics([], cfg, gens)
    for name in registry.CONTINUATION:
        assert got[name] == pytest.approx(_aggregate(METRICS[name], x)), name
    assert got["discoverable"] == pytest.approx(1 / 3) and got["n_continuation"] == 3


def test_prefix_only_metrics_are_none_elsewhere_and_their_intervals_na():
    run = make_run(n_per_setting=3, hostile=False)
    for s in run.settings():
        gens, traces = run.by_setting(s)
        values = compute_metrics(traces, MetricsConfig(), gens)
        ivs = bootstrap.bootstrap_intervals(traces, MetricsConfig(bootstrap_samples=50), gens,
                                            metrics=("als", "discoverable"))
        for name in registry.CONTINUATION:
            assert (values[name] is None) == (s != CAPABILITY), (s, name)
        assert (ivs["discoverable"] == bootstrap.NOT_APPLICABLE) == (s != CAPABILITY)
        assert ivs["als"].method == "percentile-bootstrap"


def test_labels_come_from_the_registry_with_thresholds_spelled_out():
    cfg = MetricsConfig(span_threshold=30, nv_threshold=0.25)
    assert registry.label("r_n", cfg) == "R_30" and registry.pm_label("r_n", cfg) == "PM of R_30"
    assert registry.label("gen_nv_above", cfg) == "NV > 0.25"
    for name, spec in METRICS.items():  # one label per metric; its export column is the same under any thresholds
        assert registry.label(name) == spec.label_for(MetricsConfig())
        assert registry.column(name) == spec.column and registry.metric_of_column(spec.column) == name
    assert registry.help("r_n", cfg).endswith("span_threshold = 30") and "30" not in registry.column("r_n")


def test_app_cache_keys_reset_only_thresholds_the_metrics_do_not_read():
    moved = MetricsConfig(span_threshold=30, nv_threshold=0.2, discoverable_tokens=20,
                          nv_blocks=NVBlocksConfig(l1=AdaptiveParam(0.4, 2, 20)), seed=7)
    default = MetricsConfig()
    for names in [(), ("als",), ("r_n",), ("gen_nv_above",), ("nvr", "discoverable"), tuple(METRICS)]:
        got = registry.only_relevant(moved, names)
        read = registry.thresholds_read(names)
        for t in registry.THRESHOLDS:
            assert getattr(got, t) == getattr(moved if t in read else default, t), (names, t)
        assert got.seed == 7  # not a per-metric threshold: kept
    # a metric reading nv_recall keeps the block thresholds (its intervals depend on them)
    assert registry.only_relevant(moved, ("max_nv_recall",)).nv_blocks == moved.nv_blocks


def test_nv_blocks_are_applied_by_compute_metrics_and_the_bootstrap():
    run = make_run(n_per_setting=4, hostile=False)
    blocks = NVBlocksConfig(l1=AdaptiveParam(0.45, 2, 20), l2=AdaptiveParam(0.6, 4, 100))
    cfg = MetricsConfig(nv_blocks=blocks, bootstrap_samples=100)
    changed = False
    for s in run.settings():
        traces = run.by_setting(s)[1]
        by_hand = rescore(traces, blocks)
        assert compute_metrics(traces, cfg)["nvr"] == compute_metrics(by_hand, MetricsConfig())["nvr"]
        assert (bootstrap.bootstrap_replicates(traces, "nvr", cfg)
                == bootstrap.bootstrap_replicates(by_hand, "nvr", dataclasses.replace(cfg, nv_blocks=NVBlocksConfig()))
                ).all()
        changed |= compute_metrics(traces)["nvr"] != compute_metrics(traces, cfg)["nvr"]
    assert changed  # the thresholds really move a number


def test_r_n_is_one_computation():
    ts = metrics._toy([(0, 3, [])], [(0, 60, [])], [(5, 25, [])], [])
    curve = metrics.span_share_curve(ts, 61)
    for n in (1, 3, 20, 21, 60, 61):
        assert compute_metrics(ts, MetricsConfig(span_threshold=n))["r_n"] == metrics.r_at(ts, n) == curve[n - 1]


def test_pm_zero_over_zero_is_zero_and_flagged_undefined():
    nothing = metrics._toy([], [])  # no spans, no documents: every metric 0
    some = metrics._toy([(0, 30, [(1, "exact_full_raw", 1.0)])], [])
    prefix = [dataclasses.replace(t, key=dataclasses.replace(t.key, setting=CAPABILITY)) for t in nothing]
    out = run_pm({CAPABILITY: prefix, "generic": nothing}, MetricsConfig(bootstrap_samples=100))
    assert {m: (r.value, r.undefined) for m, r in out["generic"].items()} == {
        "als": (0.0, True), "fmr": (0.0, True), "nvr": (0.0, True)}
    out = run_pm({CAPABILITY: prefix, "generic": some}, MetricsConfig(bootstrap_samples=100))
    assert out["generic"]["als"].value == 1.0 and not out["generic"]["als"].undefined
    assert pm_curve({CAPABILITY: [0.5, 0.0], "generic": [0.5, 0.0]}) == {"generic": [(1, 0.5)]}  # 0/0 left out
    # the text report marks an undefined PM
    run = RunResults(None, make_run(n_per_setting=1, hostile=False).manifest, (), (), {"generic": {"metrics": {}}},
                     {"generic": {m: {"value": 0.0, "lo": 0.0, "hi": 0.0, "method": "percentile-bootstrap",
                                      "f_p": 0.0, "f_c": 0.0, "undefined": True} for m in registry.HEADLINE}})
    assert "0 [0, 0]*" in format_report(run) and "undefined" in format_report(run)
    assert views.pm_text(out["generic"]["als"]) == "1.000" and "undefined" in views.pm_text(
        run_pm({CAPABILITY: prefix, "generic": nothing}, intervals=False)["generic"]["als"])


def test_headline_metrics_apply_everywhere():
    assert all(METRICS[m].settings is None for m in registry.HEADLINE)
    assert not math.isnan(compute_metrics([])["als"])
