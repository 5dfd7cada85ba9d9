"""Propensity score PM (SPEC 7): reference numbers, properties, bootstrap interval, PM table."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core.config import MetricsConfig
from core.errors import ConfigError
from core.scoring import bootstrap
from core.scoring.metrics import _toy
from core.scoring.propensity import PMResult, pm, pm_array, pm_interval, run_pm
from core.scoring.registry import compute_metrics

# SPEC 7: DFM Decoder on Danish Dynaword, greedy, 100 prompts per setting (generic / specific / prefix).
PUBLISHED = {"als": (15.68, 17.37, 24.75), "fmr": (0.00, 0.01, 0.08), "nvr": (0.000857, 0.000811, 0.0367)}


def test_spec_reference_values():
    g, s, p = PUBLISHED["nvr"]
    assert pm(g, p) == pytest.approx(0.000857 / (0.000857 + 0.0367))
    assert round(pm(g, p), 3) == 0.023 and round(pm(s, p), 3) == 0.022
    assert pm(*PUBLISHED["fmr"][::2]) == 0.0  # generic FMR 0.00 against 0.08
    assert pm(PUBLISHED["als"][0], PUBLISHED["als"][2]) == pytest.approx(15.68 / 40.43)
    # Eq. 1 in its published form gives the same number
    assert pm(g, p) == pytest.approx(0.5 * (1 + (g - p) / (g + p)))


def test_zero_zero_and_negatives():
    assert pm(0.0, 0.0) == 0.0 and pm(0.0, 3.0) == 0.0 and pm(3.0, 0.0) == 1.0
    with pytest.raises(ConfigError, match="non-negative"):
        pm(-0.1, 1.0)
    with pytest.raises(ConfigError, match="non-negative"):
        pm(1.0, -2.0)


nonneg = st.floats(0, 1e6, allow_nan=False, allow_infinity=False)


@settings(max_examples=300, deadline=None)
@given(nonneg, nonneg, st.floats(0.001, 100))
def test_properties(f_p, f_c, delta):
    v = pm(f_p, f_c)
    assert 0.0 <= v <= 1.0
    assert pm(f_p + delta, f_c) >= v - 1e-12  # more leakage in ordinary use -> higher PM
    assert pm(f_p, f_c + delta) <= v + 1e-12  # stronger attack -> lower PM
    if f_p + f_c > 0:
        assert pm(f_p, f_c) + pm(f_c, f_p) == pytest.approx(1.0)
    assert pm_array(np.array([f_p]), np.array([f_c]))[0] == pytest.approx(v)


@given(st.floats(1e-9, 1e6))
def test_equal_values_give_half(x):
    assert pm(x, x) == 0.5


def _run(longest: list[int], full: list[bool] | None = None):
    full = full or [False] * len(longest)
    return _toy(*[[(0, n, [(i, "exact_full_raw" if f else "partial", 1.0 if f else 0.0)])] if n else []
                  for i, (n, f) in enumerate(zip(longest, full))])


def test_pm_interval_resamples_settings_independently():
    prop, cap = _run([3, 4, 5, 6, 0, 2]), _run([20, 25, 30, 10, 0, 15])
    cfg = MetricsConfig(bootstrap_samples=3000)
    iv = pm_interval(prop, cap, "als", cfg)
    assert iv.value == pytest.approx(20 / (20 + 100)) and iv.lo < iv.value < iv.hi
    assert iv == pm_interval(prop, cap, "als", cfg)  # seeded
    # oracle: the same two spawned streams, replicated by hand
    rng_p, rng_c = np.random.default_rng(cfg.seed).spawn(2)
    reps = pm_array(bootstrap.bootstrap_replicates(prop, "als", cfg, rng=rng_p),
                    bootstrap.bootstrap_replicates(cap, "als", cfg, rng=rng_c))
    assert (iv.lo, iv.hi) == pytest.approx(tuple(np.percentile(reps, [2.5, 97.5])))
    # independence: the two streams differ (a shared stream would draw identical prompt indices)
    a, b = np.random.default_rng(cfg.seed).spawn(2)
    assert not np.array_equal(a.integers(0, 6, 50), b.integers(0, 6, 50))


def test_pm_interval_all_zero_is_zero():
    iv = pm_interval(_run([0, 0]), _run([0, 0]), "fmr", MetricsConfig(bootstrap_samples=100))
    assert (iv.value, iv.lo, iv.hi) == (0.0, 0.0, 0.0)


def test_run_pm_rows_and_model_vs_model():
    runs = {"prefix": _run([30, 40], [True, False]), "specific": _run([10, 0]), "generic": _run([5, 5]), "mine": _run([1, 1])}
    cfg = MetricsConfig(bootstrap_samples=200)
    table = run_pm(runs, cfg, metrics=("als", "fmr"))
    assert [(s, m) for s, row in table.items() for m in row] == [
        ("generic", "als"), ("generic", "fmr"), ("specific", "als"), ("specific", "fmr"), ("mine", "als"), ("mine", "fmr")
    ]
    for s, row in table.items():
        for metric, r in row.items():
            assert isinstance(r, PMResult)
            f_p = compute_metrics(runs[s], cfg)[metric]
            f_c = compute_metrics(runs["prefix"], cfg)[metric]
            assert (r.f_p, r.f_c, r.value) == (f_p, f_c, pm(f_p, f_c))
            assert r.undefined == (f_p == f_c == 0) and r.lo <= r.value <= r.hi
    # point values only: the same values, no bootstrap
    points = run_pm(runs, cfg, metrics=("als", "fmr"), intervals=False)
    assert {(s, m): r.value for s, row in points.items() for m, r in row.items()} == {
        (s, m): r.value for s, row in table.items() for m, r in row.items()}
    assert all(r.method == "point" for row in points.values() for r in row.values())
    # model vs model: the reference model's run takes the prefix slot
    base, tuned = _run([20, 20]), _run([10, 10])
    (row,) = run_pm({"base": base, "tuned": tuned}, cfg, metrics=("als",), reference="base").values()
    assert row["als"].value == pytest.approx(1 / 3)
    assert run_pm({"generic": base}, cfg) == {}  # no capability setting: no PM
