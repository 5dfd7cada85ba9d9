"""Benchmark: percentile bootstrap of ALS/FMR/NVR, B = 10,000 over 100 prompts (target well under 1 s).

Baseline in the same run: the naive loop (gather the drawn prompts' traces, call compute_metrics)
on 200 replicates, extrapolated to B.

    .venv/bin/python bench/bench_bootstrap.py
"""
from __future__ import annotations

import random
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from core.config import MetricsConfig
from core.scoring.bootstrap import bootstrap_intervals
from core.scoring.metrics import _toy
from core.scoring.registry import compute_metrics


def main() -> None:
    rng = random.Random(42)
    gens = []
    for _ in range(100):
        spans = []
        for _ in range(rng.randint(0, 5)):
            s = rng.randint(0, 200)
            docs = [(rng.randint(0, 3000), rng.choice(["partial", "exact_full_raw"]), rng.random()) for _ in range(10)]
            spans.append((s, s + rng.randint(1, 60), docs))
        gens.append(sorted(spans))
    traces = _toy(*gens)
    cfg = MetricsConfig(bootstrap_samples=10_000)

    t0 = time.perf_counter()
    iv = bootstrap_intervals(traces, cfg, metrics=("als", "fmr", "nvr"))
    fast = time.perf_counter() - t0

    b_naive = 200
    idx = np.random.default_rng(cfg.seed).integers(0, len(traces), size=(b_naive, len(traces)))
    t0 = time.perf_counter()
    for row in idx:
        compute_metrics([traces[i] for i in row], cfg)
    naive = (time.perf_counter() - t0) * cfg.bootstrap_samples / b_naive

    print(f"bootstrap ALS/FMR/NVR, B=10,000, 100 prompts: {fast:.3f} s (target well under 1 s)")
    print(f"naive per-replicate loop (extrapolated from {b_naive}): {naive:.1f} s; ratio {naive / fast:.0f}x")
    print({k: (round(v.value, 4), round(v.lo, 4), round(v.hi, 4)) for k, v in iv.items()})


if __name__ == "__main__":
    main()
