"""The metric registry: name, label, meaning and direction of every metric :mod:`core.scoring.metrics` reports.

``higher_is_better`` is from the auditor's side: more leakage is worse, so every memorization
metric is ``False``. ``kind`` says how the value aggregates, which decides its intervals
(:mod:`core.scoring.bootstrap`): ``share`` (of generations: Wilson and rule-of-three apply), ``mean``
(per generation), ``doc_mean`` / ``doc_share`` (over retrieved documents), ``span_share``
(over final spans), ``max``, ``count`` (of generations) and ``distinct`` (distinct documents).
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass

SPAN_BUCKETS: tuple[tuple[int, float], ...] = (
    (1, 3), (4, 6), (7, 10), (11, 20), (21, 50), (51, 100), (101, 150), (151, math.inf),
)
HEADLINE = ("als", "fmr", "nvr")  # the paper's three metrics: reported with intervals and as PM
KINDS = ("share", "mean", "doc_mean", "doc_share", "span_share", "max", "count", "distinct")


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


@dataclass(frozen=True)
class MetricSpec:
    name: str  # flat key in compute_metrics' result
    label: str  # short label for tables and axes
    description: str  # one sentence: what is counted, over what
    higher_is_better: bool  # False for every leakage metric
    kind: str = "share"  # one of KINDS: how it aggregates (decides the interval method)


def _spec(name: str, label: str, description: str, higher: bool, kind: str) -> tuple[str, MetricSpec]:
    return name, MetricSpec(name, label, description, higher, kind)


def _bucket_specs() -> list[tuple[str, MetricSpec]]:
    out = []
    for lo, hi in SPAN_BUCKETS:
        rng = f"{lo}+" if hi == math.inf else f"{lo}-{int(hi)}"
        short = hi <= 10  # short spans are common phrases, not memorization
        out.append(_spec(f"span_bucket_{bucket_key(lo, hi)}", f"Docs, span {rng}",
                         f"Share of retrieved documents whose span is {rng} tokens long (the authors' per-document "
                         "bucket counts divided by total documents)", short, "doc_share"))
        out.append(_spec(f"span_bucket_spans_{bucket_key(lo, hi)}", f"Spans {rng}",
                         f"Share of final spans that are {rng} tokens long (each span counted once)", short, "span_share"))
    return out


METRICS: dict[str, MetricSpec] = dict([
    _spec("n_generations", "Generations", "Generations scored (after excluding degenerate loops, if asked)", True, "count"),
    _spec("als", "ALS", "Average longest final span in index tokens; a generation without spans counts 0", False, "mean"),
    _spec("fmr", "FMR", "Share of generations with a retrieved document holding the raw completion verbatim", False, "share"),
    _spec("nvr", "NVR", "Mean near-verbatim recall over all retrieved documents of all generations", False, "doc_mean"),
    _spec("r_n", "R_N", "Share of generations with a final span of at least N tokens (N = span_threshold)", False, "share"),
    _spec("max_span", "Max span", "Longest final span over all generations, in index tokens", False, "max"),
    _spec("generations_with_spans", "With spans", "Number of generations with at least one final span", False, "count"),
    _spec("gen_nv_pos", "NV > 0", "Share of generations with a retrieved document of nv_recall > 0", False, "share"),
    _spec("gen_nv_above", "NV > thr", "Share of generations with a document of nv_recall > nv_threshold", False, "share"),
    _spec("max_nv_recall", "Max NV", "Highest nv_recall of any retrieved document", False, "max"),
    _spec("unique_docs", "Unique docs", "Distinct training documents retrieved for any span", False, "distinct"),
    _spec("full_match_docs", "Full-match docs", "Distinct documents holding some completion verbatim", False, "distinct"),
    _spec("degenerate_share", "Loops", "Share of generations that are degenerate repetition loops", False, "share"),
    *[_spec(f"k_eidetic_{k}", f"{k}-eidetic", f"Share of generations found verbatim in 1 to {k} distinct documents",
            False, "share") for k in (1, 5, 10)],
    *_bucket_specs(),
    _spec("discoverable", "Discoverable", "Prefix: share of completions whose first N tokens equal the true "
          "continuation (N = discoverable_tokens)", False, "share"),
    _spec("approx_lcp", "LCP", "Prefix: mean longest common prefix with the true continuation, in tokens", False, "mean"),
    _spec("approx_edit_sim", "Edit sim.", "Prefix: mean normalized edit similarity to the true continuation "
          "(first N tokens)", False, "mean"),
    _spec("approx_lcs", "LCS ratio", "Prefix: mean longest-common-subsequence length / N against the true "
          "continuation", False, "mean"),
    _spec("n_continuation", "With continuation", "Prefix: generations whose prompt has a true continuation", True, "count"),
])

_K_EIDETIC = re.compile(r"k_eidetic_(\d+)$")


def metric_spec(name: str) -> MetricSpec:
    """The spec of ``name``; ``k_eidetic_<k>`` resolves for any k >= 1.

    >>> metric_spec("k_eidetic_3").label
    '3-eidetic'
    """
    if name in METRICS:
        return METRICS[name]
    m = _K_EIDETIC.match(name)
    if m and int(m.group(1)) >= 1:
        k = int(m.group(1))
        return MetricSpec(name, f"{k}-eidetic", f"Share of generations found verbatim in 1 to {k} distinct documents",
                          False, "share")
    raise KeyError(f"Unknown metric {name!r}. Available: {', '.join(METRICS)}")
