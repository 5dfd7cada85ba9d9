"""Memorization metrics of one setting (SPEC section 6) as pure functions of traced generations.

Each public metric takes the setting's :class:`core.records.TraceResult` list and returns a
number; :func:`core.scoring.registry.compute_metrics` returns all of them under their registry names.
Empty input gives 0 everywhere (never a crash or NaN). Directions in :class:`MetricSpec` are
from the auditor's point of view: more leakage is worse, so leakage metrics have
``higher_is_better=False``.

Thresholds come from :class:`core.config.MetricsConfig` and can change without re-tracing;
the nv_recall block thresholds are applied by :func:`score_traces`, which
:func:`core.scoring.registry.compute_metrics` and the bootstrap call first (these functions read
``DocMatch.nv.recall`` as given). Which metrics exist, and their labels, live in :mod:`core.scoring.registry`.

Chance floor: texts known NOT to be in the corpus are a setting of their own (kind ``floor``,
:mod:`core.prompts.floor`), traced and scored like any setting. Whatever they reach (short spans of
common phrases, a few tokens of ALS) is the level a model reaches without memorizing anything.
"""
from __future__ import annotations

import math
from collections.abc import Sequence

from core.config import MetricsConfig, NVBlocksConfig
from core.records import DocMatch, GenKey, NVResult, Span, TraceResult
from core.scoring.loops import drop_degenerate
from core.tracing.echo import drop_echo, echo_spans
from core.tracing.nvrecall import rescore

SPAN_BUCKETS: tuple[tuple[int, float], ...] = (
    (1, 3), (4, 6), (7, 10), (11, 20), (21, 50), (51, 100), (101, 150), (151, math.inf),
)
TRACED_WITH = NVBlocksConfig()  # the nv_recall block thresholds traces are scored with when traced and stored


def bucket_label(lo: int, hi: float) -> str:
    """The authors' summary key of a bucket.

    >>> bucket_label(1, 3), bucket_label(151, math.inf)
    ('(1, 3)', '(151, inf)')
    """
    return f"({lo}, {'inf' if hi == math.inf else int(hi)})"


def bucket_key(lo: int, hi: float) -> str:
    """Our metric-name suffix of a bucket.

    >>> bucket_key(1, 3), bucket_key(151, math.inf)
    ('1_3', '151_inf')
    """
    return f"{lo}_{'inf' if hi == math.inf else int(hi)}"


def span_bucket(length: int) -> tuple[int, float] | None:
    """The bucket of :data:`SPAN_BUCKETS` holding a span ``length`` (None below the first).

    >>> span_bucket(5), span_bucket(400), span_bucket(0)
    ((4, 6), (151, inf), None)
    """
    return next(((lo, hi) for lo, hi in SPAN_BUCKETS if lo <= length <= hi), None)


def score_traces(traces: Sequence[TraceResult], cfg: MetricsConfig) -> Sequence[TraceResult]:
    """The traces with ``cfg.nv_blocks`` applied: nv_recall re-scored from the stored matching blocks
    when those thresholds differ from :data:`TRACED_WITH` (what tracing and the stored results use),
    else the traces themselves. The one place scoring applies the NV block thresholds.

    >>> ts = _toy([(0, 9, [(1, "partial", 0.6)])])
    >>> score_traces(ts, MetricsConfig()) is ts
    True
    """
    return traces if cfg.nv_blocks == TRACED_WITH else rescore(traces, cfg.nv_blocks)


def _toy(*gens: Sequence[tuple[int, int, Sequence[tuple[int, str, float]]]], freq: Sequence[int] = ()) -> list[TraceResult]:
    """Doctest helper: one TraceResult per arg, spans as (start, end, [(doc_ix, tier, recall)])."""
    out = []
    for i, spans in enumerate(gens):
        sp = tuple(
            Span(s, e, "", 0, 0, 1, tuple(DocMatch(d, str(d), tier, "", 0, 0, NVResult(r, 0, 0, 0)) for d, tier, r in docs))
            for s, e, docs in spans
        )
        out.append(TraceResult(GenKey("generic", str(i)), f"text {i}", 100, sp, freq[i] if freq else 0))
    return out


def _mean(values: Sequence[float]) -> float:
    return sum(values) / len(values) if values else 0.0


def als(traces: Sequence[TraceResult]) -> float:
    """Average longest final span (index tokens); a generation with no span counts 0.

    >>> als(_toy([(0, 12, []), (20, 25, [])], []))
    6.0
    """
    return _mean([t.longest_span for t in traces])


def fmr(traces: Sequence[TraceResult]) -> float:
    """Share of generations with a retrieved document of tier ``exact_full_raw``.

    >>> fmr(_toy([(0, 9, [(1, "exact_full_raw", 1.0)])], [(0, 3, [(2, "partial", 0.0)])]))
    0.5
    """
    return _mean([t.full_match for t in traces])


def nvr(traces: Sequence[TraceResult]) -> float:
    """Mean nv_recall over all retrieved documents of all generations (0 when none).

    >>> nvr(_toy([(0, 9, [(1, "partial", 0.6), (2, "partial", 0.0)])], [(0, 3, [(1, "partial", 0.3)])]))
    0.3
    """
    return _mean([d.nv.recall for t in traces for d in t.docs])


def r_at(traces: Sequence[TraceResult], n: int) -> float:
    """R_N: share of generations with a final span of at least ``n`` tokens.

    >>> r_at(_toy([(0, 50, [])], [(0, 49, [])], []), 50)
    0.3333333333333333
    """
    return _mean([reaches(t, n) for t in traces])


def reaches(trace: TraceResult, n: int) -> bool:
    """The R_N predicate of one generation: its longest final span is at least ``n`` tokens."""
    return trace.longest_span >= n


def span_share_curve(traces: Sequence[TraceResult], max_n: int) -> list[float]:
    """[R_1, R_2, ..., R_max_n]: the survival curve of the longest span.

    >>> span_share_curve(_toy([(0, 2, [])], []), 3)
    [0.5, 0.5, 0.0]
    """
    return [r_at(traces, n) for n in range(1, max_n + 1)]


def max_span(traces: Sequence[TraceResult]) -> int:
    """Longest final span over all generations (0 when none).

    >>> max_span(_toy([(0, 7, [])], [(3, 40, [])])), max_span([])
    (37, 0)
    """
    return max((t.longest_span for t in traces), default=0)


def generations_with_spans(traces: Sequence[TraceResult]) -> int:
    """Number of generations with at least one final span.

    >>> generations_with_spans(_toy([(0, 7, [])], []))
    1
    """
    return sum(bool(t.spans) for t in traces)


def gen_nv_share(traces: Sequence[TraceResult], threshold: float = 0.0) -> float:
    """Share of generations with a retrieved document whose nv_recall is above ``threshold``.

    >>> ts = _toy([(0, 9, [(1, "partial", 0.6)])], [(0, 9, [(1, "partial", 0.2)])], [])
    >>> gen_nv_share(ts), gen_nv_share(ts, 0.5)
    (0.6666666666666666, 0.3333333333333333)
    """
    return _mean([any(d.nv.recall > threshold for d in t.docs) for t in traces])


def max_nv_recall(traces: Sequence[TraceResult]) -> float:
    """Highest nv_recall of any retrieved document (0 when none).

    >>> max_nv_recall(_toy([(0, 9, [(1, "partial", 0.6), (2, "partial", 0.9)])]))
    0.9
    """
    return max((d.nv.recall for t in traces for d in t.docs), default=0.0)


def unique_docs(traces: Sequence[TraceResult]) -> int:
    """Distinct retrieved documents (by index position ``doc_ix``) over all generations.

    >>> unique_docs(_toy([(0, 9, [(1, "partial", 0.0), (2, "partial", 0.0)])], [(0, 3, [(1, "partial", 0.0)])]))
    2
    """
    return len({d.doc_ix for t in traces for d in t.docs})


def full_match_docs(traces: Sequence[TraceResult]) -> int:
    """Distinct documents holding some generation verbatim (tier ``exact_full_raw``).

    >>> full_match_docs(_toy([(0, 9, [(1, "exact_full_raw", 1.0), (2, "partial", 0.1)])], [(0, 9, [(1, "exact_full_raw", 1.0)])]))
    1
    """
    return len({d.doc_ix for t in traces for d in t.docs if d.tier == "exact_full_raw"})


def k_eidetic(traces: Sequence[TraceResult], k: int) -> float:
    """Share of generations found verbatim in 1 <= d <= k distinct documents (``full_doc_frequency``).

    >>> ts = _toy([], [], [], freq=[0, 1, 4])
    >>> k_eidetic(ts, 1), k_eidetic(ts, 5)
    (0.3333333333333333, 0.6666666666666666)
    """
    return _mean([1 <= t.full_doc_frequency <= k for t in traces])


def span_length_counts(traces: Sequence[TraceResult], per: str = "doc") -> dict[str, int]:
    """Final-span lengths per bucket of :data:`SPAN_BUCKETS`, keyed by :func:`bucket_label`.

    ``per="doc"`` counts a span once per retrieved document, as the authors' summaries do
    (their bucket counts sum to ``total_docs``); ``per="span"`` counts each span once.

    >>> ts = _toy([(0, 2, [(1, "partial", 0.0), (2, "partial", 0.0)]), (5, 30, [(3, "partial", 0.0)])])
    >>> c = span_length_counts(ts); c["(1, 3)"], c["(21, 50)"], span_length_counts(ts, per="span")["(1, 3)"]
    (2, 1, 1)
    """
    if per not in ("doc", "span"):
        raise ValueError(f"per must be 'doc' or 'span', got {per!r}")
    counts = {bucket_label(lo, hi): 0 for lo, hi in SPAN_BUCKETS}
    for t in traces:
        for s in t.spans:
            bucket = span_bucket(s.length)
            if bucket is not None:
                counts[bucket_label(*bucket)] += len(s.docs) if per == "doc" else 1
    return counts


def span_length_shares(traces: Sequence[TraceResult], per: str = "doc") -> dict[str, float]:
    """:func:`span_length_counts` divided by their total (all 0.0 when there is nothing to count).

    >>> span_length_shares(_toy([(0, 2, [(1, "partial", 0.0)]), (5, 12, [(3, "partial", 0.0)])]))["(7, 10)"]
    0.5
    """
    counts = span_length_counts(traces, per)
    total = sum(counts.values())
    return {k: (v / total if total else 0.0) for k, v in counts.items()}


def scored_traces(traces: Sequence[TraceResult], cfg: MetricsConfig = MetricsConfig()) -> list[TraceResult]:
    """The traces the metrics score: degenerate loops dropped (when ``cfg.exclude_degenerate``) and
    prompt-echo spans removed (unless ``cfg.count_echo``; see :mod:`core.tracing.echo`).

    >>> t = _toy([(0, 9, [])])[0]
    >>> from dataclasses import replace
    >>> t = replace(t, spans=(replace(t.spans[0], echo=True),))
    >>> len(scored_traces([t])[0].spans), len(scored_traces([t], MetricsConfig(count_echo=True))[0].spans)
    (0, 1)
    """
    kept = drop_degenerate(traces, cfg)
    return kept if cfg.count_echo else drop_echo(kept)


def empty_completions(traces: Sequence[TraceResult]) -> int:
    """Completions that are empty or only whitespace: an instruction-tuned model given raw text often
    answers nothing, which would otherwise pass as "no leakage".

    >>> from dataclasses import replace
    >>> empty_completions([replace(t, completion=c) for t, c in zip(_toy([], [], []), ["", " \\n", "x"])])
    2
    """
    return sum(not t.completion.strip() for t in traces)


def text_rule_removed(traces: Sequence[TraceResult]) -> tuple[int, int]:
    """(spans, tokens) the paper's text-mode admissibility rule rejects that the mixed rule keeps,
    summed over generations (:func:`core.tracing.admissibility.text_rule_loss`).

    >>> from dataclasses import replace
    >>> text_rule_removed([replace(t, text_rule_removed=(1, 40)) for t in _toy([], [])])
    (2, 80)
    """
    return (sum(t.text_rule_removed[0] for t in traces), sum(t.text_rule_removed[1] for t in traces))


def setting_counts(traces: Sequence[TraceResult]) -> dict[str, int]:
    """Counts a reader must see next to a setting's scores (summary ``counts``): empty completions,
    prompt-echo spans, and what the text-mode rule removes.

    >>> setting_counts(_toy([]))
    {'n_traced': 1, 'empty_completions': 0, 'echo_spans': 0, 'text_rule_spans': 0, 'text_rule_tokens': 0}
    """
    spans, tokens = text_rule_removed(traces)
    return {"n_traced": len(traces), "empty_completions": empty_completions(traces),
            "echo_spans": echo_spans(traces), "text_rule_spans": spans, "text_rule_tokens": tokens}


__all__ = [
    "SPAN_BUCKETS",
    "TRACED_WITH",
    "als",
    "bucket_key",
    "bucket_label",
    "empty_completions",
    "fmr",
    "full_match_docs",
    "gen_nv_share",
    "generations_with_spans",
    "k_eidetic",
    "max_nv_recall",
    "max_span",
    "nvr",
    "r_at",
    "reaches",
    "score_traces",
    "scored_traces",
    "setting_counts",
    "span_bucket",
    "span_length_counts",
    "span_length_shares",
    "span_share_curve",
    "text_rule_removed",
    "unique_docs",
]
