"""Plain-text (and JSON) report of a results folder: metrics per setting with intervals, and the PM table."""
from __future__ import annotations

import math
from typing import Any

from core.runs.results import RunResults
from core.scoring import metric_specs
from core.scoring.metric_specs import METRICS
from core.scoring.metrics import setting_counts

HEADLINE = tuple((m, METRICS[m].label) for m in metric_specs.HEADLINE)  # the paper's three metrics, with intervals
SECONDARY = (("r_n", "R_N"), ("max_span", "max span"), ("gen_nv_above", "NV>thr"), ("unique_docs", "docs"))
CONTINUATION = tuple((m, METRICS[m].label) for m in ("discoverable", "approx_lcp", "approx_edit_sim", "approx_lcs",
                                                        "n_continuation"))  # prefix: closeness to the true continuation


def prompt_formats(manifest: dict) -> dict[str, str]:
    """Prompt format per setting: as resolved by the run (``manifest["prompt_formats"]``), else as configured."""
    settings = [s for s in manifest.get("settings") or [] if isinstance(s, dict)]
    resolved = manifest.get("prompt_formats")
    if isinstance(resolved, dict) and resolved:  # saved with sorted keys: back in the settings' order
        order = [str(s.get("name")) for s in settings]
        keys = sorted(resolved, key=lambda k: (order.index(k) if k in order else len(order), k))
        return {str(k): str(resolved[k]) for k in keys}
    return {str(s.get("name")): str(s.get("prompt_format", "raw")) for s in settings}


def run_notes(run: RunResults) -> list[str]:
    """Warnings a reader of the scores must see: empty completions, spans the text-mode rule removes
    (or would remove), and prompt echo; computed from the traces, so older results folders get them too."""
    m = run.manifest
    mode = (m.get("trace") or {}).get("mode", "text")
    count_echo = bool((m.get("metrics") or {}).get("count_echo", False))
    notes = []
    for setting in run.settings():
        c = setting_counts(run.by_setting(setting)[1])
        if c["empty_completions"]:
            fmt = prompt_formats(m).get(setting, "raw")
            hint = ("; an instruction-tuned model given raw text often answers nothing: try prompt_format = \"chat\""
                    if fmt == "raw" else "")
            notes.append(f"{setting}: {c['empty_completions']} of {c['n_traced']} completions are EMPTY and score as "
                         f"no leakage{hint}")
        if c["text_rule_spans"] or c["text_rule_tokens"]:
            what = f"{c['text_rule_spans']} span(s), {c['text_rule_tokens']} token(s)"
            notes.append(f"{setting}: the paper's text-mode rule removed {what} of verbatim copies that cross a line or "
                         "sentence end; set [trace] mode = \"mixed\" to count them" if mode == "text" else
                         f"{setting}: {what} counted here cross a line or sentence end; the paper's text-mode rule "
                         "would drop them")
        if c["echo_spans"]:
            notes.append(f"{setting}: {c['echo_spans']} span(s) repeat the completion's own prompt (prompt echo); "
                         + ("counted as leaks (count_echo = true)" if count_echo else
                            "not counted as leaks (count_echo = false)"))
    return notes


def fmt_number(x: Any) -> str:
    """Four significant digits; integers as integers; missing values as '-'.

    >>> fmt_number(15.678), fmt_number(0.000857), fmt_number(3), fmt_number(None), fmt_number(float("nan"))
    ('15.68', '0.000857', '3', '-', 'nan')
    """
    if x is None:
        return "-"
    if isinstance(x, (bool, int)):
        return str(int(x))
    if isinstance(x, float) and math.isnan(x):
        return "nan"
    return f"{x:.4g}"


def _with_interval(value: Any, iv: dict | None) -> str:
    if not iv:
        return fmt_number(value)
    return f"{fmt_number(value)} [{fmt_number(iv.get('lo'))}, {fmt_number(iv.get('hi'))}]"


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    widths = [max(len(r[i]) for r in [header] + rows) for i in range(len(header))]
    line = lambda r: "  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip()
    return [line(header), line(["-" * w for w in widths])] + [line(r) for r in rows]


def report_dict(run: RunResults) -> dict[str, Any]:
    """JSON-ready report: run identity, per-setting metrics and intervals, PM."""
    m = run.manifest
    return {"run_name": m.get("run_name"), "path": run.path, "created": m.get("created"),
            "model": (m.get("model") or {}).get("identity"), "index": (m.get("index") or {}).get("fingerprint"),
            "n_generations": len(run.generations), "n_traces": len(run.traces),
            "summary": dict(run.summary), "pm": dict(run.pm), "prompt_formats": prompt_formats(m),
            "warnings": run_notes(run)}


def format_report(run: RunResults) -> str:
    """Human-readable report of one run (what ``python -m core report`` prints)."""
    m = run.manifest
    conf = m.get("metrics", {}).get("confidence", 0.95)
    lines = [f"Run {m.get('run_name', '?')}  ({run.path or 'not saved'})",
             (f"  created {m.get('created', '?')}; model {(m.get('model') or {}).get('identity', '?')}; "
              f"index {str((m.get('index') or {}).get('fingerprint', '?'))[:16]}"),
             f"  {len(run.generations)} generations, {len(run.traces)} traced", ""]
    if not run.summary:
        lines.append("No scores in this results folder (summary.json is empty).")
        return "\n".join(lines) + "\n"
    thr = m.get("metrics", {}).get("span_threshold", "N")
    header = ["setting", "n"] + [f"{label} [{conf:.0%} CI]" for _, label in HEADLINE] + \
             [label.replace("R_N", f"R_{thr}") for _, label in SECONDARY]
    rows = []
    for setting, s in run.summary.items():
        metrics, intervals = s.get("metrics", {}), s.get("intervals", {})
        rows.append([setting, fmt_number(s.get("n_generations"))]
                    + [_with_interval(metrics.get(k), intervals.get(k)) for k, _ in HEADLINE]
                    + [fmt_number(metrics.get(k)) for k, _ in SECONDARY])
    lines += ["Metrics per setting"] + _table(header, rows) + [""]
    cont = {setting: s.get("metrics", {}) for setting, s in run.summary.items()
            if (s.get("metrics", {}).get("n_continuation") or 0) > 0}
    if cont:
        n = m.get("metrics", {}).get("discoverable_tokens", "N")
        lines.append(f"Prefix continuation: discoverable extraction (first {n} tokens exact) and approximate "
                     "memorization against the true continuation")
        lines += _table(["setting"] + [label for _, label in CONTINUATION],
                        [[setting] + [fmt_number(v.get(k)) for k, _ in CONTINUATION] for setting, v in cont.items()])
        lines.append("")
    formats = prompt_formats(m)
    if formats:
        lines += ["Prompt format: " + ", ".join(f"{k} {v}" for k, v in formats.items()), ""]
    notes = run_notes(run)
    if notes:
        lines += ["Warnings"] + [f"  ! {note}" for note in notes] + [""]
    if run.pm:
        lines.append("Propensity PM = f_p / (f_p + f_c) against prefix (0.5: natural use leaks as much as the attack)")
        header = ["setting"] + [f"PM_{label} [{conf:.0%} CI]" for _, label in HEADLINE]
        rows = [[setting] + [_with_interval((pm.get(k) or {}).get("value"), pm.get(k)) for k, _ in HEADLINE]
                for setting, pm in run.pm.items()]
        lines += _table(header, rows)
    else:
        lines.append("No PM table: the run needs a prefix setting and at least one natural setting.")
    return "\n".join(lines) + "\n"
