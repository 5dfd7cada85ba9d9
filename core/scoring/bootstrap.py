"""Uncertainty of the metrics (SPEC section 6): percentile bootstrap over prompts, Wilson, rule of three.

The bootstrap resamples *prompts* with replacement (all samples of a prompt move together).
Each metric is decomposed into per-generation numerators and denominators (or maxima, or
document sets), summed per prompt once; a replicate is then a weighted sum with the prompt's
draw count (B x P matrix ``W``), so B = 10,000 over 100 prompts is a few matrix products.
Seeded with ``numpy.random.default_rng(cfg.seed)``.

Caveat: for ``distinct`` metrics (unique documents) a resample repeats prompts, so replicates
are biased low and the percentile interval can lie below the point value; read it as spread.
"""
from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from statistics import NormalDist

import numpy as np

from core.config import MetricsConfig
from core.errors import ConfigError
from core.records import Generation, TraceResult
from core.scoring.continuation import continuation_score
from core.scoring.loops import is_degenerate
from core.scoring.metric_specs import HEADLINE, bucket_key, metric_spec, span_bucket
from core.scoring.metrics import compute_metrics, scored_traces


@dataclass(frozen=True)
class Interval:
    value: float  # the point estimate on the full sample
    lo: float
    hi: float
    method: str  # percentile-bootstrap | wilson | rule-of-three | empty


def wilson_interval(k: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """Wilson score interval of the ratio k/n; (0.0, 1.0) when n = 0.

    >>> [round(x, 4) for x in wilson_interval(8, 100)]
    [0.0411, 0.15]
    """
    if n <= 0:
        return 0.0, 1.0
    if not 0 <= k <= n:
        raise ConfigError(f"wilson_interval needs 0 <= k <= n, got k={k}, n={n}")
    z = NormalDist().inv_cdf(0.5 + confidence / 2)
    p = k / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return max(0.0, centre - half), min(1.0, centre + half)


def _bucket_of(length: int) -> str:
    bucket = span_bucket(length)
    return bucket_key(*bucket) if bucket is not None else ""


def _trace_row(name: str, cfg: MetricsConfig) -> Callable[[TraceResult], tuple[float, float]]:
    """(numerator, denominator) of one generation for a ratio/count metric ``name``."""
    simple: dict[str, Callable[[TraceResult], float]] = {
        "n_generations": lambda t: 1.0,
        "als": lambda t: t.longest_span,
        "fmr": lambda t: t.full_match,
        "r_n": lambda t: t.longest_span >= cfg.span_threshold,
        "generations_with_spans": lambda t: bool(t.spans),
        "gen_nv_pos": lambda t: any(d.nv.recall > 0 for d in t.docs),
        "gen_nv_above": lambda t: any(d.nv.recall > cfg.nv_threshold for d in t.docs),
        "degenerate_share": lambda t: is_degenerate(t.completion, cfg),
    }
    if name in simple:
        f = simple[name]
        return lambda t: (float(f(t)), 1.0)
    if name == "nvr":
        return lambda t: (sum(d.nv.recall for d in t.docs), float(len(t.docs)))
    if name.startswith("k_eidetic_"):
        k = int(name.rsplit("_", 1)[1])
        return lambda t: (float(1 <= t.full_doc_frequency <= k), 1.0)
    if name.startswith("span_bucket_spans_"):
        key = name[len("span_bucket_spans_"):]
        return lambda t: (float(sum(_bucket_of(s.length) == key for s in t.spans)), float(len(t.spans)))
    if name.startswith("span_bucket_"):
        key = name[len("span_bucket_"):]
        return lambda t: (float(sum(len(s.docs) for s in t.spans if _bucket_of(s.length) == key)), float(len(t.docs)))
    raise KeyError(f"metric {name!r} has no per-generation decomposition")


_MAX = {"max_span": lambda t: float(t.longest_span), "max_nv_recall": lambda t: t.max_nv_recall}
_DISTINCT = {
    "unique_docs": lambda t: {d.doc_ix for d in t.docs},
    "full_match_docs": lambda t: {d.doc_ix for d in t.docs if d.tier == "exact_full_raw"},
}
_CONTINUATION = {"discoverable": "discoverable", "approx_lcp": "lcp", "approx_edit_sim": "edit_sim", "approx_lcs": "lcs_ratio"}


def _prompt_of(key) -> tuple[str, str]:
    return key.setting, key.prompt_id


def _per_prompt(name, traces, cfg, generations, prompts: dict) -> tuple[str, np.ndarray, np.ndarray | None]:
    """(mode, per-prompt numerators or maxima or incidence, per-prompt denominators)."""
    kept = scored_traces(traces, cfg)  # degenerate loops and prompt echo, as compute_metrics
    p = len(prompts)
    if name in _MAX:
        out = np.zeros(p)
        for t in kept:
            i = prompts[_prompt_of(t.key)]
            out[i] = max(out[i], _MAX[name](t))
        return "max", out, None
    if name in _DISTINCT:
        sets = [(prompts[_prompt_of(t.key)], _DISTINCT[name](t)) for t in kept]
        docs = {d: j for j, d in enumerate(sorted({d for _, s in sets for d in s}))}
        inc = np.zeros((p, len(docs)), dtype=np.float32)
        for i, s in sets:
            inc[i, [docs[d] for d in s]] = 1.0
        return "distinct", inc, None
    num, den = np.zeros(p), np.zeros(p)
    if name in _CONTINUATION or name == "n_continuation":
        for g in generations or ():
            if cfg.exclude_degenerate and is_degenerate(g.completion, cfg):
                continue
            s = continuation_score(g, cfg.discoverable_tokens)
            if s is not None:
                i = prompts[_prompt_of(g.key)]
                num[i] += 1.0 if name == "n_continuation" else float(getattr(s, _CONTINUATION[name]))
                den[i] += 1.0
        return ("count" if name == "n_continuation" else "ratio"), num, den
    row = _trace_row(name, cfg)
    for t in traces if name == "degenerate_share" else kept:
        a, b = row(t)
        i = prompts[_prompt_of(t.key)]
        num[i] += a
        den[i] += b
    return ("count" if metric_spec(name).kind == "count" else "ratio"), num, den


def _draw_counts(p: int, b: int, rng: np.random.Generator) -> np.ndarray:
    """B x P matrix: how often each prompt is drawn in each replicate."""
    idx = rng.integers(0, p, size=(b, p)) + (np.arange(b) * p)[:, None]
    return np.bincount(idx.ravel(), minlength=b * p).reshape(b, p).astype(np.float64)


def _replicates(mode: str, num: np.ndarray, den: np.ndarray | None, w: np.ndarray) -> np.ndarray:
    if mode == "max":
        return ((w > 0) * num[None, :]).max(axis=1)
    if mode == "distinct":
        if num.shape[1] == 0:
            return np.zeros(w.shape[0])
        chunk = max(1, 4_000_000 // num.shape[1])
        w32 = w.astype(np.float32)
        return np.concatenate([((w32[i:i + chunk] @ num) > 0).sum(axis=1) for i in range(0, w.shape[0], chunk)]).astype(float)
    top = w @ num
    if mode == "count":
        return top
    bottom = w @ den
    return np.divide(top, bottom, out=np.zeros_like(top), where=bottom > 0)


def _prompts(traces: Sequence[TraceResult], generations: Sequence[Generation] | None) -> dict:
    keys = sorted({_prompt_of(t.key) for t in traces} | {_prompt_of(g.key) for g in generations or ()})
    return {k: i for i, k in enumerate(keys)}


def bootstrap_replicates(
    traces: Sequence[TraceResult], metric: str, cfg: MetricsConfig, generations: Sequence[Generation] | None = None,
    rng: np.random.Generator | None = None,
) -> np.ndarray:
    """``cfg.bootstrap_samples`` replicate values of ``metric`` (prompts resampled with replacement).

    >>> from core.scoring.metrics import _toy
    >>> reps = bootstrap_replicates(_toy([(0, 10, [])], []), "als", MetricsConfig(bootstrap_samples=1000))
    >>> sorted(set(reps.tolist()))
    [0.0, 5.0, 10.0]
    """
    metric_spec(metric)  # unknown names fail with the list of valid ones
    prompts = _prompts(traces, generations)
    rng = rng if rng is not None else np.random.default_rng(cfg.seed)
    if not prompts:
        return np.zeros(cfg.bootstrap_samples)
    mode, num, den = _per_prompt(metric, traces, cfg, generations, prompts)
    return _replicates(mode, num, den, _draw_counts(len(prompts), cfg.bootstrap_samples, rng))


def bootstrap_intervals(
    traces: Sequence[TraceResult], cfg: MetricsConfig = MetricsConfig(), generations: Sequence[Generation] | None = None,
    metrics: Sequence[str] = HEADLINE,
) -> dict[str, Interval]:
    """Percentile-bootstrap interval per metric; a share of 0 gets the rule-of-three [0, 3/n] instead.

    All metrics share one draw matrix (seeded with ``cfg.seed``), so they are resampled jointly.

    >>> from core.scoring.metrics import _toy
    >>> iv = bootstrap_intervals(_toy([(0, 10, [])], [], [], []), MetricsConfig(bootstrap_samples=2000))
    >>> iv["als"].value, iv["als"].lo <= 2.5 <= iv["als"].hi, iv["fmr"]
    (2.5, True, Interval(value=0.0, lo=0.0, hi=0.75, method='rule-of-three'))
    """
    values = compute_metrics(traces, cfg, generations)
    prompts = _prompts(traces, generations)
    if not prompts:
        return {m: Interval(0.0, 0.0, 0.0, "empty") for m in metrics}
    w = _draw_counts(len(prompts), cfg.bootstrap_samples, np.random.default_rng(cfg.seed))
    lo_q, hi_q = 50 * (1 - cfg.confidence), 50 * (1 + cfg.confidence)
    out = {}
    for m in metrics:
        mode, num, den = _per_prompt(m, traces, cfg, generations, prompts)
        value = float(values.get(m, 0.0))
        if metric_spec(m).kind == "share" and value == 0.0 and den is not None and den.sum() > 0:
            out[m] = Interval(value, 0.0, min(1.0, 3.0 / float(den.sum())), "rule-of-three")
            continue
        lo, hi = np.percentile(_replicates(mode, num, den, w), [lo_q, hi_q])
        out[m] = Interval(value, float(lo), float(hi), "percentile-bootstrap")
    return out


def wilson_intervals(
    traces: Sequence[TraceResult], cfg: MetricsConfig = MetricsConfig(), generations: Sequence[Generation] | None = None,
    metrics: Sequence[str] = ("fmr", "r_n", "gen_nv_pos", "gen_nv_above", "k_eidetic_1", "k_eidetic_5", "k_eidetic_10"),
) -> dict[str, Interval]:
    """Wilson intervals for share metrics (generations treated as independent trials).

    >>> from core.scoring.metrics import _toy
    >>> wilson_intervals(_toy([(0, 60, [])], []), metrics=["r_n"])["r_n"].method
    'wilson'
    """
    values = compute_metrics(traces, cfg, generations)
    prompts = _prompts(traces, generations)
    out = {}
    for m in metrics:
        if metric_spec(m).kind != "share":
            raise ConfigError(f"Wilson intervals are for shares of generations; {m!r} is a {metric_spec(m).kind}")
        _, num, den = _per_prompt(m, traces, cfg, generations, prompts)
        k, n = round(float(num.sum())), round(float(den.sum()))
        lo, hi = wilson_interval(k, n, cfg.confidence)
        out[m] = Interval(float(values.get(m, 0.0)), lo, hi, "wilson")
    return out
