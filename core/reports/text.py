"""Plain-text (and JSON) report of a results folder: metrics per setting with intervals, and the PM table."""
from __future__ import annotations

import math
from typing import Any

from core.config import CAPABILITY
from core.runs.manifest import to_json
from core.runs.results import RunResults
from core.scoring.registry import HEADLINE, label

SECONDARY = ("r_n", "max_span", "gen_nv_above", "unique_docs")


def fmt_number(x: Any) -> str:
    """Four significant digits; integers as integers; None (the metric does not apply) as 'n/a'.

    >>> fmt_number(15.678), fmt_number(0.000857), fmt_number(3), fmt_number(None), fmt_number(float("nan"))
    ('15.68', '0.000857', '3', 'n/a', 'nan')
    """
    if x is None:
        return "n/a"
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
    return {"run_name": m.run_name, "path": run.path, "created": m.created,
            "model": m.model.identity if m.model else None, "index": m.index.fingerprint if m.index else None,
            "n_generations": len(run.generations), "n_traces": len(run.traces),
            "metrics": to_json(m)["metrics"], "warnings": list(m.warnings),
            "summary": dict(run.summary), "pm": dict(run.pm)}


def format_report(run: RunResults) -> str:
    """Human-readable report of one run (what ``python -m core report`` prints)."""
    m = run.manifest
    cfg, conf = m.metrics, m.metrics.confidence  # the thresholds summary.json and pm.json were scored with
    lines = [f"Run {m.run_name or '?'}  ({run.path or 'not saved'})",
             (f"  created {m.created or '?'}; model {m.model.identity if m.model else '?'}; "
              f"index {str(m.index.fingerprint if m.index else '?')[:16]}"),
             f"  {len(run.generations)} generations, {len(run.traces)} traced", ""]
    lines += [f"Warning: {w}" for w in m.warnings] + ([""] if m.warnings else [])
    if not run.summary:
        lines.append("No scores in this results folder (summary.json is empty).")
        return "\n".join(lines) + "\n"
    header = ["setting", "n"] + [f"{label(k, cfg)} [{conf:.0%} CI]" for k in HEADLINE] + \
             [label(k, cfg) for k in SECONDARY]
    rows = []
    for setting, s in run.summary.items():
        metrics, intervals = s.get("metrics", {}), s.get("intervals", {})
        rows.append([setting, fmt_number(s.get("n_generations"))]
                    + [_with_interval(metrics.get(k), intervals.get(k)) for k in HEADLINE]
                    + [fmt_number(metrics.get(k)) for k in SECONDARY])
    lines += ["Metrics per setting"] + _table(header, rows) + [""]
    if run.pm:
        lines.append(f"Propensity PM = f_p / (f_p + f_c) against {CAPABILITY} (0.5: natural use leaks as much as "
                     "the attack; * = 0/0, undefined: neither setting shows the metric)")
        header = ["setting"] + [f"PM_{label(k, cfg)} [{conf:.0%} CI]" for k in HEADLINE]
        rows = [[setting] + [_with_interval((pm.get(k) or {}).get("value"), pm.get(k))
                             + ("*" if (pm.get(k) or {}).get("undefined") else "") for k in HEADLINE]
                for setting, pm in run.pm.items()]
        lines += _table(header, rows)
    else:
        lines.append("No PM table: the run needs a prefix setting and at least one natural setting.")
    return "\n".join(lines) + "\n"
