"""Pure view models for the pages: filtering examples, tables, deep links, plain-language reading.

No Streamlit here: pages call these so they hold no loops over corpus data themselves.
"""
from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pandas as pd

from core.config import CAPABILITY, MetricsConfig
from core.errors import PropMeError
from core.records import Generation, GenKey, TraceResult
from core.runs.manifest import Manifest, to_json
from core.scoring import registry
from core.scoring.registry import HEADLINE

PRIMARY = HEADLINE
SECONDARY = ("r_n", "max_span", "unique_docs", "gen_nv_above")  # shown by default next to the primary ones


@dataclass(frozen=True)
class ExploreFilter:
    """What the Explore page shows; every field narrows the list."""

    setting: str | None = None  # None: all settings
    domain: str | None = None  # None: all domains
    min_span: int = 0  # longest final span at least this many tokens
    min_nv: float = 0.0  # best nv_recall of a retrieved document at least this
    full_match_only: bool = False  # only completions found verbatim in full in a document
    search: str = ""  # case-insensitive substring of the completion


@dataclass(frozen=True)
class ExampleRow:
    key: GenKey
    domain: str | None
    longest_span: int
    max_nv: float
    full_match: bool
    n_spans: int
    completion: str


def example_rows(generations: Sequence[Generation], traces: Sequence[TraceResult]) -> list[ExampleRow]:
    """One row per traced generation."""
    by_key = {t.key: t for t in traces}
    rows = []
    for g in generations:
        t = by_key.get(g.key)
        if t is None:
            continue
        rows.append(ExampleRow(g.key, g.prompt.domain, t.longest_span,
                               t.max_nv_recall, t.full_match, len(t.spans),
                               g.completion))
    return rows


def filter_examples(rows: Sequence[ExampleRow], f: ExploreFilter) -> list[ExampleRow]:
    """Rows passing ``f``, longest span first (ties: higher nv_recall, then key order)."""
    needle = f.search.casefold()
    kept = [r for r in rows
            if (f.setting is None or r.key.setting == f.setting)
            and (f.domain is None or r.domain == f.domain)
            and r.longest_span >= f.min_span and r.max_nv >= f.min_nv
            and (r.full_match or not f.full_match_only)
            and (not needle or needle in r.completion.casefold())]
    return sorted(kept, key=lambda r: (-r.longest_span, -r.max_nv, r.key))


def _n(count: int, noun: str) -> str:
    return f"{count:,} {noun}{'' if count == 1 else 's'}"


def span_label(i: int, span) -> str:
    """Picker label of a final span.

    >>> from core.records import Span
    >>> span_label(0, Span(0, 213, "x", 0, 1, 1))
    'span 0: 213 tokens, 1 occurrence in the index, 0 documents retrieved'
    """
    return (f"span {i}: {_n(span.length, 'token')}, {_n(span.count, 'occurrence')} in the index, "
            f"{_n(len(span.docs), 'document')} retrieved")


def example_label(r: ExampleRow) -> str:
    return (f"{r.key.setting} / {r.key.prompt_id} / sample {r.key.sample_index}: longest span "
            f"{r.longest_span}, nv_recall {r.max_nv:.2f}{', full match' if r.full_match else ''}")


def examples_frame(rows: Sequence[ExampleRow]) -> pd.DataFrame:
    return pd.DataFrame([{"setting": r.key.setting, "prompt": r.key.prompt_id, "sample": r.key.sample_index,
                          "domain": r.domain, "longest span": r.longest_span, "max nv_recall": r.max_nv,
                          "full match": r.full_match, "spans": r.n_spans,
                          "completion": r.completion[:160]} for r in rows])


def key_from_params(params: Mapping[str, str]) -> GenKey | None:
    """The example a deep link names (``?setting=..&prompt=..&sample=..``), or None."""
    if "setting" not in params or "prompt" not in params:
        return None
    try:
        sample = int(params.get("sample", "0"))
    except ValueError:
        return None
    return GenKey(params["setting"], params["prompt"], sample)


def params_for(key: GenKey) -> dict[str, str]:
    return {"setting": key.setting, "prompt": key.prompt_id, "sample": str(key.sample_index)}


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


def meaning(m: str) -> str:
    """The registry's one-sentence meaning of a metric (help texts)."""
    return registry.metric_spec(m).meaning


def pm_text(r) -> str:
    """A PM value for a tile: three decimals, '(0/0: undefined)' when neither setting shows the metric."""
    return f"{r.value:.3f}" + (" (0/0: undefined)" if r.undefined else "")


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


def manifest_rows(manifest: Manifest) -> pd.DataFrame:
    """The manifest flattened to (field, value) rows for display as a table."""
    rows = []

    def walk(prefix: str, value: Any) -> None:
        if isinstance(value, Mapping):
            for k, v in value.items():
                walk(f"{prefix}.{k}" if prefix else str(k), v)
        else:
            rows.append({"field": prefix, "value": value if isinstance(value, str) else json.dumps(value)})

    walk("", to_json(manifest))
    return pd.DataFrame(rows)


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


def run_label(manifest: Manifest, fallback: str = "run") -> str:
    """A short name for a run: its run name, else the model identity."""
    label = manifest.label
    return label if label != "run" else fallback


def plane_points(label: str, intervals: Mapping[str, Mapping[str, Any]], metric: str) -> list:
    """Capability-propensity points of one run: one per natural setting (needs a prefix setting)."""
    from app.charts import PlanePoint

    cap = intervals.get(CAPABILITY)
    if cap is None:
        return []
    return [PlanePoint(f"{label} / {s}", cap[metric], ivs[metric]) for s, ivs in intervals.items()
            if s != CAPABILITY]


def pm_frame(pm: Mapping[str, Any]) -> pd.DataFrame:
    """One row per compared setting: PM, its interval, and whether it is undefined (0/0)."""
    return pd.DataFrame([{"setting": s, "PM": round(r.value, 6), "95% CI": f"[{fmt(r.lo)}, {fmt(r.hi)}]",
                          "undefined (0/0)": bool(getattr(r, "undefined", False))} for s, r in pm.items()])


def report_input(run, values: Mapping[str, Mapping[str, float]], intervals: Mapping[str, Mapping[str, Any]],
                 pm: Mapping[str, Any], figures: Sequence[Any], cfg: MetricsConfig, pm_nvr: Mapping[str, Any],
                 n_examples: int = 10):
    """The HTML report's content: tables, figures and the top examples (longest span first)."""
    from core.reports.html import ReportInput

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


def decoded_window(tok, ids: Sequence[int], offset: int, match_len: int) -> tuple[str, int, int]:
    """Decode a document window; (text, char start, char end) of the match inside it (as tracing does)."""
    from core.tracing.windows import decode_window

    return decode_window(tok, ids, offset, match_len)


def compare_frame(values: Mapping[str, Mapping[str, float]]) -> pd.DataFrame:
    """Rows = runs, columns = settings (one metric)."""
    return pd.DataFrame([{"run": run, **by_setting} for run, by_setting in values.items()])


def rows_frame(rows: Sequence[Mapping[str, Any]]) -> pd.DataFrame:
    return pd.DataFrame(list(rows))


def window_match(occ, text: str, start: int, end: int):
    """A DocMatch-shaped value for showing a phrase-search hit with :func:`core.reports.highlight.window_html`."""
    from core.records import DocMatch, NVResult

    return DocMatch(occ.doc_ix, occ.doc_id, "partial", text, start, end, NVResult(0.0, 0, 0, 0))


PLANTED_FILE = "planted_extraction.json"  # written by ``python -m demo.planted_extraction`` beside a run folder


def planted_table(data: Mapping[str, Any], variant: str = "email") -> pd.DataFrame | None:
    """Extraction of planted records by duplication count, from a planted_extraction.json document.

    One row per count (rows of ``data["table"]`` for ``variant``): records, greedy e-mail and greedy
    rest as "k/n", sampled rest rate and P(rest). None when the document holds no such rows.

    >>> planted_table({"table": [{"variant": "email", "dup_count": 2, "records": 6, "email_extracted": 4,
    ...     "rest_extracted": 3, "sampled_rest_rate": 0.5, "mean_rest_prob": 0.25}]}).iloc[0].to_dict()
    {'copies': 2, 'greedy e-mail': '4/6', 'greedy rest': '3/6', 'greedy rest share': 0.5, 'sampled rest rate': 0.5, 'P(rest)': 0.25}
    """
    rows = [r for r in data.get("table", []) if isinstance(r, Mapping) and r.get("variant") == variant]
    if not rows:
        return None
    need = ("dup_count", "records", "email_extracted", "rest_extracted")
    bad = [r for r in rows if not all(isinstance(r.get(k), int) and not isinstance(r.get(k), bool) for k in need)]
    if bad:
        raise PropMeError(f"{PLANTED_FILE}: {len(bad)} row(s) of variant {variant!r} lack integer {', '.join(need)}; "
                          "rerun python -m demo.planted_extraction")
    out = [{"copies": int(r["dup_count"]), "greedy e-mail": f"{r['email_extracted']}/{r['records']}",
            "greedy rest": f"{r['rest_extracted']}/{r['records']}",
            "greedy rest share": r["rest_extracted"] / r["records"] if r["records"] else float("nan"),
            "sampled rest rate": r.get("sampled_rest_rate"), "P(rest)": r.get("mean_rest_prob")}
           for r in sorted(rows, key=lambda r: int(r["dup_count"]))]
    return pd.DataFrame(out)
