"""The story of a run in plain words: can the model leak, does it, how that compares, and with what.

Pure functions of metric values (``{setting: compute_metrics(...)}``) and traces, shared by the
app's Overview, the HTML report and the exports, so the three tell the same story with the same
numbers. Wording follows the numbers (a PM of 0.46 is not "far less"); a chance ``floor`` setting
(texts never seen in training, SPEC 6) is the baseline the natural settings are read against.
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from core.config import CAPABILITY
from core.prompts.floor import floor_names
from core.records import GenKey, TraceResult
from core.runs.manifest import Manifest
from core.scoring import registry

GLOSSARY: tuple[tuple[str, str], ...] = (
    ("prefix", ("The attack: the model gets the first tokens of a training document and continues it. "
                "Measures what the model CAN reproduce (capability).")),
    ("generic", ("Ordinary prompts on everyday topics, written without looking at the training data. "
                 "Measures what the model DOES reproduce in ordinary use (propensity).")),
    ("specific", ("Ordinary prompts about the kinds of text in the training data (still no training text "
                  "in them): propensity when users ask about those topics.")),
    ("floor", ("Chance baseline: texts known NOT to be in the training data, traced like completions. Short "
               "common phrases match anyway; whatever a setting does not exceed it is not memorization.")),
    ("verbatim span", "A run of tokens in a completion found word for word in the training corpus."),
    ("ALS", "Average longest span: the longest verbatim span per completion, in tokens, averaged."),
    ("FMR", "Full-match rate: share of completions found word for word, whole, in a training document."),
    ("NVR", ("Near-verbatim recall: how much of a retrieved training document the completion reproduces, "
             "allowing small edits (0 to 1), averaged over retrieved documents.")),
    ("R_N", "Share of completions holding a verbatim span of at least N tokens (N is a threshold)."),
    ("PM", ("Propensity score: metric under ordinary prompts / (ordinary + attack). 0.5 = ordinary use leaks "
            "as much as the attack; near 0 = it can leak but tends not to. n/a when both are 0.")),
)


TOKENS = ("tokens", "Pieces of text the index counts in (a word is one to three tokens); span lengths are in tokens.")
CUSTOM_SETTING = "Your own prompt set, read like ordinary prompts (propensity)."


def legend(settings: Iterable[str], floors: Iterable[str] = (), cfg=None, metric: str = "als") -> tuple[tuple[str, str], ...]:
    """One plain line per term the first screen shows (settings of this run, tokens, the PM metric, PM, R_N),
    labels from the metric registry (R_N spelled with the run's N).

    >>> [t for t, _ in legend(["prefix", "generic", "floor"], ["floor"])]
    ['prefix', 'generic', 'floor', 'tokens', 'ALS', 'PM of ALS', 'R_50']
    """
    from core.config import MetricsConfig
    from core.scoring.registry import label

    meanings = dict(GLOSSARY)
    floors = set(floors)
    out = [(s, meanings["floor"] if s in floors else meanings.get(s, CUSTOM_SETTING)) for s in settings]
    m = label(metric)
    out += [TOKENS, (m, meanings.get(m, m)),
            (registry.pm_label(metric), (f"{m} under ordinary prompts / ({m} ordinary + {m} under attack): 0.5 = ordinary use "
                           "leaks as much as the attack; near 0 = it can leak but tends not to.")),
            (label("r_n", cfg), (f"Share of completions holding a verbatim span of at least "
                                f"{(cfg or MetricsConfig()).span_threshold} tokens (N, set on the Thresholds page)."))]
    return tuple(out)


@dataclass(frozen=True)
class Headline:
    """The numbers of one setting that answer "can it / does it leak?"."""

    setting: str
    n: int  # completions scored
    threshold: int  # N of R_N
    share: float  # R_N: share of completions with a verbatim span >= N tokens
    longest: int  # longest verbatim span of any completion (tokens)
    full: int  # completions found whole in a training document
    als: float  # average longest span (tokens)


def floor_settings(manifest: Manifest, settings: Iterable[str] = ()) -> tuple[str, ...]:
    """Settings of kind ``floor`` in the run's manifest (a setting named "floor" counts too).

    >>> from core.config import SettingConfig
    >>> m = Manifest("r", settings=(SettingConfig("prefix"), SettingConfig("held", prompts_path="h.jsonl", kind="floor")))
    >>> floor_settings(m, ["prefix", "floor"])
    ('held', 'floor')
    """
    return floor_names(manifest.settings, settings)


def natural_settings(settings: Iterable[str], floors: Iterable[str] = ()) -> list[str]:
    """Settings that are neither the attack nor a chance floor."""
    skip = {CAPABILITY, *floors}
    return [s for s in settings if s not in skip]


def headline(setting: str, m: Mapping[str, Any], threshold: int) -> Headline:
    """Headline numbers of one setting from its ``compute_metrics`` values.

    >>> headline("prefix", {"n_generations": 4, "r_n": 0.5, "max_span": 80, "fmr": 0.25, "als": 40.0}, 50)
    Headline(setting='prefix', n=4, threshold=50, share=0.5, longest=80, full=1, als=40.0)
    """
    n = int(m.get("n_generations", 0) or 0)
    return Headline(setting, n, int(threshold), float(m.get("r_n", 0.0) or 0.0), int(m.get("max_span", 0) or 0),
                    round(float(m.get("fmr", 0.0) or 0.0) * n), float(m.get("als", 0.0) or 0.0))


def leakiest(values: Mapping[str, Mapping[str, Any]], settings: Sequence[str]) -> str | None:
    """The natural setting that leaks most: highest R_N, then ALS, then full matches (None when none)."""
    if not settings:
        return None
    return max(settings, key=lambda s: tuple(values[s].get(m) or 0.0 for m in ("r_n", "als", "fmr")))


def _share(x: float) -> str:
    """A share as a percentage that never rounds a non-zero share to 0% or a partial one to 100%.

    >>> _share(0.0), _share(0.001), _share(0.23), _share(0.999)
    ('0%', '<1%', '23%', '>99%')
    """
    if 0 < x < 0.01:
        return "<1%"
    if 0.99 < x < 1:
        return ">99%"
    return f"{x:.0%}"


def _plural(n: int, noun: str) -> str:
    return f"{n:,} {noun}{'' if n == 1 else 's'}"


def striking(traces: Iterable[TraceResult]) -> dict[str, GenKey]:
    """Per setting, the most striking completion: longest verbatim span, then a full match, then nv_recall
    (ties: first in key order). Settings whose completions hold no span are left out."""
    best: dict[str, tuple[tuple, GenKey]] = {}
    for t in traces:
        if not t.spans:
            continue
        score = (t.longest_span, t.full_match, t.max_nv_recall)
        cur = best.get(t.key.setting)
        if cur is None or score > cur[0] or (score == cur[0] and t.key < cur[1]):
            best[t.key.setting] = (score, t.key)
    return {s: k for s, (_, k) in best.items()}


def telling(traces: Sequence[TraceResult], settings: Sequence[str], cap: int = 6) -> list[GenKey]:
    """At most ``cap`` examples: settings in turn (natural first, then the attack, then the rest), each
    setting's completions by longest span, full match, nv_recall; completions without a span never."""
    ranked: dict[str, list[TraceResult]] = {}
    for t in traces:
        if t.spans:
            ranked.setdefault(t.key.setting, []).append(t)
    for items in ranked.values():
        items.sort(key=lambda t: (-t.longest_span, -t.full_match, -t.max_nv_recall, t.key))
    order = [s for s in settings if s in ranked]
    out: list[GenKey] = []
    depth = 0
    while len(out) < cap and any(depth < len(ranked[s]) for s in order):
        for s in order:
            if depth < len(ranked[s]) and len(out) < cap:
                out.append(ranked[s][depth].key)
        depth += 1
    return out


def model_badge(name: str, parameters: int | None, toy_demo: bool) -> str:
    """'name · 1.2M parameters · toy demo'.

    >>> model_badge("model", 1_234_567, True), model_badge("gpt2", None, False)
    ('model · 1.2M parameters · toy demo', 'gpt2 · size unknown')
    """
    if parameters is None:
        size = "size unknown"
    elif parameters >= 1e9:
        size = f"{parameters / 1e9:.1f}B parameters"
    elif parameters >= 1e6:
        size = f"{parameters / 1e6:.1f}M parameters"
    else:
        size = f"{parameters:,} parameters"
    return " · ".join([name, size] + (["toy demo"] if toy_demo else []))
