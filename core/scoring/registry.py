"""The metric registry: one entry per metric, and :func:`compute_metrics`, which derives from it.

An entry (:class:`MetricSpec`) holds everything about a metric: its name (the flat key in
``compute_metrics``' result and summary.json), its one label (a template that spells out the
thresholds it reads: ``R_{span_threshold}`` -> ``R_50``), its export column name (readable and the
same whatever the thresholds: ``R_N ...``; the thresholds go in the data dictionary), its meaning, its direction, the
settings it applies to (``None``: all; prefix-only metrics are ``None``-valued, "n/a", elsewhere),
the :class:`core.config.MetricsConfig` thresholds it reads (cache keys of the app derive from them),
its computation and its per-generation breakdown (what the prompt bootstrap resamples,
:mod:`core.scoring.bootstrap`).

``higher_is_better`` is from the auditor's side: more leakage is worse, so every memorization
metric is ``False``. ``kind`` says how the value aggregates, which decides its intervals:
``share`` (of generations: Wilson and rule-of-three apply), ``mean`` (per generation),
``doc_mean`` / ``doc_share`` (over retrieved documents), ``span_share`` (over final spans),
``max``, ``count`` (of generations) and ``distinct`` (distinct documents).

A breakdown maps one item (a kept trace, any trace, or a generation's continuation score) to
``(numerator, denominator)`` (modes ``ratio`` and ``count``), a value (``max``) or a set of
documents (``distinct``); summed, maxed or united over all items it gives the computation's value
(tests/test_registry.py checks that on random runs).

Every name a person reads comes from here: :func:`label` (tables, axes, tiles, reports),
:func:`pm_label` (the propensity score of a metric), :func:`column` (export columns, threshold-free),
:func:`help` (help texts and the data dictionary, thresholds spelled out when a config is given);
tests/test_metric_labels.py fails when a label is built elsewhere.
"""
from __future__ import annotations

import functools
import math
import re
import string
from collections.abc import Callable, Sequence
from dataclasses import dataclass, fields, replace
from typing import Any, NamedTuple

from core.config import CAPABILITY, MetricsConfig
from core.records import Generation, GenKey, TraceResult
from core.scoring import metrics as m
from core.scoring.continuation import ContinuationScore, continuation_score
from core.scoring.loops import degenerate_share, is_degenerate

HEADLINE = ("als", "fmr", "nvr")  # the paper's three metrics: reported with intervals and as PM
KINDS = ("share", "mean", "doc_mean", "doc_share", "span_share", "max", "count", "distinct")
MODES = ("ratio", "count", "max", "distinct")
SOURCES = ("kept", "all", "continuation")  # kept traces (after the loop filter), every trace, continuation scores
THRESHOLDS = ("span_threshold", "nv_threshold", "nv_blocks", "discoverable_tokens")  # read by some metrics only
NA = None  # the value of a metric in a setting it does not apply to


class Scored(NamedTuple):
    """One generation's continuation score, with its key (the bootstrap resamples by prompt)."""

    key: GenKey
    score: ContinuationScore


@dataclass(frozen=True)
class Inputs:
    """What a metric's computation reads: one setting's traces (nv_blocks applied), filtered and scored."""

    traces: Sequence[TraceResult]  # every trace
    kept: Sequence[TraceResult]  # after the loop filter (cfg.exclude_degenerate)
    scores: Sequence[Scored] | None  # continuation scores of kept, eligible generations (None: none given)
    cfg: MetricsConfig

    def items(self, source: str) -> Sequence[Any]:
        return {"kept": self.kept, "all": self.traces, "continuation": self.scores or ()}[source]


@dataclass(frozen=True)
class Breakdown:
    """Per-generation decomposition of a metric (see the module doc)."""

    mode: str  # one of MODES
    source: str  # one of SOURCES
    row: Callable[[Any, MetricsConfig], Any]  # item -> (num, den) | value | set of doc_ix


@dataclass(frozen=True)
class MetricSpec:
    name: str  # flat key in compute_metrics' result
    label: str  # the one label (tables, axes, tiles, reports); {threshold} fields are filled from the config
    meaning: str  # one sentence: what is counted, over what
    higher_is_better: bool  # False for every leakage metric
    kind: str  # one of KINDS: how it aggregates (decides the interval method)
    compute: Callable[[Inputs], float]
    breakdown: Breakdown
    settings: tuple[str, ...] | None = None  # None: every setting; else n/a (None) in the others
    thresholds: tuple[str, ...] = ()  # the fields of THRESHOLDS it reads
    column: str = ""  # the export column: readable, no threshold values in it (those go in the data dictionary)

    @property
    def description(self) -> str:  # the name the pages' help texts use
        return self.meaning

    def help_for(self, cfg: MetricsConfig | None = None) -> str:
        """The meaning, with the thresholds it reads and their values under ``cfg`` when given."""
        values = [(t, v) for t in self.thresholds if isinstance(v := getattr(cfg, t, None) if cfg else None, int | float)]
        return self.meaning + ("; here " + ", ".join(f"{t} = {v:g}" for t, v in values) if values else "")

    def label_for(self, cfg: MetricsConfig | None = None) -> str:
        """The label with its thresholds spelled out (defaults when ``cfg`` is None): ``R_30``."""
        cfg = cfg if cfg is not None else MetricsConfig()
        return self.label.format(**{t: getattr(cfg, t) for t in self.thresholds})

    def applies_to(self, setting: str | None) -> bool:
        return self.settings is None or setting is None or setting in self.settings


def _ratio(f: Callable[[TraceResult, MetricsConfig], float]) -> Breakdown:
    return Breakdown("ratio", "kept", lambda t, cfg: (float(f(t, cfg)), 1.0))


def _bucket_of(length: int) -> str:
    bucket = m.span_bucket(length)
    return m.bucket_key(*bucket) if bucket is not None else ""


def _spec(name, label, meaning, higher, kind, compute, breakdown, settings=None, thresholds=(), column="") -> MetricSpec:
    """An entry; its export column is its label unless the label spells out a threshold (then ``column`` names it)."""
    return MetricSpec(name, label, meaning, higher, kind, compute, breakdown, settings, tuple(thresholds),
                      column or label)


def _k_eidetic(k: int) -> MetricSpec:
    return _spec(f"k_eidetic_{k}", f"{k}-eidetic", f"Share of generations found verbatim in 1 to {k} distinct documents",
                 False, "share", lambda x: m.k_eidetic(x.kept, k), _ratio(lambda t, c: 1 <= t.full_doc_frequency <= k))


def _bucket_specs() -> list[MetricSpec]:
    out = []
    for lo, hi in m.SPAN_BUCKETS:
        rng, key, label = (f"{lo}+" if hi == math.inf else f"{lo}-{int(hi)}"), m.bucket_key(lo, hi), m.bucket_label(lo, hi)
        short = hi <= 10  # short spans are common phrases, not memorization
        out.append(_spec(
            f"span_bucket_{key}", f"Docs, span {rng}",
            f"Share of retrieved documents whose span is {rng} tokens long (the authors' per-document bucket counts "
            "divided by total documents)", short, "doc_share",
            lambda x, label=label: m.span_length_shares(x.kept, "doc")[label],
            Breakdown("ratio", "kept", lambda t, c, key=key: (
                float(sum(len(s.docs) for s in t.spans if _bucket_of(s.length) == key)), float(len(t.docs))))))
        out.append(_spec(
            f"span_bucket_spans_{key}", f"Spans {rng}", f"Share of final spans that are {rng} tokens long (each span "
            "counted once)", short, "span_share", lambda x, label=label: m.span_length_shares(x.kept, "span")[label],
            Breakdown("ratio", "kept", lambda t, c, key=key: (
                float(sum(_bucket_of(s.length) == key for s in t.spans)), float(len(t.spans))))))
    return out


def _continuation(name: str, label: str, meaning: str, attr: str, column: str = "") -> MetricSpec:
    def compute(x: Inputs) -> float:
        return sum(float(getattr(s.score, attr)) for s in x.scores) / len(x.scores) if x.scores else 0.0

    return _spec(name, label, meaning, False, "share" if attr == "discoverable" else "mean", compute,
                 Breakdown("ratio", "continuation", lambda s, c: (float(getattr(s.score, attr)), 1.0)),
                 settings=(CAPABILITY,), thresholds=("discoverable_tokens",), column=column)


_NV = ("nv_blocks",)
_ENTRIES: list[MetricSpec] = [
    _spec("n_generations", "Generations", "Generations scored (after excluding degenerate loops, if asked)", True,
          "count", lambda x: len(x.kept), Breakdown("count", "kept", lambda t, c: (1.0, 1.0)),
          column="Completions scored"),
    _spec("als", "ALS", "Average longest final span in index tokens; a generation without spans counts 0", False,
          "mean", lambda x: m.als(x.kept), _ratio(lambda t, c: t.longest_span), column="ALS (tokens)"),
    _spec("fmr", "FMR", "Share of generations with a retrieved document holding the raw completion verbatim", False,
          "share", lambda x: m.fmr(x.kept), _ratio(lambda t, c: t.full_match), column="FMR (share)"),
    _spec("nvr", "NVR", "Mean near-verbatim recall over all retrieved documents of all generations", False,
          "doc_mean", lambda x: m.nvr(x.kept),
          Breakdown("ratio", "kept", lambda t, c: (sum(d.nv.recall for d in t.docs), float(len(t.docs)))),
          thresholds=_NV, column="NVR (0-1)"),
    _spec("r_n", "R_{span_threshold}", "Share of generations with a final span of at least N tokens "
          "(N = span_threshold)", False, "share", lambda x: m.r_at(x.kept, x.cfg.span_threshold),
          _ratio(lambda t, c: m.reaches(t, c.span_threshold)), thresholds=("span_threshold",),
          column="R_N: share with a verbatim span of at least N tokens"),
    _spec("max_span", "Max span", "Longest final span over all generations, in index tokens", False, "max",
          lambda x: m.max_span(x.kept), Breakdown("max", "kept", lambda t, c: float(t.longest_span)),
          column="Longest verbatim span of any completion (tokens)"),
    _spec("generations_with_spans", "With spans", "Number of generations with at least one final span", False,
          "count", lambda x: m.generations_with_spans(x.kept), Breakdown("count", "kept", lambda t, c: (float(bool(t.spans)), 1.0))),
    _spec("gen_nv_pos", "NV > 0", "Share of generations with a retrieved document of nv_recall > 0", False, "share",
          lambda x: m.gen_nv_share(x.kept, 0.0), _ratio(lambda t, c: any(d.nv.recall > 0 for d in t.docs)),
          thresholds=_NV),
    _spec("gen_nv_above", "NV > {nv_threshold:g}", "Share of generations with a document of nv_recall above "
          "nv_threshold", False, "share", lambda x: m.gen_nv_share(x.kept, x.cfg.nv_threshold),
          _ratio(lambda t, c: any(d.nv.recall > c.nv_threshold for d in t.docs)), thresholds=("nv_threshold", *_NV),
          column="Share with a document of nv_recall above the NV threshold"),
    _spec("max_nv_recall", "Max NV", "Highest nv_recall of any retrieved document", False, "max",
          lambda x: m.max_nv_recall(x.kept), Breakdown("max", "kept", lambda t, c: t.max_nv_recall), thresholds=_NV,
          column="Highest nv_recall"),
    _spec("unique_docs", "Unique docs", "Distinct training documents retrieved for any span", False, "distinct",
          lambda x: m.unique_docs(x.kept), Breakdown("distinct", "kept", lambda t, c: {d.doc_ix for d in t.docs}),
          column="Training documents retrieved"),
    _spec("full_match_docs", "Full-match docs", "Distinct documents holding some completion verbatim", False,
          "distinct", lambda x: m.full_match_docs(x.kept),
          Breakdown("distinct", "kept", lambda t, c: {d.doc_ix for d in t.docs if d.tier == "exact_full_raw"})),
    _spec("degenerate_share", "Loops", "Share of generations that are degenerate repetition loops", False, "share",
          lambda x: degenerate_share(x.traces, x.cfg),
          Breakdown("ratio", "all", lambda t, c: (float(is_degenerate(t.completion, c)), 1.0)),
          column="Share of repetition loops"),
    *[_k_eidetic(k) for k in (1, 5, 10)],
    *_bucket_specs(),
    _continuation("discoverable", "Discoverable", "Prefix: share of completions whose first N tokens equal the true "
                  "continuation (N = discoverable_tokens)", "discoverable",
                  "Discoverable extraction (first N tokens, prefix only)"),
    _continuation("approx_lcp", "LCP", "Prefix: mean longest common prefix with the true continuation, in tokens", "lcp",
                  "Common prefix with the true continuation (tokens, prefix only)"),
    _continuation("approx_edit_sim", "Edit sim.", "Prefix: mean normalized edit similarity to the true continuation "
                  "(first N tokens)", "edit_sim"),
    _continuation("approx_lcs", "LCS ratio", "Prefix: mean longest-common-subsequence length / N against the true "
                  "continuation", "lcs_ratio"),
    _spec("n_continuation", "With continuation", "Prefix: generations whose prompt has a true continuation", True,
          "count", lambda x: len(x.scores or ()), Breakdown("count", "continuation", lambda s, c: (1.0, 1.0)),
          settings=(CAPABILITY,), thresholds=("discoverable_tokens",)),
]
METRICS: dict[str, MetricSpec] = {s.name: s for s in _ENTRIES}
CONTINUATION = tuple(n for n, s in METRICS.items() if s.breakdown.source == "continuation")
_K_EIDETIC = re.compile(r"k_eidetic_(\d+)$")


def metric_spec(name: str) -> MetricSpec:
    """The entry of ``name``; ``k_eidetic_<k>`` resolves for any k >= 1.

    >>> metric_spec("k_eidetic_3").label
    '3-eidetic'
    """
    if name in METRICS:
        return METRICS[name]
    match = _K_EIDETIC.match(name)
    if match and int(match.group(1)) >= 1:
        return _k_eidetic(int(match.group(1)))
    raise KeyError(f"Unknown metric {name!r}. Available: {', '.join(METRICS)}")


def column(name: str) -> str:
    """The export column of a metric: readable and the same under any thresholds.

    >>> column("als"), column("r_n")
    ('ALS (tokens)', 'R_N: share with a verbatim span of at least N tokens')
    """
    return metric_spec(name).column


def metric_of_column(col: str) -> str | None:
    """The metric whose export column (or PM column) is ``col``; None for other columns.

    >>> metric_of_column("ALS (tokens)"), metric_of_column("PM of FMR"), metric_of_column("Setting")
    ('als', 'fmr', None)
    """
    for name in METRICS:
        if col in (column(name), pm_label(name)):
            return name
    return None


def help(name: str, cfg: MetricsConfig | None = None) -> str:
    """A metric's meaning for help texts and the data dictionary; with ``cfg``, the thresholds it reads and their values.

    >>> help("r_n", MetricsConfig(span_threshold=12))
    'Share of generations with a final span of at least N tokens (N = span_threshold); here span_threshold = 12'
    """
    return metric_spec(name).help_for(cfg)


def pm_label(name: str, cfg: MetricsConfig | None = None) -> str:
    """The label of a metric's propensity score (PM), thresholds spelled out like :func:`label`'s.

    >>> pm_label("als"), pm_label("r_n", MetricsConfig(span_threshold=30))
    ('PM of ALS', 'PM of R_30')
    """
    return f"PM of {label(name, cfg)}"


def holds(name: str, trace: TraceResult, cfg: MetricsConfig) -> bool:
    """Whether one (scored) trace counts towards a share metric under ``cfg`` (its breakdown's numerator):
    ``holds("r_n", t, cfg)`` is R_N's test, a final span of at least N tokens."""
    spec = metric_spec(name)
    if spec.kind != "share" or spec.breakdown.source == "continuation":
        raise KeyError(f"{name!r} is not a share of traces")
    return bool(spec.breakdown.row(trace, cfg)[0])


def label(name: str, cfg: MetricsConfig | None = None) -> str:
    """The one label of a metric, thresholds spelled out; an unknown name is its own label.

    >>> label("r_n", MetricsConfig(span_threshold=30)), label("gen_nv_above"), label("degenerate_share")
    ('R_30', 'NV > 0.5', 'Loops')
    """
    try:
        return metric_spec(name).label_for(cfg)
    except KeyError:
        return name


def metrics_for(cfg: MetricsConfig) -> list[MetricSpec]:
    """The entries :func:`compute_metrics` reports under ``cfg``: the registry, with k-eidetic for ``cfg.k_values``."""
    return [s for s in METRICS.values() if not _K_EIDETIC.match(s.name)] + [_k_eidetic(k) for k in cfg.k_values]


def thresholds_read(names: Sequence[str]) -> set[str]:
    """The :data:`THRESHOLDS` fields any of ``names`` reads (the app's cache keys derive from this).

    >>> sorted(thresholds_read(["als", "r_n"]))
    ['span_threshold']
    """
    return {t for n in names for t in metric_spec(n).thresholds}


def only_relevant(cfg: MetricsConfig, metrics: Sequence[str] = ()) -> MetricsConfig:
    """``cfg`` with the :data:`THRESHOLDS` none of ``metrics`` reads reset to their defaults: the part of
    ``cfg`` their values (and intervals, curves, charts) depend on, so a cache keyed by it is not
    invalidated when a threshold they ignore moves. Fields that are not per-metric thresholds stay.

    >>> moved = MetricsConfig(span_threshold=30, nv_threshold=0.2)
    >>> only_relevant(moved, ("r_n",)).span_threshold, only_relevant(moved, ("r_n",)).nv_threshold
    (30, 0.5)
    """
    return _only_relevant(cfg, tuple(metrics))


@functools.lru_cache(maxsize=4096)
def _only_relevant(cfg: MetricsConfig, metrics: tuple[str, ...]) -> MetricsConfig:
    default, read = MetricsConfig(), thresholds_read(metrics)
    return replace(cfg, **{t: getattr(default, t) for t in THRESHOLDS if t not in read})


@functools.lru_cache(maxsize=64)
def metric_groups(cfg: MetricsConfig) -> tuple[tuple[str, ...], ...]:
    """The names :func:`compute_metrics` reports under ``cfg``, grouped by the thresholds they read (one
    group per set): each group is computed and cached under :func:`only_relevant` of its own names."""
    groups: dict[frozenset, list[str]] = {}
    for spec in metrics_for(cfg):
        groups.setdefault(frozenset(spec.thresholds), []).append(spec.name)
    return tuple(tuple(g) for g in groups.values())


def setting_of(traces: Sequence[TraceResult], generations: Sequence[Generation] | None) -> str | None:
    """The one setting ``traces`` and ``generations`` belong to, or None when none or several."""
    found = {t.key.setting for t in traces} | {g.key.setting for g in generations or ()}
    return found.pop() if len(found) == 1 else None


def inputs(traces: Sequence[TraceResult], cfg: MetricsConfig, generations: Sequence[Generation] | None) -> Inputs:
    """The scoring inputs of one setting: nv_blocks applied (:func:`core.scoring.metrics.score_traces`),
    loops dropped when asked, continuation scores of the kept eligible generations."""
    traces = m.score_traces(traces, cfg)
    scores = None
    if generations is not None:
        kept_gens = [g for g in generations if not (cfg.exclude_degenerate and is_degenerate(g.completion, cfg))]
        scores = [Scored(g.key, s) for g in kept_gens
                  if (s := continuation_score(g, cfg.discoverable_tokens)) is not None]
    return Inputs(traces, m.scored_traces(traces, cfg), scores, cfg)  # loops and prompt echo out


def compute_metrics(
    traces: Sequence[TraceResult], cfg: MetricsConfig = MetricsConfig(), generations: Sequence[Generation] | None = None,
    setting: str | None = None, names: Sequence[str] | None = None,
) -> dict[str, float | None]:
    """Every metric of one setting, by registry name (:func:`metrics_for`); only ``names`` when given
    (the same values: the app caches metrics apart by the thresholds they read).

    ``degenerate_share`` is over all traces; the rest over the kept ones (degenerate loops are
    dropped when ``cfg.exclude_degenerate``). Continuation metrics (``discoverable``, ``approx_*``)
    appear only when ``generations`` are given. A metric that does not apply to the setting
    (``setting``, else the one setting of the traces) is None.

    >>> from core.scoring.metrics import _toy
    >>> got = compute_metrics(_toy([(0, 60, [(1, "exact_full_raw", 1.0)])], []))
    >>> got["als"], got["fmr"], got["nvr"], got["r_n"], got["k_eidetic_1"], got["n_generations"]
    (30.0, 0.5, 1.0, 0.5, 0.0, 2)
    """
    x = inputs(traces, cfg, generations)
    setting = setting if setting is not None else setting_of(traces, generations)
    return {s.name: (s.compute(x) if s.applies_to(setting) else NA) for s in metrics_for(cfg)
            if (generations is not None or s.breakdown.source != "continuation") and (names is None or s.name in names)}


def check_entry(spec: MetricSpec) -> list[str]:
    """What an entry lacks or gets wrong (empty when complete): the registry completeness check."""
    problems = [f"{spec.name}: empty {f.name}" for f in fields(spec)
                if f.name not in ("settings", "thresholds") and getattr(spec, f.name) in (None, "")]
    if spec.kind not in KINDS:
        problems.append(f"{spec.name}: kind {spec.kind!r} not in {KINDS}")
    if not isinstance(spec.higher_is_better, bool):
        problems.append(f"{spec.name}: higher_is_better must be a bool")
    if not callable(spec.compute) or not isinstance(spec.breakdown, Breakdown) or not callable(spec.breakdown.row):
        problems.append(f"{spec.name}: needs a computation and a per-generation breakdown")
    elif spec.breakdown.mode not in MODES or spec.breakdown.source not in SOURCES:
        problems.append(f"{spec.name}: breakdown mode/source {spec.breakdown.mode!r}/{spec.breakdown.source!r}")
    unknown = set(spec.thresholds) - set(THRESHOLDS)
    if unknown:
        problems.append(f"{spec.name}: reads unknown thresholds {sorted(unknown)}")
    placeholders = {f for _, f, _, _ in string.Formatter().parse(spec.label) if f}
    if not placeholders <= set(spec.thresholds):
        problems.append(f"{spec.name}: label fields {sorted(placeholders)} not among its thresholds")
    if not spec.column or "{" in spec.column or "}" in spec.column:
        problems.append(f"{spec.name}: needs an export column without threshold fields, got {spec.column!r}")
    return problems
