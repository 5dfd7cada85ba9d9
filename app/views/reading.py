"""What a run says, in words and in the report: the plain-language reading, the plane's points, the report input.

No Streamlit here.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from app.charts import PlanePoint
from app.views.explore import ExploreFilter, example_rows, filter_examples
from app.views.manifest import manifest_rows, run_label
from app.views.tables import PRIMARY, interval_table, metric_table, pm_frame
from core.config import CAPABILITY, MetricsConfig
from core.reports.html import ReportInput
from core.scoring.propensity import pm_curve


def _how_much(pm_value: float) -> str:
    """Words for a PM value: 0.5 means ordinary use leaks as much as the attack."""
    if pm_value < 0.25:
        return "far less"
    if pm_value < 0.45:
        return "less"
    return "about as much" if pm_value <= 0.55 else "more"


def plain_reading(values: Mapping[str, Mapping[str, float]], pm_nvr: Mapping[str, Any], span_threshold: int) -> str:
    """One sentence: what the model can reproduce (prefix) and how much of it ordinary prompts elicit.

    The leakiest natural setting is the one with the highest NVR; the comparison word and the PM
    quoted are both PM of NVR (``pm_nvr``: the run's PM of NVR per setting, from
    :func:`core.scoring.propensity.run_pm`), so the sentence reads the same whatever headline metric a page shows.

    >>> from core.scoring.propensity import run_pm
    >>> v = {"prefix": {"als": 100.2, "fmr": 0.28, "r_n": 0.87, "nvr": 0.5589},
    ...      "specific": {"als": 33.6, "fmr": 0.13, "r_n": 0.21, "nvr": 0.2799}}
    >>> pm = {s: r["nvr"] for s, r in run_pm({s: [0] for s in v}, metrics=("nvr",), values_by_setting=v,
    ...                                          intervals=False).items()}
    >>> "it does so less: " in plain_reading(v, pm, 50), "(PM of NVR = 0.33;" in plain_reading(v, pm, 50)
    (True, True)
    """
    cap = values.get(CAPABILITY)
    natural = {s: v for s, v in values.items() if s != CAPABILITY and s in pm_nvr}
    if cap is None or not natural:
        return ("This run lacks a prefix setting or a natural setting, so capability and propensity "
                "cannot be compared.")
    worst = max(natural, key=lambda s: natural[s].get("nvr", 0.0))
    nat = natural[worst]
    pm_nvr = pm_nvr[worst].value
    return (f"Under prefix attacks the model reproduces training text verbatim: its longest verbatim "
            f"span averages {cap.get('als', 0):.1f} tokens, {cap.get('fmr', 0):.0%} of completions match a "
            f"document in full and {cap.get('r_n', 0):.0%} hold a span of at least {span_threshold} tokens. "
            f"Under ordinary prompts ({worst}, the leakiest natural setting) it does so {_how_much(pm_nvr)}: "
            f"average longest span {nat.get('als', 0):.1f} tokens, full matches {nat.get('fmr', 0):.0%}, "
            f"near-verbatim recall (NVR) {nat.get('nvr', 0):.2f} against {cap.get('nvr', 0):.2f} "
            f"(PM of NVR = {pm_nvr:.2f}; 0.5 would mean ordinary use leaks as much as the attack).")


def plane_points(label: str, intervals: Mapping[str, Mapping[str, Any]], metric: str) -> list:
    """Capability-propensity points of one run: one per natural setting (needs a prefix setting)."""
    cap = intervals.get(CAPABILITY)
    if cap is None:
        return []
    return [PlanePoint(f"{label} / {s}", cap[metric], ivs[metric]) for s, ivs in intervals.items()
            if s != CAPABILITY]


def report_input(run, values: Mapping[str, Mapping[str, float]], intervals: Mapping[str, Mapping[str, Any]],
                 pm: Mapping[str, Any], figures: Sequence[Any], cfg: MetricsConfig, pm_nvr: Mapping[str, Any],
                 n_examples: int = 10):
    """The HTML report's content: tables, figures and the top examples (longest span first)."""
    tables = [("Metrics with 95% bootstrap intervals", interval_table(intervals, PRIMARY, cfg)),
              ("Secondary metrics", metric_table(values, ("n_generations", "r_n", "max_span", "unique_docs",
                                                          "gen_nv_above", "max_nv_recall"), cfg))]
    if pm:
        tables.append((f"Propensity score PM (natural setting against {CAPABILITY})", pm_frame(pm)))
    top = filter_examples(example_rows(run.generations, run.traces), ExploreFilter())[:n_examples]
    examples = tuple(run.lookup(r.key) for r in top)
    return ReportInput(f"PropMe report: {run_label(run.manifest)}",
                       plain_reading(values, pm_nvr, cfg.span_threshold),
                       manifest_rows(run.manifest), tuple(tables), tuple(figures), examples)


def pm_curves(curves: Mapping[str, Sequence[float]]) -> dict[str, list[tuple[int, float]]]:
    """PM of R_n against n per compared setting, from span-share curves (cheap; 0/0 points left out)."""
    return pm_curve(curves, CAPABILITY)
