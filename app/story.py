"""The story of a run, app side: the model badge, the two questions answered, n/a tables, the charts, the report.

The wording and numbers of the story live in :mod:`core.reports.story` (shared with the HTML
report and the exports); this module adds what needs the app's view of a run: whether it is the
shipped demo, the model folder's parameter count, tables with n/a, the story's figures, and the
stakeholder report's input. No Streamlit here: the Overview and Export pages draw it.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from app import charts
from app.views import reading
from app.views.manifest import manifest_rows
from app.views.manifest import run_label as run_label_of
from core.config import CAPABILITY, MetricsConfig
from core.config.tables import to_dict
from core.generation.parameters import model_parameters
from core.records import TraceResult
from core.reports import na, tested
from core.reports.floor_text import floor_description
from core.reports.html import ReportInput
from core.reports.story import GLOSSARY, floor_settings, legend, model_badge, natural_settings, telling
from core.reports.text import skipped_notes
from core.reports.verdicts import RunNumbers, Story, decide
from core.runs.manifest import Manifest
from core.scoring import registry
from core.scoring.registry import HEADLINE


def model_name(manifest: Manifest) -> str:
    """A readable model name: the last two parts of its path or hub id (a folder is often just "model"),
    else its identity; never an absolute path.

    >>> from core.config import ModelConfig
    >>> from core.runs.manifest import ModelInfo
    >>> model_name(Manifest("r", model=ModelInfo("x", ModelConfig("/home/ana/demo/model"))))
    'demo/model'
    """
    model = manifest.model
    path = model.config.name_or_path if model is not None and model.config is not None else None
    if path:
        parts = [p for p in str(path).replace("\\", "/").split("/") if p and p not in ("..", ".")]
        if parts:
            return "/".join(parts[-2:])
    return str(model.identity) if model is not None and model.identity else "model"


def is_demo_run(run_path: str | Path | None) -> bool:
    """Whether ``run_path`` is the shipped toy demo's results folder."""
    if not run_path:
        return False
    from core.runs.demo import demo_results_dir

    try:
        return Path(run_path).resolve() == Path(demo_results_dir()).resolve()
    except OSError:
        return False


def badge(manifest: Manifest, run_path: str | Path | None) -> str:
    """'model · 1.3M parameters · toy demo' for the run in view."""
    model = manifest.model
    path = model.config.name_or_path if model is not None and model.config is not None else None
    return model_badge(model_name(manifest), model_parameters(path), is_demo_run(run_path))


# -- the story of a run, shared by the Overview and the HTML report ------------------------------------

def story_view(values: Mapping[str, Mapping[str, Any]], threshold: int, floors: Sequence[str],
               pm: Mapping[str, Any], metric: str, floor_als_hi: float | None = None) -> Story:
    """The decided story (:func:`core.reports.verdicts.decide`) from metric values (``{setting: compute_metrics}``)
    and the run's PM of ``metric`` (``{setting: PMResult}``, :func:`core.scoring.propensity.run_pm`);
    ``floor_als_hi``: the upper end of the chance floor's ALS interval, when known."""
    return decide(RunNumbers(values, threshold, tuple(floors), pm, metric, floor_als_hi))


def na_table(values: Mapping[str, Mapping[str, Any]], metrics: Sequence[str], cfg: MetricsConfig) -> pd.DataFrame:
    """Rows = settings, one column per metric; a column with an n/a cell (a metric that does not apply, a
    missing value) is text with ``n/a`` there, any other column keeps its numbers."""
    cols = {}
    for m in metrics:
        cells = [(s, v.get(m)) for s, v in values.items()]
        if any(na.is_na(x, m, s) for s, x in cells):  # text column: numbers formatted, n/a spelled out
            cols[registry.label(m, cfg)] = [na.fmt(x, m, s) for s, x in cells]
        else:  # numbers stay numbers (sortable)
            cols[registry.label(m, cfg)] = [x for _, x in cells]
    return pd.DataFrame({"setting": list(values), **cols})


def interval_table(intervals: Mapping[str, Mapping[str, Any]], metrics: Sequence[str],
                   cfg: MetricsConfig | None = None) -> pd.DataFrame:
    """Rows = settings; per metric its value and 95% interval as text (n/a where it does not apply)."""
    rows = []
    for s, ivs in intervals.items():
        row: dict[str, Any] = {"setting": s}
        for m in metrics:
            iv, label = ivs.get(m), registry.label(m, cfg)
            row[label] = na.fmt(iv.value if iv else None, m, s)
            row[f"{label} 95% interval"] = (f"[{na.fmt(iv.lo)}, {na.fmt(iv.hi)}]"
                                            if iv and not na.is_na(iv.lo, m, s) else na.NA)
        rows.append(row)
    return pd.DataFrame(rows)


def pm_table(pm: Mapping[str, Mapping[str, Any]]) -> pd.DataFrame:
    """Rows = natural settings, PM (PMResult) of each headline metric with its interval; n/a for 0 against 0."""
    rows = []
    for s, by_metric in pm.items():
        row: dict[str, Any] = {"setting": s}
        for m, r in by_metric.items():
            label = registry.pm_label(m)
            if r.undefined:
                row[label], row[f"{label} 95% interval"] = na.PM_NA, na.NA
            else:
                row[label], row[f"{label} 95% interval"] = f"{r.value:.3f}", f"[{r.lo:.3f}, {r.hi:.3f}]"
        rows.append(row)
    return pd.DataFrame(rows)


def pm_undefined_settings(pm: Mapping[str, Any]) -> list[str]:
    """Settings whose PM is 0 against 0 (run_pm's ``undefined`` flag)."""
    return [s for s, r in pm.items() if r.undefined]


def remaining_counts(curves: Mapping[str, Sequence[float]], values: Mapping[str, Mapping[str, Any]],
                     pm_curves: Mapping[str, Sequence[tuple[int, float]]]) -> dict[str, list[tuple[int, int]]]:
    """Per natural setting, (n, completions of it and of prefix with a span >= n) at the PM curve's n.

    ``curves[s][n - 1]`` is the share R_n of the setting's scored completions (``n_generations``).

    >>> remaining_counts({"prefix": [1.0, 0.5], "generic": [0.5, 0.25]},
    ...                  {"prefix": {"n_generations": 4}, "generic": {"n_generations": 4}}, {"generic": [(1, .3), (2, .3)]})
    {'generic': [(1, 6), (2, 3)]}
    """
    def count(s: str, n: int) -> int:
        return round(curves[s][n - 1] * (values[s].get("n_generations") or 0))

    return {s: [(n, count(s, n) + count(CAPABILITY, n)) for n, _ in pts] for s, pts in pm_curves.items()}


def figures(run_label: str, values: Mapping[str, Mapping[str, Any]], intervals: Mapping[str, Mapping[str, Any]],
            pm: Mapping[str, Any], metric: str, floors: Sequence[str]) -> list:
    """The story's charts: metric per setting (floor as a baseline), PM per natural setting, the plane."""
    label = registry.label(metric)
    floor = next((intervals[f][metric] for f in floors if f in intervals), None)
    shown = {s: intervals[s][metric] for s in intervals if s not in floors}
    out = [charts.metric_bars(shown, label, floor=floor, na=[s for s in shown if not na.applies(metric, s)])]
    natural_pm = {s: r for s, r in pm.items() if s not in floors}
    if natural_pm:
        out.append(charts.pm_bars(natural_pm, label, undefined=pm_undefined_settings(natural_pm)))
    points = reading.plane_points(run_label, intervals, metric, floors)
    if points:
        out.append(charts.capability_propensity(points, label, floor=floor))
    return out


def report_input(run, run_path, values, intervals, pm_by_metric, metric: str, cfg: MetricsConfig,
                 tuned: bool, figs: Sequence[Any], traces: Sequence[TraceResult] | None = None, cap: int = 6):
    """The stakeholder report: the story first, examples capped at ``cap`` (the most telling of ``traces``,
    the run's scored traces), configuration in the appendix. ``pm_by_metric``: {metric: {setting: PMResult}}."""
    floors = floor_settings(run.manifest, values)
    floor_iv = next((intervals[f].get("als") for f in floors if f in intervals), None)
    view = story_view(values, cfg.span_threshold, floors, pm_by_metric.get(metric, {}), metric,
                      floor_iv.hi if floor_iv is not None else None)
    natural = [s for s in next(iter(pm_by_metric.values()), {}) if s not in floors]
    pm_rows = {s: {m: by[s] for m, by in pm_by_metric.items() if s in by} for s in natural}
    tables = [("Headline metrics with 95% bootstrap intervals", interval_table(intervals, HEADLINE, cfg))]
    if pm_rows:
        tables.append(("Propensity score PM (ordinary prompts against the attack)", pm_table(pm_rows)))
    tables.append(("More metrics", na_table(values, ("n_generations", "r_n", "max_span", "gen_nv_above",
                                                     "unique_docs", "discoverable"), cfg)))
    order = [*natural_settings(values, floors), CAPABILITY, *floors]
    keys = telling(run.traces if traces is None else traces, order, cap)
    examples = tuple(run.lookup(k) for k in keys)
    thresholds = pd.DataFrame([{"threshold": k, "value": str(v)} for k, v in to_dict(cfg).items()] +
                              [{"threshold": "source", "value": "tuned in the app for this report" if tuned
                                else "the run's own (as scored)"}])
    readings = view.sentences() or ("PM needs a prefix setting and a natural setting in the run.",)
    floor_note = floor_description(run.manifest, floors)
    demo = is_demo_run(run_path)
    attack = tested.prefix_line(run)
    tested_rows = (("Model", badge(run.manifest, run_path)), ("Corpus", tested.corpus_line(run, demo)),
                   *((("Attack prompts", attack),) if attack else ()),
                   ("Thresholds", tested.thresholds_line(cfg, run.manifest.metrics, tuned)),
                   ("Chance floor", floor_note or "none in this run: nothing says what ordinary text reaches by chance"))
    return ReportInput(f"PropMe report: {run_label_of(run.manifest)}", readings[0], manifest_rows(run.manifest),
                       tuple(tables), tuple(figs), examples, badge=badge(run.manifest, run_path),
                       questions=tuple((q, a) for q, a, _ in view.answers()), sentences=readings[1:],
                       glossary=GLOSSARY, thresholds=thresholds, tested=tested_rows,
                       settings=pd.DataFrame(tested.settings_rows(run, floors)),
                       legend=legend(run.settings(), floors, cfg, metric), methods=(floor_note,) if floor_note else (),
                       method_notes=tuple(skipped_notes(run.manifest)))


def report_of_run(run, metric: str = "als", cfg: MetricsConfig | None = None) -> str:
    """The HTML report of a results folder at ``cfg`` (the run's own thresholds by default) without the app's
    caches: what the Export page builds (tests and scripts use it)."""
    from core.reports.html import build_report
    from core.scoring.bootstrap import bootstrap_intervals
    from core.scoring.metrics import scored_traces
    from core.scoring.propensity import run_pm
    from core.scoring.registry import compute_metrics
    from core.scoring.summary import stored_intervals, stored_metrics, stored_pm

    cfg = run.manifest.metrics if cfg is None else cfg
    settings = list(run.settings())
    floors = floor_settings(run.manifest, settings)
    parts = {s: run.by_setting(s) for s in settings}
    values = {s: stored_metrics(run, s, cfg) or compute_metrics(parts[s][1], cfg, parts[s][0], setting=s)
              for s in settings}
    intervals = {s: stored_intervals(run, s, cfg, HEADLINE) or bootstrap_intervals(parts[s][1], cfg, parts[s][0],
                                                                                   metrics=HEADLINE) for s in settings}
    natural = [s for s in settings if s not in floors and s != CAPABILITY]
    pm = {}
    for m in HEADLINE:
        stored = stored_pm(run, cfg, m)
        pm[m] = {s: r for s, r in stored.items() if s in natural} if stored is not None else {
            s: row[m] for s, row in run_pm({s: parts[s][1] for s in settings}, cfg, (m,), values_by_setting=values,
                                           settings=natural).items() if m in row}
    label = run_label_of(run.manifest)
    figs = figures(label, values, intervals, pm[metric], metric, floors)
    tuned = cfg != run.manifest.metrics
    return build_report(report_input(run, run.path, values, intervals, pm, metric, cfg, tuned, figs,
                                     traces=scored_traces(run.traces, cfg)))
