"""Metric tables and labels: metric values per setting, leaked documents, the compare table (intervals with n/a: app/story.py; exports: core/reports/exports.py).

No Streamlit here: pages hand these frames to ``st.dataframe`` (cells are shown as text).
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import pandas as pd

from core.records import TraceResult
from core.scoring.registry import HEADLINE

PRIMARY = HEADLINE
SECONDARY = ("r_n", "max_span", "unique_docs", "gen_nv_above")  # shown by default next to the primary ones


def metric_names(values: Mapping[str, Mapping[str, float]]) -> list[str]:
    """Every metric name computed for any setting (for pickers), primary ones excluded."""
    names = dict.fromkeys(m for v in values.values() for m in v)
    return [m for m in names if m not in PRIMARY and m != "n_generations"]


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


def compare_frame(values: Mapping[str, Mapping[str, float]]) -> pd.DataFrame:
    """Rows = runs, columns = settings (one metric)."""
    return pd.DataFrame([{"run": run, **by_setting} for run, by_setting in values.items()])


def rows_frame(rows: Sequence[Mapping[str, Any]]) -> pd.DataFrame:
    return pd.DataFrame(list(rows))


def pm_text(r) -> str:
    """A PM value for a tile: three decimals, '(0/0: undefined)' when neither setting shows the metric."""
    return f"{r.value:.3f}" + (" (0/0: undefined)" if r.undefined else "")
