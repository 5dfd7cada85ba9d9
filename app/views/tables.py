"""Metric tables and labels: metric values and intervals per setting, leaked documents, export records.

No Streamlit here: pages hand these frames to ``st.dataframe`` (cells are shown as text).
"""
from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

import pandas as pd

from core.config import MetricsConfig
from core.records import Generation, TraceResult
from core.scoring import registry
from core.scoring.registry import HEADLINE

PRIMARY = HEADLINE
SECONDARY = ("r_n", "max_span", "unique_docs", "gen_nv_above")  # shown by default next to the primary ones


def metric_names(values: Mapping[str, Mapping[str, float]]) -> list[str]:
    """Every metric name computed for any setting (for pickers), primary ones excluded."""
    names = dict.fromkeys(m for v in values.values() for m in v)
    return [m for m in names if m not in PRIMARY and m != "n_generations"]


def fmt(v: float | None) -> str:
    """A metric value for a tile or table cell; None (the metric does not apply) is 'n/a'."""
    if v is None:
        return "n/a"
    return f"{v:.3f}" if abs(v) < 1000 else f"{v:.0f}"


def interval_table(per_setting: Mapping[str, Mapping[str, Any]], metrics: Sequence[str],
                   cfg: MetricsConfig | None = None) -> pd.DataFrame:
    """Rows = settings; per metric its value and '[lo, hi]' interval column (labels from the registry)."""
    rows = []
    for setting, ivs in per_setting.items():
        row: dict[str, Any] = {"setting": setting}
        for m in metrics:
            iv, label = ivs[m], metric_label(m, cfg)
            row[label] = None if iv.value is None else round(iv.value, 6)
            row[f"{label} 95% CI"] = "n/a" if iv.lo is None else f"[{fmt(iv.lo)}, {fmt(iv.hi)}]"
        rows.append(row)
    return pd.DataFrame(rows)


def metric_label(m: str, cfg: MetricsConfig | None = None) -> str:
    """The registry's one label of a metric, its thresholds spelled out (``R_50``, ``NV > 0.5``).

    >>> metric_label("r_n", MetricsConfig(span_threshold=30)), metric_label("gen_nv_above", MetricsConfig())
    ('R_30', 'NV > 0.5')
    >>> metric_label("degenerate_share"), metric_label("no_such_metric")
    ('Loops', 'no_such_metric')
    """
    return registry.label(m, cfg)


def metric_table(per_setting: Mapping[str, Mapping[str, float]], metrics: Sequence[str],
                 cfg: MetricsConfig | None = None) -> pd.DataFrame:
    """Rows = settings, one column per metric (labels from :func:`metric_label`)."""
    return pd.DataFrame([{"setting": s, **{metric_label(m, cfg): v.get(m) for m in metrics}}
                         for s, v in per_setting.items()])


def summary_frame(per_setting: Mapping[str, Mapping[str, float]]) -> pd.DataFrame:
    """Rows = settings, every metric under its own key (the names of summary.json), for export."""
    return pd.DataFrame([{"setting": s, **{m: v[m] for m in sorted(v)}} for s, v in per_setting.items()])


def tokens(v: float) -> str:
    """A length in index tokens for a metric tile.

    >>> tokens(100.18)
    '100.2 tokens'
    """
    return f"{v:.1f} tokens"


def leaks_by_doc(traces: Sequence[TraceResult]) -> pd.DataFrame:
    """Per retrieved document: which settings leaked it, in how many completions, best nv_recall.

    Most reproduced first: highest nv_recall, then most completions (a document retrieved for a
    short common phrase in many completions, with nv_recall 0, is not a leak of that document).
    """
    acc: dict[str, dict[str, Any]] = {}
    for t in traces:
        for d in t.docs:
            row = acc.setdefault(d.doc_id, {"doc_id": d.doc_id, "doc_ix": d.doc_ix, "settings": set(),
                                            "completions": set(), "max nv_recall": 0.0, "full match": False})
            row["settings"].add(t.key.setting)
            row["completions"].add(t.key)
            row["max nv_recall"] = max(row["max nv_recall"], d.nv.recall)
            row["full match"] = row["full match"] or d.tier == "exact_full_raw"
    out = [{**r, "settings": ", ".join(sorted(r["settings"])), "completions": len(r["completions"])}
           for r in acc.values()]
    return pd.DataFrame(sorted(out, key=lambda r: (-r["max nv_recall"], -r["completions"], r["doc_id"])),
                        columns=["doc_id", "doc_ix", "settings", "completions", "max nv_recall", "full match"])


def records_frame(generations: Sequence[Generation], traces: Sequence[TraceResult]) -> pd.DataFrame:
    """One row per generation with its trace summary (for CSV/JSON export)."""
    by_key = {t.key: t for t in traces}
    rows = []
    for g in generations:
        t = by_key.get(g.key)
        rows.append({"setting": g.key.setting, "prompt_id": g.key.prompt_id, "sample_index": g.key.sample_index,
                     "domain": g.prompt.domain, "prompt": g.prompt.text, "completion": g.completion,
                     "traced": t is not None, "longest_span": t.longest_span if t else None,
                     "n_spans": len(t.spans) if t else None, "full_match": t.full_match if t else None,
                     "max_nv_recall": t.max_nv_recall if t else None,
                     "spans": json.dumps([s.text for s in t.spans], ensure_ascii=False) if t else None})
    return pd.DataFrame(rows)


def compare_frame(values: Mapping[str, Mapping[str, float]]) -> pd.DataFrame:
    """Rows = runs, columns = settings (one metric)."""
    return pd.DataFrame([{"run": run, **by_setting} for run, by_setting in values.items()])


def rows_frame(rows: Sequence[Mapping[str, Any]]) -> pd.DataFrame:
    return pd.DataFrame(list(rows))


def meaning(m: str) -> str:
    """The registry's one-sentence meaning of a metric (help texts)."""
    return registry.metric_spec(m).meaning


def pm_text(r) -> str:
    """A PM value for a tile: three decimals, '(0/0: undefined)' when neither setting shows the metric."""
    return f"{r.value:.3f}" + (" (0/0: undefined)" if r.undefined else "")


def pm_frame(pm: Mapping[str, Any]) -> pd.DataFrame:
    """One row per compared setting: PM, its interval, and whether it is undefined (0/0)."""
    return pd.DataFrame([{"setting": s, "PM": round(r.value, 6), "95% CI": f"[{fmt(r.lo)}, {fmt(r.hi)}]",
                          "undefined (0/0)": bool(getattr(r, "undefined", False))} for s, r in pm.items()])
