"""Plain-text (and JSON) report of a results folder: metrics per setting with intervals, and the PM table.

Also the one place where text bound for a terminal is made safe (:func:`terminal_text`,
:func:`terminal_json`): the CLI passes everything it prints through them, because run names, setting
names, ids, paths and error messages can come from results folders, configs and corpora.
"""
from __future__ import annotations

import json
import math
import re
from typing import TYPE_CHECKING, Any

from core.config import CAPABILITY
from core.errors import ResultsError
from core.runs.manifest import Manifest, to_json
from core.scoring.metrics import setting_counts
from core.scoring.registry import HEADLINE, label

if TYPE_CHECKING:
    from core.runs.results import RunResults

SECONDARY = ("r_n", "max_span", "gen_nv_above", "unique_docs")
CONTINUATION = ("discoverable", "approx_lcp", "approx_edit_sim", "approx_lcs", "n_continuation")  # prefix only


def prompt_formats(manifest: Manifest) -> dict[str, str]:
    """Prompt format per setting: as resolved by the run (``manifest.prompt_formats``), else as configured."""
    order = [s.name for s in manifest.settings]
    resolved = dict(manifest.prompt_formats)
    if resolved:  # saved with sorted keys: back in the settings' order
        keys = sorted(resolved, key=lambda k: (order.index(k) if k in order else len(order), k))
        return {str(k): str(resolved[k]) for k in keys}
    return {s.name: s.prompt_format for s in manifest.settings}


def skipped_notes(manifest) -> list[str]:
    """One line per setting whose prompt file had bad rows: how many were skipped, where, and the first
    reasons in full (shown by ``report``, the HTML report's methods, Overview and the Run page)."""
    out = []
    for setting, skip in (manifest.skipped_rows or {}).items():
        reasons = skip.reasons or (skip.first,)
        more = f"; {skip.count - len(reasons)} more" if skip.count > len(reasons) else ""
        out.append(f"{setting}: {skip.count} prompt row(s) of {skip.file} were skipped (not valid prompts, not "
                   f"generated): {'; '.join(reasons)}{more}")
    return out


def run_notes(run: RunResults) -> list[str]:
    """Warnings a reader of the scores must see: empty completions, spans the text-mode rule removes
    (or would remove), and prompt echo; computed from the traces, so older results folders get them too."""
    m = run.manifest
    mode, count_echo = m.trace.mode, m.metrics.count_echo
    notes = skipped_notes(m)
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


# C0 controls but newline and tab (ESC starts terminal escape sequences; CR overwrites a line), DEL, C1
# controls, bidi marks/embeddings/overrides/isolates, zero-width characters, line/paragraph separators,
# BOM, and lone surrogates (which cannot even be written as UTF-8).
_UNSAFE = re.compile("[\u0000-\u0008\u000b-\u001f\u007f-\u009f\u061c\u200b-\u200f\u2028-\u202e"
                     "\u2060-\u2069\ufeff\ud800-\udfff]")


def terminal_text(text: Any) -> str:
    """``text`` safe to print on a terminal: control characters shown as ``\\xNN``, bidi, zero-width
    and other invisible characters as ``[U+XXXX]``; newlines and tabs kept.

    >>> terminal_text("run\\x1b]0;pwned\\x07\\x1b[2J \\u202eevil\\nnext")
    'run\\\\x1b]0;pwned\\\\x07\\\\x1b[2J [U+202E]evil\\nnext'
    """
    return _UNSAFE.sub(lambda m: f"\\x{ord(m.group()):02x}" if ord(m.group()) < 0xA0 else f"[U+{ord(m.group()):04X}]",
                       str(text))


def terminal_json(obj: Any) -> str:
    """``obj`` as indented JSON that is safe on a terminal and still equal to ``obj`` when parsed: the
    characters :func:`terminal_text` shows are written as ``\\uXXXX`` escapes (they only occur in strings).

    >>> terminal_json({"name": "a\\u202eb\\x1b"})
    '{\\n  "name": "a\\\\u202eb\\\\u001b"\\n}'
    """
    text = json.dumps(obj, indent=2, ensure_ascii=False, sort_keys=True)
    return _UNSAFE.sub(lambda m: f"\\u{ord(m.group()):04x}", text)


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


def _number_or_none(x: Any) -> bool:
    return x is None or (isinstance(x, (int, float)) and not isinstance(x, bool))


def _check_shape(run: RunResults) -> None:
    """Raise ResultsError naming the first entry of summary/PM/manifest that a report cannot show."""
    def bad(where: str, value: Any) -> ResultsError:
        return ResultsError(f"{run.path or 'results'}: {where} has the wrong shape ({terminal_text(repr(value)[:80])}); "
                            "re-run `python -m core run` to rewrite the results folder")

    for name, part in (("summary.json", run.summary), ("PM table", run.pm)):
        if not isinstance(part, dict):
            raise bad(name, part)
    for setting, s in run.summary.items():
        where = f"summary.json [{setting!r}]"
        if not isinstance(s, dict) or not isinstance(s.get("metrics", {}), dict) or \
                not isinstance(s.get("intervals", {}), dict) or not _number_or_none(s.get("n_generations")):
            raise bad(where, s)
        if not all(_number_or_none(v) for v in s.get("metrics", {}).values()):
            raise bad(f"{where} metrics", s["metrics"])
        for k, iv in s.get("intervals", {}).items():
            if iv and not (isinstance(iv, dict) and _number_or_none(iv.get("lo")) and _number_or_none(iv.get("hi"))):
                raise bad(f"{where} intervals {k!r}", iv)
    for setting, pm in run.pm.items():
        if not isinstance(pm, dict) or not all(
                v is None or (isinstance(v, dict) and all(_number_or_none(v.get(x)) for x in ("value", "lo", "hi")))
                for v in pm.values()):
            raise bad(f"PM table [{setting!r}]", pm)


def report_dict(run: RunResults) -> dict[str, Any]:
    """JSON-ready report: run identity, per-setting metrics and intervals, PM (print it with :func:`terminal_json`)."""
    _check_shape(run)
    m = run.manifest
    return {"run_name": m.run_name, "path": run.path, "created": m.created,
            "model": m.model.identity if m.model else None, "index": m.index.fingerprint if m.index else None,
            "n_generations": len(run.generations), "n_traces": len(run.traces),
            "metrics": to_json(m)["metrics"], "prompt_formats": prompt_formats(m),
            "warnings": list(m.warnings) + run_notes(run), "summary": dict(run.summary), "pm": dict(run.pm),
            "skipped_rows": {s: {"count": k.count, "file": k.file, "reasons": list(k.reasons or (k.first,))}
                             for s, k in (m.skipped_rows or {}).items()}}


def format_report(run: RunResults) -> str:
    """Human-readable report of one run (what ``python -m core report`` prints), safe on a terminal
    (:func:`terminal_text`); ResultsError when the results hold values of the wrong shape."""
    _check_shape(run)
    m = run.manifest
    cfg, conf = m.metrics, m.metrics.confidence  # the thresholds summary.json and pm.json were scored with
    lines = [f"Run {m.run_name or '?'}  ({run.path or 'not saved'})",
             (f"  created {m.created or '?'}; model {m.model.identity if m.model else '?'}; "
              f"index {str(m.index.fingerprint if m.index else '?')[:16]}"),
             f"  {len(run.generations)} generations, {len(run.traces)} traced", ""]
    lines += [f"Warning: {w}" for w in m.warnings] + ([""] if m.warnings else [])
    if not run.summary:
        lines.append("No scores in this results folder (summary.json is empty).")
        return terminal_text("\n".join(lines) + "\n")
    header = ["setting", "n"] + [f"{label(k, cfg)} [{conf:.0%} CI]" for k in HEADLINE] + \
             [label(k, cfg) for k in SECONDARY]
    rows = []
    for setting, s in run.summary.items():
        metrics, intervals = s.get("metrics", {}), s.get("intervals", {})
        rows.append([setting, fmt_number(s.get("n_generations"))]
                    + [_with_interval(metrics.get(k), intervals.get(k)) for k in HEADLINE]
                    + [fmt_number(metrics.get(k)) for k in SECONDARY])
    lines += ["Metrics per setting"] + _table(header, rows) + [""]
    cont = {setting: s.get("metrics", {}) for setting, s in run.summary.items()
            if (s.get("metrics", {}).get("n_continuation") or 0) > 0}
    if cont:
        n = m.metrics.discoverable_tokens
        lines.append(f"Prefix continuation: discoverable extraction (first {n} tokens exact) and approximate "
                     "memorization against the true continuation")
        lines += _table(["setting"] + [label(k, cfg) for k in CONTINUATION],
                        [[setting] + [fmt_number(v.get(k)) for k in CONTINUATION] for setting, v in cont.items()])
        lines.append("")
    formats = prompt_formats(m)
    if formats:
        lines += ["Prompt format: " + ", ".join(f"{k} {v}" for k, v in formats.items()), ""]
    notes = run_notes(run)
    if notes:
        lines += ["Warnings"] + [f"  ! {note}" for note in notes] + [""]
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
    return terminal_text("\n".join(lines) + "\n")
