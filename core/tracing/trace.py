"""SimpleTrace: find the verbatim spans of a completion in the corpus index (SPEC section 4).

Pipeline for one completion with index-tokenizer ids g[0..L):

1. maximal span per start s in 0..L-2: ``index.longest_matches`` (exact, one batched call);
2. admissibility (:mod:`core.tracing.admissibility`): inadmissible maximal spans are dropped, not shrunk;
3. non-maximal suppression: by (start, end), keep a span whose end passes every kept end;
4. rarity: the K = max(ceil(rarity_fraction * L), 1) spans with the lowest sum of unigram
   log-probabilities (``math.fsum``; ties by (start, end)), re-sorted by position;
5. documents: per kept span ``index.occurrences`` (seeded by :func:`occurrence_seed`), one window of
   window_factor * L tokens per document, tier (:mod:`core.tracing.tiers`) and ``nv_recall``;
6. merge of strictly overlapping consecutive spans (``cfg.merge``); in mixed mode full matches
   (whole completion, else anchors) are attached as the span (0, L).

Completions with L < 2 index tokens give no spans. Results are keyed by :class:`GenKey`.

Completions are traced in batches of :data:`BATCH`: steps 1-4 for all (``_Tracer.plan``), then one
vectorised suffix-array lookup of every token sequence step 5-6 will count or sample (kept spans,
anchors, unions of overlapping neighbours, whole completions), then steps 5-6 for each
(``_Tracer.finish``). The results are those of tracing each completion alone.
"""
from __future__ import annotations

import itertools
import logging
import math
from collections.abc import Sequence
from dataclasses import replace
from typing import NamedTuple

import numpy as np

from core.config import NVBlocksConfig, TraceConfig
from core.errors import IndexMismatch
from core.index.tokenizer import decode_many, fast_backend
from core.progress import ProgressFn, Tracker
from core.records import DocMatch, GenKey, Span, TraceResult
from core.tracing import parallel
from core.tracing.admissibility import (
    boundary_offsets,
    mixed_admissible,
    rule_loss,
    text_admissible,
    word_boundaries,
)
from core.tracing.tiers import match_tier, normalize_mixed
from core.tracing.windows import DocWindows, occurrence_seed

log = logging.getLogger(__name__)

FULL_TIERS = ("exact_full_raw", "exact_full_normalized")
DEFAULT_TRACE = TraceConfig()
DEFAULT_NVR = NVBlocksConfig()
BATCH = 64  # completions whose spans, then whose lookups, are searched in one vectorised call


def tokenize(tokenizer, texts: Sequence[str]) -> list[tuple[list[int], list[int]]]:
    """Index-tokenizer ids (no special tokens) and token-boundary character offsets of each text."""
    if not texts:
        return []
    backend = fast_backend(tokenizer)
    if backend is not None:  # the Rust tokenizer directly: same ids and offsets, no Python conversion
        encs = backend.encode_batch(list(texts), add_special_tokens=False)
        return [(list(e.ids), boundary_offsets(e.offsets, len(t))) for e, t in zip(encs, texts)]
    out = []
    for t in texts:  # slow tokenizers have no offsets: boundaries from decoded prefixes
        ids = list(tokenizer.encode(t, add_special_tokens=False))
        bounds = [min(len(t), len(d)) for d in decode_many(tokenizer, [ids[:p] for p in range(len(ids) + 1)])]
        bounds[-1] = len(t)
        out.append((ids, [max(bounds[: p + 1]) for p in range(len(bounds))]))
    return out


def non_maximal_suppression(spans: Sequence[tuple[int, int]]) -> list[tuple[int, int]]:
    """Sorted by (start, end), keep a span only if its end is beyond every end kept so far.

    >>> non_maximal_suppression([(2, 5), (0, 4), (1, 4), (3, 5), (4, 9)])
    [(0, 4), (2, 5), (4, 9)]
    """
    kept, max_end = [], -1
    for s, e in sorted(spans):
        if e > max_end:
            kept.append((s, e))
            max_end = e
    return kept


def rarest_spans(spans: Sequence[tuple[int, int]], token_log_probs: Sequence[float],
                 k: int) -> list[tuple[int, int]]:
    """The k spans with the lowest sum of their tokens' unigram log-probs (``token_log_probs[p]`` of
    the token at position p; ties by position), in position order.

    >>> rarest_spans([(0, 2), (1, 3), (3, 4)], np.log([0.5, 0.25, 0.25, 0.5]).tolist(), 2)
    [(0, 2), (1, 3)]
    """
    scored = sorted((math.fsum(token_log_probs[s:e]), s, e) for s, e in spans)
    return sorted((s, e) for _, s, e in scored[:k])


def anchor_spans(raw: Sequence[tuple[int, int]], token_log_probs: Sequence[float], n: int,
                 min_tokens: int) -> list[tuple[int, int]]:
    """Mixed mode's anchors: the ``n`` longest spans of at least ``min_tokens`` tokens (ties: the lower
    sum of unigram log-probs, then the earlier), longest first. The sums are taken only for the
    lengths that make the cut.

    >>> anchor_spans([(0, 5), (1, 5), (2, 7), (3, 7)], [-1.0, -2.0, -1.0, -3.0, -1.0, -1.0, -1.0], 2, 4)
    [(0, 5), (2, 7)]
    """
    cands = sorted({(s, e) for s, e in raw if e - s >= min_tokens}, key=lambda se: (se[0] - se[1], se[0]))
    if len(cands) > n:
        shortest = cands[n - 1][1] - cands[n - 1][0]
        cands = [(s, e) for s, e in cands if e - s >= shortest]
    cands.sort(key=lambda se: (se[0] - se[1], math.fsum(token_log_probs[se[0]:se[1]]), se[0]))
    return cands[:n]


def _merge_groups(spans: Sequence[tuple[int, int]], joinable) -> list[list[tuple[int, int]]]:
    """Consecutive spans that strictly overlap the current group join it when ``joinable(s, e)``."""
    groups: list[list[tuple[int, int]]] = []
    cur_s = cur_e = -1
    for s, e in spans:
        if groups and s < cur_e and joinable(min(cur_s, s), max(cur_e, e)):
            groups[-1].append((s, e))
            cur_s, cur_e = min(cur_s, s), max(cur_e, e)
        else:
            groups.append([(s, e)])
            cur_s, cur_e = s, e
    return groups


class _Plan(NamedTuple):
    """A completion after steps 1-4: its maximal spans, kept spans, anchors and the token sequences
    that finishing it looks up."""

    key: GenKey
    completion: str
    ids: list[int]
    bounds: list[int]
    whole: bool
    kept: list[tuple[int, int]]
    anchors: list[tuple[int, int]]
    queries: list[list[int]]
    text_rule_removed: tuple[int, int]


class _Tracer:
    """Holds the per-run state shared by all completions (index, tokenizer, log-probs, configs)."""

    def __init__(self, index, tokenizer, cfg: TraceConfig, nvr: NVBlocksConfig):
        from core.tracing.nvrecall import nv_recall  # metrics area; imported late to keep import cycles out

        self.index, self.tok, self.cfg, self.nvr, self._nv = index, tokenizer, cfg, nvr, nv_recall
        self.log_probs = np.asarray(index.unigram_log_probs(), dtype=np.float64)
        self._counts: dict[tuple[int, ...], int] = {}  # span counts, shared by all completions of the run
        self._windows = DocWindows(index, tokenizer, cfg.seed)

    def count(self, span_ids: Sequence[int]) -> int:
        key = tuple(span_ids)
        if key not in self._counts:
            self._counts[key] = int(self.index.count(list(key)))
        return self._counts[key]

    # -- documents -------------------------------------------------------------------------
    def docs_for(self, span_ids: Sequence[int], completion: str, norm: str | None, n_tokens: int,
                 k: int, spread: str) -> list[DocMatch]:
        """Up to k occurrences of span_ids, one DocMatch per distinct document (first occurrence)."""
        return [DocMatch(occ.doc_ix, occ.doc_id, match_tier(completion, text, self.cfg.mode, norm), text, cs, ce,
                         self._nv(completion, text, self.nvr))
                for occ, text, cs, ce in self._windows.get(tuple(span_ids), self.cfg.window_factor * n_tokens, k,
                                                           spread)]

    # -- one completion: plan (spans, what to look up), then finish (documents) --------------
    def plan(self, key: GenKey, completion: str, ids: list[int], bounds: list[int],
             lengths: Sequence[int] | None = None) -> _Plan | TraceResult:
        """Steps 1-4 of one completion, and the token sequences step 5 will look up (``_Plan.queries``);
        a finished TraceResult when there is nothing to look up. ``lengths``: ``index.longest_matches(ids)``
        when already computed (batched)."""
        cfg, L = self.cfg, len(ids)
        if L < 2:
            return TraceResult(key=key, completion=completion, n_tokens=L)
        lengths = [int(x) for x in (self.index.longest_matches(ids) if lengths is None else lengths)]
        whole = lengths[0] >= L
        raw = [(s, s + min(lengths[s], L - s)) for s in range(L - 1) if lengths[s] > 0]

        def text_of(s: int, e: int) -> str:
            return completion[bounds[s]:bounds[e]]

        is_b = word_boundaries(completion, bounds)
        prose = [(s, e) for s, e in raw if text_admissible(text_of(s, e), s, e, L, is_b)]
        mixed = [(s, e) for s, e in raw if mixed_admissible(text_of(s, e), s, e, L, cfg.min_anchor_tokens)]
        adm = prose if cfg.mode == "text" else mixed
        lp = self.log_probs[np.asarray(ids, dtype=np.int64)].tolist()  # unigram log-prob per token
        kept = rarest_spans(non_maximal_suppression(adm), lp, max(math.ceil(cfg.rarity_fraction * L), 1))
        anchors = anchor_spans(raw, lp, cfg.anchor_spans, cfg.min_anchor_tokens) if cfg.mode == "mixed" and not whole else []
        queries = [ids[s:e] for s, e in kept + anchors] + ([ids] if whole else [])
        if cfg.merge == "union":  # the union of two overlapping neighbours is counted to decide a merge
            queries += [ids[a[0]:b[1]] for a, b in itertools.pairwise(kept) if b[0] < a[1]]
        return _Plan(key, completion, ids, bounds, whole, kept, anchors, queries, rule_loss(mixed, prose, L))

    def finish(self, p: _Plan) -> TraceResult:
        """Step 5 and 6 of a planned completion (its lookups are fastest when prefetched)."""
        cfg, L = self.cfg, len(p.ids)
        norm = normalize_mixed(p.completion) if cfg.mode == "mixed" else None
        spans = self._merged_spans(p.kept, p.ids, p.bounds, p.completion, norm)
        if cfg.mode == "mixed":
            spans = self._attach_full(spans, p.anchors, p.whole, p.ids, p.bounds, p.completion, norm)
        freq = self.index.distinct_docs(p.ids, cfg.eidetic_cap) if p.whole else 0
        return TraceResult(key=p.key, completion=p.completion, n_tokens=L, spans=tuple(spans),
                           full_doc_frequency=int(freq),
                           text_rule_removed=p.text_rule_removed)

    def trace(self, key: GenKey, completion: str, ids: list[int], bounds: list[int],
              lengths: Sequence[int] | None = None) -> TraceResult:
        """Trace one completion (:meth:`plan` then :meth:`finish`)."""
        return self.trace_batch([(key, completion, ids, bounds)], [lengths])[0]

    def trace_batch(self, items: Sequence[tuple], lengths: Sequence[Sequence[int] | None],
                    on_done=None) -> list[TraceResult]:
        """Trace ``items`` = [(key, completion, ids, bounds)]: plan all, look up every planned token
        sequence in one vectorised search (``index.prefetch``), then finish each (``on_done(1)`` after each)."""
        plans = [self.plan(*item, ls) for item, ls in zip(items, lengths)]
        prefetch = getattr(self.index, "prefetch", None)
        if prefetch is not None:
            prefetch([q for p in plans if isinstance(p, _Plan) for q in p.queries])
        out = []
        for p in plans:
            out.append(self.finish(p) if isinstance(p, _Plan) else p)
            if on_done is not None:
                on_done(1)
        return out

    def _span(self, s: int, e: int, ids, bounds, completion: str, docs, seed: int | None = None) -> Span:
        cs, ce = bounds[s], bounds[e]
        piece = completion[cs:ce]
        if piece.strip():  # highlight the words, not the whitespace around them
            cs += len(piece) - len(piece.lstrip())
            ce -= len(piece) - len(piece.rstrip())
        return Span(s, e, completion[cs:ce], cs, ce, self.count(ids[s:e]), tuple(docs), seed)

    def _merged_spans(self, kept, ids, bounds, completion, norm) -> list[Span]:
        cfg, L = self.cfg, len(ids)
        dps = cfg.docs_per_span
        if cfg.merge == "none":
            groups = [[sp] for sp in kept]
        elif cfg.merge == "always":
            groups = _merge_groups(kept, lambda s, e: True)
        else:
            groups = _merge_groups(kept, lambda s, e: self.count(ids[s:e]) > 0)
        out = []
        for g in groups:
            s, e = min(x[0] for x in g), max(x[1] for x in g)
            seed = None
            if len(g) == 1 or cfg.merge == "union":
                docs = self.docs_for(ids[s:e], completion, norm, L, dps, "random")
                seed = occurrence_seed(cfg.seed, ids[s:e])
            else:  # "always": the authors' budget split over the constituent spans' own documents
                budget = math.ceil(dps / len(g))
                docs = [d for gs, ge in g
                        for d in self.docs_for(ids[gs:ge], completion, norm, L, dps, "random")[:budget]]
            out.append(self._span(s, e, ids, bounds, completion, docs, seed))
        return out

    def _attach_full(self, spans, anchors, whole, ids, bounds, completion, norm) -> list[Span]:
        cfg, L = self.cfg, len(ids)
        if whole:
            full = self.docs_for(ids, completion, norm, L, cfg.docs_per_span, "even")
        else:
            full = self._anchor_docs(anchors, ids, completion, norm)
        if not full:
            return spans
        for i, sp in enumerate(spans):
            if sp.start == 0 and sp.end == L:
                spans[i] = replace(sp, docs=_dedupe(list(full) + list(sp.docs)), sample_seed=None)
                return spans
        full_span = self._span(0, L, ids, bounds, completion, _dedupe(full))
        return sorted([full_span] + spans, key=lambda sp: (sp.start, -sp.end))

    def _anchor_docs(self, anchors, ids, completion, norm) -> list[DocMatch]:
        """Documents holding the whole completion (raw or normalized), found through anchor spans."""
        cfg, L = self.cfg, len(ids)
        if not anchors:
            return []
        per_anchor = max(1, math.ceil(cfg.docs_per_span / len(anchors)))
        found, seen = [], set()
        for s, e in anchors:
            for d in self.docs_for(ids[s:e], completion, norm, L, per_anchor, "even"):
                if d.tier not in FULL_TIERS or (d.doc_id, d.window_text) in seen:
                    continue
                seen.add((d.doc_id, d.window_text))
                found.append(d)
                if len(found) >= cfg.docs_per_span:
                    return found
        return found


def _dedupe(docs: Sequence[DocMatch]) -> list[DocMatch]:
    out, seen = [], set()
    for d in docs:
        k = (d.doc_id, d.tier, d.window_text)
        if k not in seen:
            seen.add(k)
            out.append(d)
    return out


class _BatchedLengths:
    """``index.longest_matches`` of the i-th query, computed ``batch`` queries at a time with
    ``index.longest_matches_many`` (one vectorised search) when the index has it, else None."""

    def __init__(self, index, queries: list[list[int]], batch: int = BATCH):
        self._many = getattr(index, "longest_matches_many", None)
        self._queries, self._batch = queries, batch
        self._first, self._ready = 0, []

    def get(self, i: int) -> list[int] | None:
        if self._many is None or len(self._queries[i]) < 2:
            return None
        if not self._first <= i < self._first + len(self._ready):
            self._first = i
            self._ready = self._many([q if len(q) >= 2 else [] for q in self._queries[i:i + self._batch]])
        return self._ready[i - self._first]


def _check(index, tokenizer) -> None:
    check = getattr(index, "check_tokenizer", None)
    if check is None:
        raise IndexMismatch(f"{type(index).__name__} has no check_tokenizer(): pass a core.index.corpus_index.CorpusIndex")
    check(tokenizer)


def trace_completion(index, tokenizer, key: GenKey, completion: str, cfg: TraceConfig = DEFAULT_TRACE,
                     nvr: NVBlocksConfig = DEFAULT_NVR) -> TraceResult:
    """Trace one completion against the index (SPEC section 4). Never raises on empty text.

    Raises IndexMismatch when the tokenizer is not the index's.
    """
    return trace_many(index, tokenizer, [(key, completion)], cfg, nvr)[0]


def trace_many(index, tokenizer, items: Sequence[tuple[GenKey, str]], cfg: TraceConfig = DEFAULT_TRACE,
               nvr: NVBlocksConfig = DEFAULT_NVR, progress: ProgressFn | None = None) -> list[TraceResult]:
    """Trace many completions, one TraceResult per item in order, each carrying its own key.

    Identical completion texts are traced once and the result re-keyed, so duplicates stay
    separate records with identical content. ``cfg.workers`` processes share the work
    (:mod:`core.tracing.parallel`; 0 = every available core) when there is enough of it; the results
    are the same for any number of workers.
    """
    _check(index, tokenizer)
    tracker = Tracker("trace", len(items), progress, unit="completions")
    first = {}  # each distinct text with the key of its first item
    for key, text in items:
        first.setdefault(text, key)
    unique = list(first)
    toks = dict(zip(unique, tokenize(tokenizer, unique)))
    done: dict[str, TraceResult] = {}
    workers = parallel.resolve_workers(cfg.workers)
    if workers > 1 and len(parallel.plan_chunks(len(unique), workers)) > 1 and parallel.can_run(index):
        work = [(first[t], t, *toks[t]) for t in unique]
        traced = parallel.trace_parallel(index, tokenizer, cfg, nvr, work, workers, lambda n: tracker.advance(n),
                                         entry=f"{__name__}:serve_worker")
        if traced is not None:
            done = dict(zip(unique, traced))
    if not done:
        tracer = _Tracer(index, tokenizer, cfg, nvr)
        lengths = _BatchedLengths(index, [toks[t][0] for t in unique])
        for a in range(0, len(unique), BATCH):
            texts = unique[a:a + BATCH]
            traced = tracer.trace_batch([(first[t], t, *toks[t]) for t in texts],
                                        [lengths.get(i) for i in range(a, a + len(texts))], tracker.advance)
            done.update(zip(texts, traced))
    if len(items) > tracker.done:
        tracker.advance(len(items) - tracker.done)  # repeated texts
    return [done[text] if done[text].key == key else replace(done[text], key=key) for key, text in items]


def _trace_chunk(cfg: TraceConfig, nvr: NVBlocksConfig, chunk: list[tuple]) -> list[TraceResult]:
    """In a worker process: trace ``chunk`` = [(key, text, ids, bounds)] with the worker's index (its
    tracer is kept between chunks of the same configs: its caches hold pure results)."""
    state = parallel.worker_state()
    index, tracer = state["index"], state["tracer"]
    if tracer is None or tracer.cfg != cfg or tracer.nvr != nvr:
        tracer = state["tracer"] = _Tracer(index, state["tokenizer"], cfg, nvr)
    lengths = _BatchedLengths(index, [ids for _, _, ids, _ in chunk], BATCH)
    return [r for a in range(0, len(chunk), BATCH)
            for r in tracer.trace_batch(chunk[a:a + BATCH], [lengths.get(i) for i in range(a, min(a + BATCH, len(chunk)))])]


def serve_worker() -> None:
    """Main of a tracing worker process (started by :mod:`core.tracing.parallel`)."""
    parallel.serve(_trace_chunk)
