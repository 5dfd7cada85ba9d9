"""Scores of a run: metrics with bootstrap intervals per setting, and propensity (PM) per natural setting.

Produces the JSON-ready dicts stored as ``summary.json`` and ``pm.json`` in a results folder:

    summary[setting] = {"n_generations": n, "metrics": {name: value}, "intervals": {name: {value, lo, hi, method}}}
    pm[setting] = {metric: {"value", "lo", "hi", "method", "f_p", "f_c"}}     (setting != "prefix")
"""
from __future__ import annotations

import dataclasses
import logging
from collections.abc import Sequence
from typing import Any

from core.config import MetricsConfig
from core.progress import ProgressFn, Tracker
from core.scoring.metric_specs import HEADLINE

log = logging.getLogger(__name__)

PM_METRICS = HEADLINE  # the paper's three metrics, scored as propensity vs prefix


def _interval(iv: Any) -> dict[str, Any]:
    return dataclasses.asdict(iv) if dataclasses.is_dataclass(iv) else dict(iv)


def summarize(run, cfg: MetricsConfig | None = None, *, progress: ProgressFn | None = None,
              interval_metrics: Sequence[str] = PM_METRICS) -> tuple[dict, dict]:
    """(summary, pm) of a :class:`core.runs.results.RunResults`; only traced generations are scored."""
    cfg = cfg if cfg is not None else MetricsConfig()
    from core.scoring.bootstrap import bootstrap_intervals
    from core.scoring.metrics import compute_metrics, setting_counts
    from core.scoring.propensity import pm_interval

    settings = run.settings()
    tracker = Tracker("score", len(settings) + max(0, len(settings) - 1), progress, unit="settings")
    summary: dict[str, Any] = {}
    by_setting = {}
    for s in settings:
        gens, traces = run.by_setting(s)
        by_setting[s] = traces
        metrics = compute_metrics(traces, cfg, gens)
        intervals = bootstrap_intervals(traces, cfg, gens, metrics=tuple(interval_metrics)) if traces else {}
        summary[s] = {"n_generations": len(traces), "metrics": dict(metrics), "counts": setting_counts(traces),
                      "intervals": {k: _interval(v) for k, v in intervals.items()}}
        tracker.advance(1, s)
    out_pm: dict[str, Any] = {}
    if by_setting.get("prefix"):
        cap = by_setting["prefix"]
        for s in settings:
            if s == "prefix" or not by_setting[s]:
                continue
            out_pm[s] = {}
            for m in PM_METRICS:
                f_p, f_c = summary[s]["metrics"][m], summary["prefix"]["metrics"][m]
                iv = _interval(pm_interval(by_setting[s], cap, m, cfg, values=(f_p, f_c)))
                out_pm[s][m] = {**iv, "f_p": f_p, "f_c": f_c}
            tracker.advance(1, f"PM {s}")
    else:
        log.info("no prefix setting in this run: propensity scores (PM) need one")
    return summary, out_pm
