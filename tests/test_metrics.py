"""Metrics (SPEC 6), registry, degenerate loops, continuation closeness and bootstrap intervals.

Oracles: metrics recomputed from the raw generated structures (not from TraceResult helpers),
a naive per-replicate loop for the vectorized bootstrap, dynamic-programming edit distance and
LCS for the rapidfuzz-based continuation scores, and textbook Wilson values.
"""
from __future__ import annotations

import doctest
import inspect
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core.config import MetricsConfig
from core.errors import ConfigError
from core.records import DocMatch, Generation, GenKey, NVResult, Prompt, Span, TraceResult
from core.scoring import bootstrap, continuation, loops, metrics, registry
from core.scoring.bootstrap import Interval, bootstrap_intervals, wilson_interval, wilson_intervals
from core.scoring.registry import METRICS, compute_metrics, metric_spec

# ---- building traces from raw descriptions ----------------------------------------------------
# raw generation: dict(prompt, sample, text, freq, spans=[(start, end, [(doc_ix, tier, recall)])])


def build(raw: list[dict]) -> list[TraceResult]:
    out = []
    for g in raw:
        spans = tuple(
            Span(s, e, "", 0, 0, 1, tuple(DocMatch(d, f"d{d}", tier, "", 0, 0, NVResult(r, 0, 0, 0)) for d, tier, r in docs))
            for s, e, docs in g["spans"]
        )
        out.append(TraceResult(GenKey("generic", g["prompt"], g["sample"]), g["text"], 64, spans, g["freq"]))
    return out


docs_st = st.lists(st.tuples(st.integers(0, 8), st.sampled_from(["partial", "exact_full_raw", "exact_full_normalized"]),
                             st.sampled_from([0.0, 0.25, 0.5, 0.6, 1.0])), max_size=3)


@st.composite
def spans_st(draw):
    starts = sorted(draw(st.lists(st.integers(0, 200), max_size=4, unique=True)))
    return [(s, s + draw(st.integers(1, 170)), draw(docs_st)) for s in starts]


raw_gen = st.fixed_dictionaries({
    "prompt": st.sampled_from(["p0", "p1", "p2", "p3"]),
    "sample": st.integers(0, 2),
    "text": st.sampled_from(["A normal sentence here.", "-" * 500, "word " * 3]),
    "freq": st.integers(0, 12),
    "spans": spans_st(),
})
raw_run = st.lists(raw_gen, max_size=12)


def oracle(raw: list[dict], cfg: MetricsConfig) -> dict[str, float]:
    """SPEC 6 straight from the raw structures."""
    all_n = len(raw)
    deg = [("-" * 500) == g["text"] for g in raw]  # the only degenerate text in raw_gen
    if cfg.exclude_degenerate:
        raw = [g for g, d in zip(raw, deg) if not d]
    n = len(raw)
    longest = [max((e - s for s, e, _ in g["spans"]), default=0) for g in raw]
    docs = [[d for _, _, ds in g["spans"] for d in ds] for g in raw]
    all_docs = [d for ds in docs for d in ds]

    def share(flags):
        return sum(flags) / n if n else 0.0

    out = {
        "n_generations": n,
        "als": sum(longest) / n if n else 0.0,
        "fmr": share([any(t == "exact_full_raw" for _, t, _ in ds) for ds in docs]),
        "nvr": sum(r for _, _, r in all_docs) / len(all_docs) if all_docs else 0.0,
        "r_n": share([x >= cfg.span_threshold for x in longest]),
        "max_span": max(longest, default=0),
        "generations_with_spans": sum(bool(g["spans"]) for g in raw),
        "gen_nv_pos": share([any(r > 0 for _, _, r in ds) for ds in docs]),
        "gen_nv_above": share([any(r > cfg.nv_threshold for _, _, r in ds) for ds in docs]),
        "max_nv_recall": max((r for _, _, r in all_docs), default=0.0),
        "unique_docs": len({d for d, _, _ in all_docs}),
        "full_match_docs": len({d for d, t, _ in all_docs if t == "exact_full_raw"}),
        "degenerate_share": sum(deg) / all_n if all_n else 0.0,
    }
    for k in cfg.k_values:
        out[f"k_eidetic_{k}"] = share([1 <= g["freq"] <= k for g in raw])
    n_docs = len(all_docs)
    n_spans = sum(len(g["spans"]) for g in raw)
    for lo, hi in metrics.SPAN_BUCKETS:
        key = metrics.bucket_key(lo, hi)
        inside = [(s, e, ds) for g in raw for s, e, ds in g["spans"] if lo <= e - s <= hi]
        out[f"span_bucket_{key}"] = sum(len(ds) for *_, ds in inside) / n_docs if n_docs else 0.0
        out[f"span_bucket_spans_{key}"] = len(inside) / n_spans if n_spans else 0.0
    return out


@settings(max_examples=150, deadline=None)
@given(raw_run, st.booleans(), st.integers(1, 120), st.sampled_from([0.0, 0.5, 0.9]))
def test_compute_metrics_matches_oracle(raw, exclude, span_threshold, nv_threshold):
    cfg = MetricsConfig(exclude_degenerate=exclude, span_threshold=span_threshold, nv_threshold=nv_threshold)
    got = compute_metrics(build(raw), cfg)
    want = oracle(raw, cfg)
    assert set(got) == set(want)
    for k, v in want.items():
        assert got[k] == pytest.approx(v, abs=1e-12), k


# ---- exact edge cases ----------------------------------------------------------------------------


def test_no_generations_all_zero():
    m = compute_metrics([], MetricsConfig(), generations=[])
    assert m and all(v == 0 for v in m.values())
    iv = bootstrap_intervals([], MetricsConfig(bootstrap_samples=50), metrics=list(METRICS))
    assert all(i == Interval(0.0, 0.0, 0.0, "empty") for i in iv.values())
    assert metrics.span_share_curve([], 5) == [0.0] * 5


def test_no_spans():
    raw = [{"prompt": f"p{i}", "sample": 0, "text": "x", "freq": 0, "spans": []} for i in range(4)]
    m = compute_metrics(build(raw))
    assert m["n_generations"] == 4 and m["generations_with_spans"] == 0
    assert all(v == 0 for k, v in m.items() if k != "n_generations")


def test_all_zero_recall_partial_docs():
    raw = [{"prompt": f"p{i}", "sample": 0, "text": "x", "freq": 0, "spans": [(0, 5, [(i, "partial", 0.0)])]} for i in range(4)]
    m = compute_metrics(build(raw))
    assert (m["als"], m["fmr"], m["nvr"], m["gen_nv_pos"], m["unique_docs"], m["span_bucket_4_6"]) == (5.0, 0.0, 0.0, 0.0, 4, 1.0)


def test_all_memorized():
    raw = [{"prompt": f"p{i}", "sample": 0, "text": "x", "freq": 1,
            "spans": [(0, 200, [(7, "exact_full_raw", 1.0)])]} for i in range(5)]
    m = compute_metrics(build(raw))
    assert (m["als"], m["fmr"], m["nvr"], m["r_n"], m["gen_nv_above"], m["max_nv_recall"]) == (200.0, 1.0, 1.0, 1.0, 1.0, 1.0)
    assert (m["unique_docs"], m["full_match_docs"], m["k_eidetic_1"], m["span_bucket_151_inf"]) == (1, 1, 1.0, 1.0)
    iv = bootstrap_intervals(build(raw), MetricsConfig(bootstrap_samples=200), metrics=["als", "fmr", "nvr"])
    assert all(i.lo == i.hi == i.value for i in iv.values())


def test_r_at_curve_and_span_counts():
    ts = metrics._toy([(0, 3, [])], [(0, 60, [])], [])
    assert metrics.span_share_curve(ts, 61)[2] == pytest.approx(2 / 3)
    assert metrics.r_at(ts, 60) == metrics.span_share_curve(ts, 61)[59] == pytest.approx(1 / 3)
    with pytest.raises(ValueError, match="per must be"):
        metrics.span_length_counts(ts, per="word")


# ---- registry ------------------------------------------------------------------------------------

PUBLIC = [metrics.als, metrics.fmr, metrics.nvr, metrics.r_at, metrics.span_share_curve, metrics.max_span,
          metrics.generations_with_spans, metrics.gen_nv_share, metrics.max_nv_recall, metrics.unique_docs,
          metrics.full_match_docs, metrics.k_eidetic, metrics.span_length_counts, metrics.span_length_shares,
          registry.compute_metrics, loops.is_degenerate, loops.degenerate_share,
          continuation.continuation_score, bootstrap.bootstrap_intervals,
          bootstrap.wilson_interval, bootstrap.bootstrap_replicates]


def test_every_registry_entry_is_complete():
    for name, spec in METRICS.items():
        assert spec.name == name and spec.label and spec.description
        assert isinstance(spec.higher_is_better, bool), name
        assert spec.kind in registry.KINDS, name
        assert registry.check_entry(spec) == [], name


def test_every_computed_metric_is_registered():
    gens = [Generation(GenKey("generic", "p0"), Prompt("generic", "p0", "x"), "x")]
    for name in compute_metrics(build([]), MetricsConfig(k_values=(1, 3)), generations=gens):
        assert metric_spec(name).name == name
    with pytest.raises(KeyError, match="Available: n_generations, als"):
        metric_spec("alss")


@pytest.mark.parametrize("fn", PUBLIC, ids=lambda f: f.__name__)
def test_public_functions_no_kwargs_and_have_doctests(fn):
    assert all(p.kind != p.VAR_KEYWORD for p in inspect.signature(fn).parameters.values())
    tests = doctest.DocTestFinder().find(fn)
    assert tests and sum(len(t.examples) for t in tests) >= 1, f"{fn.__name__} has no doctest example"


def test_direction_leakage_metrics_grow_with_memorization():
    """Replacing an unmemorized generation by a fully memorized one never lowers a leakage metric."""
    base = [{"prompt": f"p{i}", "sample": 0, "text": "x", "freq": 0, "spans": [(0, 4, [(i, "partial", 0.0)])]}
            for i in range(5)]
    leaked = base[:4] + [{"prompt": "p4", "sample": 0, "text": "x", "freq": 1,
                          "spans": [(0, 180, [(99, "exact_full_raw", 1.0)])]}]
    before, after = compute_metrics(build(base)), compute_metrics(build(leaked))
    checked = 0
    for name, value in before.items():
        spec = metric_spec(name)
        if spec.kind in ("doc_share", "span_share") or name in ("n_generations", "degenerate_share"):
            continue  # bucket shares move between buckets; counts and loops do not measure leakage
        assert spec.higher_is_better is False, name
        assert after[name] >= value, name
        checked += 1
    assert checked >= 12 and after["als"] > before["als"] and after["nvr"] > before["nvr"]
    assert metric_spec("span_bucket_151_inf").higher_is_better is False and metric_spec("span_bucket_1_3").higher_is_better


# ---- degenerate loops, floor ---------------------------------------------------------------------


def test_degenerate_excluded_only_when_asked():
    raw = [{"prompt": "p0", "sample": 0, "text": "-" * 500, "freq": 0, "spans": [(0, 100, [(1, "partial", 1.0)])]},
           {"prompt": "p1", "sample": 0, "text": "Plain prose.", "freq": 0, "spans": []}]
    keep, drop = compute_metrics(build(raw)), compute_metrics(build(raw), MetricsConfig(exclude_degenerate=True))
    assert (keep["als"], keep["degenerate_share"]) == (50.0, 0.5)
    assert (drop["als"], drop["n_generations"], drop["degenerate_share"]) == (0.0, 1, 0.5)
    assert loops.is_degenerate("ab" * 400, MetricsConfig(loop_letter_share=1.01))
    assert not loops.is_degenerate("ab" * 400)  # all letters: not a loop under the default 50% rule


# ---- continuation metrics vs DP oracles -------------------------------------------------------


def _lev(a, b):
    d = list(range(len(b) + 1))
    for i, x in enumerate(a, 1):
        prev, d[0] = d[0], i
        for j, y in enumerate(b, 1):
            prev, d[j] = d[j], min(d[j] + 1, d[j - 1] + 1, prev + (x != y))
    return d[len(b)]


def _lcs(a, b):
    d = [[0] * (len(b) + 1) for _ in range(len(a) + 1)]
    for i, x in enumerate(a, 1):
        for j, y in enumerate(b, 1):
            d[i][j] = d[i - 1][j - 1] + 1 if x == y else max(d[i - 1][j], d[i][j - 1])
    return d[len(a)][len(b)]


ids = st.lists(st.integers(0, 4), max_size=14)


@settings(max_examples=150, deadline=None)
@given(ids, st.lists(st.integers(0, 4), min_size=1, max_size=14), st.integers(1, 10))
def test_continuation_score_matches_dp(comp, truth, n):
    g = Generation(GenKey("prefix", "p"), Prompt("prefix", "p", "x", true_continuation_ids=tuple(truth)), "", tuple(comp))
    s = continuation.continuation_score(g, n)
    ref, cand = truth[:n], comp[:n]
    lcp = next((i for i, (x, y) in enumerate(zip(cand, ref)) if x != y), min(len(cand), len(ref)))
    assert s.lcp == lcp
    assert s.edit_sim == pytest.approx(1 - _lev(cand, ref) / max(len(cand), len(ref)))
    assert s.lcs_ratio == pytest.approx(_lcs(cand, ref) / len(ref))
    assert s.discoverable == (len(truth) >= n and comp[:n] == truth[:n])


def test_continuation_needs_true_continuation():
    g = Generation(GenKey("generic", "p"), Prompt("generic", "p", "x"), "y", (1, 2))
    assert continuation.continuation_score(g) is None
    assert compute_metrics([], MetricsConfig(), generations=[g])["n_continuation"] is None  # n/a outside prefix
    m = compute_metrics([], MetricsConfig(), generations=[g])
    assert m["discoverable"] is None and "discoverable" not in compute_metrics([])  # n/a outside prefix
    prefix = Generation(GenKey("prefix", "p"), Prompt("prefix", "p", "x"), "y", (1, 2))
    assert compute_metrics([], MetricsConfig(), generations=[prefix])["discoverable"] == 0.0


# ---- bootstrap -------------------------------------------------------------------------------------


def _naive_replicates(traces, metric, cfg):
    """Per replicate: gather the drawn prompts' traces (duplicates kept) and call compute_metrics."""
    keys = sorted({(t.key.setting, t.key.prompt_id) for t in traces})
    idx = np.random.default_rng(cfg.seed).integers(0, len(keys), size=(cfg.bootstrap_samples, len(keys)))
    by_prompt = {k: [t for t in traces if (t.key.setting, t.key.prompt_id) == k] for k in keys}
    return np.array([compute_metrics([t for i in row for t in by_prompt[keys[i]]], cfg)[metric] for row in idx])


@settings(max_examples=25, deadline=None)
@given(raw_run.filter(bool), st.booleans())
def test_vectorized_bootstrap_equals_naive_loop(raw, exclude):
    cfg = MetricsConfig(bootstrap_samples=30, exclude_degenerate=exclude, span_threshold=40)
    traces = build(raw)
    for m in ["als", "fmr", "nvr", "r_n", "max_span", "max_nv_recall", "unique_docs", "full_match_docs",
              "k_eidetic_5", "span_bucket_21_50", "span_bucket_spans_4_6", "degenerate_share", "generations_with_spans"]:
        fast = bootstrap.bootstrap_replicates(traces, m, cfg)
        assert fast == pytest.approx(_naive_replicates(traces, m, cfg), abs=1e-9), m


def test_bootstrap_seeded_and_covers_value():
    raw = [{"prompt": f"p{i}", "sample": s, "text": "x", "freq": 0, "spans": [(0, 5 + 3 * i + s, [(i, "partial", i / 40)])]}
           for i in range(40) for s in range(2)]
    cfg = MetricsConfig(bootstrap_samples=2000)
    a, b = bootstrap_intervals(build(raw), cfg), bootstrap_intervals(build(raw), cfg)
    assert a == b
    assert a != bootstrap_intervals(build(raw), MetricsConfig(bootstrap_samples=2000, seed=7))
    assert all(i.lo <= i.value <= i.hi and i.method == "percentile-bootstrap" for k, i in a.items() if k != "fmr")
    assert a["fmr"] == Interval(0.0, 0.0, 3 / 80, "rule-of-three")


def test_wilson_reference_values():
    # textbook 4-decimal values: 0/10 -> [0, 0.2775]; 8/100 -> [0.0411, 0.1500]
    assert wilson_interval(0, 10) == pytest.approx((0.0, 0.2775), abs=5e-5)
    assert wilson_interval(8, 100) == pytest.approx((0.0411, 0.1500), abs=5e-5)
    assert wilson_interval(5, 5)[1] == pytest.approx(1.0)
    assert wilson_interval(0, 0) == (0.0, 1.0)
    with pytest.raises(ConfigError):
        wilson_interval(6, 5)
    ts = metrics._toy([(0, 60, [])], [], [], [])
    iv = wilson_intervals(ts, MetricsConfig(), metrics=["r_n"])["r_n"]
    assert (iv.value, iv.method) == (0.25, "wilson") and (iv.lo, iv.hi) == pytest.approx(wilson_interval(1, 4))
    with pytest.raises(ConfigError, match="shares of generations"):
        wilson_intervals(ts, metrics=["als"])


def test_rule_of_three_bound():
    ts = metrics._toy(*[[] for _ in range(100)])
    assert bootstrap_intervals(ts, MetricsConfig(bootstrap_samples=100), metrics=["fmr"])["fmr"].hi == pytest.approx(0.03)
    assert math.isclose(3 / 100, 0.03)
