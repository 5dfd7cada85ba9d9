"""The metric registry (core/scoring/registry.py) is the only place a metric is named (issue 25, item 1).

Two checks: no source of core/, app/ or pages/ builds a metric label by hand (an f-string such as
``f"R_{n}"``, ``f"PM of {label}"``, ``f"NV > {t}"``, ``f"{k}-eidetic"``) or spells out a registry
export column; and every column of the summary export maps back to a registry entry (or to one of the
export's own columns), with the registry's meaning in the data dictionary.
"""
from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from core.config import MetricsConfig
from core.reports import exports
from core.scoring import registry
from core.scoring.registry import METRICS
from tests.fixtures_app import make_run
from tests.test_exports import CFG, scored

ROOT = Path(__file__).resolve().parents[1]
REGISTRY = ROOT / "core" / "scoring" / "registry.py"
# text right before an interpolated value that makes a metric label: R_{n}, PM of {x}, PM {x}, NV > {t}
BEFORE = re.compile(r"(\bR_|\bPM(?: of)? |\bNV > )$")
AFTER = re.compile(r"^-eidetic\b")  # {k}-eidetic


def label_builders(source: str) -> list[str]:
    """The f-strings of ``source`` that build a metric label by hand, as ``line: text``."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, ast.JoinedStr):
            continue
        parts = node.values
        for i, part in enumerate(parts):
            if not isinstance(part, ast.FormattedValue):
                continue
            before = parts[i - 1].value if i > 0 and isinstance(parts[i - 1], ast.Constant) else ""
            after = parts[i + 1].value if i + 1 < len(parts) and isinstance(parts[i + 1], ast.Constant) else ""
            if BEFORE.search(before) or AFTER.search(after):
                found.append(f"{node.lineno}: {ast.unparse(node)}")
                break
    return found


def spelled_columns(source: str) -> list[str]:
    """String constants of ``source`` that are a registry export column or PM label (written again by hand)."""
    names = {s.column for s in METRICS.values()} | {registry.pm_label(m) for m in METRICS}
    return [f"{n.lineno}: {n.value!r}" for n in ast.walk(ast.parse(source))
            if isinstance(n, ast.Constant) and isinstance(n.value, str) and n.value in names]


def _sources():
    for d in ("core", "app", "pages"):
        for p in sorted((ROOT / d).rglob("*.py")):
            if p != REGISTRY:
                yield p


def test_no_metric_label_is_built_outside_the_registry():
    offenders = [f"{p.relative_to(ROOT)}:{hit}" for p in _sources()
                 for hit in label_builders(p.read_text(encoding="utf-8")) + spelled_columns(p.read_text(encoding="utf-8"))]
    assert offenders == [], "use registry.label / pm_label / column / help instead"


@pytest.mark.parametrize("snippet", [
    'x = f"R_{n} ({s})"', 'x = f"PM of R_{n}"', 'x = f"PM {label} ({s})"', 'x = f"NV > {t:g}"', 'x = f"{k}-eidetic"',
    'x = "ALS (tokens)"', 'x = "PM of FMR"', 'x = "R_N: share with a verbatim span of at least N tokens"',
])
def test_the_scan_finds_a_planted_label(snippet):
    assert label_builders(snippet) + spelled_columns(snippet)


@pytest.mark.parametrize("snippet", ['x = f"{registry.label(m, cfg)} ({s})"', 'x = f"R_N of {n} runs"',
                                     'x = "Span threshold N of R_N (tokens)"'])
def test_the_scan_lets_registry_calls_and_prose_pass(snippet):
    assert label_builders(snippet) + spelled_columns(snippet) == []


def test_every_summary_column_maps_back_to_a_registry_entry():
    values, intervals, _, by_setting, floors = scored(make_run())
    cfg = MetricsConfig(span_threshold=17, nv_threshold=0.3)
    summary = exports.summary_frame(values, intervals, by_setting, cfg, floors)
    metric_columns = [c for c in summary.columns if c not in exports.SUMMARY_COLUMNS]
    assert metric_columns
    for c in metric_columns:
        base = c.removesuffix(exports.LOW).removesuffix(exports.HIGH)
        m = registry.metric_of_column(base)
        assert m in METRICS, c
        assert base in (registry.column(m), registry.pm_label(m)), c
        assert not re.search(r"\d", base.replace("0-1", "").replace("95%", "")), c  # no threshold value in a name
    dictionary = exports.data_dictionary(summary, cfg).query("table == 'summary'").set_index("column")["meaning"]
    assert dictionary[registry.column("r_n")] == registry.help("r_n", cfg) and "= 17" in dictionary[registry.column("r_n")]
    assert "= 0.3" in dictionary[registry.column("gen_nv_above")]
    # the same names under other thresholds: the CSV's columns do not move with them
    assert list(exports.summary_frame(values, intervals, by_setting, CFG, floors).columns) == list(summary.columns)
    with pytest.raises(KeyError):
        exports.summary_meaning("Share with a verbatim span of at least 12 tokens")  # a hand-made name maps nowhere
