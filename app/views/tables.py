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
from core.scoring.metric_specs import HEADLINE, METRICS

PRIMARY = HEADLINE
SECONDARY = ("r_n", "max_span", "unique_docs", "gen_nv_above")  # shown by default next to the primary ones
LABELS = {"als": "ALS", "fmr": "FMR", "nvr": "NVR", "r_n": "R_N", "max_span": "max span",
          "max_nv_recall": "max nv_recall", "unique_docs": "unique docs", "gen_nv_above": "nv_recall > t"}


def metric_names(values: Mapping[str, Mapping[str, float]]) -> list[str]:
    """Every metric name computed for any setting (for pickers), primary ones excluded."""
    names = dict.fromkeys(m for v in values.values() for m in v)
    return [m for m in names if m not in PRIMARY and m != "n_generations"]


def fmt(v: float) -> str:
    return f"{v:.3f}" if abs(v) < 1000 else f"{v:.0f}"


def interval_table(per_setting: Mapping[str, Mapping[str, Any]], metrics: Sequence[str]) -> pd.DataFrame:
    """Rows = settings; per metric its value and '[lo, hi]' interval column."""
    rows = []
    for setting, ivs in per_setting.items():
        row: dict[str, Any] = {"setting": setting}
        for m in metrics:
            iv = ivs[m]
            row[LABELS.get(m, m)] = round(iv.value, 6)
            row[f"{LABELS.get(m, m)} 95% CI"] = f"[{fmt(iv.lo)}, {fmt(iv.hi)}]"
        rows.append(row)
    return pd.DataFrame(rows)


def metric_label(m: str, cfg: MetricsConfig | None = None) -> str:
    """Column label of a metric; with ``cfg`` the thresholds are spelled out (``R_50``, ``nv_recall > 0.5``).

    >>> metric_label("r_n", MetricsConfig(span_threshold=30)), metric_label("gen_nv_above", MetricsConfig())
    ('R_30', 'nv_recall > 0.5')
    >>> metric_label("degenerate_share"), metric_label("no_such_metric")
    ('Loops', 'no_such_metric')
    """
    if cfg is not None and m == "r_n":
        return f"R_{cfg.span_threshold}"
    if cfg is not None and m == "gen_nv_above":
        return f"nv_recall > {cfg.nv_threshold:g}"
    if m in LABELS:
        return LABELS[m]
    return METRICS[m].label if m in METRICS else m


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
