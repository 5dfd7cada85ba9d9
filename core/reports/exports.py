"""CSV/JSON exports of a run: metrics with intervals and PM, completions, spans, and a data dictionary.

Every CSV is written by :func:`core.reports.csv_safe.to_csv` (cells that a spreadsheet would run as a
formula get a leading ``'``; the data dictionary says so); JSON keeps the exact text.

Columns have readable names (``ALS (tokens)``, not ``als``); a metric's column name and meaning are its
registry entry's (:func:`core.scoring.registry.column`, :func:`~core.scoring.registry.help`) and do not
change with the thresholds, which the data dictionary states. Every column of every table is explained
by :func:`data_dictionary`. Where a number means nothing (a metric that does
not apply to the setting, PM of 0 against 0) the tables say ``n/a``; the JSON document keeps the
number (PM's 0) or null with a flag, and records the thresholds it was computed with.
"""
from __future__ import annotations

import dataclasses
import datetime as dt
import re
from collections.abc import Mapping, Sequence
from typing import Any

import pandas as pd

from core.config import CAPABILITY, MetricsConfig
from core.config.tables import to_dict
from core.records import Generation, TraceResult
from core.reports.csv_safe import GUARD_NOTE
from core.reports.na import NA, PM_NA, is_na, pm_undefined
from core.scoring import registry
from core.scoring.registry import HEADLINE

EXTRA = ("n_generations", "r_n", "max_span", "gen_nv_above", "max_nv_recall", "unique_docs", "degenerate_share",
         "discoverable", "approx_lcp")
LOW, HIGH = " 95% low", " 95% high"  # the interval columns: a metric's (or PM's) column with this suffix


def download_name(run_label: str, what: str, ext: str) -> str:
    """A file name for a download that says which run and which table it holds, distinct per table.

    >>> download_name("demo run/2", "summary-data-dictionary", "csv")
    'propme-demo-run-2-summary-data-dictionary.csv'
    """
    stem = re.sub(r"[^A-Za-z0-9._-]+", "-", str(run_label)).strip("-.") or "run"
    return f"propme-{stem[:60]}-{what}.{ext}"


def _num(v: Any, digits: int = 6) -> Any:
    return round(float(v), digits) if isinstance(v, float) else v


def _undefined(iv: Any, f_p: Any, f_c: Any) -> bool:
    """PM of 0 against 0: run_pm's flag (PMResult.undefined), else from the two metric values."""
    flag = getattr(iv, "undefined", None)
    return bool(flag) if flag is not None else pm_undefined(f_p, f_c)


def summary_frame(values: Mapping[str, Mapping[str, Any]], intervals: Mapping[str, Mapping[str, Any]],
                  pm: Mapping[str, Mapping[str, Any]], cfg: MetricsConfig, floors: Sequence[str] = ()) -> pd.DataFrame:
    """One row per setting: the headline metrics with 95% intervals, PM with its interval, more metrics.

    ``pm[setting][metric]`` is an Interval-like (value, lo, hi); f_p and f_c come from ``values``.
    """
    rows = []
    cap = values.get(CAPABILITY, {})
    for s, v in values.items():
        row: dict[str, Any] = {"Setting": s, "Role": "attack (capability)" if s == CAPABILITY else
                               "chance floor" if s in floors else "ordinary prompts (propensity)"}
        for m in HEADLINE:
            iv, col = intervals.get(s, {}).get(m), registry.column(m)
            row[col] = NA if is_na(v.get(m), m, s) else _num(v[m])
            row[col + LOW] = _num(iv.lo) if iv is not None else NA
            row[col + HIGH] = _num(iv.hi) if iv is not None else NA
        for m in HEADLINE:
            iv, col = pm.get(s, {}).get(m), registry.pm_label(m)
            if s == CAPABILITY or s in floors or iv is None:
                row[col], row[col + LOW], row[col + HIGH] = NA, NA, NA
            elif _undefined(iv, v.get(m), cap.get(m)):
                row[col], row[col + LOW], row[col + HIGH] = PM_NA, NA, NA
            else:
                row[col], row[col + LOW], row[col + HIGH] = map(_num, (iv.value, iv.lo, iv.hi))
        for m in EXTRA:
            row[registry.column(m)] = NA if is_na(v.get(m), m, s) else _num(v.get(m))
            if m == "r_n":  # R_N's interval, like ALS, FMR and NVR (when the caller computed one)
                iv = intervals.get(s, {}).get("r_n")
                row[registry.column("r_n") + LOW] = _num(iv.lo) if iv is not None else NA
                row[registry.column("r_n") + HIGH] = _num(iv.hi) if iv is not None else NA
        rows.append(row)
    return pd.DataFrame(rows)


def summary_document(run_label: str, values: Mapping[str, Mapping[str, Any]],
                     intervals: Mapping[str, Mapping[str, Any]], pm: Mapping[str, Mapping[str, Any]],
                     cfg: MetricsConfig, thresholds_source: str, floors: Sequence[str] = ()) -> dict[str, Any]:
    """The JSON export: thresholds used (and whether tuned), metrics (null where n/a, listed under
    ``not_applicable``), intervals, and PM per natural setting with ``undefined`` for 0 against 0."""
    cap = values.get(CAPABILITY, {})
    settings: dict[str, Any] = {}
    for s, v in values.items():
        settings[s] = {
            "role": "capability" if s == CAPABILITY else "floor" if s in floors else "propensity",
            "metrics": {m: (None if is_na(x, m, s) else x) for m, x in v.items()},
            "not_applicable": sorted(m for m, x in v.items() if is_na(x, m, s)),
            "intervals": {m: dataclasses.asdict(iv) if dataclasses.is_dataclass(iv) else dict(iv)
                          for m, iv in intervals.get(s, {}).items()},
        }
    out_pm: dict[str, Any] = {}
    for s, by_metric in pm.items():
        if s == CAPABILITY or s in floors:
            continue
        out_pm[s] = {}
        for m, iv in by_metric.items():
            f_p, f_c = values.get(s, {}).get(m), cap.get(m)
            undefined = _undefined(iv, f_p, f_c)
            out_pm[s][m] = {"value": iv.value, "lo": iv.lo, "hi": iv.hi, "f_p": f_p, "f_c": f_c,
                            "undefined": undefined, **({"shown_as": PM_NA} if undefined else {})}
    return {"run": run_label, "exported": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            "thresholds": {"source": thresholds_source, **to_dict(cfg)},
            "floor_settings": list(floors), "settings": settings, "pm": out_pm}


COMPLETION_COLUMNS = {
    "Setting": "Prompting regime: prefix (attack), a natural prompt set, or a chance floor.",
    "Prompt id": "Stable id of the prompt within its setting.",
    "Sample": "Sample number of this completion for its prompt (0 for greedy decoding).",
    "Domain": "Topic of the prompt, when its prompt set names one.",
    "Prompt": "The prompt text given to the model (empty for floor texts, which are not generated).",
    "Completion": "The model's completion (for a floor setting: the held-out text itself).",
    "Traced": "Whether the completion was traced against the corpus index.",
    "Longest verbatim span (tokens)": "Longest run of index tokens of the completion found verbatim in the corpus.",
    "Verbatim spans": "Number of final verbatim spans found in the completion.",
    "Full match": "True when a retrieved training document holds the whole completion verbatim.",
    "Best nv_recall": "Highest near-verbatim recall of any retrieved document (0 to 1).",
    "Training documents": "Ids of the training documents retrieved for its spans, separated by '; '.",
}
SPAN_COLUMNS = {
    "Setting": COMPLETION_COLUMNS["Setting"],
    "Prompt id": COMPLETION_COLUMNS["Prompt id"],
    "Sample": COMPLETION_COLUMNS["Sample"],
    "Span number": "Position of the span among the completion's final spans (0 = first).",
    "Span text": "The verbatim span as decoded text.",
    "Span length (tokens)": "Length of the span in index tokens.",
    "Span start (character)": "Offset of the span's first character in the completion text (0-based).",
    "Span end (character)": "Offset just after the span's last character in the completion text.",
    "Occurrences in corpus": "How many times the span occurs in the indexed corpus.",
    "Prompt echo": ("True when the span's text also occurs in the completion's own prompt: not counted as a "
                    "leak unless the thresholds say count_echo = true (its source is the prompt)."),
    "Document id": "Corpus id of one retrieved training document holding the span (empty: none retrieved).",
    "Document index": "Position of that document in the corpus index.",
    "Tier": "How the document matches: exact_full_raw = holds the whole completion; others partial.",
    "nv_recall": "Near-verbatim recall of the completion against that document's window (0 to 1).",
}


def completions_frame(generations: Sequence[Generation], traces: Sequence[TraceResult]) -> pd.DataFrame:
    """One row per completion with its trace summary (columns of :data:`COMPLETION_COLUMNS`)."""
    by_key = {t.key: t for t in traces}
    rows = []
    for g in generations:
        t = by_key.get(g.key)
        rows.append(dict(zip(COMPLETION_COLUMNS, (
            g.key.setting, g.key.prompt_id, g.key.sample_index, g.prompt.domain, g.prompt.text, g.completion,
            t is not None, t.longest_span if t else None, len(t.spans) if t else None,
            t.full_match if t else None, t.max_nv_recall if t else None,
            "; ".join(dict.fromkeys(d.doc_id for d in t.docs)) if t else None))))
    return pd.DataFrame(rows, columns=list(COMPLETION_COLUMNS))


def spans_frame(traces: Sequence[TraceResult]) -> pd.DataFrame:
    """One row per (verbatim span, retrieved document); a span with no retrieved document gets one row
    with empty document fields. Character offsets index the completion text."""
    rows = []
    for t in traces:
        for i, s in enumerate(t.spans):
            head = (t.key.setting, t.key.prompt_id, t.key.sample_index, i, s.text, s.length, s.char_start,
                    s.char_end, s.count, s.echo)
            for d in s.docs or (None,):
                rows.append(dict(zip(SPAN_COLUMNS, head + ((d.doc_id, d.doc_ix, d.tier, d.nv.recall) if d else
                                                           (None, None, None, None)))))
    return pd.DataFrame(rows, columns=list(SPAN_COLUMNS))


def data_dictionary(summary: pd.DataFrame | None = None, cfg: MetricsConfig | None = None) -> pd.DataFrame:
    """(table, column, meaning) for every column of the exports; summary columns from ``summary``, each
    metric's meaning from the registry with the thresholds of ``cfg`` (those the summary was scored with)."""
    rows = [{"table": "completions", "column": c, "meaning": m} for c, m in COMPLETION_COLUMNS.items()]
    rows += [{"table": "spans", "column": c, "meaning": m} for c, m in SPAN_COLUMNS.items()]
    for c in (summary.columns if summary is not None else ()):
        rows.append({"table": "summary", "column": c, "meaning": summary_meaning(c, cfg)})
    rows.append({"table": "every CSV file", "column": "(any text cell)", "meaning": GUARD_NOTE})
    return pd.DataFrame(rows, columns=["table", "column", "meaning"])


SUMMARY_COLUMNS = {
    "Setting": COMPLETION_COLUMNS["Setting"],
    "Role": "attack (capability), ordinary prompts (propensity) or chance floor (texts never seen in training).",
}


def summary_meaning(column: str, cfg: MetricsConfig | None = None) -> str:
    """The meaning of a summary column: its own, or its metric's (registry) or PM's, with the interval bound.

    Raises KeyError for a column that is neither a summary column nor a metric's.
    """
    if column in SUMMARY_COLUMNS:
        return SUMMARY_COLUMNS[column]
    base = column.removesuffix(LOW).removesuffix(HIGH)
    bound = "" if base == column else \
        " (lower end of the 95% bootstrap interval)" if column.endswith(LOW) else " (upper end of the 95% bootstrap interval)"
    m = registry.metric_of_column(base)
    if m is None:
        raise KeyError(f"summary column {column!r} names no metric of the registry")
    if base == registry.pm_label(m):
        return (f"Propensity score of {registry.label(m)}: value under this setting / (this setting + prefix); "
                f"0.5 = as much as the attack; '{PM_NA}' when both are 0") + bound
    return registry.help(m, cfg) + bound
