"""Scores of a run: metrics with bootstrap intervals per setting, and propensity (PM) per compared setting.

Produces the JSON-ready dicts stored as ``summary.json`` and ``pm.json`` in a results folder:

    summary[setting] = {"n_generations": n, "metrics": {name: value | null}, "intervals": {name: {value, lo, hi, method}}}
    pm[setting] = {metric: {"value", "lo", "hi", "method", "f_p", "f_c", "undefined"}}     (setting != CAPABILITY, no chance floor)

A metric that does not apply to a setting (registry ``settings``) is ``null``. The stored scores
are the numbers of the run's own MetricsConfig: :func:`stored_metrics`, :func:`stored_intervals`
and :func:`stored_pm` return them when asked for that config (the app and ``report`` read them,
and recompute only for other thresholds), None otherwise.
"""
from __future__ import annotations

import dataclasses
import logging
from collections.abc import Mapping, Sequence
from typing import Any

from core.config import CAPABILITY, MetricsConfig
from core.progress import ProgressFn, Tracker
from core.prompts.floor import floor_names
from core.scoring.bootstrap import Interval, bootstrap_intervals
from core.scoring.metrics import setting_counts
from core.scoring.propensity import PMResult, compared_settings, run_pm
from core.scoring.registry import HEADLINE, compute_metrics

log = logging.getLogger(__name__)

PM_METRICS = HEADLINE  # the paper's three metrics, scored as propensity vs prefix


def summarize(run, cfg: MetricsConfig | None = None, *, progress: ProgressFn | None = None,
              interval_metrics: Sequence[str] = PM_METRICS) -> tuple[dict, dict]:
    """(summary, pm) of a :class:`core.runs.results.RunResults`; only traced generations are scored."""
    cfg = cfg if cfg is not None else MetricsConfig()
    settings = run.settings()
    tracker = Tracker("score", len(settings) + max(0, len(settings) - 1), progress, unit="settings")
    summary: dict[str, Any] = {}
    traces, gens, values = {}, {}, {}
    for s in settings:
        gens[s], traces[s] = run.by_setting(s)
        values[s] = compute_metrics(traces[s], cfg, gens[s], setting=s)
        intervals = bootstrap_intervals(traces[s], cfg, gens[s], metrics=tuple(interval_metrics)) if traces[s] else {}
        summary[s] = {"n_generations": len(traces[s]), "metrics": dict(values[s]),
                      "counts": setting_counts(traces[s]),
                      "intervals": {k: dataclasses.asdict(v) for k, v in intervals.items()}}
        tracker.advance(1, s)
    if not traces.get(CAPABILITY):
        log.info("no %s setting in this run: propensity scores (PM) need one", CAPABILITY)
    floors = floor_names(run.manifest.settings, settings)  # a chance floor is compared with nothing
    pm = run_pm(traces, cfg, PM_METRICS, values_by_setting=values,
                settings=[s for s in compared_settings(settings) if s not in floors])
    tracker.advance(len(pm), "PM")
    return summary, {s: {m: dataclasses.asdict(r) for m, r in row.items()} for s, row in pm.items()}


def _scored_with(run, cfg: MetricsConfig) -> bool:
    stored = getattr(run.manifest, "metrics", None)
    return stored is not None and stored == cfg and bool(run.summary)


def stored_metrics(run, setting: str, cfg: MetricsConfig) -> dict[str, float | None] | None:
    """summary.json's metrics of ``setting`` when ``cfg`` is the run's own MetricsConfig, else None."""
    entry = run.summary.get(setting) if _scored_with(run, cfg) else None
    return dict(entry["metrics"]) if isinstance(entry, Mapping) and isinstance(entry.get("metrics"), Mapping) else None


def stored_intervals(run, setting: str, cfg: MetricsConfig, metrics: Sequence[str]) -> dict[str, Interval] | None:
    """summary.json's intervals of ``metrics`` in ``setting`` when ``cfg`` is the run's own and all are stored."""
    entry = run.summary.get(setting) if _scored_with(run, cfg) else None
    ivs = entry.get("intervals") if isinstance(entry, Mapping) else None
    if not isinstance(ivs, Mapping) or not all(isinstance(ivs.get(m), Mapping) for m in metrics):
        return None
    return {m: Interval(**ivs[m]) for m in metrics}


def stored_pm(run, cfg: MetricsConfig, metric: str) -> dict[str, PMResult] | None:
    """pm.json's PM of ``metric`` per compared setting when ``cfg`` is the run's own and it is stored."""
    if not _scored_with(run, cfg) or not all(isinstance(row, Mapping) and metric in row for row in run.pm.values()):
        return None
    return {s: PMResult(**row[metric]) for s, row in run.pm.items()}
